// The per-neuron logistic regression over panels, whatever the vector width (logit_panels.hpp):
// where Newton starts, the float32 steps, the float64 steps and their third-order finish, and the
// statistics at the estimate. The passes over a panel's samples are the instruction set's own:
// `Isa` gives them (logit_avx512.cpp, logit_avx2.cpp), with kLanes neurons per panel (one float32
// lane each, two float64 halves of kLanes / 2) and kPanels panels packed together.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <vector>

#include "kernels.hpp"
#include "logit_panels.hpp"

namespace llmscope::stats::kernels::panel_fit {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
// Float32 steps hand a neuron over to float64 once no coefficient moves by more than this times
// (1 + the largest coefficient): float32's own rounding stops them near 1e-7.
constexpr double kCoarseTol = 1e-4;
// A float64 step that moves no coefficient by more than this times (1 + the largest) ends the
// fit: the step is taken to third order and the statistics carried to the estimate by their
// derivatives, with errors of order (this)^2 relative, far below statsmodels' tol.
constexpr double kFinishTol = 1e-5;

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
  // min |z| / (1 + |x|) (to 2^-12 or better): a step moving no coefficient by more than this
  // leaves every prediction as it is.
  kNearest,
  // sum (y - 1) z - max(-z - 700, 0), and prod (1 + e^-z) = product 2^exponent with product in
  // [1, 2): the log-likelihood without and with its logs.
  kLinear, kProduct, kExponent,
  kFineSums
};
// clang-format on

// A pass's sums for one lane (the float64 passes write sums[q][lane] for a half's lanes).
struct LaneSums {
  const double* sums;  // sums[q * stride + lane]
  int stride;
  double operator[](int q) const { return sums[q * stride]; }
};

// The log-likelihood sum y z - log(1 + e^z) = sum (y - 1) z - log(1 + e^-z), the logs summed as
// the log of their product (kept as mantissa and exponent, so it never overflows): one log per
// neuron instead of one per sample. e^-z was clamped at e^700; beyond it log(1 + e^-z) is -z.
inline double log_likelihood(LaneSums s) {
  return s[kLinear] - (std::log(s[kProduct]) + s[kExponent] * std::log(2.0));
}

// Where Newton starts: for well-overlapping classes (means at most two pooled standard
// deviations apart) the linear discriminant, whose logistic model is usually within a few
// percent of the fit and saves two or three steps; otherwise zero, as statsmodels starts.
inline void starting_point(const double moments[4], double n0, double n1, double& b0, double& b1) {
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
inline bool solve(const double h[3], double g0, double g1, double& d0, double& d1) {
  const double det = h[0] * h[2] - h[1] * h[1];
  d0 = (h[2] * g0 - h[1] * g1) / det;
  d1 = (h[0] * g1 - h[1] * g0) / det;
  return std::isfinite(d0) && std::isfinite(d1);
}

struct Settings {
  const float* y_float;
  const double* y;
  int64_t samples;
  double count0, count1;  // samples with y = 0 and y = 1
  bool one_class;
  int64_t max_iter;
  double tol;
};

// The statistics from a pass at the lane's own coefficients.
inline void take_statistics(Lane& ln, LaneSums s) {
  ln.hessian[0] = s[kW];
  ln.hessian[1] = s[kWX];
  ln.hessian[2] = s[kWXX];
  ln.predicted = s[kPredicted];
  ln.predicted_ones = s[kPredictedOnes];
  ln.llf = log_likelihood(s);
}

// One float64 pass's verdict for a lane at (b0, b1): a step, and whether the fit is done.
void fine_step(Lane& ln, LaneSums s, const Settings& set);

// The float32 steps' verdict for a lane from its sums {w, w x, w x^2, y - p, (y - p) x}.
void coarse_step(Lane& ln, const double sums[5]);

// A panel's fits from its class ranges and moments (per lane: {max, min} over y = 0, then over
// y = 1; sums of x and x^2 over y = 0, then y = 1): separated and constant neurons are settled
// here, the rest start Newton.
void start_lanes(const float* panel, int lanes, int stride, const double range[4][16],
                 const double moments[4][16], const Settings& set, Lane* lane, LogitNeuronFit* out);

// The fits of the lanes from their final state.
void finish_lanes(const Lane* lane, int lanes, const Settings& set, LogitNeuronFit* out);

// Fits the `lanes` neurons of one panel into out[0, lanes).
template <class Isa>
void fit_panel(const float* panel, int lanes, const Settings& set, LogitNeuronFit* out) {
  constexpr int kLanes = Isa::kLanes, kHalf = kLanes / 2;
  const int64_t s = set.samples;
  double range[4][16], moments[4][16];
  Isa::panel_ranges(panel, set.y_float, s, range, moments);
  Lane lane[kLanes];
  start_lanes(panel, lanes, kLanes, range, moments, set, lane, out);

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
    Isa::coarse_pass(panel, set.y_float, s, b0, b1, sums);
    for (int l = 0; l < kLanes; ++l) {
      if (lane[l].stage != Stage::coarse) continue;
      const double lane_sums[5] = {sums[0][l], sums[1][l], sums[2][l], sums[3][l], sums[4][l]};
      coarse_step(lane[l], lane_sums);
    }
  }

  // Float64 steps, each half of the panel on its own, until a step finishes the fit; usually
  // the first does.
  for (int half = 0; half < 2; ++half) {
    Lane* hl = lane + kHalf * half;
    double sums[kFineSums][kHalf];
    for (;;) {
      bool any = false;
      double b0[kHalf], b1[kHalf];
      for (int l = 0; l < kHalf; ++l) {
        any |= hl[l].stage == Stage::fine;
        b0[l] = hl[l].b0;
        b1[l] = hl[l].b1;
      }
      if (!any) break;
      Isa::fine_pass(panel, half, set.y, s, b0, b1, sums);
      for (int l = 0; l < kHalf; ++l) {
        if (hl[l].stage == Stage::fine) fine_step(hl[l], LaneSums{&sums[0][l], kHalf}, set);
      }
    }
    // The few whose statistics need a pass at their estimate.
    bool any = false;
    double b0[kHalf], b1[kHalf];
    for (int l = 0; l < kHalf; ++l) {
      any |= hl[l].exact_pass;
      b0[l] = hl[l].b0;
      b1[l] = hl[l].b1;
    }
    if (any) {
      Isa::fine_pass(panel, half, set.y, s, b0, b1, sums);
      for (int l = 0; l < kHalf; ++l) {
        if (hl[l].exact_pass) take_statistics(hl[l], LaneSums{&sums[0][l], kHalf});
      }
    }
  }
  finish_lanes(lane, lanes, set, out);
}

// logit_fit_panels with the instruction set's passes: neurons [begin, end) packed kPanels
// panels at a time.
template <class Isa>
void fit_panels(const float* x, int64_t samples, int64_t m, int64_t begin, int64_t end,
                const double* y, bool one_class, int64_t max_iter, double tol,
                LogitNeuronFit* out) {
  constexpr int kLanes = Isa::kLanes, kPanels = Isa::kPanels;
  std::vector<float> y_float(static_cast<size_t>(samples));
  double count1 = 0;
  for (int64_t i = 0; i < samples; ++i) {
    y_float[i] = static_cast<float>(y[i]);
    count1 += y[i] > 0.5 ? 1.0 : 0.0;
  }
  const Settings set{y_float.data(), y,         samples,  samples - count1,
                     count1,         one_class, max_iter, tol};
  // 64-byte aligned: each sample row of a panel is a cache line or half of one.
  const size_t panel_floats = static_cast<size_t>(samples) * kLanes;
  std::unique_ptr<float, decltype(&std::free)> panels(
      static_cast<float*>(std::aligned_alloc(64, kPanels * panel_floats * sizeof(float))),
      &std::free);
  if (!panels) throw std::bad_alloc();
  for (int64_t j0 = begin; j0 < end; j0 += kPanels * kLanes) {
    const int64_t count = std::min<int64_t>(kPanels * kLanes, end - j0);
    Isa::pack_panels(x, samples, m, j0, count, panels.get());
    for (int64_t g = 0; g * kLanes < count; ++g) {
      const int lanes = static_cast<int>(std::min<int64_t>(kLanes, count - g * kLanes));
      fit_panel<Isa>(panels.get() + g * panel_floats, lanes, set, out + (j0 - begin) + g * kLanes);
    }
  }
}

// The instruction sets' instantiations (logit_avx512.cpp, logit_avx2.cpp), with fit_panels'
// arguments; logit_fit_panels picks one.
void fit_panels_avx512(const float* x, int64_t samples, int64_t m, int64_t begin, int64_t end,
                       const double* y, bool one_class, int64_t max_iter, double tol,
                       LogitNeuronFit* out);
void fit_panels_avx2(const float* x, int64_t samples, int64_t m, int64_t begin, int64_t end,
                     const double* y, bool one_class, int64_t max_iter, double tol,
                     LogitNeuronFit* out);

}  // namespace llmscope::stats::kernels::panel_fit
