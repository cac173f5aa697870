// Batch statistics: parity with scipy / statsmodels / numpy on the goldens in tests/golden/stats
// (see /work/shared/fixtures/stats/gen_stats_goldens.py and stats.json for what each holds),
// scipy's conventions on edge cases (zero variance, nan), and the text of every error.
#include "llmscope/stats.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/safetensors.hpp"

namespace llmscope::stats {
namespace {

using ::llmscope::testing::golden_path;
using ::llmscope::testing::tensors_close;
using ::llmscope::testing::throws_message;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kPi = 3.14159265358979323846;

at::Tensor bools(std::initializer_list<int> values) {
  return at::tensor(std::vector<int64_t>(values.begin(), values.end())).to(at::kBool);
}

class StatsGoldenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    file_ = std::make_unique<SafetensorsFile>(
        SafetensorsFile::open(golden_path("stats/stats.safetensors")));
  }
  static void TearDownTestSuite() { file_.reset(); }
  static at::Tensor golden(const std::string& name) { return file_->load(name, at::kDouble); }

  static std::unique_ptr<SafetensorsFile> file_;
};

std::unique_ptr<SafetensorsFile> StatsGoldenTest::file_;

TEST_F(StatsGoldenTest, StudentTTestMatchesScipy) {
  TTest r = ttest_ind(golden("ttest.a"), golden("ttest.b"), /*equal_var=*/true);
  EXPECT_TENSOR_CLOSE(r.t, golden("ttest_ind.t"), 1e-9, 1e-9);
  EXPECT_TENSOR_CLOSE(r.p, golden("ttest_ind.p"), 1e-6, 1e-12);
  EXPECT_TRUE(r.df.eq(40 + 55 - 2).all().item<bool>());
}

TEST_F(StatsGoldenTest, WelchTTestMatchesScipy) {
  TTest r = ttest_ind(golden("ttest.a"), golden("ttest.b"), /*equal_var=*/false);
  EXPECT_TENSOR_CLOSE(r.t, golden("ttest_welch.t"), 1e-9, 1e-9);
  EXPECT_TENSOR_CLOSE(r.p, golden("ttest_welch.p"), 1e-6, 1e-12);
  EXPECT_TRUE((r.df > 40).all().item<bool>() && (r.df < 93).all().item<bool>());
}

TEST_F(StatsGoldenTest, PairedAndOneSampleTTestsMatchScipy) {
  at::Tensor a = golden("paired.a"), b = golden("paired.b");
  TTest paired = ttest_rel(a, b);
  EXPECT_TRUE(tensors_close(paired.t, golden("ttest_rel.t"), 1e-9, 1e-9));
  EXPECT_TRUE(tensors_close(paired.p, golden("ttest_rel.p"), 1e-6, 1e-12));
  TTest one = ttest_1samp(a - b, 0.0);
  EXPECT_TRUE(tensors_close(one.t, golden("ttest_1samp.t"), 1e-9, 1e-9));
  EXPECT_TRUE(tensors_close(one.p, golden("ttest_1samp.p"), 1e-6, 1e-12));
  // Column 0 of paired.b is paired.a itself: zero differences, nan as in scipy.
  EXPECT_TRUE(std::isnan(one.t[0].item<double>()));
  EXPECT_TRUE(one.df.eq(39).all().item<bool>());
}

TEST_F(StatsGoldenTest, FdrMatchesStatsmodels) {
  Correction c = fdr_bh(golden("fdr.p"), 0.05);
  EXPECT_TRUE(c.rejected.equal(golden("fdr.rejected").to(at::kBool)))
      << c.rejected.sum().item<int64_t>() << " rejected, statsmodels rejects "
      << golden("fdr.rejected").sum().item<double>();
  EXPECT_TENSOR_CLOSE(c.p_adjusted, golden("fdr.p_adjusted"), 1e-12, 1e-15);
}

TEST_F(StatsGoldenTest, LogitMatchesStatsmodelsAndFlagsSeparation) {
  LogitResult r = logit(golden("logit.x"), golden("logit.y"));
  at::Tensor fitted = at::ones({64}, at::kBool);
  fitted[5] = false;  // perfectly separated: statsmodels' numbers there are not an estimate
  at::Tensor columns = fitted.nonzero().reshape(-1);
  auto fitted_part = [&](const at::Tensor& t) { return t.index_select(-1, columns); };
  EXPECT_TENSOR_CLOSE(fitted_part(r.coef), fitted_part(golden("logit.params")), 1e-6, 1e-8);
  EXPECT_TENSOR_CLOSE(fitted_part(r.p), fitted_part(golden("logit.pvalues")), 1e-6, 1e-10);
  EXPECT_TENSOR_CLOSE(fitted_part(r.accuracy), fitted_part(golden("logit.accuracy")), 0, 1e-12);

  at::Tensor expected_separated = fitted.logical_not();
  EXPECT_TRUE(r.separated.equal(expected_separated)) << r.separated.nonzero().reshape(-1);
  EXPECT_TRUE(r.converged.equal(fitted)) << r.converged.logical_not().nonzero().reshape(-1);
  EXPECT_TRUE(r.coef.select(1, 5).isnan().all().item<bool>());
  EXPECT_TRUE(r.se.select(1, 5).isnan().all().item<bool>());
  EXPECT_TRUE(r.p.select(1, 5).isnan().all().item<bool>());
  EXPECT_EQ(r.accuracy[5].item<double>(), 1.0);  // the separating threshold is perfect
  EXPECT_EQ(r.iterations[5].item<int64_t>(), 0);
  EXPECT_TRUE((r.iterations.masked_select(fitted) > 2).all().item<bool>());
  EXPECT_TRUE((r.iterations.masked_select(fitted) < 30).all().item<bool>());
}

TEST_F(StatsGoldenTest, PearsonMatchesScipy) {
  EXPECT_TENSOR_CLOSE(pearson(golden("corr.acts"), golden("corr.v")), golden("corr.r"), 1e-10,
                      1e-12);
}

TEST_F(StatsGoldenTest, HistogramDensityMatchesNumpy) {
  at::Tensor counts = histogram_counts(golden("hist.x"), golden("hist.edges"));
  EXPECT_EQ(counts.scalar_type(), at::kLong);
  EXPECT_TENSOR_CLOSE(histogram_density(counts, golden("hist.edges")), golden("hist.density"),
                      1e-12, 1e-15);
}

TEST_F(StatsGoldenTest, Float32InputsGiveFloat64Results) {
  TTest r = ttest_ind(golden("ttest.a").to(at::kFloat), golden("ttest.b").to(at::kFloat));
  EXPECT_EQ(r.t.scalar_type(), at::kDouble);
  EXPECT_TENSOR_CLOSE(r.t, golden("ttest_ind.t"), 1e-5, 1e-5);
}

// ---- t-tests beyond the goldens ----

TEST(StatsTTest, StudentPValueAgreesWithClosedForms) {
  // df = 1 is the Cauchy distribution, df = 2 has p = 1 - |t| / sqrt(2 + t^2).
  at::Tensor t = at::tensor({0.0, 0.5, 1.0, 3.0, -12.0, 250.0}, at::kDouble);
  at::Tensor cauchy = 1.0 - 2.0 / kPi * t.abs().atan();
  EXPECT_TENSOR_CLOSE(student_t_two_sided_p(t, at::ones_like(t)), cauchy, 1e-12, 1e-15);
  at::Tensor df2 = 1.0 - t.abs() / (2.0 + t * t).sqrt();
  EXPECT_TENSOR_CLOSE(student_t_two_sided_p(t, at::full_like(t, 2.0)), df2, 1e-10, 1e-15);
  // Infinite df is the normal distribution.
  at::Tensor normal = at::erfc(t.abs() / std::sqrt(2.0));
  EXPECT_TENSOR_CLOSE(student_t_two_sided_p(t, at::full_like(t, kInf)), normal, 1e-12, 1e-15);
}

// The moments are one pass of shifted sums (shift: the mean of the first 16 rows). Columns
// where that shift is far from the mean (a few outliers first in a long column: the
// shifted-sum formula would lose about 8 digits there), where the mean dwarfs the spread, and
// ordinary ones all give the exact two-pass t.
TEST(StatsTTest, OnePassMomentsStayExactWhateverTheFirstRows) {
  at::manual_seed(5);
  const int64_t n = 200016;
  at::Tensor x = at::randn({n, 3}, at::kFloat);
  x.select(1, 1).narrow(0, 0, 16).fill_(1e3);  // outliers first: the shift is far off
  x.select(1, 2).mul_(1e-3).add_(1e4);         // a large mean, a tiny spread
  const at::Tensor xd = x.to(at::kDouble);
  const at::Tensor mean = xd.mean(0);
  const at::Tensor var = (xd - mean).square().sum(0) / static_cast<double>(n - 1);  // two passes
  const at::Tensor t = (mean - 0.5) / (var / static_cast<double>(n)).sqrt();
  const at::Tensor got = stats::ttest_1samp(x, 0.5).t;
  EXPECT_TRUE(at::allclose(got, t, 1e-12, 0.0)) << got - t;
}

TEST(StatsTTest, ZeroVarianceFollowsScipy) {
  // Column 0: constant 1 vs constant 2 (t = -inf, p = 0); column 1: constant 3 in both
  // (t = nan, p = nan); column 2: ordinary.
  at::Tensor a =
      at::tensor({1.0, 3.0, 0.5, 1.0, 3.0, 1.5, 1.0, 3.0, 2.5}, at::kDouble).view({3, 3});
  at::Tensor b = at::tensor({2.0, 3.0, 1.0, 2.0, 3.0, 0.0}, at::kDouble).view({2, 3});
  for (bool equal_var : {true, false}) {
    TTest r = ttest_ind(a, b, equal_var);
    EXPECT_EQ(r.t[0].item<double>(), -kInf);
    EXPECT_EQ(r.p[0].item<double>(), 0.0);
    EXPECT_TRUE(std::isnan(r.t[1].item<double>()));
    EXPECT_TRUE(std::isnan(r.p[1].item<double>()));
    EXPECT_TRUE(std::isfinite(r.t[2].item<double>()));
  }
  // Welch's df is 0/0 for two constant groups; scipy substitutes 1.
  EXPECT_EQ(ttest_ind(a, b, false).df[0].item<double>(), 1.0);

  TTest one = ttest_1samp(at::ones({4, 2}, at::kDouble), 1.0);
  EXPECT_TRUE(std::isnan(one.t[0].item<double>()));
  TTest shifted = ttest_1samp(at::ones({4, 2}, at::kDouble), 0.0);
  EXPECT_EQ(shifted.t[0].item<double>(), kInf);
  EXPECT_EQ(shifted.p[0].item<double>(), 0.0);
}

TEST(StatsTTest, TooFewSamplesGiveNanNotErrors) {
  TTest one = ttest_1samp(at::ones({1, 3}, at::kDouble), 0.0);
  EXPECT_TRUE(one.t.isnan().all().item<bool>());
  EXPECT_TRUE(one.p.isnan().all().item<bool>());
  EXPECT_TRUE(one.df.eq(0).all().item<bool>());
  TTest ind = ttest_ind(at::ones({1, 3}), at::zeros({1, 3}));
  EXPECT_TRUE(ind.p.isnan().all().item<bool>());
}

TEST(StatsTTest, NeuronDimsKeepTheirShape) {
  at::Tensor x = at::randn({30, 3, 4}, at::kDouble);
  TTest r = ttest_1samp(x, 0.1);
  EXPECT_EQ(r.t.sizes(), (std::vector<int64_t>{3, 4}));
  TTest flat = ttest_1samp(x.reshape({30, 12}), 0.1);
  EXPECT_TENSOR_CLOSE(r.t.reshape(-1), flat.t, 0, 0);
  // A [samples] vector is one neuron: 0-d results.
  TTest scalar = ttest_1samp(x.select(2, 0).select(1, 0), 0.1);
  EXPECT_EQ(scalar.t.dim(), 0);
  EXPECT_DOUBLE_EQ(scalar.t.item<double>(), flat.t[0].item<double>());
}

TEST(StatsTTest, RelIsOneSampleOfDifferences) {
  at::Tensor a = at::randn({25, 6}, at::kDouble), b = at::randn({25, 6}, at::kDouble);
  TTest rel = ttest_rel(a, b), one = ttest_1samp(a - b);
  EXPECT_TRUE(rel.t.equal(one.t));
  EXPECT_TRUE(rel.p.equal(one.p));
}

TEST(StatsTTest, ErrorsNameTheFunctionAndTheProblem) {
  EXPECT_TRUE(throws_message(
      [] {
        ttest_ind(at::zeros({5, 64}), at::zeros({5, 32}));
      },
      "ttest_ind: a and b must have the same number of neurons (64 vs 32)"));
  EXPECT_TRUE(throws_message(
      [] {
        ttest_ind(at::zeros({5, 2, 3}), at::zeros({5, 6}));
      },
      "ttest_ind: a and b must have the same number of neurons ([2, 3] vs 6)"));
  EXPECT_TRUE(throws_message(
      [] {
        ttest_rel(at::zeros({5, 4}), at::zeros({6, 4}));
      },
      "ttest_rel: a and b must have the same number of samples (paired rows), got 5 and 6"));
  EXPECT_TRUE(throws_message(
      [] {
        ttest_1samp(at::zeros({0, 4}));
      },
      "ttest_1samp: x has no samples (dim 0 is empty)"));
  EXPECT_TRUE(throws_message([] { ttest_1samp(at::zeros({})); },
                             "ttest_1samp: x must have a samples dim (dim 0), got a 0-d tensor"));
  EXPECT_TRUE(throws_message(
      [] {
        ttest_ind(at::zeros({3, 0}), at::zeros({3, 0}));
      },
      "ttest_ind: a has no neurons (shape [3, 0])"));
  EXPECT_TRUE(throws_message([] { ttest_1samp(at::zeros({3}, at::kComplexFloat)); },
                             "ttest_1samp: x must be real, got a complex tensor"));
  EXPECT_TRUE(
      throws_message([] { ttest_1samp(at::Tensor()); }, "ttest_1samp: x is an undefined tensor"));
}

// ---- multiple comparisons ----

TEST(StatsCorrection, BonferroniScalesAndCaps) {
  at::Tensor p = at::tensor({0.01, 0.2, 0.0125, 0.5}, at::kDouble);
  Correction c = bonferroni(p, 0.05);
  EXPECT_TENSOR_CLOSE(c.p_adjusted, at::tensor({0.04, 0.8, 0.05, 1.0}, at::kDouble), 0, 1e-15);
  EXPECT_TRUE(c.rejected.equal(bools({1, 0, 1, 0})));
}

TEST(StatsCorrection, FdrByHand) {
  // m = 5, alpha = 0.05, lines 0.01, 0.02, ..., 0.05. Sorted: 0.001 (under), 0.025 (over its
  // line 0.02), 0.028 (under 0.03), 0.3, 0.5: step-up rejects the first three.
  at::Tensor p = at::tensor({0.028, 0.001, 0.025, 0.3, 0.5}, at::kDouble);
  Correction c = fdr_bh(p, 0.05);
  EXPECT_TRUE(c.rejected.equal(bools({1, 1, 1, 0, 0})));
  // p_(i) * m / i, then the running minimum from the top: 0.025 takes 0.028's 0.0467.
  const double third = 0.028 / (3.0 / 5.0);
  at::Tensor expected =
      at::tensor({third, 0.001 / (1.0 / 5.0), third, 0.3 / (4.0 / 5.0), 0.5}, at::kDouble);
  EXPECT_TENSOR_CLOSE(c.p_adjusted, expected, 0, 1e-16);
}

TEST(StatsCorrection, NanPValuesAreUntested) {
  const double nan = std::nan("");
  at::Tensor p = at::tensor({0.001, nan, 0.04, 0.5}, at::kDouble);
  Correction c = fdr_bh(p, 0.05);
  Correction expected = fdr_bh(at::tensor({0.001, 0.04, 0.5}, at::kDouble), 0.05);
  EXPECT_FALSE(c.rejected[1].item<bool>());
  EXPECT_TRUE(std::isnan(c.p_adjusted[1].item<double>()));
  EXPECT_DOUBLE_EQ(c.p_adjusted[2].item<double>(), expected.p_adjusted[1].item<double>());
  Correction b = bonferroni(p);
  EXPECT_DOUBLE_EQ(b.p_adjusted[0].item<double>(), 0.003);  // m = 3
  Correction none = fdr_bh(at::full({3}, nan, at::kDouble));
  EXPECT_FALSE(none.rejected.any().item<bool>());
}

TEST(StatsCorrection, KeepsTheShapeOfP) {
  at::Tensor p = at::rand({2, 7}, at::kDouble);
  Correction c = fdr_bh(p);
  EXPECT_EQ(c.p_adjusted.sizes(), p.sizes());
  EXPECT_TENSOR_CLOSE(c.p_adjusted.reshape(-1), fdr_bh(p.reshape(-1)).p_adjusted, 0, 0);
}

TEST(StatsCorrection, Errors) {
  EXPECT_TRUE(throws_message(
      [] {
        fdr_bh(at::tensor({0.5, 1.5}, at::kDouble));
      },
      "fdr: p-values must be in [0, 1], found 1.500000"));
  EXPECT_TRUE(throws_message([] { bonferroni(at::tensor({0.5}), 1.0); },
                             "bonferroni: alpha must be in (0, 1), got 1.000000"));
}

// ---- logistic regression ----

// The numbers of statsmodels' Logit summary table (lesson 12-17): coefficients, standard errors,
// z = coef / se, the 95% interval coef -+ 1.959964 se, and the likelihoods
// (tests/golden/stats/gen_logit_summary.py made the golden with Debian's statsmodels).
// The CPU's fused per-neuron fit and the batched steps an accelerator runs give the same fits:
// ordinary neurons, a constant one, complete and quasi-complete separation, and a neuron whose
// Hessian goes singular.
TEST(StatsLogit, FusedAndBatchedStepsAgree) {
  at::manual_seed(3);
  const int64_t s = 301;
  at::Tensor y = (at::rand({s}) < 0.4).to(at::kDouble);
  at::Tensor x = at::randn({s, 6}, at::kDouble) + y.unsqueeze(1) * at::linspace(-1, 2, 6);
  x.select(1, 1).fill_(2.5);                                   // constant
  x.select(1, 2).copy_(y * 3.0 + at::rand({s}, at::kDouble));  // complete separation
  x.select(1, 3).copy_(at::where(y > 0.5, at::ones({s}, at::kDouble), at::zeros({s}, at::kDouble)));
  x.select(1, 3).narrow(0, 0, 4).fill_(1.0);  // quasi: shared value 1
  x.select(1, 4).mul_(1e160);                 // x^2 overflows: a singular Hessian, unconverged
  LogitOptions fused, batched;
  batched.cpu = LogitOptions::Cpu::batched;
  const LogitResult a = logit(x, y, fused), b = logit(x, y, batched);
  for (const auto& [what, p, q] :
       {std::tuple<const char*, at::Tensor, at::Tensor>{"coef", a.coef, b.coef},
        {"se", a.se, b.se},
        {"p", a.p, b.p},
        {"accuracy", a.accuracy, b.accuracy},
        {"llf", a.llf, b.llf}}) {
    EXPECT_TRUE(at::allclose(p, q, 1e-9, 1e-12, /*equal_nan=*/true)) << what << "\n" << p << q;
  }
  EXPECT_TRUE(at::equal(a.converged, b.converged)) << a.converged << b.converged;
  EXPECT_TRUE(at::equal(a.separated, b.separated)) << a.separated << b.separated;
  EXPECT_TRUE(at::equal(a.iterations, b.iterations)) << a.iterations << b.iterations;
  EXPECT_TRUE(a.separated[2].item<bool>() && a.separated[3].item<bool>());
  EXPECT_FALSE(a.separated[0].item<bool>() || a.converged[1].item<bool>() ||
               a.converged[4].item<bool>());
  EXPECT_TRUE(a.converged[0].item<bool>() && a.converged[5].item<bool>());
}

namespace {
// Every output of two fits of the same data, estimates to rtol; flags exactly.
void expect_same_fits(const LogitResult& a, const LogitResult& b, double rtol) {
  for (const auto& [what, p, q] :
       {std::tuple<const char*, at::Tensor, at::Tensor>{"coef", a.coef, b.coef},
        {"se", a.se, b.se},
        {"p", a.p, b.p},
        {"accuracy", a.accuracy, b.accuracy},
        {"llf", a.llf, b.llf},
        {"llr_p", a.llr_p, b.llr_p}}) {
    EXPECT_TRUE(at::allclose(p, q, rtol, 1e-300, /*equal_nan=*/true))
        << what << ": largest difference " << (p - q).abs().nan_to_num(0).max().item<double>();
  }
  EXPECT_TRUE(at::equal(a.converged, b.converged)) << a.converged << b.converged;
  EXPECT_TRUE(at::equal(a.separated, b.separated)) << a.separated << b.separated;
}
}  // namespace

// float32 x on an AVX-512 CPU goes through panels of 16 neurons with float32 first steps and a
// third-order float64 finish; it must give the float64 per-neuron fit's numbers. Columns: 34
// ordinary ones with effects from none to strong (three panels, the last part-filled), then a
// constant one, complete and quasi-complete separation, a neuron at 1e20 (x^2 overflows float32,
// so float64 takes over) and one whose classes barely overlap (no discriminant start).
TEST(StatsLogit, Float32PanelsGiveThePerNeuronFit) {
  at::manual_seed(11);
  const int64_t s = 301, n = 39;
  at::Tensor y = (at::rand({s}) < 0.4).to(at::kDouble);
  at::Tensor x = at::randn({s, n}) + y.unsqueeze(1).to(at::kFloat) * at::linspace(-2, 3, n);
  x.select(1, 34).fill_(2.5f);
  x.select(1, 35).copy_(y * 3.0 + at::rand({s}, at::kDouble));
  x.select(1, 36).copy_(y);
  x.select(1, 36).narrow(0, 0, 4).fill_(1.0f);
  x.select(1, 37).mul_(1e20f);
  x.select(1, 38).copy_(at::randn({s}) * 0.8 + y * 2.5);
  LogitOptions per_neuron;
  per_neuron.cpu = LogitOptions::Cpu::per_neuron;
  const LogitResult fast = logit(x, y), slow = logit(x, y, per_neuron);
  expect_same_fits(fast, slow, 1e-9);
  EXPECT_TRUE(fast.separated[35].item<bool>() && fast.separated[36].item<bool>());
  EXPECT_FALSE(fast.converged[34].item<bool>());
  EXPECT_TRUE(fast.converged.narrow(0, 0, 34).all().item<bool>());
  EXPECT_TRUE(fast.converged[37].item<bool>() && fast.converged[38].item<bool>());
  // Starting nearer and finishing in one float64 pass takes fewer steps than statsmodels' way.
  EXPECT_LT(fast.iterations.narrow(0, 0, 34).sum().item<int64_t>(),
            slow.iterations.narrow(0, 0, 34).sum().item<int64_t>());

  // At the course's size, thousands of samples and hundreds of neurons.
  at::Tensor y2 = at::cat({at::zeros({1200}), at::ones({800})}).to(at::kDouble);
  at::Tensor x2 = at::randn({2000, 300}) + y2.unsqueeze(1).to(at::kFloat) * at::rand({300});
  expect_same_fits(logit(x2, y2), logit(x2, y2, per_neuron), 1e-9);

  // max_iter is a limit on all steps, float32 ones included.
  const LogitResult one = logit(x, y, {1, 1e-8});
  EXPECT_FALSE(one.converged.any().item<bool>());
  EXPECT_TRUE(one.iterations.narrow(0, 0, 34).eq(1).all().item<bool>());
}

TEST(StatsLogit, SummaryMatchesStatsmodels) {
  std::ifstream in(golden_path("stats/logit_summary.json"));
  ASSERT_TRUE(in) << "tests/golden/stats/logit_summary.json is missing";
  const auto golden = nlohmann::json::parse(in);
  const auto y = at::tensor(golden["y"].get<std::vector<double>>());
  for (const auto& column : golden["columns"]) {
    const auto x = at::tensor(column["x"].get<std::vector<double>>());
    LogitResult r = logit(x, y);
    auto expect = [](const at::Tensor& got, const nlohmann::json& want, double rtol,
                     const char* what) {
      const auto values = want.get<std::vector<double>>();
      for (size_t i = 0; i < values.size(); ++i) {
        const double g = got[static_cast<int64_t>(i)].item<double>();
        EXPECT_NEAR(g, values[i], rtol * std::abs(values[i]) + 1e-12) << what << "[" << i << "]";
      }
    };
    expect(r.coef, column["params"], 1e-6, "params");
    expect(r.se, column["bse"], 1e-6, "bse");
    expect(r.coef / r.se, column["z"], 1e-6, "z");
    expect(r.p, column["pvalues"], 1e-6, "pvalues");
    expect(r.coef - 1.959963984540054 * r.se, column["conf_low"], 1e-6, "conf_low");
    expect(r.coef + 1.959963984540054 * r.se, column["conf_high"], 1e-6, "conf_high");
    EXPECT_NEAR(r.llf.item<double>(), column["llf"].get<double>(), 1e-8);
    EXPECT_NEAR(r.llnull, column["llnull"].get<double>(), 1e-10);
    EXPECT_NEAR(r.prsquared.item<double>(), column["prsquared"].get<double>(), 1e-8);
    const double llr_p = column["llr_pvalue"].get<double>();
    EXPECT_NEAR(r.llr_p.item<double>(), llr_p, 1e-6 * llr_p);
  }
}

TEST(StatsLogit, LikelihoodsAreNanWhereNotFitted) {
  auto x = at::tensor({0.0, 1.0, 2.0, 3.0, 4.0, 5.0}, at::kDouble);
  auto y = at::tensor({0.0, 0.0, 0.0, 1.0, 1.0, 1.0}, at::kDouble);  // x > 2.5 separates them
  LogitResult r = logit(x, y);
  EXPECT_TRUE(r.separated.item<bool>());
  EXPECT_TRUE(std::isnan(r.llf.item<double>()));
  EXPECT_TRUE(std::isnan(r.llr_p.item<double>()));
  EXPECT_NEAR(r.llnull, 6 * std::log(0.5), 1e-12);
}

TEST(StatsLogit, QuasiSeparationAndOneClassAreFlagged) {
  // Column 0: classes meet at x = 1 (quasi-complete); column 1: complete, reversed;
  // column 2: overlapping (fits); column 3: constant (no slope).
  at::Tensor x = at::tensor({0.0, 5.0, 0.0, 2.0,  //
                             1.0, 4.0, 3.0, 2.0,  //
                             1.0, 3.0, 1.0, 2.0,  //
                             1.0, 1.0, 2.0, 2.0,  //
                             2.0, 0.5, 4.0, 2.0,  //
                             3.0, 0.0, 1.5, 2.0},
                            at::kDouble)
                     .view({6, 4});
  at::Tensor y = at::tensor({0.0, 0.0, 1.0, 1.0, 1.0, 1.0}, at::kDouble);
  LogitResult r = logit(x, y);
  EXPECT_TRUE(r.separated.equal(bools({1, 1, 0, 0})));
  EXPECT_TRUE(r.converged.equal(bools({0, 0, 1, 0})));
  // Quasi: at x = 1 there is one y = 0 and two y = 1; the threshold gets one of six wrong.
  EXPECT_DOUBLE_EQ(r.accuracy[0].item<double>(), 5.0 / 6.0);
  EXPECT_DOUBLE_EQ(r.accuracy[1].item<double>(), 1.0);
  EXPECT_TRUE(std::isnan(r.coef[1][3].item<double>()));
  EXPECT_TRUE(std::isnan(r.accuracy[3].item<double>()));
  EXPECT_TRUE(std::isfinite(r.coef[1][2].item<double>()));

  LogitResult one_class = logit(x, at::ones({6}, at::kDouble));
  EXPECT_TRUE(one_class.separated.all().item<bool>());
}

TEST(StatsLogit, MaxIterStopsUnconverged) {
  at::Tensor x = at::randn({200, 8}, at::kDouble);
  at::Tensor y = (x.select(1, 0) + at::randn({200}, at::kDouble) > 0).to(at::kDouble);
  LogitResult one = logit(x, y, {1, 1e-8});
  EXPECT_FALSE(one.converged.any().item<bool>());
  EXPECT_TRUE(one.iterations.eq(1).all().item<bool>());
  LogitResult full = logit(x, y);
  EXPECT_TRUE(full.converged.all().item<bool>());
  // The score is zero at the estimate: sum(y - p) = 0 and sum((y - p) x) = 0.
  at::Tensor prob = at::sigmoid(full.coef[0] + full.coef[1] * x);
  at::Tensor residual = y.unsqueeze(1) - prob;
  EXPECT_LT(residual.sum(0).abs().max().item<double>(), 1e-9);
  EXPECT_LT((residual * x).sum(0).abs().max().item<double>(), 1e-9);
}

TEST(StatsLogit, Errors) {
  EXPECT_TRUE(throws_message(
      [] {
        logit(at::zeros({4, 2}), at::tensor({0.0, 1.0, 0.5, 1.0}));
      },
      "logit: y must hold only 0 and 1, found 0.500000"));
  EXPECT_TRUE(throws_message(
      [] {
        logit(at::zeros({4, 2}), at::zeros({3}));
      },
      "logit: y must be a [samples] vector with one value per row of x (x has 4 samples, y has "
      "shape [3])"));
  EXPECT_TRUE(throws_message(
      [] {
        logit(at::zeros({4, 2}), at::zeros({4}), {0, 1e-8});
      },
      "logit: max_iter must be at least 1, got 0"));
}

// ---- correlation, histograms, PCA, cosine ----

TEST(StatsPearson, ConstantColumnsAreNanAndShapeErrorsAreClear) {
  at::Tensor acts = at::randn({50, 3}, at::kDouble);
  acts.select(1, 1).fill_(2.0);
  at::Tensor v = at::randn({50}, at::kDouble);
  at::Tensor r = pearson(acts, v);
  EXPECT_TRUE(std::isnan(r[1].item<double>()));
  EXPECT_NEAR(pearson(acts.select(1, 0).unsqueeze(1) * 3 + 1, acts.select(1, 0))[0].item<double>(),
              1.0, 1e-12);
  EXPECT_TRUE(throws_message([&] { pearson(acts, at::zeros({49})); },
                             "pearson: v must be a [samples] vector with one value per row of acts "
                             "(acts has 50 samples, v has shape [49])"));
}

TEST(StatsHistogram, PerNeuronBinsWithTheLastEdgeInclusive) {
  at::Tensor edges = at::tensor({0.0, 1.0, 2.0, 4.0}, at::kDouble);
  at::Tensor x = at::tensor({0.0, 4.0,           //
                             1.0, 3.9,           //
                             4.0, -1.0,          //
                             std::nan(""), 2.0,  //
                             0.999, 5.0},
                            at::kDouble)
                     .view({5, 2});
  at::Tensor counts = histogram_counts(x, edges);
  EXPECT_EQ(counts.sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_TRUE(counts.select(1, 0).equal(at::tensor({2, 1, 1}, at::kLong)));  // nan dropped
  EXPECT_TRUE(counts.select(1, 1).equal(at::tensor({0, 0, 3}, at::kLong)));  // -1 and 5 dropped
  at::Tensor density = histogram_density(counts, edges);
  EXPECT_DOUBLE_EQ(density[2][0].item<double>(), 1.0 / 2.0 / 4.0);
  // Each column is its own 1-D histogram.
  EXPECT_TRUE(histogram_counts(x.select(1, 1), edges).equal(counts.select(1, 1)));
  EXPECT_TRUE(throws_message(
      [&] {
        histogram_counts(x, at::tensor({0.0, 2.0, 1.0}, at::kDouble));
      },
      "histogram: edges must be strictly increasing"));
  EXPECT_TRUE(
      throws_message([&] { histogram_counts(x, at::tensor({0.0}, at::kDouble)); },
                     "histogram: edges must be a 1-D tensor of at least 2 values, got shape [1]"));
}

TEST(StatsPca, MatchesTheCovarianceEigenvectors) {
  at::Tensor x = at::randn({200, 5}, at::kDouble).mm(at::randn({5, 5}, at::kDouble)) + 3.0;
  Pca r = pca(x, 3);
  EXPECT_EQ(r.components.sizes(), (std::vector<int64_t>{3, 5}));
  EXPECT_TENSOR_CLOSE(r.components.mm(r.components.t()), at::eye(3, at::kDouble), 0, 1e-12);
  at::Tensor centred = x - x.mean(0);
  at::Tensor covariance = centred.t().mm(centred) / 199.0;
  auto [values, vectors] = at::linalg_eigh(covariance);
  EXPECT_TENSOR_CLOSE(r.explained_variance, values.flip(0).slice(0, 0, 3), 1e-10, 1e-12);
  EXPECT_TENSOR_CLOSE(r.explained_variance_ratio, values.flip(0).slice(0, 0, 3) / values.sum(),
                      1e-10, 1e-12);
  // Each component is an eigenvector, with its largest entry positive.
  at::Tensor projected = r.components.mm(covariance);
  EXPECT_TENSOR_CLOSE(projected, r.explained_variance.unsqueeze(1) * r.components, 1e-9, 1e-9);
  at::Tensor biggest = r.components.gather(1, r.components.abs().argmax(1, true));
  EXPECT_TRUE((biggest > 0).all().item<bool>());
  EXPECT_NEAR(pca(x).explained_variance_ratio.sum().item<double>(), 1.0, 1e-12);
  EXPECT_TENSOR_CLOSE(r.mean, x.mean(0), 0, 1e-12);
  EXPECT_TRUE(pca(x, 2, false).mean.eq(0).all().item<bool>());
  EXPECT_TRUE(throws_message(
      [&] { pca(x, 6); },
      "pca: k must be between 1 and min(samples, features) = 5 (or 0 for all), got 6"));
  EXPECT_TRUE(
      throws_message([&] { pca(x[0]); }, "pca: x must be [samples, features], got shape [5]"));
}

TEST(StatsCosine, MatchesPairwiseCosineSimilarity) {
  at::Tensor x = at::randn({6, 10});
  x[2].zero_();
  at::Tensor m = cosine_matrix(x);
  EXPECT_EQ(m.scalar_type(), at::kFloat);
  at::Tensor expected = at::cosine_similarity(x.unsqueeze(1), x.unsqueeze(0), 2);
  EXPECT_TENSOR_CLOSE(m, expected, 1e-5, 1e-6);
  EXPECT_EQ(m[2][2].item<float>(), 0.0f);
  at::Tensor y = at::randn({3, 10});
  EXPECT_EQ(cosine_matrix(x, y).sizes(), (std::vector<int64_t>{6, 3}));
  EXPECT_TRUE(throws_message(
      [&] {
        cosine_matrix(x, at::randn({3, 9}));
      },
      "cosine_matrix: y must be [rows, 10] like x, got shape [3, 9]"));
}

}  // namespace
}  // namespace llmscope::stats
