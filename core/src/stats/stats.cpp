// Batch statistics for every neuron at once. Everything is vectorised in ATen in float64 on the
// input's device; only the Student-t tail probabilities leave it, computed on the CPU with
// Boost.Math (ATen has no incomplete beta function).
#include "llmscope/stats.hpp"

#include <ATen/Parallel.h>

#include <boost/math/distributions/students_t.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "checks.hpp"
#include "kernels.hpp"
#include "llmscope/error.hpp"
#include "llmscope/matmul.hpp"
#include "logit_panels.hpp"

namespace llmscope::stats {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

// Boost reports problems through its return value here, never by throwing: a domain error
// gives nan and an underflowing tail gives 0, as scipy's special functions do.
using QuietPolicy = boost::math::policies::policy<
    boost::math::policies::domain_error<boost::math::policies::ignore_error>,
    boost::math::policies::pole_error<boost::math::policies::ignore_error>,
    boost::math::policies::overflow_error<boost::math::policies::ignore_error>,
    boost::math::policies::underflow_error<boost::math::policies::ignore_error>,
    boost::math::policies::evaluation_error<boost::math::policies::ignore_error>,
    // Double precision throughout (as scipy's Cephes): boost would otherwise promote to long
    // double, several times slower on x86-64.
    boost::math::policies::promote_double<false>>;

using detail::check_real;
using detail::same_device;
using detail::to_double;

// Count, mean and unbiased variance along dim 0 of x [samples, n].
struct Moments {
  double n;
  at::Tensor mean, var;
};

// Mean and unbiased variance per neuron of x [samples, m] as stored, in one pass: the sums of
// d = x - K and d^2 with K near the mean (the mean of the first rows), then
// mean = K + sum d / n and var = (sum d^2 - (sum d)^2 / n) / (n - 1), the shifted-data formula,
// as exact as numpy's two passes while K is within a few standard deviations of the mean. A
// neuron where it is not (the correction above 90% of sum d^2, which would amplify rounding more
// than tenfold) is computed again in two passes. Neurons are split over the threads; no
// converted copy, no temporaries.
template <class T>
void column_moments(const T* x, int64_t samples, int64_t m, double* mean, double* var) {
  const double n = static_cast<double>(samples);
  at::parallel_for(0, m, 512, [&](int64_t begin, int64_t end) {
    std::vector<double> shift_storage(static_cast<size_t>(end - begin), 0.0);
    double* shift = shift_storage.data() - begin;  // indexed by neuron, as mean and var
    const int64_t head = std::min<int64_t>(samples, 16);
    for (int64_t i = 0; i < head; ++i) {
      for (int64_t j = begin; j < end; ++j) shift[j] += static_cast<double>(x[i * m + j]);
    }
    for (int64_t j = begin; j < end; ++j)
      shift[j] /= static_cast<double>(std::max<int64_t>(head, 1));
    std::fill(mean + begin, mean + end, 0.0);
    std::fill(var + begin, var + end, 0.0);
    kernels::add_shifted_sums(x, samples, m, begin, end, shift, mean, var);
    for (int64_t j = begin; j < end; ++j) {
      const double s1 = mean[j], s2 = var[j];
      const double correction = s1 * s1 / n;
      mean[j] = shift[j] + s1 / n;
      // n = 1 gives 0 / 0 = nan, as scipy's ddof=1 variance does.
      var[j] = (s2 - correction) / (n - 1.0);
      if (correction > 0.9 * s2 && s2 > 0) {
        double m1 = 0, m2 = 0;
        for (int64_t i = 0; i < samples; ++i) m1 += static_cast<double>(x[i * m + j]);
        m1 /= n;
        for (int64_t i = 0; i < samples; ++i) {
          const double d = static_cast<double>(x[i * m + j]) - m1;
          m2 += d * d;
        }
        mean[j] = m1;
        var[j] = m2 / (n - 1.0);
      }
    }
  });
}

Moments moments(const at::Tensor& x) {
  const double n = static_cast<double>(x.size(0));
  if (x.device().is_cpu() && x.dim() == 2 &&
      (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble)) {
    const at::Tensor c = x.contiguous();
    at::Tensor mean = at::empty({x.size(1)}, x.options().dtype(at::kDouble));
    at::Tensor var = at::empty_like(mean);
    if (c.scalar_type() == at::kFloat) {
      column_moments(c.data_ptr<float>(), c.size(0), c.size(1), mean.data_ptr<double>(),
                     var.data_ptr<double>());
    } else {
      column_moments(c.data_ptr<double>(), c.size(0), c.size(1), mean.data_ptr<double>(),
                     var.data_ptr<double>());
    }
    return {n, mean, var};
  }
  const at::Tensor xd = to_double(x);
  at::Tensor mean = xd.mean(0);
  at::Tensor var = (xd - mean).square_().sum(0).div_(n - 1.0);
  return {n, mean, var};
}

at::Tensor full_like_double(const at::Tensor& like, double value) {
  return at::full(like.sizes(), value, like.options().dtype(at::kDouble));
}

void same_neurons(const at::Tensor& a, const at::Tensor& b, const char* function) {
  if (a.sizes().slice(1) != b.sizes().slice(1)) {
    throw Error(std::string(function) + ": a and b must have the same number of neurons (" +
                neuron_shape_text(a.sizes().slice(1)) + " vs " +
                neuron_shape_text(b.sizes().slice(1)) + ")");
  }
}

TTest reshaped(const TTest& r, at::IntArrayRef neuron_shape) {
  return {r.t.reshape(neuron_shape), r.df.reshape(neuron_shape), r.p.reshape(neuron_shape)};
}

// Values of a 0/1 target; throws naming the first offending value.
at::Tensor check_binary_target(const at::Tensor& y, int64_t samples) {
  check_real(y, "logit: y");
  if (y.dim() != 1 || y.size(0) != samples) {
    throw Error("logit: y must be a [samples] vector with one value per row of x (x has " +
                std::to_string(samples) + " samples, y has shape " + shape_string(y.sizes()) + ")");
  }
  at::Tensor yd = to_double(y);
  at::Tensor bad = (yd != 0) & (yd != 1);
  if (bad.any().item<bool>()) {
    double value = yd.masked_select(bad)[0].item<double>();
    throw Error("logit: y must hold only 0 and 1, found " + std::to_string(value));
  }
  return yd;
}

}  // namespace

std::string neuron_shape_text(at::IntArrayRef neuron_shape) {
  if (neuron_shape.empty()) return "1";
  if (neuron_shape.size() == 1) return std::to_string(neuron_shape[0]);
  return shape_string(neuron_shape);
}

// x [samples, ...] as [samples, neurons], float32 kept as it is (moments() sums in float64),
// other real types as float64; throws naming `what` for no samples or no neurons.
at::Tensor samples_by_neurons_as_stored(const at::Tensor& x, const char* what) {
  check_real(x, what);
  if (x.dim() == 0) {
    throw Error(std::string(what) + " must have a samples dim (dim 0), got a 0-d tensor");
  }
  if (x.size(0) == 0) throw Error(std::string(what) + " has no samples (dim 0 is empty)");
  int64_t neurons = 1;
  for (int64_t size : x.sizes().slice(1)) neurons *= size;
  if (neurons == 0)
    throw Error(std::string(what) + " has no neurons (shape " + shape_string(x.sizes()) + ")");
  const bool kept = x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble;
  return (kept ? x : to_double(x)).reshape({x.size(0), neurons});
}

// As samples_by_neurons_as_stored, always float64.
at::Tensor as_samples_by_neurons(const at::Tensor& x, const char* what) {
  return to_double(samples_by_neurons_as_stored(x, what));
}

// ---- t-tests ----

at::Tensor student_t_two_sided_p(const at::Tensor& t, const at::Tensor& df) {
  std::vector<at::Tensor> both = at::broadcast_tensors({t, df});
  at::Tensor tc = both[0].detach().to(at::kCPU, at::kDouble).contiguous();
  at::Tensor dc = both[1].detach().to(at::kCPU, at::kDouble).contiguous();
  at::Tensor p = at::empty(tc.sizes(), tc.options());
  const double* tv = tc.data_ptr<double>();
  const double* dv = dc.data_ptr<double>();
  double* pv = p.data_ptr<double>();
  // Each incomplete-beta evaluation costs about 5 us; spread them over the threads.
  at::parallel_for(0, tc.numel(), 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const double abs_t = std::abs(tv[i]);
      const double d = dv[i];
      if (std::isnan(abs_t) || std::isnan(d) || d <= 0) {
        pv[i] = kNan;
      } else if (std::isinf(abs_t)) {
        pv[i] = 0.0;
      } else if (std::isinf(d)) {
        pv[i] = std::erfc(abs_t / std::sqrt(2.0));
      } else {
        boost::math::students_t_distribution<double, QuietPolicy> dist(d);
        pv[i] = std::min(1.0, 2.0 * boost::math::cdf(boost::math::complement(dist, abs_t)));
      }
    }
  });
  return p.to(t.device());
}

TTest ttest_1samp_from_moments(double n, const at::Tensor& mean, const at::Tensor& var, double mu) {
  at::Tensor t = (mean - mu) / (var / n).sqrt();
  at::Tensor df = full_like_double(mean, n - 1.0);
  return {t, df, student_t_two_sided_p(t, df)};
}

TTest ttest_ind_from_moments(double n1, const at::Tensor& mean1, const at::Tensor& var1, double n2,
                             const at::Tensor& mean2, const at::Tensor& var2, bool equal_var) {
  at::Tensor df, denominator;
  if (equal_var) {
    const double dof = n1 + n2 - 2.0;
    df = full_like_double(mean1, dof);
    at::Tensor pooled = ((n1 - 1.0) * var1 + (n2 - 1.0) * var2) / dof;
    denominator = (pooled * (1.0 / n1 + 1.0 / n2)).sqrt();
  } else {
    at::Tensor vn1 = var1 / n1;
    at::Tensor vn2 = var2 / n2;
    df = (vn1 + vn2).square() / (vn1.square() / (n1 - 1.0) + vn2.square() / (n2 - 1.0));
    // Both variances zero: 0 / 0. scipy's _unequal_var_ttest_denom uses 1 then.
    df = at::where(df.isnan(), at::ones_like(df), df);
    denominator = (vn1 + vn2).sqrt();
  }
  at::Tensor t = (mean1 - mean2) / denominator;
  return {t, df, student_t_two_sided_p(t, df)};
}

TTest ttest_1samp(const at::Tensor& x, double mu) {
  at::Tensor xs = samples_by_neurons_as_stored(x, "ttest_1samp: x");
  Moments m = moments(xs);
  return reshaped(ttest_1samp_from_moments(m.n, m.mean, m.var, mu), x.sizes().slice(1));
}

TTest ttest_rel(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor as = as_samples_by_neurons(a, "ttest_rel: a");
  at::Tensor bs = as_samples_by_neurons(b, "ttest_rel: b");
  same_neurons(a, b, "ttest_rel");
  same_device(a, b, "ttest_rel");
  if (a.size(0) != b.size(0)) {
    throw Error("ttest_rel: a and b must have the same number of samples (paired rows), got " +
                std::to_string(a.size(0)) + " and " + std::to_string(b.size(0)));
  }
  Moments m = moments(as - bs);
  return reshaped(ttest_1samp_from_moments(m.n, m.mean, m.var, 0.0), a.sizes().slice(1));
}

TTest ttest_ind(const at::Tensor& a, const at::Tensor& b, bool equal_var) {
  at::Tensor as = samples_by_neurons_as_stored(a, "ttest_ind: a");
  at::Tensor bs = samples_by_neurons_as_stored(b, "ttest_ind: b");
  same_neurons(a, b, "ttest_ind");
  same_device(a, b, "ttest_ind");
  Moments ma = moments(as);
  Moments mb = moments(bs);
  return reshaped(ttest_ind_from_moments(ma.n, ma.mean, ma.var, mb.n, mb.mean, mb.var, equal_var),
                  a.sizes().slice(1));
}

// ---- multiple comparisons ----

namespace {

struct ValidP {
  at::Tensor flat;    // [numel] float64
  at::Tensor index;   // [m] int64: positions of the non-nan entries
  at::Tensor values;  // [m]
  int64_t m;
};

ValidP valid_p(const at::Tensor& p, double alpha, const char* function) {
  check_real(p, std::string(function) + ": p");
  if (!(alpha > 0 && alpha < 1)) {
    throw Error(std::string(function) + ": alpha must be in (0, 1), got " + std::to_string(alpha));
  }
  at::Tensor flat = to_double(p).reshape(-1);
  at::Tensor valid = flat.isnan().logical_not();
  at::Tensor out_of_range = valid & ((flat < 0) | (flat > 1));
  if (out_of_range.any().item<bool>()) {
    double value = flat.masked_select(out_of_range)[0].item<double>();
    throw Error(std::string(function) + ": p-values must be in [0, 1], found " +
                std::to_string(value));
  }
  at::Tensor index = valid.nonzero().reshape(-1);
  return {flat, index, flat.index_select(0, index), index.numel()};
}

Correction scatter(const ValidP& v, const at::Tensor& rejected, const at::Tensor& adjusted,
                   at::IntArrayRef shape) {
  at::Tensor out_rejected = at::zeros(v.flat.sizes(), v.flat.options().dtype(at::kBool));
  at::Tensor out_adjusted = at::full(v.flat.sizes(), kNan, v.flat.options());
  if (v.m > 0) {
    out_rejected.index_put_({v.index}, rejected);
    out_adjusted.index_put_({v.index}, adjusted);
  }
  return {out_rejected.reshape(shape), out_adjusted.reshape(shape)};
}

}  // namespace

Correction bonferroni(const at::Tensor& p, double alpha) {
  ValidP v = valid_p(p, alpha, "bonferroni");
  const double m = static_cast<double>(v.m);
  return scatter(v, v.values <= alpha / m, (v.values * m).clamp_max(1.0), p.sizes());
}

Correction fdr_bh(const at::Tensor& p, double alpha) {
  ValidP v = valid_p(p, alpha, "fdr");
  if (v.m == 0) return scatter(v, at::Tensor(), at::Tensor(), p.sizes());
  auto [sorted, order] = v.values.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false);
  const double m = static_cast<double>(v.m);
  // statsmodels: ecdffactor = arange(1, m + 1) / m, in this order of operations.
  at::Tensor ecdf = at::arange(1, v.m + 1, sorted.options()) / m;
  // Step-up: every p up to the largest one under its line is rejected.
  at::Tensor below = (sorted <= ecdf * alpha).to(at::kLong);
  at::Tensor rejected_sorted = std::get<0>(at::cummax(below.flip(0), 0)).flip(0) > 0;
  at::Tensor adjusted_sorted =
      std::get<0>(at::cummin((sorted / ecdf).flip(0), 0)).flip(0).clamp_max(1.0);
  // Back to the order of the input.
  at::Tensor rejected = at::empty_like(rejected_sorted).index_put_({order}, rejected_sorted);
  at::Tensor adjusted = at::empty_like(adjusted_sorted).index_put_({order}, adjusted_sorted);
  return scatter(v, rejected, adjusted, p.sizes());
}

// ---- logistic regression ----

namespace {

// The fit of one block of neurons: x [c, s] holds neurons in rows, samples along dim 1, and
// y_row [1, s] the targets. All outputs are [c] (coef, se and p [2, c]).
struct LogitBlock {
  at::Tensor coef, se, p, accuracy, converged, separated, iterations, llf;
};

LogitBlock logit_block(const at::Tensor& x, const at::Tensor& y, bool one_class,
                       const LogitOptions& options) {
  const int64_t c = x.size(0);
  const double samples = static_cast<double>(x.size(1));
  const double inf = std::numeric_limits<double>::infinity();
  auto opts = x.options();

  // Separation: with one predictor, the classes are split by a threshold t on x when
  // max(x | y=0) <= min(x | y=1) (or the other way round); equality is quasi-complete
  // separation, where only points at t itself are mixed. Either way the likelihood keeps
  // rising as the slope grows, so there is no estimate to report.
  at::Tensor is1 = y > 0.5, is0 = y < 0.5;  // [1, s]
  at::Tensor max0 = at::where(is0, x, -inf).amax(1), min0 = at::where(is0, x, inf).amin(1);
  at::Tensor max1 = at::where(is1, x, -inf).amax(1), min1 = at::where(is1, x, inf).amin(1);
  at::Tensor constant = x.amax(1) == x.amin(1);  // no slope to fit
  at::Tensor up = max0 <= min1;                  // y = 1 at and above t
  at::Tensor down = max1 <= min0;                // y = 1 at and below t
  at::Tensor separated =
      one_class ? at::ones({c}, opts.dtype(at::kBool)) : (up | down) & constant.logical_not();
  // The separating threshold's accuracy: perfect, except that at a shared value t the best it
  // can do is call the majority class there.
  at::Tensor threshold = at::where(up, max0, max1).unsqueeze(1);
  at::Tensor at_threshold = x == threshold;
  at::Tensor ties0 = (at_threshold & is0).sum(1).to(at::kDouble);
  at::Tensor ties1 = (at_threshold & is1).sum(1).to(at::kDouble);
  at::Tensor quasi = at::where(up, max0 == min1, max1 == min0);
  if (one_class) quasi.zero_();  // one class: nothing to tie
  at::Tensor separated_accuracy =
      at::where(quasi, 1.0 - at::minimum(ties0, ties1) / samples, at::ones({c}, opts));
  at::Tensor unfitted = separated | constant;

  // Newton (IRLS) steps on the 2x2 system of each neuron. Only fitted neurons step; one stops
  // when no coefficient moves by more than tol (statsmodels' rule), or at a non-finite step
  // (a singular Hessian: unconverged). The block stops when every neuron has.
  at::Tensor b0 = at::zeros({c, 1}, opts), b1 = at::zeros({c, 1}, opts);
  at::Tensor active = unfitted.logical_not();
  at::Tensor converged = at::zeros({c}, opts.dtype(at::kBool));
  at::Tensor iterations = at::zeros({c}, opts.dtype(at::kLong));
  at::Tensor prob, h00, h01, h11, det;
  auto evaluate = [&] {
    prob = at::addcmul(b0, x, b1).sigmoid_();  // [c, s]
    at::Tensor w = (1.0 - prob).mul_(prob);
    at::Tensor wx = w * x;
    h00 = w.sum(1, /*keepdim=*/true);
    h01 = wx.sum(1, true);
    h11 = wx.mul_(x).sum(1, true);
    det = h00 * h11 - h01 * h01;
  };
  for (int64_t it = 0; it < options.max_iter; ++it) {
    if (!active.any().item<bool>()) break;
    evaluate();
    at::Tensor r = y - prob;  // [c, s]
    at::Tensor g0 = r.sum(1, true);
    at::Tensor g1 = r.mul_(x).sum(1, true);
    at::Tensor on = active.unsqueeze(1);
    at::Tensor d0 = at::where(on, (h11 * g0 - h01 * g1) / det, 0.0);
    at::Tensor d1 = at::where(on, (h00 * g1 - h01 * g0) / det, 0.0);
    at::Tensor step = at::maximum(d0.abs(), d1.abs()).squeeze(1);
    at::Tensor finite = step.isfinite();
    b0 = at::where(finite.unsqueeze(1), b0 + d0, b0);
    b1 = at::where(finite.unsqueeze(1), b1 + d1, b1);
    iterations += active.to(at::kLong);
    at::Tensor done = active & finite & (step <= options.tol);
    converged |= done;
    active = active & finite & done.logical_not();
  }
  evaluate();  // at the final coefficients: the Hessian for the standard errors

  LogitBlock out;
  out.coef = at::cat({b0, b1}, 1).t().masked_fill(unfitted, kNan);  // [2, c]
  out.se = at::cat({h11 / det, h00 / det}, 1).sqrt_().t().masked_fill(unfitted, kNan);
  out.p = at::erfc((out.coef / out.se).abs() / std::sqrt(2.0));  // Wald, normal; nan stays nan
  at::Tensor accuracy = ((prob > 0.5) == (y > 0.5)).to(at::kDouble).mean(1);  // [c]
  out.accuracy = at::where(separated, separated_accuracy, accuracy)
                     .masked_fill(constant & separated.logical_not(), kNan);
  out.converged = converged & unfitted.logical_not();
  // log L = sum y*eta - log(1 + e^eta); log(1 + e^eta) = max(eta, 0) + log1p(e^-|eta|) is exact
  // and never overflows.
  at::Tensor eta = at::addcmul(b0, x, b1);  // [c, s]
  at::Tensor log1pexp = eta.clamp_min(0.0) + at::log1p(at::exp(-eta.abs()));
  out.llf = (y * eta - log1pexp).sum(1).masked_fill(unfitted, kNan);
  out.separated = separated;
  out.iterations = iterations;
  return out;
}

// logit_block for float64 x [c, s] and y [1, s] on the CPU: neuron by neuron, each pass over a
// neuron's samples fused into one vectorised loop (stats/kernels.hpp), with no [c, s]
// temporaries. The same rules and results as logit_block (to rounding).
LogitBlock logit_block_fused(const at::Tensor& x, const at::Tensor& y, bool one_class,
                             const LogitOptions& options) {
  const int64_t c = x.size(0), s = x.size(1);
  const double samples = static_cast<double>(s);
  auto opts = x.options();
  LogitBlock out;
  out.coef = at::empty({2, c}, opts);
  out.se = at::empty({2, c}, opts);
  out.accuracy = at::empty({c}, opts);
  out.converged = at::empty({c}, opts.dtype(at::kBool));
  out.separated = at::empty({c}, opts.dtype(at::kBool));
  out.iterations = at::empty({c}, opts.dtype(at::kLong));
  out.llf = at::empty({c}, opts);
  const double* xs = x.data_ptr<double>();
  const double* ys = y.data_ptr<double>();
  double* coef = out.coef.data_ptr<double>();
  double* se = out.se.data_ptr<double>();
  double* accuracy = out.accuracy.data_ptr<double>();
  bool* converged = out.converged.data_ptr<bool>();
  bool* separated_out = out.separated.data_ptr<bool>();
  int64_t* iterations = out.iterations.data_ptr<int64_t>();
  double* llf = out.llf.data_ptr<double>();
  for (int64_t j = 0; j < c; ++j) {
    const double* xj = xs + j * s;
    // Separation, as logit_block decides it: the classes split by a threshold on x.
    double range[4];
    kernels::logit_class_ranges(xj, ys, s, range);
    const kernels::ClassSplit split = kernels::class_split(range, one_class);
    const bool separated = split.separated, constant = split.constant;
    const double separated_accuracy =
        split.quasi ? kernels::threshold_accuracy(xj, 1, ys, s, split.threshold) : 1.0;
    const bool unfitted = separated || constant;

    double b0 = 0.0, b1 = 0.0, sums[5];
    int64_t steps = 0;
    bool done = false;
    for (int64_t it = 0; it < options.max_iter && !unfitted; ++it) {
      kernels::logit_step_sums(xj, ys, s, b0, b1, sums);
      const double det = sums[0] * sums[2] - sums[1] * sums[1];
      const double d0 = (sums[2] * sums[3] - sums[1] * sums[4]) / det;
      const double d1 = (sums[0] * sums[4] - sums[1] * sums[3]) / det;
      ++steps;
      if (!std::isfinite(d0) || !std::isfinite(d1)) break;  // a singular Hessian: unconverged
      b0 += d0;
      b1 += d1;
      if (std::max(std::abs(d0), std::abs(d1)) <= options.tol) {
        done = true;
        break;
      }
    }
    // At the fit: correct predictions, log-likelihood and the Hessian (for the standard errors).
    double summary[5] = {kNan, kNan, kNan, kNan, kNan};
    if (!unfitted) kernels::logit_fit_summary(xj, ys, s, b0, b1, summary);
    const double det = summary[2] * summary[4] - summary[3] * summary[3];
    coef[j] = unfitted ? kNan : b0;
    coef[c + j] = unfitted ? kNan : b1;
    se[j] = unfitted ? kNan : std::sqrt(summary[4] / det);
    se[c + j] = unfitted ? kNan : std::sqrt(summary[2] / det);
    accuracy[j] = separated ? separated_accuracy : constant ? kNan : summary[0] / samples;
    converged[j] = done && !unfitted;
    separated_out[j] = separated;
    iterations[j] = steps;
    llf[j] = unfitted ? kNan : summary[1];
  }
  out.p = at::erfc((out.coef / out.se).abs() / std::sqrt(2.0));  // Wald, normal; nan stays nan
  return out;
}

}  // namespace

LogitResult logit(const at::Tensor& x, const at::Tensor& y, const LogitOptions& options) {
  if (options.max_iter < 1) {
    throw Error("logit: max_iter must be at least 1, got " + std::to_string(options.max_iter));
  }
  if (!(options.tol > 0)) throw Error("logit: tol must be > 0, got " + std::to_string(options.tol));
  const at::Tensor X = samples_by_neurons_as_stored(x, "logit: x");  // [s, n]
  const int64_t samples = X.size(0);
  const int64_t n = X.size(1);
  at::Tensor y_row =
      check_binary_target(y, samples).to(X.device()).reshape({1, samples}).contiguous();
  const int64_t ones = (y_row > 0.5).sum().item<int64_t>();
  const bool one_class = ones == 0 || ones == samples;  // no estimate for any neuron

  const bool cpu = X.device().is_cpu();
  const bool panels = cpu && options.cpu == LogitOptions::Cpu::fastest &&
                      X.scalar_type() == at::kFloat && kernels::logit_panels_available();
  auto opts = X.options().dtype(at::kDouble);
  LogitResult r;
  r.coef = at::empty({2, n}, opts);
  r.se = at::empty({2, n}, opts);
  r.p = at::empty({2, n}, opts);
  r.accuracy = at::empty({n}, opts);
  r.converged = at::empty({n}, opts.dtype(at::kBool));
  r.separated = at::empty({n}, opts.dtype(at::kBool));
  r.iterations = at::empty({n}, opts.dtype(at::kLong));
  r.llf = at::empty({n}, opts);
  // Blocks of neurons: on the CPU, 256 neurons at a time spread over the threads; on an
  // accelerator, one block of all in batched ops.
  const int64_t block = cpu ? 256 : n;
  const int64_t blocks = (n + block - 1) / block;
  if (panels) {
    // Read where they are stored: no copy of x but each panel's.
    const at::Tensor Xc = X.contiguous();
    const at::Tensor yc = y_row.to(at::kDouble).contiguous();
    std::vector<kernels::LogitNeuronFit> fits(static_cast<size_t>(n));
    at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
      for (int64_t b = first; b < last; ++b) {
        const int64_t begin = b * block, end = std::min(n, begin + block);
        kernels::logit_fit_panels(Xc.data_ptr<float>(), samples, n, begin, end,
                                  yc.data_ptr<double>(), one_class, options.max_iter, options.tol,
                                  fits.data() + begin);
      }
    });
    auto coef = r.coef.accessor<double, 2>(), se = r.se.accessor<double, 2>();
    auto accuracy = r.accuracy.accessor<double, 1>(), llf = r.llf.accessor<double, 1>();
    auto converged = r.converged.accessor<bool, 1>(), separated = r.separated.accessor<bool, 1>();
    auto iterations = r.iterations.accessor<int64_t, 1>();
    for (int64_t j = 0; j < n; ++j) {
      const kernels::LogitNeuronFit& fit = fits[static_cast<size_t>(j)];
      coef[0][j] = fit.b0;
      coef[1][j] = fit.b1;
      se[0][j] = fit.se0;
      se[1][j] = fit.se1;
      accuracy[j] = fit.accuracy;
      llf[j] = fit.llf;
      converged[j] = fit.converged;
      separated[j] = fit.separated;
      iterations[j] = fit.iterations;
    }
    r.p = at::erfc((r.coef / r.se).abs() / std::sqrt(2.0));  // Wald, normal; nan stays nan
  } else {
    // Each neuron's samples contiguous in float64: transposed and converted in one copy.
    at::Tensor Xt = at::empty({n, samples}, opts);  // [n, s]
    if (cpu) {
      const at::Tensor Xc = X.contiguous();
      if (Xc.scalar_type() == at::kFloat) {
        kernels::transpose_to_double(Xc.data_ptr<float>(), samples, n, Xt.data_ptr<double>());
      } else {
        kernels::transpose_to_double(Xc.data_ptr<double>(), samples, n, Xt.data_ptr<double>());
      }
    } else {
      Xt.copy_(X.t());
    }
    const bool per_neuron = cpu && options.cpu != LogitOptions::Cpu::batched;
    auto fit_blocks = [&](int64_t first, int64_t last) {
      for (int64_t b = first; b < last; ++b) {
        const int64_t begin = b * block, end = std::min(n, begin + block);
        const at::Tensor xb = Xt.slice(0, begin, end);
        LogitBlock fit = per_neuron ? logit_block_fused(xb, y_row, one_class, options)
                                    : logit_block(xb, y_row, one_class, options);
        r.coef.slice(1, begin, end).copy_(fit.coef);
        r.se.slice(1, begin, end).copy_(fit.se);
        r.p.slice(1, begin, end).copy_(fit.p);
        r.accuracy.slice(0, begin, end).copy_(fit.accuracy);
        r.converged.slice(0, begin, end).copy_(fit.converged);
        r.separated.slice(0, begin, end).copy_(fit.separated);
        r.iterations.slice(0, begin, end).copy_(fit.iterations);
        r.llf.slice(0, begin, end).copy_(fit.llf);
      }
    };
    if (cpu) {
      at::parallel_for(0, blocks, 1, fit_blocks);
    } else {
      fit_blocks(0, blocks);
    }
  }

  at::IntArrayRef neuron_shape = x.sizes().slice(1);
  std::vector<int64_t> two_shape{2};
  two_shape.insert(two_shape.end(), neuron_shape.begin(), neuron_shape.end());
  r.coef = r.coef.reshape(two_shape);
  r.se = r.se.reshape(two_shape);
  r.p = r.p.reshape(two_shape);
  r.accuracy = r.accuracy.reshape(neuron_shape);
  r.converged = r.converged.reshape(neuron_shape);
  r.separated = r.separated.reshape(neuron_shape);
  r.iterations = r.iterations.reshape(neuron_shape);
  // The intercept-only model predicts the share of ones everywhere; 0 * log 0 counts as 0.
  const double share = static_cast<double>(ones) / static_cast<double>(samples);
  auto xlogy = [](double a, double b) { return a == 0.0 ? 0.0 : a * std::log(b); };
  r.llnull = xlogy(static_cast<double>(ones), share) +
             xlogy(static_cast<double>(samples - ones), 1.0 - share);
  r.llf = r.llf.reshape(neuron_shape);
  r.prsquared = 1.0 - r.llf / r.llnull;
  // chi2(1).sf(x) = erfc(sqrt(x / 2)); llr = 2 (llf - llnull) >= 0 up to rounding.
  r.llr_p = at::erfc(((r.llf - r.llnull) * 2.0).clamp_min(0.0).div(2.0).sqrt());
  return r;
}

// ---- correlation ----

at::Tensor pearson(const at::Tensor& acts, const at::Tensor& v) {
  at::Tensor A = as_samples_by_neurons(acts, "pearson: acts");  // [s, n]
  check_real(v, "pearson: v");
  if (v.dim() != 1 || v.size(0) != A.size(0)) {
    throw Error("pearson: v must be a [samples] vector with one value per row of acts (acts has " +
                std::to_string(A.size(0)) + " samples, v has shape " + shape_string(v.sizes()) +
                ")");
  }
  same_device(acts, v, "pearson");
  at::Tensor V = to_double(v);
  at::Tensor ac = A - A.mean(0);
  at::Tensor vc = V - V.mean();
  at::Tensor r = ac.t().mv(vc) / (ac.square().sum(0) * vc.square().sum()).sqrt();
  return r.clamp(-1.0, 1.0).reshape(acts.sizes().slice(1));  // clamp keeps nan, as scipy
}

// ---- histograms ----

namespace {

at::Tensor checked_edges(const at::Tensor& edges, const at::Device& device, const char* function) {
  check_real(edges, std::string(function) + ": edges");
  if (edges.dim() != 1 || edges.size(0) < 2) {
    throw Error(std::string(function) +
                ": edges must be a 1-D tensor of at least 2 values, got shape " +
                shape_string(edges.sizes()));
  }
  at::Tensor e = to_double(edges).to(device);
  if (!e.isfinite().all().item<bool>())
    throw Error(std::string(function) + ": edges must be finite");
  if (!(e.slice(0, 1) > e.slice(0, 0, -1)).all().item<bool>()) {
    throw Error(std::string(function) + ": edges must be strictly increasing");
  }
  return e;
}

}  // namespace

at::Tensor histogram_counts(const at::Tensor& x, const at::Tensor& edges) {
  check_real(x, "histogram: x");
  if (x.dim() == 0) throw Error("histogram: x must have a samples dim (dim 0), got a 0-d tensor");
  at::Tensor e = checked_edges(edges, x.device(), "histogram");
  const int64_t bins = e.size(0) - 1;
  std::vector<int64_t> shape{bins};
  shape.insert(shape.end(), x.sizes().begin() + 1, x.sizes().end());
  int64_t neurons = 1;
  for (int64_t size : x.sizes().slice(1)) neurons *= size;
  if (x.numel() == 0) return at::zeros(shape, x.options().dtype(at::kLong));

  at::Tensor X = to_double(x).reshape({x.size(0), neurons}).contiguous();  // [s, n]
  // Bin i holds [e_i, e_i+1); the last also holds its right edge. nan fails both comparisons.
  at::Tensor bin = at::searchsorted(e, X, /*out_int32=*/false, /*right=*/true) - 1;
  at::Tensor last = e[bins];
  bin = bin.masked_fill(X == last, bins - 1);
  at::Tensor inside = (X >= e[0]) & (X <= last);
  at::Tensor column = at::arange(neurons, bin.options()).unsqueeze(0);
  at::Tensor flat = (bin * neurons + column).masked_select(inside);
  return at::bincount(flat, {}, bins * neurons).reshape(shape);  // [bins, ...]
}

at::Tensor histogram_density(const at::Tensor& counts, const at::Tensor& edges) {
  at::Tensor e = checked_edges(edges, counts.device(), "histogram");
  const int64_t bins = e.size(0) - 1;
  if (counts.dim() == 0 || counts.size(0) != bins) {
    throw Error("histogram: counts have shape " + shape_string(counts.sizes()) +
                " but the edges make " + std::to_string(bins) + " bins");
  }
  std::vector<int64_t> width_shape(counts.dim(), 1);
  width_shape[0] = bins;
  at::Tensor widths = (e.slice(0, 1) - e.slice(0, 0, -1)).reshape(width_shape);
  at::Tensor c = counts.to(at::kDouble);
  return c / widths / c.sum(0, /*keepdim=*/true);  // np.histogram: n / db / n.sum()
}

// ---- PCA and cosine similarity ----

Pca pca(const at::Tensor& x, int64_t k, bool center) {
  check_real(x, "pca: x");
  if (x.dim() != 2)
    throw Error("pca: x must be [samples, features], got shape " + shape_string(x.sizes()));
  if (x.size(0) == 0 || x.size(1) == 0)
    throw Error("pca: x is empty (shape " + shape_string(x.sizes()) + ")");
  const int64_t most = std::min(x.size(0), x.size(1));
  if (k < 0 || k > most) {
    throw Error("pca: k must be between 1 and min(samples, features) = " + std::to_string(most) +
                " (or 0 for all), got " + std::to_string(k));
  }
  if (k == 0) k = most;
  at::Tensor X = to_double(x);
  at::Tensor mean = center ? X.mean(0) : at::zeros({X.size(1)}, X.options());
  auto [U, S, Vh] = at::linalg_svd(X - mean, /*full_matrices=*/false);
  at::Tensor components = Vh.slice(0, 0, k);  // [k, features]
  at::Tensor biggest = components.gather(1, components.abs().argmax(1, /*keepdim=*/true));
  at::Tensor signs = at::where(biggest < 0, -1.0, 1.0);
  at::Tensor squares = S.square();
  const double dof = static_cast<double>(x.size(0) - 1);
  Pca result;
  result.components = components * signs;
  result.singular_values = S.slice(0, 0, k);
  result.explained_variance = squares.slice(0, 0, k) / dof;
  result.explained_variance_ratio = squares.slice(0, 0, k) / squares.sum();
  result.mean = mean;
  return result;
}

at::Tensor cosine_matrix(const at::Tensor& x, const at::Tensor& y) {
  check_real(x, "cosine_matrix: x");
  if (x.dim() != 2)
    throw Error("cosine_matrix: x must be [rows, d], got shape " + shape_string(x.sizes()));
  at::Tensor other = y.defined() ? y : x;
  if (y.defined()) {
    check_real(y, "cosine_matrix: y");
    if (y.dim() != 2 || y.size(1) != x.size(1)) {
      throw Error("cosine_matrix: y must be [rows, " + std::to_string(x.size(1)) +
                  "] like x, got shape " + shape_string(y.sizes()));
    }
    same_device(x, y, "cosine_matrix");
  }
  at::ScalarType type = at::promote_types(x.scalar_type(), other.scalar_type());
  if (!at::isFloatingType(type)) type = at::kFloat;
  auto unit_rows = [type](const at::Tensor& t) {
    at::Tensor f = t.detach().to(type);
    return f / f.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-8);
  };
  at::Tensor xn = unit_rows(x);
  return llmscope::matmul(xn, (y.defined() ? unit_rows(other) : xn).t());  // [rows, rows2]
}

// ---- similarity ----

at::Tensor correlation_matrix(const at::Tensor& x, const at::Tensor& y) {
  check_real(x, "correlation_matrix: x");
  if (x.dim() != 2 || x.size(1) < 2) {
    throw Error("correlation_matrix: x must be [rows, d] with d >= 2, got shape " +
                shape_string(x.sizes()));
  }
  if (y.defined()) {
    check_real(y, "correlation_matrix: y");
    if (y.dim() != 2 || y.size(1) != x.size(1)) {
      throw Error("correlation_matrix: y must be [rows, " + std::to_string(x.size(1)) +
                  "] like x, got shape " + shape_string(y.sizes()));
    }
    same_device(x, y, "correlation_matrix");
  }
  auto centred_unit = [](const at::Tensor& t) {
    at::Tensor c = to_double(t);
    c = c - c.mean(1, /*keepdim=*/true);
    return c / c.norm(2, {1}, /*keepdim=*/true);  // a constant row: 0 / 0 = nan, as np.corrcoef
  };
  at::Tensor xn = centred_unit(x);
  return llmscope::matmul(xn, (y.defined() ? centred_unit(y) : xn).t()).clamp(-1.0, 1.0);
}

at::Tensor rank_average(const at::Tensor& x) {
  at::Tensor X = as_samples_by_neurons(x, "rank_average: x");  // [s, n]
  // Rank = (values below) + (ties, itself included, + 1) / 2, from two binary searches of each
  // neuron's sorted values: (left + right + 1) / 2 with left = #below, right = #below-or-equal.
  at::Tensor by_neuron = X.t().contiguous();  // [n, s]
  at::Tensor sorted = std::get<0>(by_neuron.sort(1));
  at::Tensor left = at::searchsorted(sorted, by_neuron, /*out_int32=*/false, /*right=*/false);
  at::Tensor right = at::searchsorted(sorted, by_neuron, /*out_int32=*/false, /*right=*/true);
  at::Tensor ranks = (left + right + 1).to(at::kDouble).div_(2.0);
  ranks.masked_fill_(by_neuron.isnan().any(1, /*keepdim=*/true), kNan);
  return ranks.t().reshape(x.sizes());
}

at::Tensor spearman(const at::Tensor& acts, const at::Tensor& v) {
  const int64_t samples = as_samples_by_neurons(acts, "spearman: acts").size(0);
  check_real(v, "spearman: v");
  if (v.dim() != 1 || v.size(0) != samples) {
    throw Error("spearman: v must be a [samples] vector with one value per row of acts (acts has " +
                std::to_string(samples) + " samples, v has shape " + shape_string(v.sizes()) + ")");
  }
  same_device(acts, v, "spearman");
  return pearson(rank_average(acts), rank_average(v));
}

at::Tensor correlation_p(const at::Tensor& r, int64_t n) {
  check_real(r, "correlation_p: r");
  at::Tensor R = to_double(r);
  if (n < 3) return full_like_double(R, kNan);
  const double df = static_cast<double>(n - 2);
  at::Tensor t = R * (df / (1.0 - R.square())).sqrt();  // |r| = 1: inf, p = 0
  return student_t_two_sided_p(t, full_like_double(R, df));
}

at::Tensor upper_triangle(const at::Tensor& s) {
  if (!s.defined() || s.dim() < 2 || s.size(-1) != s.size(-2)) {
    throw Error("upper_triangle: expected square matrices [..., n, n], got " +
                (s.defined() ? "shape " + shape_string(s.sizes()) : std::string("undefined")));
  }
  const int64_t n = s.size(-1);
  at::Tensor index = at::triu_indices(n, n, 1, at::TensorOptions().device(s.device()));
  return s.flatten(-2).index_select(-1, index[0] * n + index[1]);
}

namespace {

void check_square_stack(const at::Tensor& s, const char* what) {
  check_real(s, what);
  if (s.dim() < 2 || s.size(-1) != s.size(-2)) {
    throw Error(std::string(what) + " must be square matrices [..., n, n], got shape " +
                shape_string(s.sizes()));
  }
}

// Pearson r along the last dim of a and b [..., k], element by element over the leading dims.
at::Tensor pearson_last_dim(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor ac = a - a.mean(-1, /*keepdim=*/true);
  at::Tensor bc = b - b.mean(-1, /*keepdim=*/true);
  return ((ac * bc).sum(-1) / (ac.square().sum(-1) * bc.square().sum(-1)).sqrt()).clamp(-1.0, 1.0);
}

}  // namespace

Rsa rsa(const at::Tensor& a, const at::Tensor& b, CorrelationMethod method) {
  check_square_stack(a, "rsa: a");
  check_square_stack(b, "rsa: b");
  if (a.sizes() != b.sizes()) {
    throw Error("rsa: a and b must have the same shape (" + shape_string(a.sizes()) + " vs " +
                shape_string(b.sizes()) + ")");
  }
  same_device(a, b, "rsa");
  if (a.size(-1) < 3) {
    throw Error("rsa: needs matrices of at least 3 items (3 pairs), got " +
                std::to_string(a.size(-1)));
  }
  at::Tensor ua = to_double(upper_triangle(a));  // [..., pairs]
  at::Tensor ub = to_double(upper_triangle(b));
  if (method == CorrelationMethod::kSpearman) {
    ua = rank_average(ua.movedim(-1, 0)).movedim(0, -1);
    ub = rank_average(ub.movedim(-1, 0)).movedim(0, -1);
  }
  const int64_t pairs = ua.size(-1);
  at::Tensor r = pearson_last_dim(ua, ub);
  return {r, correlation_p(r, pairs), pairs};
}

Selectivity selectivity(const at::Tensor& s, const at::Tensor& labels) {
  check_square_stack(s, "selectivity: s");
  const int64_t n = s.size(-1);
  if (!labels.defined() || labels.dim() != 1 || labels.size(0) != n ||
      at::isFloatingType(labels.scalar_type()) || at::isComplexType(labels.scalar_type())) {
    throw Error(
        "selectivity: labels must be [" + std::to_string(n) + "] integers, one per item, got " +
        (labels.defined()
             ? shape_string(labels.sizes()) + " " + std::string(c10::toString(labels.scalar_type()))
             : std::string("an undefined tensor")));
  }
  at::Tensor l = labels.to(s.device(), at::kLong);
  at::Tensor same = l.unsqueeze(0).eq(l.unsqueeze(1));  // [n, n]
  at::Tensor off_diagonal = at::eye(n, same.options()).logical_not();
  at::Tensor within_mask = same.logical_and(off_diagonal).to(at::kDouble);
  at::Tensor between_mask = same.logical_not().to(at::kDouble);
  const double n_within = within_mask.sum().item<double>();
  const double n_between = between_mask.sum().item<double>();
  if (n_within == 0) throw Error("selectivity: no two items share a label (no within-group pair)");
  if (n_between == 0) throw Error("selectivity: every item has the same label (no between pair)");
  at::Tensor S = to_double(s);
  Selectivity r;
  r.within = (S * within_mask).sum({-2, -1}) / n_within;
  r.between = (S * between_mask).sum({-2, -1}) / n_between;
  r.ratio = r.within / r.between;
  return r;
}

}  // namespace llmscope::stats
