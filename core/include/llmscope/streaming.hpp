// Streaming reducers: statistics over more activations than fit in memory, fed batch by batch
// (tensors on any device) and never keeping the data. Each keeps a fixed-size state on the
// device of the first batch it sees; later batches are moved there.
//
// - RunningStats: count, mean and M2 per neuron for G groups (Welford/Chan merges in float64);
//   means, variances and t-tests equal the batch functions of stats.hpp on all the data.
// - HistogramStream: per-neuron histograms over fixed edges; equals histogram_counts on all data.
// - QuantileSketch: per-neuron quantiles (medians) within a reported error bound.
// - TopK: per-neuron top-k activations with (document, position) indices: Neuroscope-style
//   max-activating examples.
// - CovarianceStream: the neurons' covariance matrix and its PCA spectrum (explained variance),
//   equal to stats::pca of all the data.
// Each also merges across the ranks of a job (merge_across_job), so a scan sharded over
// processes ends with the numbers of one process: exactly for HistogramStream and TopK, up to
// float64 reassociation for RunningStats and CovarianceStream, and within its (reported) error
// bound for QuantileSketch.
//
// Layout as in stats.hpp: samples along dim 0 of a batch, every other dim a neuron dim, fixed by
// the first batch. Groups, documents and positions are 0-based.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "llmscope/stats.hpp"

namespace llmscope::stats {

class RunningStats {
 public:
  explicit RunningStats(int64_t groups = 1);

  // Adds the rows of `batch` [rows, ...] to `group`.
  void add(const at::Tensor& batch, int64_t group);
  // Adds row i of `batch` to group labels[i]; labels [rows] are integers in [0, groups).
  void add(const at::Tensor& batch, const at::Tensor& labels);
  // Adds everything `other` has seen (same groups and neurons), as if its batches came here.
  void merge(const RunningStats& other);
  // Every rank of the job (llmscope/job.hpp) ends with what all the ranks saw, merged in rank
  // order (Chan et al.), equal on every rank and to one process up to float64 reassociation.
  // A no-op in one process. (Plugin ABI 2.3.)
  void merge_across_job();

  int64_t groups() const { return groups_; }
  bool started() const { return mean_.defined(); }
  const std::vector<int64_t>& neuron_shape() const { return neuron_shape_; }

  int64_t count(int64_t group) const;
  // Per-neuron results shaped like one sample, float64. mean is nan for an empty group; var and
  // std divide by count - ddof (ddof = 1: the unbiased estimate the t-tests use).
  at::Tensor mean(int64_t group) const;
  at::Tensor var(int64_t group, int64_t ddof = 1) const;
  at::Tensor std(int64_t group, int64_t ddof = 1) const;
  at::Tensor m2(int64_t group) const;  // sum of squared deviations from the mean

  // Independent-samples test between two groups (Student or Welch), and the one-sample test of
  // a group's mean. The paired test is the one-sample test of a group fed the differences
  // a - b (what ttest_rel computes). Same numbers as the batch tests, up to rounding.
  TTest ttest_ind(int64_t group1, int64_t group2, bool equal_var = true) const;
  TTest ttest_1samp(int64_t group, double mu = 0.0) const;

 private:
  at::Tensor prepare(const at::Tensor& batch);  // -> [rows, neurons] float64 on our device
  void check_group(int64_t group) const;
  void check_started() const;
  // Chan et al.'s merge of (count, mean, M2) per group: counts [G] float64 on our device.
  void merge_moments(const at::Tensor& counts, const at::Tensor& means, const at::Tensor& m2s);

  int64_t groups_;
  std::vector<int64_t> neuron_shape_;
  std::vector<int64_t> count_;  // per group
  at::Tensor mean_, m2_;        // [groups, neurons] float64
};

class HistogramStream {
 public:
  // edges [bins + 1], strictly increasing; np.histogram's bins (see histogram_counts).
  explicit HistogramStream(const at::Tensor& edges);

  void add(const at::Tensor& batch);  // [rows] or [rows, ...]
  // Every rank of the job ends with the counts of all the ranks (exact integer sums); a no-op
  // in one process. (Plugin ABI 2.3.)
  void merge_across_job();
  at::Tensor counts() const;   // [bins] or [bins, ...] int64
  at::Tensor density() const;  // as histogram_density
  const at::Tensor& edges() const { return edges_; }

 private:
  at::Tensor edges_;
  std::vector<int64_t> neuron_shape_;
  at::Tensor counts_;
};

// Per-neuron quantiles from a histogram that adapts its range. Each neuron keeps `bins` equal
// bins over [lo, lo + bins * width]: the first batch's [min, max], doubled (adjacent bins merged
// in pairs, so counts stay exact) whenever a later batch falls outside, toward that side.
// A quantile is read off the cumulative counts, placed within its bin by rank, clamped to the
// exact running min and max, and interpolated between order statistics as numpy's default
// ("linear") method does.
//
// Accuracy: |quantile(q) - exact sample quantile| <= error_bound() = the neuron's bin width
// (plus float64 rounding). The width is range / bins, and as the range only doubles when data
// falls outside it, it stays within a small multiple of the data's span: 1-4 x (max - min) /
// bins (about 3x for normal data fed in batches; never above 4x in a randomised adversarial
// search), so 1024 bins give 0.1-0.4% of the span.
// Memory: bins x neurons int64 (1024 x 5120: 40 MiB). nan and inf are rejected.
// Merged across a job, every rank's bins go whole into one grid covering them all, which adds
// at most half a rank's bin width to error_bound() (nothing when the grids line up).
class QuantileSketch {
 public:
  explicit QuantileSketch(int64_t bins = 1024);  // even, >= 2

  void add(const at::Tensor& batch);    // [rows, ...]
  at::Tensor quantile(double q) const;  // q in [0, 1]; float64 shaped like one sample
  at::Tensor median() const { return quantile(0.5); }
  at::Tensor error_bound() const;  // per neuron
  // Every rank of the job ends with one sketch of what all the ranks saw (the same on every
  // rank): count, min and max exact, quantiles within the merged error_bound(). A no-op in one
  // process. (Plugin ABI 2.4.)
  void merge_across_job();
  at::Tensor min() const;
  at::Tensor max() const;
  int64_t count() const { return count_; }
  int64_t bins() const { return bins_; }

 private:
  void check_started(const char* what) const;
  at::Tensor estimate_rank(const at::Tensor& cumulative, int64_t rank) const;  // [neurons]

  int64_t bins_;
  int64_t count_ = 0;
  std::vector<int64_t> neuron_shape_;
  at::Tensor counts_;      // [bins, neurons] int64
  at::Tensor lo_, width_;  // [neurons] float64
  at::Tensor slack_;       // [neurons] float64: how far merging moved values out of their bins
  at::Tensor min_, max_;   // [neurons] float64
};

// The k largest (or smallest) values of each neuron over everything added, with the document
// and position each came from. Batches are [docs, pos, neurons] (or [pos, neurons] for one
// document); document indices are doc_offset + the batch's own dim-0 index.
class TopK {
 public:
  explicit TopK(int64_t k, std::optional<int64_t> neurons = std::nullopt, bool largest = true);

  void add(const at::Tensor& values, int64_t doc_offset);
  // doc_offset = documents(): batches numbered on from the ones before.
  void add(const at::Tensor& values) { add(values, documents_); }

  struct Result {
    at::Tensor values;  // [k, neurons], best first (float64); -inf (+inf) where unfilled
    at::Tensor doc;     // [k, neurons] int64; -1 where unfilled
    at::Tensor pos;     // [k, neurons] int64; -1 where unfilled
  };
  Result result() const;
  // Every rank of the job ends with the best k of all the ranks' (their document numbers as each
  // rank gave them: pass global ones, e.g. its shard's first document as doc_offset); on equal
  // values the lower rank's entry comes first. A no-op in one process. (Plugin ABI 2.3.)
  void merge_across_job();

  int64_t k() const { return k_; }
  std::optional<int64_t> neurons() const { return neurons_; }
  int64_t documents() const { return documents_; }  // one past the highest document seen

 private:
  int64_t k_;
  std::optional<int64_t> neurons_;
  bool largest_;
  int64_t documents_ = 0;
  at::Tensor values_, doc_, pos_;  // [k, neurons]
};

// The covariance between all neurons over every sample added: mean [n] and co-moment matrix
// [n, n] in float64, merged batch by batch (Chan et al.'s pairwise update), so the PCA spectrum
// of more samples than fit in memory costs n x n memory. Effective dimensionality (how many
// components reach 95% of the variance) is read from explained_variance_ratio().
class CovarianceStream {
 public:
  void add(const at::Tensor& batch);  // [rows, ...]; neurons flattened
  void merge(const CovarianceStream& other);
  // Every rank of the job ends with what all the ranks saw, merged in rank order (the same bits
  // on every rank). Gathers every rank's [n, n] co-moments. A no-op in one process. (ABI 2.4.)
  void merge_across_job();

  bool started() const { return mean_.defined(); }
  int64_t count() const { return count_; }
  int64_t neurons() const;
  at::Tensor mean() const;                        // [n] float64
  at::Tensor covariance(int64_t ddof = 1) const;  // [n, n]: co-moment / (count - ddof)
  // Eigenvalues of the covariance, descending and clamped at 0: stats::pca's explained_variance
  // over all n components (those beyond the data's rank are 0).
  at::Tensor explained_variance() const;
  at::Tensor explained_variance_ratio() const;  // each one's share of the total

 private:
  void check_started(const char* what) const;
  // Chan et al.'s merge of another part's count, mean [n] and co-moment [n, n] into ours.
  void merge_moments(int64_t count, const at::Tensor& mean, const at::Tensor& comoment);

  int64_t count_ = 0;
  std::vector<int64_t> neuron_shape_;
  at::Tensor mean_, comoment_;  // [n], [n, n] float64
};

// How many leading components `cumulative` [..., k] (a cumulative explained-variance ratio,
// ascending along the last dim) needs to reach each threshold in (0, 1]: [..., thresholds]
// int64, between 1 and k (k when rounding leaves the total just below a threshold of 1).
at::Tensor components_to_reach(const at::Tensor& cumulative, const std::vector<double>& thresholds);

}  // namespace llmscope::stats
