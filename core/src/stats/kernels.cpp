// The statistics' inner loops (kernels.hpp).
#include "kernels.hpp"

#include <algorithm>
#include <array>
#include <cstddef>

namespace llmscope::stats::kernels {
namespace {

template <class T>
[[gnu::always_inline]] inline void shifted_sums(const T* __restrict x, int64_t samples, int64_t m,
                                                int64_t begin, int64_t end,
                                                const double* __restrict shift,
                                                double* __restrict s1, double* __restrict s2) {
  for (int64_t i = 0; i < samples; ++i) {
    const T* __restrict row = x + i * m;
    for (int64_t j = begin; j < end; ++j) {
      const double d = static_cast<double>(row[j]) - shift[j];
      s1[j] += d;
      s2[j] += d * d;
    }
  }
}

// c[0] x^(N-1) + ... + c[N-1] by Horner's rule (coefficients highest power first).
template <size_t N>
[[gnu::always_inline]] inline double horner(double x, const std::array<double, N>& c) {
  double p = c[0];
  for (size_t i = 1; i < N; ++i) p = p * x + c[i];
  return p;
}

// e^r = sum r^n / n! to n = 13 (the factorials are exact in double).
constexpr std::array<double, 14> kExpTaylor = [] {
  std::array<double, 14> c{};
  double factorial = 1.0;
  for (int n = 0; n < 14; ++n) {
    if (n > 0) factorial *= n;
    c[13 - n] = 1.0 / factorial;
  }
  return c;
}();

// atanh(z) / z = sum z^2k / (2k + 1) to k = 16.
constexpr std::array<double, 17> kAtanhSeries = [] {
  std::array<double, 17> c{};
  for (int k = 0; k < 17; ++k) c[16 - k] = 1.0 / (2 * k + 1);
  return c;
}();

// e^z, written so that a loop of it vectorises: z = k ln2 + r with |r| <= ln2 / 2 (k rounded by
// the 1.5 * 2^52 shifter, whose low mantissa bits then hold k), e^r by its Taylor polynomial to
// r^13 (error below 2e-17), and 2^k built in the exponent bits. z is clamped to [-708, 708].
[[gnu::always_inline]] inline double exp_lane(double z) {
  z = std::max(-708.0, std::min(708.0, z));  // min/max, not branches: the loop vectorises
  constexpr double kShifter = 0x1.8p52;
  constexpr double kLog2e = 1.4426950408889634;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // exact times any k here
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  const double shifted = z * kLog2e + kShifter;
  const auto k_bits = __builtin_bit_cast(int64_t, shifted);
  const auto shifter_bits = __builtin_bit_cast(int64_t, kShifter);
  const double k = shifted - kShifter;
  const double r = (z - k * kLn2Hi) - k * kLn2Lo;
  const double poly = horner(r, kExpTaylor);
  const int64_t scale_bits = (k_bits - shifter_bits + 1023) << 52;
  return poly * __builtin_bit_cast(double, scale_bits);
}

// log(1 + t) for t in [0, 1], vectorisable: 2 atanh(z) with z = t / (2 + t) in [0, 1/3] (no
// rounding of 1 + t), by its series to z^33 (error below 3e-17).
[[gnu::always_inline]] inline double log1p_unit(double t) {
  const double z = t / (2.0 + t);
  const double poly = horner(z * z, kAtanhSeries);
  return 2.0 * z * poly;
}

constexpr int kLanes = 8;

template <class T>
void transpose_tiles(const T* __restrict x, int64_t rows, int64_t cols, double* __restrict out) {
  constexpr int64_t kTile = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    const int64_t r1 = std::min(rows, r0 + kTile);
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t c1 = std::min(cols, c0 + kTile);
      for (int64_t c = c0; c < c1; ++c) {
        for (int64_t r = r0; r < r1; ++r) out[c * rows + r] = static_cast<double>(x[r * cols + c]);
      }
    }
  }
}
constexpr double kInf = __builtin_inf();

// One sample's contribution to the five sums, in lane `lane` of acc [5][kLanes].
[[gnu::always_inline]] inline void add_sample(double xi, double yi, double b0, double b1,
                                              double* __restrict acc, int lane) {
  const double p = 1.0 / (1.0 + exp_lane(-(b0 + b1 * xi)));
  const double w = p * (1.0 - p);
  const double r = yi - p;
  const double wx = w * xi;
  acc[0 * kLanes + lane] += w;
  acc[1 * kLanes + lane] += wx;
  acc[2 * kLanes + lane] += wx * xi;
  acc[3 * kLanes + lane] += r;
  acc[4 * kLanes + lane] += r * xi;
}

}  // namespace

__attribute__((target_clones("avx512f", "avx2", "default"))) void add_shifted_sums(
    const float* x, int64_t samples, int64_t m, int64_t begin, int64_t end, const double* shift,
    double* s1, double* s2) {
  shifted_sums(x, samples, m, begin, end, shift, s1, s2);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void add_shifted_sums(
    const double* x, int64_t samples, int64_t m, int64_t begin, int64_t end, const double* shift,
    double* s1, double* s2) {
  shifted_sums(x, samples, m, begin, end, shift, s1, s2);
}

void transpose_to_double(const float* x, int64_t rows, int64_t cols, double* out) {
  transpose_tiles(x, rows, cols, out);
}

void transpose_to_double(const double* x, int64_t rows, int64_t cols, double* out) {
  transpose_tiles(x, rows, cols, out);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void logit_step_sums(
    const double* __restrict x, const double* __restrict y, int64_t s, double b0, double b1,
    double sums[5]) {
  double acc[5 * kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= s; i += kLanes) {
    for (int lane = 0; lane < kLanes; ++lane)
      add_sample(x[i + lane], y[i + lane], b0, b1, acc, lane);
  }
  for (int lane = 0; i < s; ++i, ++lane) add_sample(x[i], y[i], b0, b1, acc, lane);
  for (int q = 0; q < 5; ++q) {
    double total = 0.0;
    for (int lane = 0; lane < kLanes; ++lane) total += acc[q * kLanes + lane];
    sums[q] = total;
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void logit_class_ranges(
    const double* __restrict x, const double* __restrict y, int64_t s, double range[4]) {
  double acc[4 * kLanes];
  for (int lane = 0; lane < kLanes; ++lane) {
    acc[0 * kLanes + lane] = -kInf;
    acc[1 * kLanes + lane] = kInf;
    acc[2 * kLanes + lane] = -kInf;
    acc[3 * kLanes + lane] = kInf;
  }
  auto add = [&](double xi, double yi, int lane) {
    const bool one = yi > 0.5;
    acc[0 * kLanes + lane] = std::max(acc[0 * kLanes + lane], one ? -kInf : xi);
    acc[1 * kLanes + lane] = std::min(acc[1 * kLanes + lane], one ? kInf : xi);
    acc[2 * kLanes + lane] = std::max(acc[2 * kLanes + lane], one ? xi : -kInf);
    acc[3 * kLanes + lane] = std::min(acc[3 * kLanes + lane], one ? xi : kInf);
  };
  int64_t i = 0;
  for (; i + kLanes <= s; i += kLanes) {
    for (int lane = 0; lane < kLanes; ++lane) add(x[i + lane], y[i + lane], lane);
  }
  for (int lane = 0; i < s; ++i, ++lane) add(x[i], y[i], lane);
  for (int q = 0; q < 4; ++q) {
    double best = acc[q * kLanes];
    for (int lane = 1; lane < kLanes; ++lane) {
      best = q % 2 == 0 ? std::max(best, acc[q * kLanes + lane])
                        : std::min(best, acc[q * kLanes + lane]);
    }
    range[q] = best;
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void logit_fit_summary(
    const double* __restrict x, const double* __restrict y, int64_t s, double b0, double b1,
    double summary[5]) {
  double correct[kLanes] = {}, llf[kLanes] = {}, h00[kLanes] = {}, h01[kLanes] = {},
         h11[kLanes] = {};
  auto add = [&](double xi, double yi, int lane) {
    const double eta = b0 + b1 * xi;
    // One exponential serves both: e = e^-|eta|, p = 1 / (1 + e) or e / (1 + e) by sign.
    const double e = exp_lane(-std::abs(eta));
    const double p = (eta >= 0.0 ? 1.0 : e) / (1.0 + e);
    const double predicted = p > 0.5 ? 1.0 : 0.0;  // y is exactly 0 or 1 (checked by logit)
    correct[lane] += yi * predicted + (1.0 - yi) * (1.0 - predicted);
    llf[lane] += yi * eta - (std::max(eta, 0.0) + log1p_unit(e));
    const double w = p * (1.0 - p);
    h00[lane] += w;
    h01[lane] += w * xi;
    h11[lane] += w * xi * xi;
  };
  int64_t i = 0;
  for (; i + kLanes <= s; i += kLanes) {
    for (int lane = 0; lane < kLanes; ++lane) add(x[i + lane], y[i + lane], lane);
  }
  for (int lane = 0; i < s; ++i, ++lane) add(x[i], y[i], lane);
  for (int q = 0; q < 5; ++q) summary[q] = 0.0;
  for (int lane = 0; lane < kLanes; ++lane) {
    summary[0] += correct[lane];
    summary[1] += llf[lane];
    summary[2] += h00[lane];
    summary[3] += h01[lane];
    summary[4] += h11[lane];
  }
}

}  // namespace llmscope::stats::kernels
