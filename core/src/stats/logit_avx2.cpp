// The AVX2 passes of the panel fit of per-neuron logistic regressions (logit_panels.hpp), for
// CPUs without AVX-512 (AMD before Zen 4, Intel client cores): eight neurons per panel, float64
// halves of four. The same sums as logit_avx512.cpp's passes; where AVX2 lacks an instruction,
// the same result another way: masks as all-ones lanes, the float64 reciprocal as a division,
// exponent and mantissa taken from the bits, 1 / (1 + |x|) from the 12-bit rcpps (the 1e-3
// margin fine_step leaves covers its 4e-4).
#include <algorithm>
#include <cmath>
#include <limits>

#include "base/avx2_math.hpp"
#include "logit_panel_fit.hpp"

namespace llmscope::stats::kernels::panel_fit {
namespace {

constexpr int kLanes = 8;   // neurons per panel: one float32 lane each, two float64 halves of 4
constexpr int kPanels = 8;  // panels packed together: each sample row is read 256 bytes at once

LLMSCOPE_AVX2_INLINE __m256d abs_pd(__m256d v) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), v); }

// The passes over a panel, for panel_fit::fit_panels.
struct Avx2 {
  static constexpr int kLanes = panel_fit::kLanes, kPanels = panel_fit::kPanels;

  // The five sums of a Newton step for the 8 neurons of a panel, in float32:
  // sums[q][lane] = {sum w, sum w x, sum w x^2, sum (y - p), sum (y - p) x}.
  LLMSCOPE_AVX2 static void coarse_pass(const float* panel, const float* y, int64_t s,
                                        const float* b0, const float* b1, float sums[5][kLanes]) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 neg_b0 = _mm256_sub_ps(_mm256_setzero_ps(), _mm256_loadu_ps(b0));
    const __m256 vb1 = _mm256_loadu_ps(b1);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0;
    for (int64_t i = 0; i < s; ++i) {
      const __m256 x = _mm256_load_ps(panel + i * kLanes);
      const __m256 d = _mm256_add_ps(one, exp_ps(_mm256_fnmadd_ps(vb1, x, neg_b0)));  // 1 + e^-z
      __m256 p = _mm256_rcp_ps(d);
      p = _mm256_fmadd_ps(p, _mm256_fnmadd_ps(d, p, one), p);  // 12 bits to about 23
      const __m256 w = _mm256_fnmadd_ps(p, p, p);
      const __m256 r = _mm256_sub_ps(_mm256_set1_ps(y[i]), p);
      const __m256 wx = _mm256_mul_ps(w, x);
      a0 = _mm256_add_ps(a0, w);
      a1 = _mm256_add_ps(a1, wx);
      a2 = _mm256_fmadd_ps(wx, x, a2);
      a3 = _mm256_add_ps(a3, r);
      a4 = _mm256_fmadd_ps(r, x, a4);
    }
    _mm256_storeu_ps(sums[0], a0);
    _mm256_storeu_ps(sums[1], a1);
    _mm256_storeu_ps(sums[2], a2);
    _mm256_storeu_ps(sums[3], a3);
    _mm256_storeu_ps(sums[4], a4);
  }

  // The float64 pass's sums (FineSum) for half `half` of a panel: lanes 4 half .. 4 half + 3.
  LLMSCOPE_AVX2 static void fine_pass(const float* panel, int half, const double* y, int64_t s,
                                      const double* b0, const double* b1,
                                      double sums[kFineSums][4]) {
    const __m256d one = _mm256_set1_pd(1.0), zero = _mm256_setzero_pd();
    const __m256d vb0 = _mm256_loadu_pd(b0), vb1 = _mm256_loadu_pd(b1);
    const __m256i mantissa = _mm256_set1_epi64x(0x000FFFFFFFFFFFFFLL);
    const __m256i one_bits = _mm256_set1_epi64x(0x3FF0000000000000LL);
    const __m256d two_52 = _mm256_set1_pd(4503599627370496.0);
    __m256d acc[kFineSums];
    for (__m256d& a : acc) a = zero;
    acc[kProduct] = one;
    acc[kNearest] = _mm256_set1_pd(std::numeric_limits<double>::infinity());
    for (int64_t i = 0; i < s; ++i) {
      const __m128 xf = _mm_load_ps(panel + i * kLanes + 4 * half);
      const __m256d x = _mm256_cvtps_pd(xf);
      const __m256d z = _mm256_fmadd_pd(vb1, x, vb0);
      const __m256d e = exp_pd(_mm256_sub_pd(zero, z));  // e^-z
      const __m256d p = _mm256_div_pd(one, _mm256_add_pd(one, e));
      const __m256d w = _mm256_fnmadd_pd(p, p, p);
      const __m256d yi = _mm256_set1_pd(y[i]);
      const __m256d r = _mm256_sub_pd(yi, p);
      const __m256d wx = _mm256_mul_pd(w, x);
      acc[kW] = _mm256_add_pd(acc[kW], w);
      acc[kWX] = _mm256_add_pd(acc[kWX], wx);
      acc[kWXX] = _mm256_fmadd_pd(wx, x, acc[kWXX]);
      acc[kR] = _mm256_add_pd(acc[kR], r);
      acc[kRX] = _mm256_fmadd_pd(r, x, acc[kRX]);
      const __m256d v = _mm256_fnmadd_pd(_mm256_add_pd(p, p), w, w);
      const __m256d vx = _mm256_mul_pd(v, x);
      const __m256d vxx = _mm256_mul_pd(vx, x);
      acc[kV] = _mm256_add_pd(acc[kV], v);
      acc[kVX] = _mm256_add_pd(acc[kVX], vx);
      acc[kVXX] = _mm256_add_pd(acc[kVXX], vxx);
      acc[kVXXX] = _mm256_fmadd_pd(vxx, x, acc[kVXXX]);
      const __m256d predicted = _mm256_cmp_pd(p, _mm256_set1_pd(0.5), _CMP_GT_OQ);
      acc[kPredicted] = _mm256_add_pd(acc[kPredicted], _mm256_and_pd(predicted, one));
      acc[kPredictedOnes] = _mm256_add_pd(acc[kPredictedOnes], _mm256_and_pd(predicted, yi));
      const __m256d reach = _mm256_cvtps_pd(
          _mm_rcp_ps(_mm_add_ps(_mm_set1_ps(1.0f), _mm_andnot_ps(_mm_set1_ps(-0.0f), xf))));
      acc[kNearest] = _mm256_min_pd(acc[kNearest], _mm256_mul_pd(abs_pd(z), reach));
      const __m256d beyond = _mm256_max_pd(_mm256_sub_pd(_mm256_set1_pd(-700.0), z), zero);
      acc[kLinear] =
          _mm256_sub_pd(_mm256_fmadd_pd(_mm256_set1_pd(y[i] - 1.0), z, acc[kLinear]), beyond);
      // product in [1, 2) times 1 + e^-z (at most 1 + e^700) stays a normal number: its exponent
      // and mantissa are read from the bits.
      const __m256i bits = _mm256_castpd_si256(_mm256_mul_pd(acc[kProduct], _mm256_add_pd(one, e)));
      const __m256d biased =
          _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(bits, 52),
                                                            _mm256_castpd_si256(two_52))),
                        two_52);
      acc[kExponent] = _mm256_add_pd(acc[kExponent], _mm256_sub_pd(biased, _mm256_set1_pd(1023.0)));
      acc[kProduct] =
          _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(bits, mantissa), one_bits));
    }
    for (int q = 0; q < kFineSums; ++q) _mm256_storeu_pd(sums[q], acc[q]);
  }

  // Per lane: the class ranges {max over y = 0, min over y = 0, max over y = 1, min over y = 1}
  // (a nan sample is skipped, as logit_class_ranges does) and the classes' sums of x and x^2
  // {y = 0, y = 0, y = 1, y = 1} for the starting point.
  LLMSCOPE_AVX2 static void panel_ranges(const float* panel, const float* y, int64_t s,
                                         double range[4][16], double moments[4][16]) {
    const float inf = std::numeric_limits<float>::infinity();
    __m256 max0 = _mm256_set1_ps(-inf), min0 = _mm256_set1_ps(inf), max1 = max0, min1 = min0;
    __m256 sum0 = _mm256_setzero_ps(), sq0 = sum0, sum1 = sum0, sq1 = sum0;
    for (int64_t i = 0; i < s; ++i) {
      const __m256 x = _mm256_load_ps(panel + i * kLanes);
      const __m256 one = _mm256_castsi256_ps(_mm256_set1_epi32(y[i] > 0.5f ? -1 : 0));
      // max(x, acc) and min(x, acc) return acc where x is nan; the blend keeps the other class's.
      max0 = _mm256_blendv_ps(_mm256_max_ps(x, max0), max0, one);
      min0 = _mm256_blendv_ps(_mm256_min_ps(x, min0), min0, one);
      max1 = _mm256_blendv_ps(max1, _mm256_max_ps(x, max1), one);
      min1 = _mm256_blendv_ps(min1, _mm256_min_ps(x, min1), one);
      const __m256 x1 = _mm256_and_ps(one, x), x0 = _mm256_andnot_ps(one, x);
      sum0 = _mm256_add_ps(sum0, x0);
      sq0 = _mm256_fmadd_ps(x0, x0, sq0);
      sum1 = _mm256_add_ps(sum1, x1);
      sq1 = _mm256_fmadd_ps(x1, x1, sq1);
    }
    const __m256 all[8] = {max0, min0, max1, min1, sum0, sq0, sum1, sq1};
    for (int q = 0; q < 8; ++q) {
      float lanes[kLanes];
      _mm256_storeu_ps(lanes, all[q]);
      for (int l = 0; l < kLanes; ++l) (q < 4 ? range[q] : moments[q - 4])[l] = lanes[l];
    }
  }

  // Copies neurons [j0, j0 + count) of x [s, m] into count / 8 panels [s][8] one after another
  // (the last one padded with zeros), reading each sample row's part once.
  LLMSCOPE_AVX2 static void pack_panels(const float* x, int64_t s, int64_t m, int64_t j0,
                                        int64_t count, float* panels) {
    const int64_t panel_count = (count + kLanes - 1) / kLanes;
    constexpr int64_t kAhead =
        16;  // rows a page or more apart: the hardware does not prefetch them
    for (int64_t i = 0; i < s; ++i) {
      const float* row = x + i * m + j0;
      if (i + kAhead < s) {
        for (int64_t g = 0; g < panel_count; g += 2)
          __builtin_prefetch(row + kAhead * m + g * kLanes);
      }
      for (int64_t g = 0; g < panel_count; ++g) {
        const int64_t n = std::min<int64_t>(kLanes, count - g * kLanes);
        __m256 v;
        if (n == kLanes) {
          v = _mm256_loadu_ps(row + g * kLanes);
        } else {
          const __m256i present = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                                                     _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
          v = _mm256_maskload_ps(row + g * kLanes, present);
        }
        _mm256_store_ps(panels + (g * s + i) * kLanes, v);
      }
    }
  }
};

}  // namespace

void fit_panels_avx2(const float* x, int64_t samples, int64_t m, int64_t begin, int64_t end,
                     const double* y, bool one_class, int64_t max_iter, double tol,
                     LogitNeuronFit* out) {
  fit_panels<Avx2>(x, samples, m, begin, end, y, one_class, max_iter, tol, out);
}

}  // namespace llmscope::stats::kernels::panel_fit
