// Batch statistics over activations: t-tests, multiple-comparison corrections, per-neuron
// logistic regression, correlation, histograms, PCA, cosine similarity and the similarity
// analyses (correlation matrices, ranks, RSA, category selectivity) — each computed for every
// neuron in one call on a [samples, neurons] tensor, on the tensor's own device.
//
// Conventions (shared with streaming.hpp and the Lua `stats` module):
// - Samples run along dim 0; every other dim is a "neuron" dim, so a [samples, n] input gives
//   [n] results and a [samples, 3, n] input gives [3, n]. Indices are 0-based.
// - Results are float64 (bool for decisions, int64 for counts), on the input's device. Inputs of
//   any real dtype are accepted and converted to float64 before anything is summed.
// - Bad input throws llmscope::Error with the function's name first:
//   "ttest_ind: a and b must have the same number of neurons (64 vs 32)".
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>

namespace llmscope::stats {

// ---- t-tests (two-sided, as scipy.stats) ----

// t statistic, degrees of freedom and two-sided p-value, each shaped like one sample.
//
// Zero-variance columns follow scipy: a nonzero mean difference over a zero standard error gives
// t = +-inf and p = 0; a zero difference gives t = nan and p = nan. Welch's df is 0/0 when both
// groups have zero variance; scipy then uses df = 1 and so do we. Too few samples for a variance
// (one sample in ttest_1samp, two in all of ttest_ind) give nan, not an error.
struct TTest {
  at::Tensor t;   // float64
  at::Tensor df;  // float64
  at::Tensor p;   // float64, two-sided
};

// Is the mean of `x` [samples, ...] equal to `mu`? (scipy.stats.ttest_1samp)
TTest ttest_1samp(const at::Tensor& x, double mu = 0.0);
// Paired samples a, b [samples, ...]: the one-sample test of a - b against 0 (scipy ttest_rel).
TTest ttest_rel(const at::Tensor& a, const at::Tensor& b);
// Independent samples a [n1, ...], b [n2, ...]: Student's test with pooled variance
// (equal_var = true) or Welch's test (scipy ttest_ind).
TTest ttest_ind(const at::Tensor& a, const at::Tensor& b, bool equal_var = true);

// The same tests from summary statistics (count, mean and unbiased variance per neuron), which
// is how the batch tests above and the streaming accumulators both finish, so they agree.
TTest ttest_1samp_from_moments(double n, const at::Tensor& mean, const at::Tensor& var, double mu);
TTest ttest_ind_from_moments(double n1, const at::Tensor& mean1, const at::Tensor& var1, double n2,
                             const at::Tensor& mean2, const at::Tensor& var2, bool equal_var);

// Two-sided p-value of Student's t: 2 * P(T_df > |t|), computed on the CPU in double with
// Boost.Math and returned on t's device. nan in t or df (or df <= 0) gives nan; |t| = inf gives 0.
at::Tensor student_t_two_sided_p(const at::Tensor& t, const at::Tensor& df);

// ---- multiple comparisons ----

// p-values of any shape are corrected together (m = the number of non-nan entries). nan
// p-values count as untested: not rejected, adjusted p = nan. Values outside [0, 1] are errors.
struct Correction {
  at::Tensor rejected;    // bool, shaped like p
  at::Tensor p_adjusted;  // float64, shaped like p, capped at 1
};

// Bonferroni: p_adjusted = min(1, p * m), rejected where p <= alpha / m.
Correction bonferroni(const at::Tensor& p, double alpha = 0.05);
// Benjamini-Hochberg, exactly as statsmodels' fdrcorrection(p, alpha, method='indep'): the
// step-up rejections, and adjusted p = the running minimum from the top of p_(i) * m / i.
Correction fdr_bh(const at::Tensor& p, double alpha = 0.05);

// ---- logistic regression per neuron ----

struct LogitOptions {
  int64_t max_iter = 100;  // Newton steps at most
  // Converged when no coefficient moves by more than tol (statsmodels' rule); the AVX-512 path
  // also ends a fit at a float64 step under 1e-5 of the coefficients' size, taken to third order
  // (what further steps would reach, to far below tol).
  double tol = 1e-8;
  // How a CPU fits (each way gives the same estimates to about 1e-10; the others are there to
  // check one against another): `fastest` takes panels of 16 float32 neurons in AVX-512 lanes
  // where the CPU has AVX-512 and x is float32, else `per_neuron`, each neuron in fused float64
  // passes over its samples; `batched` runs the tensor-op steps an accelerator runs.
  enum class Cpu { fastest, per_neuron, batched };
  Cpu cpu = Cpu::fastest;
};

// For each neuron j, y ~ 1 + x[:, j] by maximum likelihood (statsmodels Logit(y, [1, x_j])),
// by Newton (IRLS) steps from zero to statsmodels' rule (no coefficient moves by more than tol),
// the last ones always in float64: on the CPU each step one vectorised pass over a neuron's
// samples (float32 x on an AVX-512 CPU: sixteen neurons side by side, the first steps in
// float32); on an accelerator all neurons' steps together as batched tensor ops.
//
// Separation (the classes split by a threshold on x_j, with at most one shared value between
// them; also y of one class only) means the maximum-likelihood estimate does not exist: such
// neurons are flagged `separated`, not fitted, and their coef/se/p are nan; their accuracy is
// that of the separating threshold (1 for complete separation). Columns with no variance have no
// slope: nan coefficients, converged = false.
struct LogitResult {
  at::Tensor coef;        // [2, ...] float64: row 0 intercept, row 1 slope
  at::Tensor se;          // [2, ...] Wald standard errors, sqrt(diag((X' W X)^-1))
  at::Tensor p;           // [2, ...] two-sided Wald p-values, normal distribution
  at::Tensor accuracy;    // [...] in-sample accuracy of predicting y = 1 when p > 0.5
  at::Tensor converged;   // [...] bool
  at::Tensor separated;   // [...] bool: perfect or quasi-complete separation
  at::Tensor iterations;  // [...] int64: Newton steps taken
  // Likelihoods, as statsmodels' LogitResults: llf at the fit (nan where not fitted), llnull of
  // the intercept-only model (the same for every neuron), McFadden's pseudo R-squared
  // 1 - llf/llnull, and the likelihood-ratio test's p (chi-squared, 1 df).
  at::Tensor llf;  // [...] float64
  double llnull = 0.0;
  at::Tensor prsquared;  // [...] float64
  at::Tensor llr_p;      // [...] float64
};

// x [samples, ...], y [samples] of 0/1 values (any dtype).
LogitResult logit(const at::Tensor& x, const at::Tensor& y, const LogitOptions& options = {});

// ---- correlation, histograms, PCA, cosine similarity ----

// Pearson r between `v` [samples] and every neuron of `acts` [samples, ...]; nan where either
// side has no variance.
at::Tensor pearson(const at::Tensor& acts, const at::Tensor& v);

// Bin counts for `edges` [bins + 1] (strictly increasing), as np.histogram(x, bins=edges): bins
// are [e_i, e_i+1) except the last, which includes its right edge; values outside the edges and
// nan are not counted. x [samples] gives [bins]; x [samples, ...] gives [bins, ...], one histogram
// per neuron. int64.
at::Tensor histogram_counts(const at::Tensor& x, const at::Tensor& edges);
// counts / (total counted * bin width), per histogram (np.histogram's density=True); nan for a
// histogram that counted nothing. float64, shaped like the counts.
at::Tensor histogram_density(const at::Tensor& counts, const at::Tensor& edges);

struct Pca {
  at::Tensor components;                // [k, features]: rows are unit principal axes
  at::Tensor singular_values;           // [k], descending
  at::Tensor explained_variance;        // [k]: singular_values^2 / (samples - 1)
  at::Tensor explained_variance_ratio;  // [k]: share of the total over all components
  at::Tensor mean;                      // [features]: what was subtracted (zeros if uncentred)
};

// PCA of x [samples, features] by a thin SVD in float64. k = 0 keeps all min(samples, features)
// components. Signs are made deterministic: each component's largest-magnitude entry is
// positive. Without centring, it is the SVD of x itself and the ratios are shares of the
// total sum of squares.
Pca pca(const at::Tensor& x, int64_t k = 0, bool center = true);

// Cosine similarity between the rows of x [rows, d] and the rows of y [rows2, d] (y = x when
// undefined): [rows, rows2], in x's floating dtype. Norms are clamped at 1e-8 as in
// torch.nn.functional.cosine_similarity, so a zero row gives 0, not nan.
at::Tensor cosine_matrix(const at::Tensor& x, const at::Tensor& y = at::Tensor());

// ---- similarity: correlation matrices, ranks, RSA, category selectivity ----

// Pearson correlation between the rows of x [rows, d] and the rows of y [rows2, d] (y = x when
// undefined): [rows, rows2] float64. Each row is centred over its own d values, so this is the
// cosine of the centred rows (np.corrcoef of the rows); nan where a row is constant.
at::Tensor correlation_matrix(const at::Tensor& x, const at::Tensor& y = at::Tensor());

// Ranks 1..samples of x [samples, ...] along dim 0, ties sharing their average rank
// (scipy.stats.rankdata, method 'average'), float64 and shaped like x. A neuron with a nan value
// gets nan ranks throughout (scipy's nan_policy 'propagate').
at::Tensor rank_average(const at::Tensor& x);

// Spearman's rho between v [samples] and every neuron of acts [samples, ...]: Pearson r of the
// ranks (scipy.stats.spearmanr); nan where either side is constant.
at::Tensor spearman(const at::Tensor& acts, const at::Tensor& v);

// Two-sided p-values of correlations r (any shape) from n pairs each: Student's t with n - 2
// degrees of freedom on t = r sqrt((n - 2) / (1 - r^2)), as scipy's spearmanr and, exactly,
// pearsonr. |r| = 1 gives 0; n < 3 or nan r gives nan.
at::Tensor correlation_p(const at::Tensor& r, int64_t n);

// The entries above the diagonal of square matrices s [..., n, n], row by row (i < j):
// [..., n (n - 1) / 2], s's dtype.
at::Tensor upper_triangle(const at::Tensor& s);

struct Rsa {
  at::Tensor r;  // [...]: correlation of the two matrices' upper triangles
  // [...]: correlation_p over the pairs. The pairs share items, so they are not independent
  // samples: a guide, not an exact test (a permutation test of the items is).
  at::Tensor p;
  int64_t pairs;  // n (n - 1) / 2 entries compared
};
enum class CorrelationMethod { kPearson, kSpearman };
// Representational similarity analysis of two stacks of similarity matrices a, b [..., n, n]
// (same shape, n >= 3): for each matrix pair, the Pearson or Spearman correlation of their
// upper triangles (the diagonal and the mirrored half left out).
Rsa rsa(const at::Tensor& a, const at::Tensor& b, CorrelationMethod method);

struct Selectivity {
  at::Tensor within;   // [...]: mean of s[i, j] over pairs i != j with the same label
  at::Tensor between;  // [...]: mean of s[i, j] over pairs with different labels
  at::Tensor ratio;    // within / between
};
// Category selectivity of similarity matrices s [..., n, n] for items labelled `labels` [n]
// (integers): both means over ordered pairs, so an asymmetric s counts both halves. Needs at
// least one pair of each kind (a label shared by two items, and two different labels).
Selectivity selectivity(const at::Tensor& s, const at::Tensor& labels);

// ---- information: entropy, mutual information, Kendall's tau (information.cpp) ----
//
// x and y are [samples] or [samples, pairs] (the same shape): one estimate per column pair
// (x[:, j], y[:, j]), float64 [pairs] (0-d for 1-D inputs), in bits.

// Entropy of the histogram of each column of x [samples, ...]: `bins` equal-width bins over the
// column's range (np.histogram(x, bins)), H = -sum p log2 p. [...] float64.
at::Tensor entropy_binned(const at::Tensor& x, int64_t bins = 15);

// The plug-in estimate from a bins x bins histogram over each column's range
// (np.histogram2d(x, y, bins)): H(x) + H(y) - H(x, y). Fast, and biased upward with finite
// samples: independent variables give about (bins - 1)^2 / (2 N ln 2) bits, not 0.
at::Tensor mutual_information_binned(const at::Tensor& x, const at::Tensor& y, int64_t bins = 15);

// Kraskov, Stoegbauer and Grassberger's k-nearest-neighbour estimator (their algorithm 1), as
// scikit-learn's mutual_info_regression computes it for one feature but without its rescaling,
// added noise and clipping at 0: for each sample the max-norm distance e to its k-th neighbour in
// (x, y), the numbers n_x, n_y of other samples closer than e in x and in y, and
// psi(N) + psi(k) - mean(psi(n_x + 1) + psi(n_y + 1)), here in bits. Nearly unbiased: independent
// variables give about 0, sometimes a little below (so averages over repetitions stay unbiased).
// Tied values make distances 0; add a little noise first where values repeat. O(N^2) per pair.
at::Tensor mutual_information_knn(const at::Tensor& x, const at::Tensor& y, int64_t k = 3);

// The binned estimate between every pair of columns of x [samples, n]: [n, n] float64,
// symmetric, the diagonal each column's entropy (MI of a variable with itself). Each column is
// binned once; the joint histograms are built in chunks. For 768 columns this is 295,000 pairs.
at::Tensor mutual_information_matrix(const at::Tensor& x, int64_t bins = 15);

struct Kendall {
  double tau;  // tau-b: ties in either variable corrected for
  double p;    // two-sided, from the normal approximation (scipy's method='asymptotic')
};
// Kendall's rank correlation between x [n] and y [n] (scipy.stats.kendalltau); nan when either is
// constant.
Kendall kendall_tau(const at::Tensor& x, const at::Tensor& y);

// ---- helpers shared with streaming.hpp ----

// x as float64 [samples, neurons] (a 1-D x is one neuron), after checking that it has a
// samples dim; `what` names the function and argument for error messages ("ttest_ind: a").
at::Tensor as_samples_by_neurons(const at::Tensor& x, const char* what);
// "64" for one neuron dim, "[3, 64]" otherwise: how messages show a neuron shape.
std::string neuron_shape_text(at::IntArrayRef neuron_shape);

}  // namespace llmscope::stats
