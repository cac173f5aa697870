// The statistics' inner loops over raw arrays, in their own translation unit: compiled at -O3
// (loop vectorisation) without the precompiled ATen header, each for AVX-512 and AVX2 as well as
// the baseline, picked at run time (target_clones). Each neuron's sums run in a fixed order, so a
// machine always gives the same bits; the AVX-512 build contracts to FMA, so the last bits can
// differ between machines (as ATen's own CPU kernels do).
#pragma once

#include <algorithm>
#include <cstdint>

namespace llmscope::stats::kernels {

// For neurons [begin, end) of x [samples, m] (row-major): adds to s1[j] and s2[j] the sums over
// the rows of d = x[i][j] - shift[j] and d * d, in float64. Each neuron's sums run in row order
// (vectorised across neurons).
void add_shifted_sums(const float* x, int64_t samples, int64_t m, int64_t begin, int64_t end,
                      const double* shift, double* s1, double* s2);
void add_shifted_sums(const double* x, int64_t samples, int64_t m, int64_t begin, int64_t end,
                      const double* shift, double* s1, double* s2);

// out [cols, rows] = x [rows, cols] transposed, in float64 (tiles that stay in cache).
void transpose_to_double(const float* x, int64_t rows, int64_t cols, double* out);
void transpose_to_double(const double* x, int64_t rows, int64_t cols, double* out);

// The sums one Newton step of a one-predictor logistic regression needs, for one neuron's
// samples x [s] and 0/1 targets y [s]: with p = 1 / (1 + e^-(b0 + b1 x)) and w = p (1 - p),
// sums = {sum w, sum w x, sum w x^2, sum (y - p), sum (y - p) x}. e^z comes from a polynomial
// the compiler vectorises (within about 1 ulp; z is clamped to [-708, 708], beyond which p is
// 0 or 1 in double precision); the sums run in 8 fixed lanes, added in a fixed order.
void logit_step_sums(const double* x, const double* y, int64_t s, double b0, double b1,
                     double sums[5]);

// The range of each class of one neuron's samples: {max over y = 0, min over y = 0, max over
// y = 1, min over y = 1} (-inf / +inf for a class with no samples).
void logit_class_ranges(const double* x, const double* y, int64_t s, double range[4]);

// How one neuron's classes lie on x, from logit_class_ranges' {max0, min0, max1, min1}.
struct ClassSplit {
  bool constant;     // one value for every sample: no slope
  bool separated;    // a threshold on x splits the classes (or y has one class): no estimate
  bool quasi;        // separated with the classes meeting at one shared value, `threshold`
  double threshold;  // (quasi only)
};
inline ClassSplit class_split(const double range[4], bool one_class) {
  const double max0 = range[0], min0 = range[1], max1 = range[2], min1 = range[3];
  ClassSplit split{};
  split.constant = std::max(max0, max1) == std::min(min0, min1);
  const bool up = max0 <= min1, down = max1 <= min0;
  split.separated = one_class || ((up || down) && !split.constant);
  split.quasi = split.separated && !one_class && (up ? max0 == min1 : max1 == min0);
  split.threshold = up ? max0 : max1;
  return split;
}

// The accuracy of a quasi-separating threshold: the samples at x == threshold (x[i * stride])
// go to the class most of them have.
template <class T>
double threshold_accuracy(const T* x, int64_t stride, const double* y, int64_t s,
                          double threshold) {
  double ties0 = 0, ties1 = 0;
  for (int64_t i = 0; i < s; ++i) {
    if (static_cast<double>(x[i * stride]) == threshold) (y[i] > 0.5 ? ties1 : ties0) += 1.0;
  }
  return 1.0 - std::min(ties0, ties1) / static_cast<double>(s);
}

// A fit's summary for one neuron at eta = b0 + b1 x: {the samples whose prediction (p > 0.5)
// matches y, the log-likelihood sum y eta - log(1 + e^eta), and the Hessian's sum w, sum w x,
// sum w x^2 (w = p (1 - p)), for the standard errors}. log(1 + e^eta) is taken as
// max(eta, 0) + log1p(e^-|eta|), exact and never overflowing.
void logit_fit_summary(const double* x, const double* y, int64_t s, double b0, double b1,
                       double summary[5]);

}  // namespace llmscope::stats::kernels
