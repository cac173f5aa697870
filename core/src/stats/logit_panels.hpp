// The per-neuron logistic regression for float32 activations on CPUs with AVX-512 or AVX2 and
// FMA: sixteen (AVX-512) or eight (AVX2) neurons at a time, one per lane, packed into a panel
// [samples][lanes] that stays in cache. Newton
// starts at the linear discriminant where the classes overlap well (else at zero), steps in
// float32 until no coefficient moves by more than 1e-4 of its size, then in float64; a float64
// step moving none by more than 1e-5 of its size finishes the fit to third order (statsmodels
// stops later, at tol; the estimates agree far below it) and carries the statistics from its pass
// to the estimate by their derivatives. No ATen: raw arrays in, one record per neuron out.
#pragma once

#include <cstdint>

namespace llmscope::stats::kernels {

// True where the CPU has the instructions of one of logit_fit_panels' kernels (AVX-512 F and DQ,
// or AVX2 and FMA).
bool logit_panels_available();

struct LogitNeuronFit {
  double b0, b1;    // intercept and slope (nan where unfitted)
  double se0, se1;  // Wald standard errors
  double accuracy;  // share of samples predicted right (p > 0.5), or the separating threshold's
  double llf;       // log-likelihood at the fit
  int64_t iterations;
  bool converged, separated;
};

// Fits y ~ 1 + x[:, j] for neurons j in [begin, end) of x [samples, m] (float32, row-major) with
// y [samples] of 0 and 1 (one_class: y holds one class only, so every neuron is separated).
// out[j - begin] receives neuron j's fit. The same rules as the float64 per-neuron fit
// (separation, constant columns, max_iter, tol); estimates agree with it to about 1e-10.
void logit_fit_panels(const float* x, int64_t samples, int64_t m, int64_t begin, int64_t end,
                      const double* y, bool one_class, int64_t max_iter, double tol,
                      LogitNeuronFit* out);

}  // namespace llmscope::stats::kernels
