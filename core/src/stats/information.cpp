// Entropy and mutual information estimators and Kendall's tau (lessons 13-08 to 13-14). Every
// estimator is batched over column pairs and runs in ATen on the input's device, in chunks of
// columns that bound the temporary memory (a histogram's indices, a k-NN estimate's N x N
// distances).
#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "checks.hpp"
#include "llmscope/error.hpp"
#include "llmscope/stats.hpp"

namespace llmscope::stats {
namespace {

using detail::check_real;
using detail::same_device;
using detail::to_double;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
// Elements of one chunk's largest temporary (indices or distances).
constexpr int64_t kChunkElements = int64_t{1} << 24;
// Elements of a block of distances that stays in cache.
constexpr int64_t kCacheElements = int64_t{1} << 17;

// x and y as float64 [samples, pairs] after the checks every estimator makes; `shape` is what a
// result per pair is shaped like (x's trailing dims).
struct Pairs {
  at::Tensor x, y;
  std::vector<int64_t> shape;
};

Pairs pairs_of(const at::Tensor& x, const at::Tensor& y, const char* function,
               int64_t min_samples) {
  check_real(x, std::string(function) + ": x");
  check_real(y, std::string(function) + ": y");
  if (x.sizes() != y.sizes()) {
    throw Error(std::string(function) + ": x and y must have the same shape (" +
                shape_string(x.sizes()) + " vs " + shape_string(y.sizes()) + ")");
  }
  same_device(x, y, function);
  if (x.dim() == 0 || x.size(0) < min_samples) {
    throw Error(std::string(function) + ": needs at least " + std::to_string(min_samples) +
                " samples along dim 0, got shape " + shape_string(x.sizes()));
  }
  Pairs p;
  p.x = as_samples_by_neurons(x, function);
  p.y = as_samples_by_neurons(y, function);
  p.shape = x.sizes().slice(1).vec();
  return p;
}

void check_bins(int64_t bins, const char* function) {
  if (bins < 1)
    throw Error(std::string(function) + ": bins must be at least 1, got " + std::to_string(bins));
}

// Each column's bin index (0 .. bins - 1) as np.histogram finds it: edges linspace(min, max,
// bins + 1) (an empty range widened by 0.5 either side), a value's bin the last edge <= it, the
// maximum in the last bin. x [samples, n] float64 -> [samples, n] int64.
at::Tensor bin_index(const at::Tensor& x, int64_t bins) {
  at::Tensor lo = std::get<0>(x.min(0));
  at::Tensor hi = std::get<0>(x.max(0));
  const at::Tensor empty = lo == hi;
  lo = at::where(empty, lo - 0.5, lo);
  hi = at::where(empty, hi + 0.5, hi);
  const at::Tensor step = (hi - lo) / static_cast<double>(bins);
  at::Tensor edges = at::arange(bins + 1, x.options()).unsqueeze(0) * step.unsqueeze(1) +
                     lo.unsqueeze(1);  // [n, bins + 1], numpy's linspace
  edges.select(1, bins).copy_(hi);
  const at::Tensor values = x.t().contiguous();
  at::Tensor index = at::searchsorted(edges, values, /*out_int32=*/false, /*right=*/true) - 1;
  index = at::where(values == hi.unsqueeze(1), index - 1, index);  // np.histogram's last edge
  return index.clamp(0, bins - 1).t();
}

// -sum p log2 p over dim 1 of counts [n, cells].
at::Tensor entropy_of_counts(const at::Tensor& counts) {
  const at::Tensor p = counts / counts.sum(1, /*keepdim=*/true);
  return -at::xlogy(p, p).sum(1) / std::log(2.0);
}

int64_t columns_per_chunk(int64_t per_column) {
  return std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, per_column));
}

}  // namespace

at::Tensor entropy_binned(const at::Tensor& x, int64_t bins) {
  check_bins(bins, "entropy_binned");
  at::Tensor X = as_samples_by_neurons(x, "entropy_binned: x");
  const int64_t n = X.size(1);
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < n; start += columns_per_chunk(X.size(0))) {
    const int64_t stop = std::min(n, start + columns_per_chunk(X.size(0)));
    const at::Tensor index = bin_index(X.slice(1, start, stop), bins).t();  // [c, samples]
    at::Tensor counts = at::zeros({stop - start, bins}, X.options());
    counts.scatter_add_(1, index, at::ones_like(index, X.options()));
    parts.push_back(entropy_of_counts(counts));
  }
  return at::cat(parts).reshape(x.sizes().slice(1));
}

at::Tensor mutual_information_binned(const at::Tensor& x, const at::Tensor& y, int64_t bins) {
  check_bins(bins, "mutual_information_binned");
  const Pairs p = pairs_of(x, y, "mutual_information_binned", 1);
  const int64_t n = p.x.size(1);
  const int64_t per_column = std::max(p.x.size(0), bins * bins);
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < n; start += columns_per_chunk(per_column)) {
    const int64_t stop = std::min(n, start + columns_per_chunk(per_column));
    const at::Tensor ix = bin_index(p.x.slice(1, start, stop), bins).t();  // [c, samples]
    const at::Tensor iy = bin_index(p.y.slice(1, start, stop), bins).t();
    at::Tensor joint = at::zeros({stop - start, bins * bins}, p.x.options());
    joint.scatter_add_(1, ix * bins + iy, at::ones_like(ix, p.x.options()));
    const at::Tensor grid = joint.view({stop - start, bins, bins});
    parts.push_back(entropy_of_counts(grid.sum(2)) + entropy_of_counts(grid.sum(1)) -
                    entropy_of_counts(joint));
  }
  return at::cat(parts).reshape(p.shape);
}

at::Tensor mutual_information_matrix(const at::Tensor& x, int64_t bins) {
  check_bins(bins, "mutual_information_matrix");
  const at::Tensor X = as_samples_by_neurons(x, "mutual_information_matrix: x");
  if (x.dim() != 2) {
    throw Error("mutual_information_matrix: x must be [samples, n], got shape " +
                shape_string(x.sizes()));
  }
  const int64_t n = X.size(1);
  const at::Tensor index = bin_index(X, bins).t().contiguous();  // [n, samples]
  at::Tensor marginal = at::zeros({n, bins}, X.options());
  marginal.scatter_add_(1, index, at::ones_like(index, X.options()));
  const at::Tensor h = entropy_of_counts(marginal);  // [n]
  at::Tensor mi = at::empty({n, n}, X.options());
  // Rows i of a block against every column j: [block, n, samples] joint cells.
  const int64_t block = columns_per_chunk(n * std::max(X.size(0), bins * bins));
  for (int64_t start = 0; start < n; start += block) {
    const int64_t stop = std::min(n, start + block);
    const at::Tensor cells = index.slice(0, start, stop).unsqueeze(1) * bins + index.unsqueeze(0);
    at::Tensor joint = at::zeros({stop - start, n, bins * bins}, X.options());
    joint.scatter_add_(2, cells, at::ones_like(cells, X.options()));
    const at::Tensor h_joint =
        entropy_of_counts(joint.view({-1, bins * bins})).view({stop - start, n});
    mi.slice(0, start, stop).copy_(h.slice(0, start, stop).unsqueeze(1) + h.unsqueeze(0) - h_joint);
  }
  return mi;
}

at::Tensor mutual_information_knn(const at::Tensor& x, const at::Tensor& y, int64_t k) {
  const Pairs p = pairs_of(x, y, "mutual_information_knn", 2);
  const int64_t samples = p.x.size(0);
  if (k < 1 || k >= samples) {
    throw Error("mutual_information_knn: k must be between 1 and samples - 1 (" +
                std::to_string(samples - 1) + "), got " + std::to_string(k));
  }
  const int64_t n = p.x.size(1);
  auto psi = [](double v) { return at::digamma(at::scalar_tensor(v, at::kDouble)).item<double>(); };
  const double psi_n_plus_psi_k = psi(static_cast<double>(samples)) + psi(static_cast<double>(k));
  // Pairs go in chunks and each chunk's N x N distances in blocks of rows, so that every
  // temporary stays in cache (one pass over a whole N x N matrix spends its time in page faults).
  const int64_t pair_chunk = std::max<int64_t>(1, kCacheElements / (samples * 8));
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < n; start += pair_chunk) {
    const int64_t stop = std::min(n, start + pair_chunk);
    const int64_t c = stop - start;
    const at::Tensor xs = p.x.slice(1, start, stop).t().contiguous();  // [c, N]
    const at::Tensor ys = p.y.slice(1, start, stop).t().contiguous();
    const int64_t rows = std::max<int64_t>(1, kCacheElements / (c * samples));
    at::Tensor psi_sum = at::zeros({c}, xs.options());
    for (int64_t r0 = 0; r0 < samples; r0 += rows) {
      const int64_t r1 = std::min(samples, r0 + rows);
      const at::Tensor dx =
          (xs.slice(1, r0, r1).unsqueeze(2) - xs.unsqueeze(1)).abs_();  // [c, b, N]
      const at::Tensor dy = (ys.slice(1, r0, r1).unsqueeze(2) - ys.unsqueeze(1)).abs_();
      // The k-th neighbour's max-norm distance: the (k+1)-th smallest with the sample itself (0).
      const at::Tensor eps =
          std::get<0>(at::maximum(dx, dy).topk(k + 1, 2, /*largest=*/false, /*sorted=*/true))
              .select(2, k)
              .unsqueeze(2);
      // Others within the largest distance below eps (scikit-learn's nextafter(eps, 0) radius;
      // with eps = 0, the duplicates), the sample itself taken off.
      const at::Tensor radius = at::nextafter(eps, at::zeros_like(eps));
      const at::Tensor nx = (dx <= radius).sum(2).to(at::kDouble) - 1;  // [c, b]
      const at::Tensor ny = (dy <= radius).sum(2).to(at::kDouble) - 1;
      psi_sum += (at::digamma(nx + 1) + at::digamma(ny + 1)).sum(1);
    }
    parts.push_back((psi_n_plus_psi_k - psi_sum / static_cast<double>(samples)) / std::log(2.0));
  }
  return at::cat(parts).reshape(p.shape);
}

Kendall kendall_tau(const at::Tensor& x, const at::Tensor& y) {
  check_real(x, "kendall_tau: x");
  check_real(y, "kendall_tau: y");
  if (x.dim() != 1 || y.dim() != 1 || x.size(0) != y.size(0)) {
    throw Error("kendall_tau: x and y must be vectors of the same length, got " +
                shape_string(x.sizes()) + " and " + shape_string(y.sizes()));
  }
  same_device(x, y, "kendall_tau");
  const int64_t n = x.size(0);
  if (n < 2) return {kNan, kNan};
  const at::Tensor X = to_double(x);
  const at::Tensor Y = to_double(y);
  // Concordant minus discordant pairs over i < j (each pair counted twice in the full matrix).
  const at::Tensor sx = at::sign(X.unsqueeze(1) - X.unsqueeze(0));
  const at::Tensor sy = at::sign(Y.unsqueeze(1) - Y.unsqueeze(0));
  const double s = (sx * sy).sum().item<double>() / 2.0;
  // Tie groups: sum t(t-1)/2, sum t(t-1)(t-2), sum t(t-1)(2t+5), as scipy's count_rank_tie.
  auto ties = [](const at::Tensor& v) {
    const at::Tensor counts =
        std::get<2>(at::unique_consecutive(std::get<0>(v.sort()), false, true)).to(at::kDouble);
    const at::Tensor t = counts.index({counts > 1});
    return std::array<double, 3>{(t * (t - 1) / 2).sum().item<double>(),
                                 (t * (t - 1) * (t - 2)).sum().item<double>(),
                                 (t * (t - 1) * (2 * t + 5)).sum().item<double>()};
  };
  const auto tx = ties(X);
  const auto ty = ties(Y);
  const double pairs = static_cast<double>(n) * static_cast<double>(n - 1) / 2.0;
  if (tx[0] == pairs || ty[0] == pairs) return {kNan, kNan};
  const double tau = s / std::sqrt(pairs - tx[0]) / std::sqrt(pairs - ty[0]);
  const double m = static_cast<double>(n) * static_cast<double>(n - 1);
  const double nd = static_cast<double>(n);
  double var = (m * (2 * nd + 5) - tx[2] - ty[2]) / 18.0 + 2.0 * tx[0] * ty[0] / m;
  if (n > 2) var += tx[1] * ty[1] / (9.0 * m * (nd - 2));
  const double z = s / std::sqrt(var);
  return {std::clamp(tau, -1.0, 1.0), std::erfc(std::abs(z) / std::sqrt(2.0))};
}

}  // namespace llmscope::stats
