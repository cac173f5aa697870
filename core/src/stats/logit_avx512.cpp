// The AVX-512 passes of the panel fit of per-neuron logistic regressions (logit_panels.hpp).
//
// Why this shape: a float64 Newton pass over one neuron's samples costs an exponential and a
// division per sample, and statsmodels' fit from zero takes about six of them. Here each panel
// holds sixteen neurons' samples side by side, so a pass is one aligned load per sample row and
// the per-neuron sums need no horizontal reduction. Newton starts at the linear discriminant where
// the classes overlap well; the steps that only have to get near the optimum run in float32
// (sixteen lanes, a short polynomial); one float64 pass (the reciprocal from rcp14 and two
// Newton-Raphson corrections instead of a division) then finishes the fit to third order and
// gives the statistics at it.
#include <algorithm>
#include <cmath>
#include <limits>

#include "base/avx512_math.hpp"
#include "logit_panel_fit.hpp"

namespace llmscope::stats::kernels::panel_fit {
namespace {

constexpr int kLanes = 16;  // neurons per panel: one float32 lane each, two float64 halves of 8
constexpr int kPanels = 4;  // panels packed together: each sample row is read 256 bytes at once

// The passes over a panel, for panel_fit::fit_panels.
struct Avx512 {
  static constexpr int kLanes = panel_fit::kLanes, kPanels = panel_fit::kPanels;

  // The five sums of a Newton step for the 16 neurons of a panel, in float32:
  // sums[q][lane] = {sum w, sum w x, sum w x^2, sum (y - p), sum (y - p) x}.
  LLMSCOPE_AVX512 static void coarse_pass(const float* panel, const float* y, int64_t s,
                                          const float* b0, const float* b1, float sums[5][kLanes]) {
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

  LLMSCOPE_AVX512 static void fine_pass(const float* panel, int half, const double* y, int64_t s,
                                        const double* b0, const double* b1,
                                        double sums[kFineSums][8]) {
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
  // {y = 0, y = 0, y = 1, y = 1} for the starting point.
  LLMSCOPE_AVX512 static void panel_ranges(const float* panel, const float* y, int64_t s,
                                           double range[4][16], double moments[4][16]) {
    const float inf = std::numeric_limits<float>::infinity();
    __m512 max0 = _mm512_set1_ps(-inf), min0 = _mm512_set1_ps(inf), max1 = max0, min1 = min0;
    __m512 sum0 = _mm512_setzero_ps(), sq0 = sum0, sum1 = sum0, sq1 = sum0;
    for (int64_t i = 0; i < s; ++i) {
      const __m512 x = _mm512_load_ps(panel + i * kLanes);
      const __mmask16 one = y[i] > 0.5f ? 0xFFFF : 0, zero = static_cast<__mmask16>(~one);
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

  // Copies neurons [j0, j0 + count) of x [s, m] into count / 16 panels [s][16] one after another
  // (the last one padded with zeros), reading each sample row's part once.
  LLMSCOPE_AVX512 static void pack_panels(const float* x, int64_t s, int64_t m, int64_t j0,
                                          int64_t count, float* panels) {
    const int64_t panel_count = (count + kLanes - 1) / kLanes;
    constexpr int64_t kAhead =
        16;  // rows a page or more apart: the hardware does not prefetch them
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
};

}  // namespace

void fit_panels_avx512(const float* x, int64_t samples, int64_t m, int64_t begin, int64_t end,
                       const double* y, bool one_class, int64_t max_iter, double tol,
                       LogitNeuronFit* out) {
  fit_panels<Avx512>(x, samples, m, begin, end, y, one_class, max_iter, tol, out);
}

}  // namespace llmscope::stats::kernels::panel_fit
