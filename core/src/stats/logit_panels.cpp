// The panel fit's steps that are the same for every vector width, and the choice of kernel
// (logit_panels.hpp, logit_panel_fit.hpp).
#include "logit_panels.hpp"

#include "base/avx2_math.hpp"
#include "base/avx512_math.hpp"
#include "logit_panel_fit.hpp"

namespace llmscope::stats::kernels {
namespace panel_fit {

void fine_step(Lane& ln, LaneSums s, const Settings& set) {
  ++ln.steps;
  const double h[3] = {s[kW], s[kWX], s[kWXX]};
  const double g0 = s[kR], g1 = s[kRX];
  double d0, d1;
  if (!solve(h, g0, g1, d0, d1)) {  // a singular Hessian: unconverged, stays here
    take_statistics(ln, s);
    ln.stage = Stage::done;
    return;
  }
  const double moved = std::max(std::abs(d0), std::abs(d1));
  const double size = 1.0 + std::max(std::abs(ln.b0), std::abs(ln.b1));
  if (moved <= kFinishTol * size) {
    // Third order: the score at b + d is g - H d - 1/2 sum v (d0 + d1 x)^2 (1, x), so one more
    // solve with that curvature removes the step's own error (cubic convergence).
    const double v0 = s[kV], v1 = s[kVX], v2 = s[kVXX], v3 = s[kVXXX];
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
    ln.predicted = s[kPredicted];
    ln.predicted_ones = s[kPredictedOnes];
    ln.llf = log_likelihood(s) + g0 * d0 + g1 * d1 -
             (h[0] * d0 * d0 + 2 * h[1] * d0 * d1 + h[2] * d1 * d1) / 2;
    ln.exact_pass = !(std::max(std::abs(d0), std::abs(d1)) * (1 + 1e-3) < s[kNearest]);
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

void coarse_step(Lane& ln, const double sums[5]) {
  ++ln.steps;
  const double h[3] = {sums[0], sums[1], sums[2]};
  double d0, d1;
  if (!solve(h, sums[3], sums[4], d0, d1)) {  // float32 overflowed or lost the Hessian: go on
    ln.stage = Stage::fine;                   // in float64 from here
    return;
  }
  ln.b0 += d0;
  ln.b1 += d1;
  const double size = 1.0 + std::max(std::abs(ln.b0), std::abs(ln.b1));
  if (std::max(std::abs(d0), std::abs(d1)) <= kCoarseTol * size) ln.stage = Stage::fine;
}

void start_lanes(const float* panel, int lanes, int stride, const double range[4][16],
                 const double moments[4][16], const Settings& set, Lane* lane,
                 LogitNeuronFit* out) {
  for (int l = 0; l < lanes; ++l) {
    const double lane_range[4] = {range[0][l], range[1][l], range[2][l], range[3][l]};
    const ClassSplit split = class_split(lane_range, set.one_class);
    LogitNeuronFit& fit = out[l];
    fit = LogitNeuronFit{kNan, kNan, kNan, kNan, kNan, kNan, 0, false, split.separated};
    if (split.separated) {
      fit.accuracy =
          split.quasi ? threshold_accuracy(panel + l, stride, set.y, set.samples, split.threshold)
                      : 1.0;
    }
    if (split.separated || split.constant) continue;
    const double lane_moments[4] = {moments[0][l], moments[1][l], moments[2][l], moments[3][l]};
    starting_point(lane_moments, set.count0, set.count1, lane[l].b0, lane[l].b1);
    lane[l].stage = Stage::coarse;
  }
}

void finish_lanes(const Lane* lane, int lanes, const Settings& set, LogitNeuronFit* out) {
  for (int l = 0; l < lanes; ++l) {
    const Lane& ln = lane[l];
    LogitNeuronFit& fit = out[l];
    if (ln.steps == 0) continue;  // separated or constant: left as start_lanes set it
    const double* h = ln.hessian;
    const double det = h[0] * h[2] - h[1] * h[1];
    fit.b0 = ln.b0;
    fit.b1 = ln.b1;
    fit.se0 = std::sqrt(h[2] / det);
    fit.se1 = std::sqrt(h[0] / det);
    // Right: the predicted ones that are ones, and the samples of class 0 not predicted one.
    fit.accuracy = (set.count0 - (ln.predicted - ln.predicted_ones) + ln.predicted_ones) /
                   static_cast<double>(set.samples);
    fit.llf = ln.llf;
    fit.iterations = ln.steps;
    fit.converged = ln.converged;
  }
}

}  // namespace panel_fit

bool logit_panels_available() { return cpu_has_avx512() || cpu_has_avx2_fma(); }

void logit_fit_panels(const float* x, int64_t samples, int64_t m, int64_t begin, int64_t end,
                      const double* y, bool one_class, int64_t max_iter, double tol,
                      LogitNeuronFit* out) {
  if (cpu_has_avx512()) {
    panel_fit::fit_panels_avx512(x, samples, m, begin, end, y, one_class, max_iter, tol, out);
  } else {
    panel_fit::fit_panels_avx2(x, samples, m, begin, end, y, one_class, max_iter, tol, out);
  }
}

}  // namespace llmscope::stats::kernels
