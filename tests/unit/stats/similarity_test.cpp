// The similarity statistics (lessons 13-01 to 13-05): correlation matrices, average ranks,
// Spearman, correlation p-values, upper triangles, RSA and category selectivity, against values
// from numpy 1.24 / scipy 1.10 (np.corrcoef, stats.rankdata, stats.spearmanr, stats.pearsonr on
// the inputs written here; printed with %.17g), plus the edge cases and every error's text.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/stats.hpp"

namespace llmscope::stats {
namespace {

using ::llmscope::testing::throws_message;

at::Tensor doubles(const std::vector<double>& values) { return at::tensor(values, at::kDouble); }

// x and y of the scipy references: ties in both.
const std::vector<double> kX = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
const std::vector<double> kY = {2, 7, 1, 8, 2, 8, 1, 8, 2, 8};

TEST(SimilarityTest, RanksAverageTiesAsScipyRankdata) {
  EXPECT_TENSOR_CLOSE(rank_average(doubles(kX)),
                      doubles({4.5, 1.5, 6.0, 1.5, 7.5, 10.0, 3.0, 9.0, 7.5, 4.5}), 0, 0);
  // Per neuron along dim 0, one column per neuron; a nan poisons only its own column.
  at::Tensor both = at::stack({doubles(kX), doubles(kY)}, 1);  // [10, 2]
  both[3][0] = std::numeric_limits<double>::quiet_NaN();
  at::Tensor ranks = rank_average(both);
  EXPECT_EQ(ranks.sizes(), both.sizes());
  EXPECT_TRUE(ranks.select(1, 0).isnan().all().item<bool>());
  EXPECT_TENSOR_CLOSE(ranks.select(1, 1),
                      doubles({4.0, 6.0, 1.5, 8.5, 4.0, 8.5, 1.5, 8.5, 4.0, 8.5}), 0, 0);
}

TEST(SimilarityTest, SpearmanAndItsPValueMatchScipy) {
  at::Tensor rho = spearman(doubles(kX), doubles(kY));
  EXPECT_NEAR(rho.item<double>(), 0.13471506281091267, 1e-14);
  EXPECT_NEAR(correlation_p(rho, 10).item<double>(), 0.71060088052238291, 1e-12);
  at::Tensor r = pearson(doubles(kX), doubles(kY));
  EXPECT_NEAR(r.item<double>(), 0.10492284287735881, 1e-14);
  EXPECT_NEAR(correlation_p(r, 10).item<double>(), 0.77299136156272641, 1e-12);
  // Perfect correlation has p = 0; too few pairs and nan give nan.
  EXPECT_EQ(correlation_p(doubles({1.0, -1.0}), 5).sum().item<double>(), 0.0);
  EXPECT_TRUE(correlation_p(doubles({0.5}), 2).isnan().all().item<bool>());
  EXPECT_TRUE(spearman(doubles({1, 1, 1, 1}), doubles({1, 2, 3, 4})).isnan().all().item<bool>());
  EXPECT_TRUE(throws_message(
      [] {
        spearman(doubles(kX), doubles({1, 2}));
      },
      "spearman: v must be a [samples] vector with one value per row of "
      "acts (acts has 10 samples, v has shape [2])"));
}

TEST(SimilarityTest, CorrelationMatrixIsNumpysCorrcoefOfTheRows) {
  at::Tensor a = doubles({1, 2, 4, 7, 2, 1, 0, 3, 5, 5, 6, 1}).reshape({3, 4});
  at::Tensor expected =
      doubles({1, 0.3903600291794132, -0.7670578361316337, 0.3903600291794132, 1,
               -0.87333376460937295, -0.7670578361316337, -0.87333376460937295, 1})
          .reshape({3, 3});
  EXPECT_TENSOR_CLOSE(correlation_matrix(a), expected, 1e-15, 1e-15);
  EXPECT_TENSOR_CLOSE(correlation_matrix(a.to(at::kFloat), a.narrow(0, 1, 2).to(at::kFloat)),
                      expected.narrow(1, 1, 2), 1e-6, 1e-6);
  // Correlation is the cosine after centring each row; a constant row has none.
  at::Tensor c = a - a.mean(1, true);
  EXPECT_TENSOR_CLOSE(correlation_matrix(a), cosine_matrix(c), 1e-12, 1e-12);
  at::Tensor flat = doubles({1, 2, 3, 3, 3, 3}).reshape({2, 3});
  EXPECT_TRUE(correlation_matrix(flat)[1].isnan().all().item<bool>());
  EXPECT_TRUE(throws_message(
      [] {
        correlation_matrix(at::zeros({3, 1}));
      },
      "correlation_matrix: x must be [rows, d] with d >= 2, got shape [3, 1]"));
  EXPECT_TRUE(throws_message(
      [&] {
        correlation_matrix(a, at::zeros({2, 5}));
      },
      "correlation_matrix: y must be [rows, 4] like x, got shape [2, 5]"));
}

TEST(SimilarityTest, UpperTriangleReadsRowByRowAboveTheDiagonal) {
  at::Tensor s = at::arange(16, at::kLong).reshape({4, 4});
  EXPECT_TRUE(upper_triangle(s).equal(at::tensor({1, 2, 3, 6, 7, 11}, at::kLong)));
  EXPECT_EQ(upper_triangle(at::zeros({2, 3, 5, 5})).sizes(), (std::vector<int64_t>{2, 3, 10}));
  EXPECT_TRUE(throws_message(
      [] {
        upper_triangle(at::zeros({3, 4}));
      },
      "upper_triangle: expected square matrices [..., n, n], got shape [3, 4]"));
}

// Two symmetric 5 x 5 matrices (numpy's default_rng(0) normals, rounded, symmetrised).
at::Tensor rsa_a() {
  return doubles({0.13, 0.115, 0.01,   -0.315, -0.335, 0.115, 1.3,    0.495, -0.62,
                  0.05, 0.01,  0.495,  -2.33,  -0.27,  -0.96, -0.315, -0.62, -0.27,
                  0.41, 0.695, -0.335, 0.05,   -0.96,  0.695, 0.9})
      .reshape({5, 5});
}
at::Tensor rsa_b() {
  return doubles({0.09,  -0.875, -0.28,  -0.86, -0.045, -0.875, -0.21, -0.405, 1.025,
                  0.835, -0.28,  -0.405, -0.13, 1.065,  1.725,  -0.86, 1.025,  1.065,
                  0.78,  1.03,   -0.045, 0.835, 1.725,  1.03,   1.32})
      .reshape({5, 5});
}

TEST(SimilarityTest, RsaCorrelatesUpperTrianglesAsScipy) {
  Rsa pearson_rsa = rsa(rsa_a(), rsa_b(), CorrelationMethod::kPearson);
  EXPECT_EQ(pearson_rsa.pairs, 10);
  EXPECT_NEAR(pearson_rsa.r.item<double>(), -0.35933383178350847, 1e-12);
  EXPECT_NEAR(pearson_rsa.p.item<double>(), 0.30783041956431173, 1e-10);
  Rsa spearman_rsa = rsa(rsa_a(), rsa_b(), CorrelationMethod::kSpearman);
  EXPECT_NEAR(spearman_rsa.r.item<double>(), -0.35757575757575755, 1e-12);
  EXPECT_NEAR(spearman_rsa.p.item<double>(), 0.31037609170567992, 1e-10);
  // Batched over leading dims; the diagonal does not count.
  at::Tensor a = at::stack({rsa_a(), rsa_b()});
  at::Tensor b = at::stack({rsa_b(), rsa_b()});
  b[1].fill_diagonal_(99.0);
  Rsa batch = rsa(a, b, CorrelationMethod::kSpearman);
  EXPECT_EQ(batch.r.sizes(), (std::vector<int64_t>{2}));
  EXPECT_NEAR(batch.r[0].item<double>(), -0.35757575757575755, 1e-12);
  EXPECT_NEAR(batch.r[1].item<double>(), 1.0, 1e-15);
  EXPECT_EQ(batch.p[1].item<double>(), 0.0);
  EXPECT_TRUE(throws_message(
      [] {
        rsa(at::zeros({4, 4}), at::zeros({5, 5}), CorrelationMethod::kPearson);
      },
      "rsa: a and b must have the same shape ([4, 4] vs [5, 5])"));
  EXPECT_TRUE(throws_message(
      [] {
        rsa(at::zeros({2, 2}), at::zeros({2, 2}), CorrelationMethod::kPearson);
      },
      "rsa: needs matrices of at least 3 items (3 pairs), got 2"));
  EXPECT_TRUE(throws_message(
      [] {
        rsa(at::zeros({2, 3}), at::zeros({2, 3}), CorrelationMethod::kPearson);
      },
      "rsa: a must be square matrices [..., n, n], got shape [2, 3]"));
}

TEST(SimilarityTest, SelectivityIsWithinOverBetweenGroupMeans) {
  // Items 0, 1 in group 0 and 2, 3, 4 in group 1.
  at::Tensor s = at::tensor({1.0, 0.8, 0.1, 0.2, 0.0,  //
                             0.8, 1.0, 0.3, 0.1, 0.2,  //
                             0.1, 0.3, 1.0, 0.6, 0.5,  //
                             0.2, 0.1, 0.6, 1.0, 0.7,  //
                             0.0, 0.2, 0.5, 0.7, 1.0},
                            at::kDouble)
                     .reshape({5, 5});
  at::Tensor labels = at::tensor({0, 0, 1, 1, 1}, at::kLong);
  Selectivity r = selectivity(s, labels);
  const double within = (2 * 0.8 + 2 * (0.6 + 0.5 + 0.7)) / 8;  // ordered pairs: 2 + 6
  const double between = 2 * (0.1 + 0.2 + 0.0 + 0.3 + 0.1 + 0.2) / 12;
  EXPECT_NEAR(r.within.item<double>(), within, 1e-15);
  EXPECT_NEAR(r.between.item<double>(), between, 1e-15);
  EXPECT_NEAR(r.ratio.item<double>(), within / between, 1e-14);
  Selectivity batch = selectivity(at::stack({s, s * 2}), labels.to(at::kInt));
  EXPECT_NEAR(batch.within[1].item<double>(), 2 * within, 1e-15);
  EXPECT_NEAR(batch.ratio[1].item<double>(), within / between, 1e-14);
  EXPECT_TRUE(throws_message(
      [&] {
        selectivity(s, at::tensor({0, 1, 2, 3, 4}, at::kLong));
      },
      "selectivity: no two items share a label (no within-group pair)"));
  EXPECT_TRUE(throws_message([&] { selectivity(s, at::zeros({5}, at::kLong)); },
                             "selectivity: every item has the same label (no between pair)"));
  EXPECT_TRUE(
      throws_message([&] { selectivity(s, at::zeros({4}, at::kLong)); },
                     "selectivity: labels must be [5] integers, one per item, got [4] Long"));
  EXPECT_TRUE(
      throws_message([&] { selectivity(s, at::zeros({5})); },
                     "selectivity: labels must be [5] integers, one per item, got [5] Float"));
}

}  // namespace
}  // namespace llmscope::stats
