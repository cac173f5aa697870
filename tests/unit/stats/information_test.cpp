// Entropy, mutual information and Kendall's tau (lessons 13-08 to 13-14) against
// tests/golden/stats/information.json (numpy 1.24 histogram2d, scikit-learn 1.2's KSG
// computation, scipy 1.10's kendalltau; gen_information_goldens.py writes it), against the
// analytic MI of correlated Gaussians, the binned estimator's bias for independent data, the
// batching, and the text of every error.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/stats.hpp"

namespace llmscope::stats {
namespace {

using ::llmscope::testing::golden_path;
using ::llmscope::testing::throws_message;

const nlohmann::json& goldens() {
  static const nlohmann::json json = [] {
    std::ifstream in(golden_path("stats/information.json"));
    return nlohmann::json::parse(in);
  }();
  return json;
}

at::Tensor from_json(const nlohmann::json& values) {
  return at::tensor(values.get<std::vector<double>>(), at::kDouble);
}

TEST(InformationTest, BinnedEntropyAndMutualInformationMatchNumpysHistograms) {
  for (const auto& c : goldens()["mi"]) {
    const at::Tensor x = from_json(c["x"]);
    const at::Tensor y = from_json(c["y"]);
    EXPECT_NEAR(mutual_information_binned(x, y).item<double>(), c["binned15"].get<double>(), 1e-12);
    EXPECT_NEAR(mutual_information_binned(x, y, 7).item<double>(), c["binned7"].get<double>(),
                1e-12);
    EXPECT_NEAR(entropy_binned(x).item<double>(), c["entropy15_x"].get<double>(), 1e-12);
  }
}

TEST(InformationTest, KnnEstimatorIsScikitLearnsKsgInBits) {
  for (const auto& c : goldens()["mi"]) {
    const at::Tensor x = from_json(c["x"]);
    const at::Tensor y = from_json(c["y"]);
    EXPECT_NEAR(mutual_information_knn(x, y).item<double>() * std::log(2.0),
                c["knn3_unclipped_nats"].get<double>(), 1e-12);
    EXPECT_NEAR(mutual_information_knn(x, y, 5).item<double>() * std::log(2.0),
                c["knn5_unclipped_nats"].get<double>(), 1e-12);
  }
}

TEST(InformationTest, EstimatesAreBatchedOverColumnPairs) {
  const auto& cases = goldens()["mi"];
  std::vector<at::Tensor> xs, ys;
  for (const auto& c : cases) {
    xs.push_back(from_json(c["x"]));
    ys.push_back(from_json(c["y"]));
  }
  const at::Tensor x = at::stack(xs, 1);  // [200, 3]
  const at::Tensor y = at::stack(ys, 1);
  const at::Tensor binned = mutual_information_binned(x, y);
  const at::Tensor knn = mutual_information_knn(x.to(at::kFloat), y.to(at::kFloat));
  ASSERT_EQ(binned.sizes(), (std::vector<int64_t>{3}));
  for (int64_t j = 0; j < 3; ++j) {
    EXPECT_NEAR(binned[j].item<double>(), cases[j]["binned15"].get<double>(), 1e-12);
    EXPECT_NEAR(knn[j].item<double>() * std::log(2.0),
                cases[j]["knn3_unclipped_nats"].get<double>(),
                1e-3);  // float32 inputs
  }
  // Trailing dims are kept.
  EXPECT_EQ(mutual_information_binned(x.view({200, 3, 1}), y.view({200, 3, 1})).sizes(),
            (std::vector<int64_t>{3, 1}));
}

TEST(InformationTest, MatrixHoldsEveryPairAndEntropiesOnTheDiagonal) {
  at::Generator gen = at::detail::createCPUGenerator(3);
  const at::Tensor x = at::randn({300, 5}, gen, at::kDouble);
  x.select(1, 3).copy_(x.select(1, 0) * 0.8 + x.select(1, 3) * 0.6);  // 0 and 3 related
  const at::Tensor m = mutual_information_matrix(x, 10);
  ASSERT_EQ(m.sizes(), (std::vector<int64_t>{5, 5}));
  for (int64_t i = 0; i < 5; ++i) {
    EXPECT_NEAR(m[i][i].item<double>(), entropy_binned(x.select(1, i), 10).item<double>(), 1e-12);
    for (int64_t j = 0; j < 5; ++j) {
      EXPECT_NEAR(m[i][j].item<double>(),
                  mutual_information_binned(x.select(1, i), x.select(1, j), 10).item<double>(),
                  1e-12);
    }
  }
  EXPECT_GT(m[0][3].item<double>(), m[0][1].item<double>());
  EXPECT_TRUE(throws_message(
      [] {
        mutual_information_matrix(at::zeros({3, 2, 2}));
      },
      "mutual_information_matrix: x must be [samples, n], got shape [3, 2, 2]"));
}

TEST(InformationTest, GaussiansApproachTheAnalyticValueAndBinningIsBiased) {
  // MI of a bivariate normal with correlation rho is -1/2 log2(1 - rho^2) bits.
  const int64_t n = 4000;
  at::Generator gen = at::detail::createCPUGenerator(7);
  const at::Tensor x = at::randn({n, 1}, gen, at::kDouble);
  const at::Tensor noise = at::randn({n, 1}, gen, at::kDouble);
  for (const double rho : {0.0, 0.6, 0.9}) {
    const at::Tensor y = rho * x + std::sqrt(1 - rho * rho) * noise;
    const double analytic = -0.5 * std::log2(1 - rho * rho);
    EXPECT_NEAR(mutual_information_knn(x, y).item<double>(), analytic, 0.03) << "rho " << rho;
  }
  // For independent data the binned estimate is not 0 but about (bins - 1)^2 / (2 N ln 2) bits
  // (15 bins: 196 / (2 N ln 2)); with fewer samples the bias grows.
  EXPECT_NEAR(mutual_information_binned(x, noise).item<double>(),
              14.0 * 14.0 / (2 * n * std::log(2.0)), 0.02);
  const at::Tensor few_x = x.narrow(0, 0, 200), few_y = noise.narrow(0, 0, 200);
  EXPECT_GT(mutual_information_binned(few_x, few_y).item<double>(), 0.4);
  EXPECT_LT(std::abs(mutual_information_knn(few_x, few_y).item<double>()), 0.1);
}

TEST(InformationTest, ConstantColumnsAndErrors) {
  const at::Tensor x = at::arange(10, at::kDouble);
  EXPECT_EQ(entropy_binned(at::ones({10})).item<double>(), 0.0);
  EXPECT_NEAR(mutual_information_binned(x, at::ones({10})).item<double>(), 0.0, 1e-12);
  EXPECT_TRUE(
      throws_message([&] { mutual_information_binned(x, at::ones({9})); },
                     "mutual_information_binned: x and y must have the same shape ([10] vs [9])"));
  EXPECT_TRUE(throws_message([&] { mutual_information_binned(x, x, 0); },
                             "mutual_information_binned: bins must be at least 1, got 0"));
  EXPECT_TRUE(
      throws_message([&] { mutual_information_knn(x, x, 10); },
                     "mutual_information_knn: k must be between 1 and samples - 1 (9), got 10"));
  EXPECT_TRUE(throws_message(
      [] { mutual_information_knn(at::ones({1}), at::ones({1})); },
      "mutual_information_knn: needs at least 2 samples along dim 0, got shape [1]"));
}

TEST(InformationTest, KendallTauBMatchesScipy) {
  for (const auto& c : goldens()["kendall"]) {
    const Kendall k = kendall_tau(from_json(c["a"]), from_json(c["b"]));
    EXPECT_NEAR(k.tau, c["tau"].get<double>(), 1e-14);
    EXPECT_NEAR(k.p, c["p"].get<double>(), 1e-12);
  }
  EXPECT_TRUE(std::isnan(kendall_tau(at::ones({5}), at::arange(5)).tau));
  const Kendall perfect = kendall_tau(at::arange(6), at::arange(6) * 2);
  EXPECT_NEAR(perfect.tau, 1.0, 1e-15);
  EXPECT_NEAR(kendall_tau(at::arange(6), -at::arange(6)).tau, -1.0, 1e-15);
  EXPECT_TRUE(
      throws_message([] { kendall_tau(at::ones({5}), at::ones({4})); },
                     "kendall_tau: x and y must be vectors of the same length, got [5] and [4]"));
}

}  // namespace
}  // namespace llmscope::stats
