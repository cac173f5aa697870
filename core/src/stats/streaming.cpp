// Streaming reducers: fixed-size per-neuron state updated by vectorised ATen ops per batch.
#include "llmscope/streaming.hpp"

#include <c10/util/accumulate.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "llmscope/error.hpp"
#include "llmscope/job.hpp"
#include "llmscope/matmul.hpp"

namespace llmscope::stats {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<int64_t> trailing(const at::Tensor& t) {
  return {t.sizes().begin() + 1, t.sizes().end()};
}

int64_t product(const std::vector<int64_t>& sizes) {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  return n;
}

// Checks a batch against the neuron shape fixed by the first one (or fixes it), and returns it
// as float64 [rows, neurons] on `device` (if defined). Zero rows are allowed: nothing to add.
at::Tensor batch_rows(const at::Tensor& batch, std::vector<int64_t>& neuron_shape, bool started,
                      const at::Tensor& state, const std::string& type) {
  if (!batch.defined()) throw Error(type + ": batch is an undefined tensor");
  if (at::isComplexType(batch.scalar_type()))
    throw Error(type + ": batch must be real, got a complex tensor");
  if (batch.dim() == 0)
    throw Error(type + ": batch must have a samples dim (dim 0), got a 0-d tensor");
  std::vector<int64_t> shape = trailing(batch);
  if (!started) {
    if (product(shape) == 0) throw Error(type + ": batch has no neurons");
    neuron_shape = shape;
  } else if (shape != neuron_shape) {
    throw Error(type + ": batch has " + neuron_shape_text(shape) + " neurons, expected " +
                neuron_shape_text(neuron_shape) + " (as in the first batch)");
  }
  at::Tensor x = batch.detach().to(at::kDouble);
  if (state.defined()) x = x.to(state.device());
  return x.reshape({batch.size(0), product(neuron_shape)});  // [rows, neurons]
}

}  // namespace

// ---- RunningStats ----

RunningStats::RunningStats(int64_t groups) : groups_(groups) {
  if (groups < 1)
    throw Error("RunningStats: groups must be at least 1, got " + std::to_string(groups));
  count_.assign(static_cast<size_t>(groups), 0);
}

at::Tensor RunningStats::prepare(const at::Tensor& batch) {
  at::Tensor x = batch_rows(batch, neuron_shape_, started(), mean_, "RunningStats");
  if (!started()) {
    mean_ = at::zeros({groups_, x.size(1)}, x.options());
    m2_ = at::zeros({groups_, x.size(1)}, x.options());
  }
  return x;
}

void RunningStats::check_group(int64_t group) const {
  if (group < 0 || group >= groups_) {
    throw Error("RunningStats: group " + std::to_string(group) +
                " is out of range (groups are 0 to " + std::to_string(groups_ - 1) + ")");
  }
}

void RunningStats::check_started() const {
  if (!started()) throw Error("RunningStats: no data added yet");
}

void RunningStats::merge_moments(const at::Tensor& counts, const at::Tensor& means,
                                 const at::Tensor& m2s) {
  // Chan, Golub & LeVeque: n = na + nb, delta = mean_b - mean_a,
  // mean = mean_a + delta * nb / n, M2 = M2_a + M2_b + delta^2 * na * nb / n.
  at::Tensor na = at::tensor(count_, at::kLong).to(mean_.device(), at::kDouble).unsqueeze(1);
  at::Tensor nb = counts.unsqueeze(1);  // [G, 1]
  at::Tensor n = na + nb;
  at::Tensor has = nb > 0;
  at::Tensor safe_n = at::where(has, n, at::ones_like(n));
  at::Tensor delta = at::where(has, means - mean_, at::zeros_like(means));
  mean_ = mean_ + delta * (nb / safe_n);
  m2_ = m2_ + at::where(has, m2s, at::zeros_like(m2s)) + delta.square() * (na * nb / safe_n);
  at::Tensor added = counts.to(at::kCPU, at::kLong);
  for (int64_t g = 0; g < groups_; ++g) count_[static_cast<size_t>(g)] += added[g].item<int64_t>();
}

void RunningStats::add(const at::Tensor& batch, int64_t group) {
  check_group(group);
  at::Tensor x = prepare(batch);
  const int64_t rows = x.size(0);
  if (rows == 0) return;
  // This batch's own moments (two passes), then one merge into the group.
  at::Tensor mean = x.mean(0);
  at::Tensor m2 = (x - mean).square_().sum(0);
  const double nb = static_cast<double>(rows);
  const double na = static_cast<double>(count_[static_cast<size_t>(group)]);
  const double n = na + nb;
  at::Tensor mean_a = mean_[group], m2_a = m2_[group];
  at::Tensor delta = mean - mean_a;
  m2_a.add_(m2 + delta.square() * (na * nb / n));
  mean_a.add_(delta * (nb / n));
  count_[static_cast<size_t>(group)] += rows;
}

void RunningStats::add(const at::Tensor& batch, const at::Tensor& labels) {
  if (!labels.defined() || labels.dim() != 1 || batch.dim() == 0 ||
      labels.size(0) != batch.size(0)) {
    throw Error("RunningStats: labels must be a [rows] vector with one group per row of the batch");
  }
  if (at::isFloatingType(labels.scalar_type()) || at::isComplexType(labels.scalar_type()) ||
      labels.scalar_type() == at::kBool) {
    throw Error("RunningStats: labels must be integers (group indices, 0-based)");
  }
  at::Tensor x = prepare(batch);
  if (x.size(0) == 0) return;
  at::Tensor g = labels.to(x.device(), at::kLong);
  if ((g < 0).any().item<bool>() || (g >= groups_).any().item<bool>()) {
    int64_t bad = g.masked_select((g < 0) | (g >= groups_))[0].item<int64_t>();
    throw Error("RunningStats: label " + std::to_string(bad) +
                " is out of range (groups are 0 to " + std::to_string(groups_ - 1) + ")");
  }
  // Per-group moments of this batch in one pass over the rows, then one merge for all groups.
  at::Tensor counts = at::bincount(g, {}, groups_).to(at::kDouble);  // [G]
  at::Tensor sums = at::zeros_like(mean_).index_add_(0, g, x);
  at::Tensor means = sums / counts.clamp_min(1.0).unsqueeze(1);
  at::Tensor m2s = at::zeros_like(m2_).index_add_(0, g, (x - means.index_select(0, g)).square_());
  merge_moments(counts, means, m2s);
}

namespace {

// The neurons' shape every rank of the job agrees on (ranks without data learn it here), or
// nullopt when no rank has data. Throws when two ranks' shapes differ.
std::optional<std::vector<int64_t>> job_neuron_shape(bool started,
                                                     const std::vector<int64_t>& shape,
                                                     const char* what) {
  constexpr int64_t kMaxDims = 8;
  if (shape.size() > static_cast<size_t>(kMaxDims)) {
    throw Error(std::string(what) +
                ": more than 8 neuron dimensions cannot be merged across a job");
  }
  at::Tensor header = at::full({kMaxDims + 1}, -1, at::kLong);
  header[0] = started ? static_cast<int64_t>(shape.size()) : -1;
  for (size_t i = 0; i < shape.size(); ++i) header[static_cast<int64_t>(i) + 1] = shape[i];
  const at::Tensor headers = job::all_gather(header).to(at::kCPU);  // [ranks, 9]
  std::optional<std::vector<int64_t>> agreed;
  for (int64_t r = 0; r < headers.size(0); ++r) {
    const auto* h = headers[r].data_ptr<int64_t>();
    if (h[0] < 0) continue;
    std::vector<int64_t> theirs(h + 1, h + 1 + h[0]);
    if (agreed && *agreed != theirs) {
      throw Error(std::string(what) + ": rank " + std::to_string(r) + " has " +
                  neuron_shape_text(theirs) + " neurons, another rank " +
                  neuron_shape_text(*agreed));
    }
    agreed = theirs;
  }
  return agreed;
}

}  // namespace

void RunningStats::merge_across_job() {
  if (job::world_size() == 1) return;
  const auto shape = job_neuron_shape(started(), neuron_shape_, "RunningStats");
  if (!shape) return;
  if (!started()) {
    neuron_shape_ = *shape;
    mean_ = at::zeros({groups_, c10::multiply_integers(*shape)}, at::kDouble);
    m2_ = at::zeros_like(mean_);
  }
  const at::Tensor counts = job::all_gather(at::tensor(count_, at::kLong).to(at::kDouble));
  const at::Tensor means = job::all_gather(mean_.to(at::kCPU));
  const at::Tensor m2s = job::all_gather(m2_.to(at::kCPU));
  // From empty, rank by rank: every rank computes the same bits.
  const at::Device device = mean_.device();
  mean_ = at::zeros_like(mean_);
  m2_ = at::zeros_like(m2_);
  std::fill(count_.begin(), count_.end(), 0);
  for (int64_t r = 0; r < counts.size(0); ++r) {
    merge_moments(counts[r].to(device), means[r].to(device), m2s[r].to(device));
  }
}

void RunningStats::merge(const RunningStats& other) {
  if (other.groups_ != groups_) {
    throw Error("RunningStats: cannot merge " + std::to_string(other.groups_) + " groups into " +
                std::to_string(groups_));
  }
  if (!other.started()) return;
  if (!started()) {
    neuron_shape_ = other.neuron_shape_;
    mean_ = at::zeros_like(other.mean_);
    m2_ = at::zeros_like(other.m2_);
  } else if (other.neuron_shape_ != neuron_shape_) {
    throw Error("RunningStats: cannot merge " + neuron_shape_text(other.neuron_shape_) +
                " neurons into " + neuron_shape_text(neuron_shape_));
  }
  at::Tensor counts = at::tensor(other.count_, at::kLong).to(mean_.device(), at::kDouble);
  merge_moments(counts, other.mean_.to(mean_.device()), other.m2_.to(mean_.device()));
}

int64_t RunningStats::count(int64_t group) const {
  check_group(group);
  return count_[static_cast<size_t>(group)];
}

at::Tensor RunningStats::mean(int64_t group) const {
  check_group(group);
  check_started();
  at::Tensor m = mean_[group].clone();
  if (count_[static_cast<size_t>(group)] == 0) m.fill_(kNan);
  return m.reshape(neuron_shape_);
}

at::Tensor RunningStats::m2(int64_t group) const {
  check_group(group);
  check_started();
  return m2_[group].clone().reshape(neuron_shape_);
}

at::Tensor RunningStats::var(int64_t group, int64_t ddof) const {
  if (ddof < 0) throw Error("RunningStats: ddof must be >= 0, got " + std::to_string(ddof));
  const double n = static_cast<double>(count(group));
  // n <= ddof: 0 / 0 or x / negative, like numpy, but always nan here.
  if (n - static_cast<double>(ddof) <= 0) return m2(group).fill_(kNan);
  return m2(group) / (n - static_cast<double>(ddof));
}

at::Tensor RunningStats::std(int64_t group, int64_t ddof) const { return var(group, ddof).sqrt(); }

TTest RunningStats::ttest_ind(int64_t group1, int64_t group2, bool equal_var) const {
  const double n1 = static_cast<double>(count(group1));
  const double n2 = static_cast<double>(count(group2));
  check_started();
  // The batch tests compute the variance as M2 / (n - 1) too, so this is the same arithmetic.
  at::Tensor v1 = m2_[group1] / (n1 - 1.0), v2 = m2_[group2] / (n2 - 1.0);
  TTest r = ttest_ind_from_moments(n1, mean(group1).reshape(-1), v1, n2, mean(group2).reshape(-1),
                                   v2, equal_var);
  return {r.t.reshape(neuron_shape_), r.df.reshape(neuron_shape_), r.p.reshape(neuron_shape_)};
}

TTest RunningStats::ttest_1samp(int64_t group, double mu) const {
  const double n = static_cast<double>(count(group));
  check_started();
  TTest r = ttest_1samp_from_moments(n, mean(group).reshape(-1), m2_[group] / (n - 1.0), mu);
  return {r.t.reshape(neuron_shape_), r.df.reshape(neuron_shape_), r.p.reshape(neuron_shape_)};
}

// ---- HistogramStream ----

HistogramStream::HistogramStream(const at::Tensor& edges) {
  // histogram_counts checks the edges; an empty probe costs nothing.
  histogram_counts(at::empty({0}, at::kDouble), edges);
  edges_ = edges.detach().to(at::kDouble).clone();
}

void HistogramStream::add(const at::Tensor& batch) {
  at::Tensor x = batch_rows(batch, neuron_shape_, counts_.defined(), counts_, "HistogramStream");
  if (!counts_.defined()) {
    std::vector<int64_t> shape{edges_.size(0) - 1, x.size(1)};
    counts_ = at::zeros(shape, x.options().dtype(at::kLong));
    edges_ = edges_.to(x.device());
  }
  if (x.size(0) == 0) return;
  counts_ += histogram_counts(x, edges_);  // [bins, neurons]
}

void HistogramStream::merge_across_job() {
  if (job::world_size() == 1) return;
  const auto shape = job_neuron_shape(counts_.defined(), neuron_shape_, "HistogramStream");
  if (!shape) return;
  if (!counts_.defined()) {
    neuron_shape_ = *shape;
    counts_ = at::zeros({edges_.size(0) - 1, c10::multiply_integers(*shape)}, at::kLong);
  }
  counts_ = job::all_reduce_sum(counts_).to(counts_.device());  // integer sums: exact
}

at::Tensor HistogramStream::counts() const {
  if (!counts_.defined()) throw Error("HistogramStream: no data added yet");
  std::vector<int64_t> shape{counts_.size(0)};
  shape.insert(shape.end(), neuron_shape_.begin(), neuron_shape_.end());
  return counts_.reshape(shape).clone();
}

at::Tensor HistogramStream::density() const { return histogram_density(counts(), edges_); }

// ---- QuantileSketch ----

QuantileSketch::QuantileSketch(int64_t bins) : bins_(bins) {
  if (bins < 2 || bins % 2 != 0) {
    throw Error("QuantileSketch: bins must be even and at least 2, got " + std::to_string(bins));
  }
}

void QuantileSketch::add(const at::Tensor& batch) {
  at::Tensor x = batch_rows(batch, neuron_shape_, counts_.defined(), counts_, "QuantileSketch");
  const int64_t n = x.size(1);
  if (x.size(0) == 0) {
    return;
  }
  if (!x.isfinite().all().item<bool>()) throw Error("QuantileSketch: batch contains nan or inf");
  at::Tensor bmin = x.amin(0), bmax = x.amax(0);  // [n]
  const double bins = static_cast<double>(bins_);
  if (!counts_.defined()) {
    counts_ = at::zeros({bins_, n}, x.options().dtype(at::kLong));
    lo_ = bmin;
    // A first batch with no spread (one row, or constant) still needs a range: a small one
    // relative to the value, which then doubles as far as later data needs.
    at::Tensor span = bmax - bmin;
    at::Tensor fallback = (bmin.abs() * std::ldexp(1.0, -20)).clamp_min(std::ldexp(1.0, -40));
    width_ = at::where(span > 0, span, fallback) / bins;
    slack_ = at::zeros_like(width_);
    min_ = bmin;
    max_ = bmax;
  } else {
    min_ = at::minimum(min_, bmin);
    max_ = at::maximum(max_, bmax);
  }
  // Grow the range of every neuron that this batch falls outside of: each doubling merges
  // adjacent bins in pairs into one half and leaves the other (new) half empty.
  const int64_t half = bins_ / 2;
  for (;;) {
    at::Tensor range = width_ * bins;
    at::Tensor down = bmin < lo_;
    at::Tensor up = (bmax > lo_ + range) & down.logical_not();
    at::Tensor grow = down | up;
    if (!grow.any().item<bool>()) break;
    at::Tensor pairs = counts_.view({half, 2, n}).sum(1);  // [bins / 2, n]
    at::Tensor empty = at::zeros_like(pairs);
    counts_ =
        at::where(down, at::cat({empty, pairs}), at::where(up, at::cat({pairs, empty}), counts_));
    lo_ = at::where(down, lo_ - range, lo_);
    width_ = at::where(grow, width_ * 2.0, width_);
  }
  at::Tensor bin = ((x - lo_) / width_).floor_().clamp_(0, bins - 1).to(at::kLong);  // [rows, n]
  at::Tensor flat = (bin * n + at::arange(n, bin.options())).reshape(-1);
  counts_.view(-1).index_add_(0, flat, at::ones_like(flat));
  count_ += x.size(0);
}

void QuantileSketch::check_started(const char* what) const {
  if (!counts_.defined() || count_ == 0) {
    throw Error(std::string("QuantileSketch: no data added yet (nothing to take the ") + what +
                " of)");
  }
}

at::Tensor QuantileSketch::estimate_rank(const at::Tensor& cumulative, int64_t rank) const {
  // The extremes are known exactly.
  if (rank == 0) return min_;
  if (rank == count_ - 1) return max_;
  // Order statistic `rank` (0-based) lies in the first bin whose cumulative count exceeds it.
  at::Tensor bin = (cumulative <= rank).sum(0, /*keepdim=*/true);  // [1, n]
  at::Tensor in_bin = counts_.gather(0, bin).to(at::kDouble);
  at::Tensor before = cumulative.gather(0, bin).to(at::kDouble) - in_bin;
  at::Tensor within = (static_cast<double>(rank) - before + 0.5) / in_bin;  // in (0, 1)
  at::Tensor value = lo_ + width_ * (bin.squeeze(0).to(at::kDouble) + within.squeeze(0));
  return at::minimum(at::maximum(value, min_), max_);
}

at::Tensor QuantileSketch::quantile(double q) const {
  check_started("quantile");
  if (!(q >= 0 && q <= 1))
    throw Error("QuantileSketch: q must be in [0, 1], got " + std::to_string(q));
  // numpy's "linear" method: position h = (N - 1) q between order statistics floor(h), ceil(h).
  const double h = static_cast<double>(count_ - 1) * q;
  const int64_t below = static_cast<int64_t>(std::floor(h));
  const int64_t above = std::min(below + 1, count_ - 1);
  const double fraction = h - static_cast<double>(below);
  at::Tensor cumulative = counts_.cumsum(0);
  at::Tensor low = estimate_rank(cumulative, below);
  at::Tensor result =
      fraction > 0 ? low + fraction * (estimate_rank(cumulative, above) - low) : low;
  return result.reshape(neuron_shape_);
}

void QuantileSketch::merge_across_job() {
  if (job::world_size() == 1) return;
  const auto shape = job_neuron_shape(counts_.defined(), neuron_shape_, "QuantileSketch");
  if (!shape) return;
  const int64_t n = c10::multiply_integers(*shape);
  const at::Device device = counts_.defined() ? counts_.device() : at::Device(at::kCPU);
  // Every rank's per-neuron state (lo, width, min, max, slack), counts and total; a rank
  // without data sends zeros and is left out below.
  const at::Tensor states =
      job::all_gather(counts_.defined() ? at::stack({lo_, width_, min_, max_, slack_}).to(at::kCPU)
                                        : at::zeros({5, n}, at::kDouble));  // [R, 5, n]
  const at::Tensor counts = job::all_gather(
      counts_.defined() ? counts_.to(at::kCPU) : at::zeros({bins_, n}, at::kLong));  // [R, b, n]
  const at::Tensor totals = job::all_gather(at::full({1}, count_, at::kLong)).reshape({-1});
  const at::Tensor used = (totals > 0).nonzero().reshape({-1});  // ranks that saw data
  if (used.numel() == 0) return;
  const at::Tensor seen = states.index_select(0, used);  // [U, 5, n]
  const at::Tensor lo = seen.select(1, 0), width = seen.select(1, 1);
  const double bins = static_cast<double>(bins_);

  // One grid holding every rank's: from the lowest edge, at the widest width, doubled until it
  // reaches the highest edge. Each rank's bin goes whole to the grid bin holding its centre, so
  // a value may now sit up to half its old bin outside its new one: that slack is added to the
  // error bound (none where a rank's grid is the merged grid's, e.g. one rank with data).
  at::Tensor merged_lo = std::get<0>(lo.min(0));
  const at::Tensor top = std::get<0>((lo + width * bins).max(0));
  at::Tensor merged_width = std::get<0>(width.max(0));
  for (;;) {
    const at::Tensor short_of = merged_lo + merged_width * bins < top;
    if (!short_of.any().item<bool>()) break;
    merged_width = at::where(short_of, merged_width * 2.0, merged_width);
  }
  at::Tensor merged = at::zeros({bins_, n}, at::kLong);
  at::Tensor slack = at::zeros({n}, at::kDouble);
  const at::Tensor centres = at::arange(bins_, at::kDouble).add_(0.5).unsqueeze(1);  // [b, 1]
  for (int64_t i = 0; i < used.size(0); ++i) {
    const at::Tensor r_lo = lo[i], r_width = width[i], r_slack = seen[i][4];
    const at::Tensor value = r_lo + centres * r_width;  // [b, n]: each old bin's centre
    const at::Tensor bin = ((value - merged_lo) / merged_width).floor_().clamp_(0, bins - 1);
    // Aligned: the old grid's edges are edges of the merged one (same origin, a width that
    // divides), so every value stays inside its bin.
    const at::Tensor ratio = merged_width / r_width;
    const at::Tensor offset = (r_lo - merged_lo) / r_width;
    const at::Tensor aligned = (ratio == ratio.round()) & (offset == offset.round());
    const at::Tensor moved = at::where(aligned, at::zeros_like(r_width), r_width * 0.5);
    slack = at::maximum(slack, r_slack + moved);
    const at::Tensor flat =
        (bin.to(at::kLong) * n + at::arange(n, at::kLong)).reshape(-1);  // [b n]
    merged.view(-1).index_add_(0, flat, counts[used[i].item<int64_t>()].reshape(-1));
  }
  counts_ = merged.to(device);
  lo_ = merged_lo.to(device);
  width_ = merged_width.to(device);
  slack_ = slack.to(device);
  min_ = seen.select(1, 2).amin(0).to(device);
  max_ = seen.select(1, 3).amax(0).to(device);
  count_ = totals.sum().item<int64_t>();
  neuron_shape_ = *shape;
}

at::Tensor QuantileSketch::error_bound() const {
  check_started("error bound");
  return (width_ + slack_).reshape(neuron_shape_);
}

at::Tensor QuantileSketch::min() const {
  check_started("min");
  return min_.clone().reshape(neuron_shape_);
}

at::Tensor QuantileSketch::max() const {
  check_started("max");
  return max_.clone().reshape(neuron_shape_);
}

// ---- TopK ----

TopK::TopK(int64_t k, std::optional<int64_t> neurons, bool largest)
    : k_(k), neurons_(neurons), largest_(largest) {
  if (k < 1) throw Error("TopK: k must be at least 1, got " + std::to_string(k));
  if (neurons && *neurons < 1)
    throw Error("TopK: neurons must be at least 1, got " + std::to_string(*neurons));
}

void TopK::add(const at::Tensor& values, int64_t doc_offset) {
  if (!values.defined()) throw Error("TopK: values is an undefined tensor");
  if (values.dim() != 2 && values.dim() != 3) {
    throw Error("TopK: values must be [docs, pos, neurons] or [pos, neurons], got a " +
                std::to_string(values.dim()) + "-d tensor");
  }
  if (at::isComplexType(values.scalar_type()))
    throw Error("TopK: values must be real, got a complex tensor");
  if (doc_offset < 0)
    throw Error("TopK: doc_offset must be >= 0, got " + std::to_string(doc_offset));
  at::Tensor v = values.dim() == 2 ? values.unsqueeze(0) : values;  // [docs, pos, n]
  const int64_t docs = v.size(0), positions = v.size(1), n = v.size(2);
  if (neurons_ && n != *neurons_) {
    throw Error("TopK: values have " + std::to_string(n) + " neurons, expected " +
                std::to_string(*neurons_));
  }
  neurons_ = n;
  if (!values_.defined()) {
    auto options = v.options().dtype(at::kDouble);
    values_ = at::full({k_, n}, largest_ ? -kInf : kInf, options);
    doc_ = at::full({k_, n}, -1, options.dtype(at::kLong));
    pos_ = at::full({k_, n}, -1, options.dtype(at::kLong));
  }
  documents_ = std::max(documents_, doc_offset + docs);
  if (docs * positions == 0) return;

  // Candidates: the current k, then every row of the batch; keep the best k of them.
  at::Tensor rows = v.detach().to(values_.device(), at::kDouble).reshape({docs * positions, n});
  at::Tensor candidates = at::cat({values_, rows});                        // [k + docs * pos, n]
  auto [best, index] = candidates.topk(k_, 0, largest_, /*sorted=*/true);  // [k, n]
  at::Tensor from_batch = index >= k_;
  at::Tensor row = (index - k_).clamp_min(0);
  at::Tensor old = index.clamp_max(k_ - 1);
  doc_ = at::where(from_batch, doc_offset + at::div(row, positions, "floor"), doc_.gather(0, old));
  pos_ = at::where(from_batch, at::remainder(row, positions), pos_.gather(0, old));
  values_ = best;
}

void TopK::merge_across_job() {
  if (job::world_size() == 1) return;
  documents_ = job::all_gather(at::tensor({documents_}, at::kLong)).max().item<int64_t>();
  const auto shape = job_neuron_shape(values_.defined(), {neurons_.value_or(0)}, "TopK");
  if (!shape) return;
  const int64_t n = shape->front();
  if (!values_.defined()) {
    neurons_ = n;
    values_ = at::full({k_, n}, largest_ ? -kInf : kInf, at::kDouble);
    doc_ = at::full({k_, n}, -1, at::kLong);
    pos_ = at::full({k_, n}, -1, at::kLong);
  }
  const at::Device device = values_.device();
  const at::Tensor values = job::all_gather(values_.to(at::kCPU)).reshape({-1, n});  // [W k, n]
  const at::Tensor docs = job::all_gather(doc_.to(at::kCPU)).reshape({-1, n});
  const at::Tensor pos = job::all_gather(pos_.to(at::kCPU)).reshape({-1, n});
  // A stable sort: on equal values the lower rank's entry wins, the same on every rank.
  const auto [sorted, index] = values.sort(/*stable=*/true, 0, /*descending=*/largest_);
  const at::Tensor best = index.slice(0, 0, k_);
  values_ = sorted.slice(0, 0, k_).contiguous().to(device);
  doc_ = docs.gather(0, best).to(device);
  pos_ = pos.gather(0, best).to(device);
}

TopK::Result TopK::result() const {
  if (!values_.defined()) throw Error("TopK: no data added yet");
  return {values_.clone(), doc_.clone(), pos_.clone()};
}

// ---- CovarianceStream ----

void CovarianceStream::add(const at::Tensor& batch) {
  at::Tensor x = batch_rows(batch, neuron_shape_, started(), mean_, "CovarianceStream");
  if (!started()) {
    mean_ = at::zeros({x.size(1)}, x.options());
    comoment_ = at::zeros({x.size(1), x.size(1)}, x.options());
  }
  const int64_t nb = x.size(0);
  if (nb == 0) return;
  // The batch's own moments, then Chan's merge: C = C_a + C_b + delta delta^T * na nb / n.
  at::Tensor mean_b = x.mean(0);
  at::Tensor centred = x - mean_b;
  at::Tensor comoment_b = llmscope::matmul(centred.t(), centred);
  const double na = static_cast<double>(count_);
  const double n = na + static_cast<double>(nb);
  at::Tensor delta = mean_b - mean_;
  comoment_.add_(comoment_b).add_(at::outer(delta, delta), na * static_cast<double>(nb) / n);
  mean_.add_(delta, static_cast<double>(nb) / n);
  count_ += nb;
}

void CovarianceStream::merge(const CovarianceStream& other) {
  if (!other.started() || other.count_ == 0) return;
  if (!started()) {
    count_ = other.count_;
    neuron_shape_ = other.neuron_shape_;
    mean_ = other.mean_.clone();
    comoment_ = other.comoment_.clone();
    return;
  }
  if (other.neuron_shape_ != neuron_shape_) {
    throw Error("CovarianceStream: cannot merge " + neuron_shape_text(other.neuron_shape_) +
                " neurons into " + neuron_shape_text(neuron_shape_));
  }
  merge_moments(other.count_, other.mean_, other.comoment_);
}

void CovarianceStream::merge_moments(int64_t count, const at::Tensor& mean,
                                     const at::Tensor& comoment) {
  if (count == 0) return;
  const double na = static_cast<double>(count_);
  const double nb = static_cast<double>(count);
  at::Tensor delta = mean.to(mean_.device()) - mean_;
  comoment_.add_(comoment.to(mean_.device())).add_(at::outer(delta, delta), na * nb / (na + nb));
  mean_.add_(delta, nb / (na + nb));
  count_ += count;
}

void CovarianceStream::merge_across_job() {
  if (job::world_size() == 1) return;
  const auto shape = job_neuron_shape(started(), neuron_shape_, "CovarianceStream");
  if (!shape) return;
  const int64_t n = c10::multiply_integers(*shape);
  const at::Device device = started() ? mean_.device() : at::Device(at::kCPU);
  const at::Tensor counts =
      job::all_gather(at::full({1}, count_, at::kLong)).reshape({-1}).to(at::kCPU);
  const at::Tensor means =
      job::all_gather(started() ? mean_.to(at::kCPU) : at::zeros({n}, at::kDouble));
  const at::Tensor comoments =
      job::all_gather(started() ? comoment_.to(at::kCPU) : at::zeros({n, n}, at::kDouble));
  // From empty, rank by rank (Chan et al.): every rank computes the same bits.
  neuron_shape_ = *shape;
  count_ = 0;
  mean_ = at::zeros({n}, at::TensorOptions().dtype(at::kDouble).device(device));
  comoment_ = at::zeros({n, n}, mean_.options());
  for (int64_t r = 0; r < counts.size(0); ++r)
    merge_moments(counts[r].item<int64_t>(), means[r], comoments[r]);
}

void CovarianceStream::check_started(const char* what) const {
  if (!started() || count_ == 0) {
    throw Error(std::string("CovarianceStream: ") + what + " needs data; none added yet");
  }
}

int64_t CovarianceStream::neurons() const { return started() ? mean_.size(0) : 0; }

at::Tensor CovarianceStream::mean() const {
  check_started("mean");
  return mean_.clone();
}

at::Tensor CovarianceStream::covariance(int64_t ddof) const {
  check_started("covariance");
  if (count_ - ddof <= 0) {
    throw Error("CovarianceStream: covariance with ddof " + std::to_string(ddof) +
                " needs more than " + std::to_string(ddof) + " samples, got " +
                std::to_string(count_));
  }
  return comoment_ / static_cast<double>(count_ - ddof);
}

at::Tensor CovarianceStream::explained_variance() const {
  // eigvalsh is ascending; tiny negative values are rounding of a rank-deficient matrix.
  return at::linalg_eigvalsh(covariance(1)).flip({0}).clamp_min(0.0);
}

at::Tensor CovarianceStream::explained_variance_ratio() const {
  at::Tensor ev = explained_variance();
  const double total = ev.sum().item<double>();
  if (!(total > 0.0)) throw Error("CovarianceStream: the data has no variance");
  return ev / total;
}

at::Tensor components_to_reach(const at::Tensor& cumulative,
                               const std::vector<double>& thresholds) {
  if (!cumulative.defined() || cumulative.dim() == 0 || cumulative.size(-1) == 0) {
    throw Error("components_to_reach: expected cumulative ratios [..., k] with k >= 1");
  }
  std::vector<at::Tensor> counts;
  const int64_t k = cumulative.size(-1);
  for (const double t : thresholds) {
    if (!(t > 0.0 && t <= 1.0)) {
      std::ostringstream shown;
      shown << t;
      throw Error("components_to_reach: thresholds must be in (0, 1], got " + shown.str());
    }
    // The number of components below the threshold, plus the one that reaches it.
    at::Tensor below = cumulative.lt(t - 1e-12).sum(-1);
    counts.push_back((below + 1).clamp_max(k));
  }
  if (counts.empty()) throw Error("components_to_reach: no thresholds");
  return at::stack(counts, -1).to(at::kLong);
}

}  // namespace llmscope::stats
