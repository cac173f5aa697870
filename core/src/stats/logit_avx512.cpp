// The AVX-512 panel fit of per-neuron logistic regressions (logit_avx512.hpp).
//
// Why this shape: a float64 Newton pass over one neuron's samples costs an exponential and a
// division per sample, and statsmodels' fit from zero takes about six of them. Here each panel
// holds sixteen neurons' samples side by side, so a pass is one aligned load per sample row and
// the per-neuron sums need no horizontal reduction. Newton starts at the linear discriminant where
// the classes overlap well; the steps that only have to get near the optimum run in float32
// (sixteen lanes, a short polynomial); one float64 pass (the reciprocal from rcp14 and two
// Newton-Raphson corrections instead of a division) then finishes the fit to third order and
// gives the statistics at it.
#include "logit_avx512.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "base/avx512_math.hpp"
#include "kernels.hpp"

namespace llmscope::stats::kernels {
namespace {

constexpr int kLanes = 16;  // neurons per panel: one float32 lane each, two float64 halves of 8
constexpr int kPanels = 4;  // panels packed together: each sample row is read 256 bytes at once
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
// Float32 steps hand a neuron over to float64 once no coefficient moves by more than this times
// (1 + the largest coefficient): float32's own rounding stops them near 1e-7.
constexpr double kCoarseTol = 1e-4;

// The five sums of a Newton step for the 16 neurons of a panel, in float32:
// sums[q][lane] = {sum w, sum w x, sum w x^2, sum (y - p), sum (y - p) x}.
LLMSCOPE_AVX512 void coarse_pass(const float* panel, const float* y, int64_t s, const float* b0,
                                 const float* b1, float sums[5][kLanes]) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 neg_b0 = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_loadu_ps(b0));
  const __m512 vb1 = _mm512_loadu_ps(b1);
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0;
  for (int64_t i = 0; i < s; ++i) {
    const __m512 x = _mm512_load_ps(panel + i * kLanes);
    const __m512 d = _mm512_add_ps(one, exp_ps(_mm512_fnmadd_ps(vb1, x, neg_b0)));  // 1 + e^-z
    __m512 p = _mm512_rcp14_ps(d);
    p = _mm512_fmadd_ps(p, _mm512_fnmadd_ps(d, p, one), p);
    const __m512 w = _mm512_fnmadd_ps(p, p, p);
    const __m512 r = _mm512_sub_ps(_mm512_set1_ps(y[i]), p);
    const __m512 wx = _mm512_mul_ps(w, x);
    a0 = _mm512_add_ps(a0, w);
    a1 = _mm512_add_ps(a1, wx);
    a2 = _mm512_fmadd_ps(wx, x, a2);
    a3 = _mm512_add_ps(a3, r);
    a4 = _mm512_fmadd_ps(r, x, a4);
  }
  _mm512_storeu_ps(sums[0], a0);
  _mm512_storeu_ps(sums[1], a1);
  _mm512_storeu_ps(sums[2], a2);
  _mm512_storeu_ps(sums[3], a3);
  _mm512_storeu_ps(sums[4], a4);
}

// What a float64 pass gives for each lane, at the lane's (b0, b1) with z = b0 + b1 x,
// p = 1 / (1 + e^-z), w = p (1 - p) and v = dw/dz = w (1 - 2 p).
// clang-format off
enum FineSum {
  // The Hessian: sum w, w x, w x^2; the score: sum (y - p), (y - p) x.
  kW, kWX, kWXX, kR, kRX,
  // The Hessian's derivative: sum v x^k, k = 0..3.
  kV, kVX, kVXX, kVXXX,
  // Samples with p > 0.5, and of those the ones with y = 1.
  kPredicted, kPredictedOnes,
  // min |z| / (1 + |x|) (to 2^-14): a step moving no coefficient by more than this leaves every
  // prediction as it is.
  kNearest,
  // sum (y - 1) z - max(-z - 700, 0), and prod (1 + e^-z) = product 2^exponent with product in
  // [1, 2): the log-likelihood without and with its logs.
  kLinear, kProduct, kExponent,
  kFineSums
};
// clang-format on

// The log-likelihood sum y z - log(1 + e^z) = sum (y - 1) z - log(1 + e^-z), the logs summed as
// the log of their product (kept as mantissa and exponent, so it never overflows): one log per
// neuron instead of one per sample. e^-z was clamped at e^700; beyond it log(1 + e^-z) is -z.
double log_likelihood(const double sums[kFineSums][8], int l) {
  return sums[kLinear][l] - (std::log(sums[kProduct][l]) + sums[kExponent][l] * std::log(2.0));
}

LLMSCOPE_AVX512 void fine_pass(const float* panel, int half, const double* y, int64_t s,
                               const double* b0, const double* b1, double sums[kFineSums][8]) {
  const __m512d one = _mm512_set1_pd(1.0), zero = _mm512_setzero_pd();
  const __m512d vb0 = _mm512_loadu_pd(b0), vb1 = _mm512_loadu_pd(b1);
  __m512d acc[kFineSums];
  for (__m512d& a : acc) a = zero;
  acc[kProduct] = one;
  acc[kNearest] = _mm512_set1_pd(std::numeric_limits<double>::infinity());
  for (int64_t i = 0; i < s; ++i) {
    const __m512d x = _mm512_cvtps_pd(_mm256_load_ps(panel + i * kLanes + 8 * half));
    const __m512d z = _mm512_fmadd_pd(vb1, x, vb0);
    const __m512d e = exp_pd(_mm512_sub_pd(zero, z));  // e^-z
    const __m512d p = reciprocal_pd(_mm512_add_pd(one, e));
    const __m512d w = _mm512_fnmadd_pd(p, p, p);
    const __m512d yi = _mm512_set1_pd(y[i]);
    const __m512d r = _mm512_sub_pd(yi, p);
    const __m512d wx = _mm512_mul_pd(w, x);
    acc[kW] = _mm512_add_pd(acc[kW], w);
    acc[kWX] = _mm512_add_pd(acc[kWX], wx);
    acc[kWXX] = _mm512_fmadd_pd(wx, x, acc[kWXX]);
    acc[kR] = _mm512_add_pd(acc[kR], r);
    acc[kRX] = _mm512_fmadd_pd(r, x, acc[kRX]);
    const __m512d v = _mm512_fnmadd_pd(_mm512_add_pd(p, p), w, w);
    const __m512d vx = _mm512_mul_pd(v, x);
    const __m512d vxx = _mm512_mul_pd(vx, x);
    acc[kV] = _mm512_add_pd(acc[kV], v);
    acc[kVX] = _mm512_add_pd(acc[kVX], vx);
    acc[kVXX] = _mm512_add_pd(acc[kVXX], vxx);
    acc[kVXXX] = _mm512_fmadd_pd(vxx, x, acc[kVXXX]);
    const __mmask8 predicted = _mm512_cmp_pd_mask(p, _mm512_set1_pd(0.5), _CMP_GT_OQ);
    acc[kPredicted] = _mm512_mask_add_pd(acc[kPredicted], predicted, acc[kPredicted], one);
    acc[kPredictedOnes] =
        _mm512_mask_add_pd(acc[kPredictedOnes], predicted, acc[kPredictedOnes], yi);
    const __m512d reach = _mm512_rcp14_pd(_mm512_add_pd(one, _mm512_abs_pd(x)));
    acc[kNearest] = _mm512_min_pd(acc[kNearest], _mm512_mul_pd(_mm512_abs_pd(z), reach));
    const __m512d beyond = _mm512_max_pd(_mm512_sub_pd(_mm512_set1_pd(-700.0), z), zero);
    acc[kLinear] =
        _mm512_sub_pd(_mm512_fmadd_pd(_mm512_set1_pd(y[i] - 1.0), z, acc[kLinear]), beyond);
    const __m512d product = _mm512_mul_pd(acc[kProduct], _mm512_add_pd(one, e));
    acc[kExponent] = _mm512_add_pd(acc[kExponent], _mm512_getexp_pd(product));
    acc[kProduct] = _mm512_getmant_pd(product, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
  }
  for (int q = 0; q < kFineSums; ++q) _mm512_storeu_pd(sums[q], acc[q]);
}

// Per lane: the class ranges {max over y = 0, min over y = 0, max over y = 1, min over y = 1}
// (a nan sample is skipped, as logit_class_ranges does) and the classes' sums of x and x^2
// {y = 0, y = 0, y = 1, y = 1} for the starting point; ones[i] is all lanes where y[i] = 1.
LLMSCOPE_AVX512 void panel_ranges(const float* panel, const __mmask16* ones, int64_t s,
                                  double range[4][kLanes], double moments[4][kLanes]) {
  const float inf = std::numeric_limits<float>::infinity();
  __m512 max0 = _mm512_set1_ps(-inf), min0 = _mm512_set1_ps(inf), max1 = max0, min1 = min0;
  __m512 sum0 = _mm512_setzero_ps(), sq0 = sum0, sum1 = sum0, sq1 = sum0;
  for (int64_t i = 0; i < s; ++i) {
    const __m512 x = _mm512_load_ps(panel + i * kLanes);
    const __mmask16 one = ones[i], zero = static_cast<__mmask16>(~one);
    // max(x, acc) and min(x, acc) return acc where x is nan.
    max0 = _mm512_mask_max_ps(max0, zero, x, max0);
    min0 = _mm512_mask_min_ps(min0, zero, x, min0);
    max1 = _mm512_mask_max_ps(max1, one, x, max1);
    min1 = _mm512_mask_min_ps(min1, one, x, min1);
    sum0 = _mm512_mask_add_ps(sum0, zero, sum0, x);
    sq0 = _mm512_mask3_fmadd_ps(x, x, sq0, zero);
    sum1 = _mm512_mask_add_ps(sum1, one, sum1, x);
    sq1 = _mm512_mask3_fmadd_ps(x, x, sq1, one);
  }
  const __m512 all[8] = {max0, min0, max1, min1, sum0, sq0, sum1, sq1};
  for (int q = 0; q < 8; ++q) {
    float lanes[kLanes];
    _mm512_storeu_ps(lanes, all[q]);
    for (int l = 0; l < kLanes; ++l) (q < 4 ? range[q] : moments[q - 4])[l] = lanes[l];
  }
}

// Where Newton starts: for well-overlapping classes (means at most two pooled standard
// deviations apart) the linear discriminant, whose logistic model is usually within a few
// percent of the fit and saves two or three steps; otherwise zero, as statsmodels starts.
void starting_point(const double moments[4], double n0, double n1, double& b0, double& b1) {
  b0 = b1 = 0.0;
  if (n0 < 2 || n1 < 2) return;
  const double m0 = moments[0] / n0, m1 = moments[2] / n1;
  const double var = (moments[1] - n0 * m0 * m0 + moments[3] - n1 * m1 * m1) / (n0 + n1 - 2);
  const double gap = m1 - m0;
  if (!(var > 0) || !std::isfinite(gap) || gap * gap > 4 * var) return;
  b1 = gap / var;
  b0 = std::log(n1 / n0) - b1 * (m0 + m1) / 2;
}

enum class Stage { coarse, fine, done };

struct Lane {
  Stage stage = Stage::done;
  double b0 = 0.0, b1 = 0.0;
  int64_t steps = 0;
  bool converged = false;
  bool exact_pass = false;  // the statistics need a pass at (b0, b1)
  double hessian[3] = {};   // at the fit: sum w, w x, w x^2
  double predicted = 0.0, predicted_ones = 0.0, llf = 0.0;
};

// The Newton update (d0, d1) from the Hessian h and score g; false where h is singular.
bool solve(const double h[3], double g0, double g1, double& d0, double& d1) {
  const double det = h[0] * h[2] - h[1] * h[1];
  d0 = (h[2] * g0 - h[1] * g1) / det;
  d1 = (h[0] * g1 - h[1] * g0) / det;
  return std::isfinite(d0) && std::isfinite(d1);
}

// A float64 step that moves no coefficient by more than this times (1 + the largest) ends the
// fit: the step is taken to third order and the statistics carried to the estimate by their
// derivatives, with errors of order (this)^2 relative, far below statsmodels' tol.
constexpr double kFinishTol = 1e-5;

struct Settings {
  const float* y_float;
  const double* y;
  const __mmask16* ones;
  int64_t samples;
  double count0, count1;  // samples with y = 0 and y = 1
  bool one_class;
  int64_t max_iter;
  double tol;
};

// The statistics from a pass at the lane's own coefficients.
void take_statistics(Lane& ln, const double sums[kFineSums][8], int l) {
  ln.hessian[0] = sums[kW][l];
  ln.hessian[1] = sums[kWX][l];
  ln.hessian[2] = sums[kWXX][l];
  ln.predicted = sums[kPredicted][l];
  ln.predicted_ones = sums[kPredictedOnes][l];
  ln.llf = log_likelihood(sums, l);
}

// One float64 pass's verdict for a lane at (b0, b1): a step, and whether the fit is done.
void fine_step(Lane& ln, const double sums[kFineSums][8], int l, const Settings& set) {
  ++ln.steps;
  const double h[3] = {sums[kW][l], sums[kWX][l], sums[kWXX][l]};
  const double g0 = sums[kR][l], g1 = sums[kRX][l];
  double d0, d1;
  if (!solve(h, g0, g1, d0, d1)) {  // a singular Hessian: unconverged, stays here
    take_statistics(ln, sums, l);
    ln.stage = Stage::done;
    return;
  }
  const double moved = std::max(std::abs(d0), std::abs(d1));
  const double size = 1.0 + std::max(std::abs(ln.b0), std::abs(ln.b1));
  if (moved <= kFinishTol * size) {
    // Third order: the score at b + d is g - H d - 1/2 sum v (d0 + d1 x)^2 (1, x), so one more
    // solve with that curvature removes the step's own error (cubic convergence).
    const double v0 = sums[kV][l], v1 = sums[kVX][l], v2 = sums[kVXX][l], v3 = sums[kVXXX][l];
    const double c0 = d0 * d0 * v0 + 2 * d0 * d1 * v1 + d1 * d1 * v2;
    const double c1 = d0 * d0 * v1 + 2 * d0 * d1 * v2 + d1 * d1 * v3;
    double e0, e1;
    if (solve(h, g0 - c0 / 2, g1 - c1 / 2, e0, e1)) {
      d0 = e0;
      d1 = e1;
    }
    // The statistics at b + d: the Hessian to first order (its derivative is sum v x^k), the
    // log-likelihood to second (score and Hessian); predictions are unchanged unless a sample
    // lies within the step's reach of the boundary, when a pass at the estimate decides.
    ln.hessian[0] = h[0] + d0 * v0 + d1 * v1;
    ln.hessian[1] = h[1] + d0 * v1 + d1 * v2;
    ln.hessian[2] = h[2] + d0 * v2 + d1 * v3;
    ln.predicted = sums[kPredicted][l];
    ln.predicted_ones = sums[kPredictedOnes][l];
    ln.llf = log_likelihood(sums, l) + g0 * d0 + g1 * d1 -
             (h[0] * d0 * d0 + 2 * h[1] * d0 * d1 + h[2] * d1 * d1) / 2;
    ln.exact_pass = !(std::max(std::abs(d0), std::abs(d1)) * (1 + 1e-3) < sums[kNearest][l]);
    ln.b0 += d0;
    ln.b1 += d1;
    ln.converged = true;
    ln.stage = Stage::done;
    return;
  }
  ln.b0 += d0;
  ln.b1 += d1;
  if (moved <= set.tol || ln.steps >= set.max_iter) {  // a tol above kFinishTol, or out of steps
    ln.converged = moved <= set.tol;
    ln.exact_pass = true;
    ln.stage = Stage::done;
  }
}

// Fits the `lanes` neurons of one panel into out[0, lanes).
LLMSCOPE_AVX512 void fit_panel(const float* panel, int lanes, const Settings& set,
                               LogitNeuronFit* out) {
  const int64_t s = set.samples;
  double range[4][kLanes], moments[4][kLanes];
  panel_ranges(panel, set.ones, s, range, moments);
  Lane lane[kLanes];
  for (int l = 0; l < lanes; ++l) {
    const double lane_range[4] = {range[0][l], range[1][l], range[2][l], range[3][l]};
    const ClassSplit split = class_split(lane_range, set.one_class);
    LogitNeuronFit& fit = out[l];
    fit = LogitNeuronFit{kNan, kNan, kNan, kNan, kNan, kNan, 0, false, split.separated};
    if (split.separated) {
      fit.accuracy =
          split.quasi ? threshold_accuracy(panel + l, kLanes, set.y, s, split.threshold) : 1.0;
    }
    if (split.separated || split.constant) continue;
    const double lane_moments[4] = {moments[0][l], moments[1][l], moments[2][l], moments[3][l]};
    starting_point(lane_moments, set.count0, set.count1, lane[l].b0, lane[l].b1);
    lane[l].stage = Stage::coarse;
  }

  // Float32 steps until each neuron is near its optimum (leaving at least one step to float64).
  const int64_t coarse_limit = std::max<int64_t>(0, set.max_iter - 1);
  for (;;) {
    bool any = false;
    float b0[kLanes] = {}, b1[kLanes] = {};
    for (int l = 0; l < kLanes; ++l) {
      if (lane[l].stage == Stage::coarse && lane[l].steps >= coarse_limit)
        lane[l].stage = Stage::fine;
      any |= lane[l].stage == Stage::coarse;
      b0[l] = static_cast<float>(lane[l].b0);
      b1[l] = static_cast<float>(lane[l].b1);
    }
    if (!any) break;
    float sums[5][kLanes];
    coarse_pass(panel, set.y_float, s, b0, b1, sums);
    for (int l = 0; l < kLanes; ++l) {
      Lane& ln = lane[l];
      if (ln.stage != Stage::coarse) continue;
      ++ln.steps;
      const double h[3] = {sums[0][l], sums[1][l], sums[2][l]};
      double d0, d1;
      if (!solve(h, sums[3][l], sums[4][l], d0, d1)) {  // float32 overflowed or lost the
        ln.stage = Stage::fine;                         // Hessian: go on in float64 from here
        continue;
      }
      ln.b0 += d0;
      ln.b1 += d1;
      const double size = 1.0 + std::max(std::abs(ln.b0), std::abs(ln.b1));
      if (std::max(std::abs(d0), std::abs(d1)) <= kCoarseTol * size) ln.stage = Stage::fine;
    }
  }

  // Float64 steps, each half of the panel on its own, until a step finishes the fit; usually
  // the first does.
  for (int half = 0; half < 2; ++half) {
    Lane* hl = lane + 8 * half;
    double sums[kFineSums][8];
    for (;;) {
      bool any = false;
      double b0[8], b1[8];
      for (int l = 0; l < 8; ++l) {
        any |= hl[l].stage == Stage::fine;
        b0[l] = hl[l].b0;
        b1[l] = hl[l].b1;
      }
      if (!any) break;
      fine_pass(panel, half, set.y, s, b0, b1, sums);
      for (int l = 0; l < 8; ++l) {
        if (hl[l].stage == Stage::fine) fine_step(hl[l], sums, l, set);
      }
    }
    // The few whose statistics need a pass at their estimate.
    bool any = false;
    double b0[8], b1[8];
    for (int l = 0; l < 8; ++l) {
      any |= hl[l].exact_pass;
      b0[l] = hl[l].b0;
      b1[l] = hl[l].b1;
    }
    if (any) {
      fine_pass(panel, half, set.y, s, b0, b1, sums);
      for (int l = 0; l < 8; ++l) {
        if (hl[l].exact_pass) take_statistics(hl[l], sums, l);
      }
    }
  }

  for (int l = 0; l < lanes; ++l) {
    const Lane& ln = lane[l];
    LogitNeuronFit& fit = out[l];
    if (ln.steps == 0) continue;  // separated or constant: left as set above
    const double* h = ln.hessian;
    const double det = h[0] * h[2] - h[1] * h[1];
    fit.b0 = ln.b0;
    fit.b1 = ln.b1;
    fit.se0 = std::sqrt(h[2] / det);
    fit.se1 = std::sqrt(h[0] / det);
    // Right: the predicted ones that are ones, and the samples of class 0 not predicted one.
    fit.accuracy = (set.count0 - (ln.predicted - ln.predicted_ones) + ln.predicted_ones) /
                   static_cast<double>(s);
    fit.llf = ln.llf;
    fit.iterations = ln.steps;
    fit.converged = ln.converged;
  }
}

// Copies neurons [j0, j0 + count) of x [s, m] into count / 16 panels [s][16] one after another
// (the last one padded with zeros), reading each sample row's part once.
LLMSCOPE_AVX512 void pack_panels(const float* x, int64_t s, int64_t m, int64_t j0, int64_t count,
                                 float* panels) {
  const int64_t panel_count = (count + kLanes - 1) / kLanes;
  constexpr int64_t kAhead = 16;  // rows a page or more apart: the hardware does not prefetch them
  for (int64_t i = 0; i < s; ++i) {
    const float* row = x + i * m + j0;
    if (i + kAhead < s) {
      for (int64_t g = 0; g < panel_count; ++g) __builtin_prefetch(row + kAhead * m + g * kLanes);
    }
    for (int64_t g = 0; g < panel_count; ++g) {
      const int64_t n = std::min<int64_t>(kLanes, count - g * kLanes);
      const __mmask16 present = static_cast<__mmask16>((1u << n) - 1);
      _mm512_store_ps(panels + (g * s + i) * kLanes,
                      _mm512_maskz_loadu_ps(present, row + g * kLanes));
    }
  }
}

}  // namespace

bool logit_panels_available() { return cpu_has_avx512(); }

void logit_fit_panels(const float* x, int64_t samples, int64_t m, int64_t begin, int64_t end,
                      const double* y, bool one_class, int64_t max_iter, double tol,
                      LogitNeuronFit* out) {
  std::vector<float> y_float(static_cast<size_t>(samples));
  std::vector<__mmask16> ones(static_cast<size_t>(samples));
  for (int64_t i = 0; i < samples; ++i) {
    y_float[i] = static_cast<float>(y[i]);
    ones[i] = y[i] > 0.5 ? 0xFFFF : 0;
  }
  double count1 = 0;
  for (int64_t i = 0; i < samples; ++i) count1 += y[i] > 0.5 ? 1.0 : 0.0;
  const Settings set{y_float.data(), y,         ones.data(), samples, samples - count1,
                     count1,         one_class, max_iter,    tol};
  // 64-byte aligned: each sample row of a panel is one cache line.
  const size_t panel_floats = static_cast<size_t>(samples) * kLanes;
  std::unique_ptr<float, decltype(&std::free)> panels(
      static_cast<float*>(std::aligned_alloc(64, kPanels * panel_floats * sizeof(float))),
      &std::free);
  if (!panels) throw std::bad_alloc();
  for (int64_t j0 = begin; j0 < end; j0 += kPanels * kLanes) {
    const int64_t count = std::min<int64_t>(kPanels * kLanes, end - j0);
    pack_panels(x, samples, m, j0, count, panels.get());
    for (int64_t g = 0; g * kLanes < count; ++g) {
      const int lanes = static_cast<int>(std::min<int64_t>(kLanes, count - g * kLanes));
      fit_panel(panels.get() + g * panel_floats, lanes, set, out + (j0 - begin) + g * kLanes);
    }
  }
}

}  // namespace llmscope::stats::kernels
