// Streaming reducers against the batch results on the same data: accumulators fed in uneven
// chunks give the batch means, variances and t-tests (to 1e-10), histograms equal the batch
// histogram, top-k equals a full sort, and the quantile sketch stays within its reported bound.
#include "llmscope/streaming.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/stats.hpp"

namespace llmscope::stats {
namespace {

using ::llmscope::testing::tensors_close;
using ::llmscope::testing::throws_message;

// Rows of x in chunks of the given sizes (which must add up to x.size(0)).
std::vector<at::Tensor> chunks(const at::Tensor& x, const std::vector<int64_t>& sizes) {
  std::vector<at::Tensor> out;
  int64_t start = 0;
  for (int64_t size : sizes) {
    out.push_back(x.slice(0, start, start + size));
    start += size;
  }
  EXPECT_EQ(start, x.size(0));
  return out;
}

class StreamingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::manual_seed(11);
    // Offsets far from zero make naive sum-of-squares variances lose digits; Welford does not.
    a_ = at::randn({137, 3, 5}, at::kDouble) * 2.0 + 1000.0;
    b_ = at::randn({90, 3, 5}, at::kDouble) * 0.5 + 1000.3;
  }
  at::Tensor a_, b_;
};

TEST_F(StreamingTest, RunningStatsEqualBatchInUnevenChunks) {
  RunningStats r(2);
  for (const auto& c : chunks(a_, {1, 7, 50, 0, 79})) r.add(c, 0);
  for (const auto& c : chunks(b_, {45, 2, 43})) r.add(c, 1);
  EXPECT_EQ(r.count(0), 137);
  EXPECT_EQ(r.count(1), 90);
  EXPECT_EQ(r.mean(0).sizes(), (std::vector<int64_t>{3, 5}));
  EXPECT_TENSOR_CLOSE(r.mean(0), a_.mean(0), 1e-10, 1e-10);
  EXPECT_TENSOR_CLOSE(r.var(0), a_.var(0, /*unbiased=*/true), 1e-10, 1e-10);
  EXPECT_TENSOR_CLOSE(r.var(0, 0), a_.var(0, /*unbiased=*/false), 1e-10, 1e-10);
  EXPECT_TENSOR_CLOSE(r.std(1), b_.std(0, /*unbiased=*/true), 1e-10, 1e-10);

  for (bool equal_var : {true, false}) {
    TTest streamed = r.ttest_ind(0, 1, equal_var);
    TTest batch = ttest_ind(a_, b_, equal_var);
    EXPECT_TENSOR_CLOSE(streamed.t, batch.t, 1e-10, 1e-10);
    EXPECT_TENSOR_CLOSE(streamed.df, batch.df, 1e-10, 1e-10);
    EXPECT_TENSOR_CLOSE(streamed.p, batch.p, 1e-10, 1e-12);
  }
  TTest one = r.ttest_1samp(0, 1000.1);
  TTest batch_one = ttest_1samp(a_, 1000.1);
  EXPECT_TENSOR_CLOSE(one.t, batch_one.t, 1e-10, 1e-10);
  EXPECT_TENSOR_CLOSE(one.p, batch_one.p, 1e-10, 1e-12);
}

TEST_F(StreamingTest, PairedTestFromADifferenceAccumulator) {
  at::Tensor after = a_ + at::randn_like(a_) * 0.3 + 0.05;
  RunningStats differences;
  for (int64_t start = 0; start < a_.size(0); start += 16) {
    differences.add(a_.slice(0, start, start + 16) - after.slice(0, start, start + 16), 0);
  }
  TTest streamed = differences.ttest_1samp(0, 0.0);
  TTest batch = ttest_rel(a_, after);
  EXPECT_TENSOR_CLOSE(streamed.t, batch.t, 1e-10, 1e-10);
  EXPECT_TENSOR_CLOSE(streamed.p, batch.p, 1e-10, 1e-12);
}

TEST_F(StreamingTest, LabelsAndMergeEqualPerGroupAdds) {
  at::Tensor x = at::cat({a_, b_});
  at::Tensor labels = at::cat({at::zeros({137}, at::kLong), at::ones({90}, at::kLong)});
  at::Tensor order = at::randperm(x.size(0), at::kLong);
  x = x.index_select(0, order);
  labels = labels.index_select(0, order);

  RunningStats by_labels(3), first(3), second(3);
  for (const auto& [c, l] :
       std::vector<std::pair<at::Tensor, at::Tensor>>{{x.slice(0, 0, 100), labels.slice(0, 0, 100)},
                                                      {x.slice(0, 100), labels.slice(0, 100)}}) {
    by_labels.add(c, l);
  }
  first.add(x.slice(0, 0, 60), labels.slice(0, 0, 60));
  second.add(x.slice(0, 60), labels.slice(0, 60));
  first.merge(second);
  for (RunningStats* r : {&by_labels, &first}) {
    EXPECT_EQ(r->count(0), 137);
    EXPECT_EQ(r->count(1), 90);
    EXPECT_EQ(r->count(2), 0);
    EXPECT_TENSOR_CLOSE(r->mean(0), a_.mean(0), 1e-10, 1e-10);
    EXPECT_TENSOR_CLOSE(r->var(1), b_.var(0, true), 1e-10, 1e-10);
    EXPECT_TRUE(r->mean(2).isnan().all().item<bool>());
    EXPECT_TENSOR_CLOSE(r->ttest_ind(0, 1, false).t, ttest_ind(a_, b_, false).t, 1e-10, 1e-10);
  }
}

TEST(StreamingRunningStats, Errors) {
  RunningStats r(2);
  EXPECT_TRUE(throws_message([&] { r.mean(0); }, "RunningStats: no data added yet"));
  r.add(at::zeros({4, 64}), 0);
  EXPECT_TRUE(throws_message(
      [&] {
        r.add(at::zeros({4, 32}), 0);
      },
      "RunningStats: batch has 32 neurons, expected 64 (as in the first batch)"));
  EXPECT_TRUE(throws_message(
      [&] {
        r.add(at::zeros({4, 64}), 2);
      },
      "RunningStats: group 2 is out of range (groups are 0 to 1)"));
  EXPECT_TRUE(throws_message(
      [&] {
        r.add(at::zeros({2, 64}), at::tensor({0, 5}));
      },
      "RunningStats: label 5 is out of range (groups are 0 to 1)"));
  EXPECT_TRUE(throws_message(
      [&] {
        r.add(at::zeros({2, 64}), at::tensor({0.0, 1.0}));
      },
      "RunningStats: labels must be integers (group indices, 0-based)"));
  EXPECT_TRUE(
      throws_message([&] { r.add(at::zeros({}), 0); },
                     "RunningStats: batch must have a samples dim (dim 0), got a 0-d tensor"));
  EXPECT_TRUE(
      throws_message([] { RunningStats(0); }, "RunningStats: groups must be at least 1, got 0"));
  r.add(at::zeros({0, 64}), 1);  // an empty batch adds nothing
  EXPECT_EQ(r.count(1), 0);
}

TEST_F(StreamingTest, HistogramStreamEqualsBatchHistogram) {
  at::Tensor edges = at::linspace(996.0, 1004.0, 33, at::kDouble);
  HistogramStream h(edges);
  for (const auto& c : chunks(a_, {3, 100, 34})) h.add(c.to(at::kFloat));
  EXPECT_TRUE(h.counts().equal(histogram_counts(a_.to(at::kFloat), edges)));
  EXPECT_EQ(h.counts().sizes(), (std::vector<int64_t>{32, 3, 5}));
  EXPECT_TENSOR_CLOSE(h.density(),
                      histogram_density(histogram_counts(a_.to(at::kFloat), edges), edges), 0, 0);

  HistogramStream flat(edges);
  at::Tensor column = a_.select(2, 0).select(1, 0);  // [137]
  flat.add(column.slice(0, 0, 10));
  flat.add(column.slice(0, 10));
  EXPECT_TRUE(flat.counts().equal(histogram_counts(column, edges)));
  EXPECT_TRUE(throws_message(
      [] {
        HistogramStream(at::tensor({1.0, 1.0}, at::kDouble));
      },
      "histogram: edges must be strictly increasing"));
  EXPECT_TRUE(throws_message(
      [&] { flat.add(a_); },
      "HistogramStream: batch has [3, 5] neurons, expected 1 (as in the first batch)"));
}

// Quantiles of x [samples, n] as numpy's default ("linear") method computes them.
at::Tensor exact_quantile(const at::Tensor& x, double q) { return at::quantile(x, q, 0); }

void expect_within_bound(const QuantileSketch& s, const at::Tensor& all, double q) {
  at::Tensor error = (s.quantile(q) - exact_quantile(all, q)).abs();
  at::Tensor bound = s.error_bound();
  // The bound is one bin width; 1e-9 of the data's scale covers rounding in the bin arithmetic.
  at::Tensor slack = (all.abs().amax(0) * 1e-9);
  EXPECT_TRUE((error <= bound + slack).all().item<bool>())
      << "q " << q << ": worst excess " << (error - bound).max().item<double>();
}

TEST(StreamingQuantileSketch, WithinItsBoundForAnyFeedOrder) {
  at::manual_seed(3);
  const int64_t bins = 256;
  std::vector<std::pair<std::string, at::Tensor>> datasets = {
      {"normal", at::randn({3000, 6}, at::kDouble)},
      {"heavy tails",
       at::randn({3000, 6}, at::kDouble) / at::rand({3000, 6}, at::kDouble).clamp_min(1e-3)},
      {"increasing", std::get<0>(at::randn({3000, 6}, at::kDouble).sort(0))},
      {"decreasing", std::get<0>(at::randn({3000, 6}, at::kDouble).sort(0, true))},
      {"skewed positive", at::randn({3000, 6}, at::kDouble).exp() * 1e-3},
      {"integers", at::randint(0, 5, {3000, 6}, at::kDouble)},
  };
  for (const auto& [name, x] : datasets) {
    SCOPED_TRACE(name);
    QuantileSketch s(bins);
    for (const auto& c : chunks(x, {1, 2, 97, 400, 1000, 1500})) s.add(c);
    EXPECT_EQ(s.count(), 3000);
    for (double q : {0.0, 0.01, 0.25, 0.5, 0.9, 0.999, 1.0}) expect_within_bound(s, x, q);
    EXPECT_TENSOR_CLOSE(s.quantile(0.0), x.amin(0), 0, 0);
    EXPECT_TENSOR_CLOSE(s.quantile(1.0), x.amax(0), 0, 0);
    // The documented size of the bound: at most 4 x the data's span over the bins.
    at::Tensor span = x.amax(0) - x.amin(0);
    EXPECT_TRUE((s.error_bound() <= 4.0 * span / bins).all().item<bool>())
        << "bound / (span / bins): " << (s.error_bound() / (span / bins)).max().item<double>();
  }
}

TEST(StreamingQuantileSketch, ConstantDataIsExactAndErrorsAreClear) {
  QuantileSketch s(64);
  EXPECT_TRUE(throws_message(
      [&] { s.median(); }, "QuantileSketch: no data added yet (nothing to take the quantile of)"));
  s.add(at::full({5, 2}, 7.5));
  s.add(at::full({1, 2}, 7.5));
  EXPECT_TRUE(s.median().eq(7.5).all().item<bool>());
  EXPECT_TRUE(throws_message(
      [&] {
        s.add(at::tensor({1.0, std::nan("")}).view({1, 2}));
      },
      "QuantileSketch: batch contains nan or inf"));
  EXPECT_TRUE(throws_message([&] { s.quantile(1.5); },
                             "QuantileSketch: q must be in [0, 1], got 1.500000"));
  EXPECT_TRUE(throws_message([] { QuantileSketch(7); },
                             "QuantileSketch: bins must be even and at least 2, got 7"));
}

// Top-k by brute force: sort every (doc, pos) value of each neuron.
TEST(StreamingTopK, EqualsAFullSortWithDocumentAndPosition) {
  at::manual_seed(5);
  const int64_t k = 7, neurons = 9;
  at::Tensor all = at::randn({23, 11, neurons});  // [docs, pos, n], distinct values
  TopK top(k, neurons);
  top.add(all.slice(0, 0, 4), 0);
  top.add(all.slice(0, 4, 5));  // doc_offset defaults to documents() = 4
  top.add(all[5], 5);           // [pos, n]: one document
  top.add(all.slice(0, 6, 23), 6);
  EXPECT_EQ(top.documents(), 23);
  TopK::Result r = top.result();

  at::Tensor flat = all.reshape({23 * 11, neurons}).to(at::kDouble);
  auto [sorted, index] = flat.sort(0, /*descending=*/true);
  EXPECT_TRUE(r.values.equal(sorted.slice(0, 0, k)));
  EXPECT_TRUE(r.doc.equal(at::div(index.slice(0, 0, k), 11, "floor")));
  EXPECT_TRUE(r.pos.equal(at::remainder(index.slice(0, 0, k), 11)));
  // Indices point back at the values.
  for (int64_t j = 0; j < neurons; ++j) {
    EXPECT_EQ(all[r.doc[0][j].item<int64_t>()][r.pos[0][j].item<int64_t>()][j].item<double>(),
              r.values[0][j].item<double>());
  }

  TopK bottom(k, std::nullopt, /*largest=*/false);
  bottom.add(all.slice(0, 0, 10), 0);
  bottom.add(all.slice(0, 10), 10);
  auto [ascending, ascending_index] = flat.sort(0, /*descending=*/false);
  EXPECT_TRUE(bottom.result().values.equal(ascending.slice(0, 0, k)));
  EXPECT_TRUE(bottom.result().doc.equal(at::div(ascending_index.slice(0, 0, k), 11, "floor")));
}

TEST(StreamingTopK, UnfilledRowsAndErrors) {
  TopK top(5, 3);
  top.add(at::ones({1, 2, 3}), 10);
  TopK::Result r = top.result();
  EXPECT_TRUE(r.doc.slice(0, 0, 2).eq(10).all().item<bool>());
  EXPECT_TRUE(r.doc.slice(0, 2).eq(-1).all().item<bool>());
  EXPECT_TRUE(r.values.slice(0, 2).isinf().all().item<bool>());
  EXPECT_TRUE(throws_message(
      [&] {
        top.add(at::ones({1, 2, 4}), 11);
      },
      "TopK: values have 4 neurons, expected 3"));
  EXPECT_TRUE(throws_message(
      [&] { top.add(at::ones({3}), 11); },
      "TopK: values must be [docs, pos, neurons] or [pos, neurons], got a 1-d tensor"));
  EXPECT_TRUE(throws_message([] { TopK(0); }, "TopK: k must be at least 1, got 0"));
  EXPECT_TRUE(throws_message([] { TopK(3).result(); }, "TopK: no data added yet"));
}

}  // namespace
}  // namespace llmscope::stats

namespace llmscope::stats {
namespace {

TEST_F(StreamingTest, CovarianceStreamEqualsThePcaOfAllTheData) {
  const at::Tensor x = a_.reshape({a_.size(0), -1});  // [137, 15], offset 1000
  CovarianceStream whole;
  CovarianceStream pieces;
  for (const auto& part : chunks(a_, {1, 40, 0, 96})) pieces.add(part);
  whole.add(a_);
  EXPECT_EQ(pieces.count(), 137);
  EXPECT_EQ(pieces.neurons(), 15);
  const at::Tensor centred = x - x.mean(0);
  const at::Tensor cov = centred.t().mm(centred) / 136.0;
  EXPECT_TRUE(tensors_close(pieces.covariance(), cov, 1e-10, 1e-10));
  EXPECT_TRUE(tensors_close(pieces.mean(), x.mean(0), 1e-10, 1e-10));
  EXPECT_TRUE(tensors_close(pieces.covariance(0), cov * 136.0 / 137.0, 1e-10, 1e-10));
  const Pca p = pca(x);
  EXPECT_TRUE(tensors_close(pieces.explained_variance(), p.explained_variance, 1e-9, 1e-9));
  EXPECT_TRUE(
      tensors_close(pieces.explained_variance_ratio(), p.explained_variance_ratio, 1e-10, 1e-10));

  // Merging two streams equals one stream fed both.
  CovarianceStream other;
  other.add(b_);
  CovarianceStream both = whole;
  both.merge(other);
  CovarianceStream fed;
  fed.add(a_);
  fed.add(b_);
  EXPECT_TRUE(tensors_close(both.covariance(), fed.covariance(), 1e-10, 1e-10));
  const at::Tensor all = at::cat({x, b_.reshape({b_.size(0), -1})});
  EXPECT_TRUE(tensors_close(both.covariance(), at::cov(all.t()), 1e-10, 1e-10));
}

TEST(StreamingCovariance, FewerSamplesThanNeuronsGiveZerosBeyondTheRank) {
  at::manual_seed(3);
  const at::Tensor x = at::randn({6, 20}, at::kDouble);
  CovarianceStream s;
  s.add(x.to(at::kFloat));  // any floating dtype; the state is float64
  const at::Tensor ratio = s.explained_variance_ratio();
  EXPECT_EQ(ratio.size(0), 20);
  EXPECT_NEAR(ratio.sum().item<double>(), 1.0, 1e-12);
  EXPECT_LT(ratio.slice(0, 5).sum().item<double>(), 1e-10);  // rank 5 after centring
  EXPECT_TRUE(tensors_close(
      ratio.slice(0, 0, 5),
      pca(x.to(at::kFloat).to(at::kDouble)).explained_variance_ratio.slice(0, 0, 5), 1e-6, 1e-6));
}

TEST(StreamingCovariance, ComponentsToReachAThreshold) {
  const at::Tensor cumulative = at::tensor({0.5, 0.9, 0.95, 0.99, 1.0}, at::kDouble);
  EXPECT_TRUE(at::equal(components_to_reach(cumulative, {0.5, 0.95, 0.99, 1.0, 0.1}),
                        at::tensor({1, 3, 4, 5, 1}, at::kLong)));
  const at::Tensor rows =
      at::stack({cumulative, at::tensor({0.2, 0.4, 0.6, 0.8, 0.9999999}, at::kDouble)});
  EXPECT_TRUE(at::equal(components_to_reach(rows, {0.6, 1.0}),
                        at::tensor({2, 5, 3, 5}, at::kLong).reshape({2, 2})));
  EXPECT_TRUE(throws_message([&] { components_to_reach(cumulative, {1.5}); },
                             "components_to_reach: thresholds must be in (0, 1], got 1.5"));
}

TEST(StreamingCovariance, Errors) {
  CovarianceStream s;
  EXPECT_TRUE(throws_message([&] { s.covariance(); },
                             "CovarianceStream: covariance needs data; none added yet"));
  s.add(at::ones({1, 3}));
  EXPECT_TRUE(
      throws_message([&] { s.covariance(); },
                     "CovarianceStream: covariance with ddof 1 needs more than 1 samples, got 1"));
  s.add(at::ones({1, 3}));
  EXPECT_TRUE(throws_message([&] { s.explained_variance_ratio(); },
                             "CovarianceStream: the data has no variance"));
  EXPECT_TRUE(throws_message(
      [&] {
        s.add(at::ones({2, 4}));
      },
      "CovarianceStream: batch has 4 neurons, expected 3 (as in the first batch)"));
  CovarianceStream other;
  other.add(at::ones({2, 2}));
  EXPECT_TRUE(
      throws_message([&] { s.merge(other); }, "CovarianceStream: cannot merge 2 neurons into 3"));
}

}  // namespace
}  // namespace llmscope::stats
