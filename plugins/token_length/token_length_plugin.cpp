// token_length: how MLP activations depend on the length of the token they are computed at
// (course lessons 12-11 to 12-13). Per token, its length in characters; per layer, streamed on
// the model's device inside native hooks: density histograms of the activations of short,
// median-length and long tokens, the Pearson r of every neuron with length, and the histogram
// of those r values. No activation is kept beyond the batch that produced it. In a job of several
// processes each rank scans its part of the rows and the ranks merge before anything is read.
#include <llmscope/job.hpp>
#include <llmscope/plugin.hpp>
#include <llmscope/stats.hpp>
#include <llmscope/streaming.hpp>

#include <algorithm>
#include <chrono>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using namespace llmscope::plugin;  // the SDK (plugin.hpp)

constexpr int kOpts = 3;  // the options table is argument #3 of every function
constexpr int64_t kGroups = 3;
const std::vector<std::string> kGroupNames{"shorter", "equal", "longer"};

// Characters (UTF-8 code points) in `text`: every byte that does not continue a sequence.
// Decoding is lossy (U+FFFD for broken bytes), so the text is always valid UTF-8.
int64_t code_points(const std::string& text) {
  int64_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// ids as one stream of int64 token ids: [n] as given, [rows, pos] read row by row.
at::Tensor token_stream(const at::Tensor& ids) {
  if (!ids.defined() || ids.dim() < 1 || ids.dim() > 2) {
    throw ArgumentError(2, "token ids must be a 1-D tensor (or [rows, pos], read row by row)");
  }
  if (at::isFloatingType(ids.scalar_type()) || at::isComplexType(ids.scalar_type()) ||
      ids.scalar_type() == at::kBool) {
    throw ArgumentError(2, "token ids must be an integer tensor");
  }
  return ids.reshape({-1}).to(at::kLong);
}

// A tensor option given as a tensor or a Lua list of numbers, as float64 on the CPU.
at::Tensor tensor_option(const Table& opts, const std::string& key) {
  auto it = opts.find(key);
  if (it == opts.end() || it->second.is_nil()) return {};
  if (auto* t = std::get_if<at::Tensor>(&it->second.data)) {
    if (at::isComplexType(t->scalar_type())) {
      throw ArgumentError(kOpts, "option '" + key + "' must be real, got a complex tensor");
    }
    return t->detach().to(at::kCPU, at::kDouble).reshape({-1});
  }
  auto values = option<std::vector<double>>(opts, key, {}, kOpts);
  return at::tensor(values, at::kDouble);
}

// Bin edges: finite and strictly increasing, at least 2 of them.
at::Tensor edges_option(const Table& opts, const std::string& key, double lo, double hi,
                        int64_t count) {
  at::Tensor e = tensor_option(opts, key);
  if (!e.defined()) return at::linspace(lo, hi, count, at::kDouble);
  if (e.numel() < 2) throw ArgumentError(kOpts, "option '" + key + "' needs at least 2 edges");
  if (!e.isfinite().all().item<bool>())
    throw ArgumentError(kOpts, "option '" + key + "' must be finite");
  if (!(e.slice(0, 1) > e.slice(0, 0, -1)).all().item<bool>()) {
    throw ArgumentError(kOpts, "option '" + key + "' must be strictly increasing");
  }
  return e;
}

// The tokens to scan and one value (length) per token: `lengths` when given, else the length in
// characters of each token decoded on its own with the model's tokenizer.
struct Tokens {
  at::Tensor ids;      // [n] int64, CPU
  at::Tensor lengths;  // [n] int64 (from the tokenizer or integer input) or float64
  at::Tensor y;        // [n] float64
  double median = 0;
  at::Tensor labels;  // [n] int64: 0 shorter, 1 equal, 2 longer than the median
  at::Tensor counts;  // [3] int64
};

Tokens read_tokens(const ModelPtr& model, const at::Tensor& ids, const Table& opts) {
  Tokens t;
  at::Tensor stream = token_stream(ids).to(at::kCPU);
  const int64_t wanted = option<int64_t>(opts, "tokens", 8192, kOpts);
  if (wanted < 2)
    throw ArgumentError(kOpts, "option 'tokens' must be at least 2, got " + std::to_string(wanted));
  const int64_t n = std::min(wanted, stream.numel());
  if (n < 2) {
    throw ArgumentError(2,
                        "token ids: need at least 2 tokens, got " + std::to_string(stream.numel()));
  }
  t.ids = stream.narrow(0, 0, n).contiguous();

  auto given = opts.find("lengths");
  if (given != opts.end() && !given->second.is_nil()) {
    at::Tensor raw;
    if (auto* tensor = std::get_if<at::Tensor>(&given->second.data)) {
      if (at::isComplexType(tensor->scalar_type()) || tensor->scalar_type() == at::kBool) {
        throw ArgumentError(kOpts, "option 'lengths' must be a real tensor");
      }
      raw = tensor->detach().to(at::kCPU).reshape({-1});
    } else {
      raw = tensor_option(opts, "lengths");
    }
    if (raw.numel() < n) {
      throw ArgumentError(kOpts, "option 'lengths' has " + std::to_string(raw.numel()) +
                                     " values but " + std::to_string(n) +
                                     " tokens are scanned (one per token)");
    }
    raw = raw.narrow(0, 0, n);
    t.lengths = at::isFloatingType(raw.scalar_type()) ? raw.to(at::kDouble) : raw.to(at::kLong);
    t.y = raw.to(at::kDouble).contiguous();
    if (!t.y.isfinite().all().item<bool>())
      throw ArgumentError(kOpts, "option 'lengths' must be finite");
  } else {
    const llmscope::Tokenizer* tokenizer = model->tokenizer();
    if (tokenizer == nullptr) {
      throw ArgumentError(kOpts,
                          "the model at '" + model->source().string() +
                              "' has no tokenizer to measure token lengths; pass option 'lengths'");
    }
    std::unordered_map<int64_t, int64_t> known;  // id -> length: each distinct id decoded once
    t.lengths = at::empty({n}, at::kLong);
    auto* out = t.lengths.data_ptr<int64_t>();
    const auto* id = t.ids.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      auto [it, fresh] = known.try_emplace(id[i], 0);
      if (fresh) it->second = code_points(tokenizer->decode({id[i]}));
      out[i] = it->second;
    }
    t.y = t.lengths.to(at::kDouble);
  }

  // numpy's median: the middle value, or the mean of the two middle values.
  at::Tensor sorted = std::get<0>(t.y.sort());
  const auto* s = sorted.data_ptr<double>();
  t.median = n % 2 == 1 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  t.labels = at::where(t.y < t.median, 0, at::where(t.y == t.median, 1, 2)).to(at::kLong);
  t.counts = at::bincount(t.labels, {}, kGroups);
  return t;
}

void put_tokens(Table& result, const Tokens& t) {
  result["lengths"] = t.lengths;
  result["median"] = t.median;
  result["group_counts"] = t.counts;
  result["groups"] = kGroupNames;
  result["tokens"] = t.ids.numel();
}

// What one layer accumulates: Welford moments of every neuron, the co-moment with the centred
// lengths, and one pooled histogram per length group.
struct LayerState {
  std::string site;
  llmscope::stats::RunningStats moments{1};
  at::Tensor cross;  // [neurons] float64: sum over tokens of x * (y - mean(y))
  at::Tensor sums;   // [groups] float64: sum of each group's activations over tokens and neurons
  std::vector<llmscope::stats::HistogramStream> histograms;
};

// The part of the stream one forward pass sees.
struct BatchView {
  at::Tensor yc;                   // [tokens] float64 on the device: y - mean(y)
  std::vector<at::Tensor> groups;  // per group: [k] int64 row indices on the device
};

void accumulate(LayerState& state, const BatchView& batch, const at::Tensor& act) {
  if (act.dim() < 2)
    throw llmscope::Error("site '" + state.site + "' is not [batch, pos, neurons]");
  at::Tensor x = act.detach().reshape({-1, act.size(-1)}).to(at::kDouble);  // [tokens, neurons]
  if (x.size(0) != batch.yc.size(0)) {
    throw llmscope::Error("site '" + state.site + "' has " + std::to_string(x.size(0)) +
                          " rows, not one per token of the batch (" +
                          std::to_string(batch.yc.size(0)) + ")");
  }
  state.moments.add(x, 0);
  at::Tensor cross = x.t().mv(batch.yc);  // [neurons]
  state.cross = state.cross.defined() ? state.cross + cross : cross;
  if (!state.sums.defined()) state.sums = at::zeros({kGroups}, x.options());
  for (int64_t g = 0; g < kGroups; ++g) {
    at::Tensor values = x.index_select(0, batch.groups[static_cast<size_t>(g)]).reshape({-1});
    state.histograms[static_cast<size_t>(g)].add(values);
    state.sums[g] += values.sum();
  }
}

Table scan(const ModelPtr& model, const at::Tensor& ids, const Table& opts) {
  const auto started = std::chrono::steady_clock::now();
  check_options(
      opts, {"tokens", "lengths", "site", "layers", "batch_rows", "seq_len", "edges", "r_edges"},
      kOpts);
  const std::string pattern = option<std::string>(opts, "site", "blocks.{L}.mlp.hook_pre", kOpts);
  if (pattern.find("{L}") == std::string::npos) {
    throw ArgumentError(kOpts,
                        "option 'site' must contain {L} for the layer, got '" + pattern + "'");
  }
  const std::vector<int64_t> layers = layers_option(*model, opts, "layers", kOpts);
  const int64_t max_positions = model->max_positions();
  int64_t seq_len = std::min<int64_t>(512, max_positions);
  if (opts.count("seq_len") && !opts.at("seq_len").is_nil()) {
    seq_len = option<int64_t>(opts, "seq_len", seq_len, kOpts);
    if (seq_len < 1 || seq_len > max_positions) {
      throw ArgumentError(kOpts, "option 'seq_len' must be 1 to the model's " +
                                     std::to_string(max_positions) + " positions, got " +
                                     std::to_string(seq_len));
    }
  }
  const int64_t batch_rows = option<int64_t>(opts, "batch_rows", 16, kOpts);
  if (batch_rows < 1) throw ArgumentError(kOpts, "option 'batch_rows' must be at least 1");
  const at::Tensor edges = edges_option(opts, "edges", -8.0, 5.0, 51);
  const at::Tensor r_edges = edges_option(opts, "r_edges", -0.8, 0.8, 81);

  // Sites are resolved before anything runs, so a typo fails with the closest names.
  std::vector<LayerState> states(layers.size());
  int64_t stop_at = 0;
  bool stop_early = true;
  for (size_t k = 0; k < layers.size(); ++k) {
    const auto site = site_at(*model, pattern, layers[k], kOpts, "option 'site'");
    states[k].site = site.name;
    const int layer = site.layer;
    if (layer < 0) stop_early = false;  // a site after the blocks needs the whole pass
    stop_at = std::max<int64_t>(stop_at, layer + 1);
    for (int64_t g = 0; g < kGroups; ++g) states[k].histograms.emplace_back(edges);
  }

  const Tokens tokens = read_tokens(model, ids, opts);
  const int64_t n = tokens.ids.numel();
  const at::Device device = model->device();
  const at::Tensor y = tokens.y;
  const at::Tensor yc = (y - y.mean()).to(device);  // [n]
  const at::Tensor labels = tokens.labels.to(device);
  const at::Tensor ids_dev = tokens.ids.to(device);

  BatchView batch;
  llmscope::ForwardOptions forward;
  forward.strict_hooks = true;  // a site the pass never reaches is an error, not a silent zero
  if (stop_early) forward.stop_at_layer = static_cast<int>(stop_at);
  for (size_t k = 0; k < states.size(); ++k) {
    forward.hooks.push_back(
        {states[k].site, [&, k](const at::Tensor& act, const llmscope::HookContext&) {
           accumulate(states[k], batch, act);
           return at::Tensor();  // observe only
         }});
  }

  at::NoGradGuard no_grad;
  // One pass over `rows` rows of `len` tokens from `start` of the stream.
  auto pass = [&](int64_t start, int64_t rows, int64_t len) {
    const int64_t count = rows * len;
    batch.yc = yc.narrow(0, start, count);
    at::Tensor lab = labels.narrow(0, start, count);
    batch.groups.clear();
    for (int64_t g = 0; g < kGroups; ++g)
      batch.groups.push_back((lab == g).nonzero().reshape({-1}));
    model->forward(
        llmscope::ForwardInput{ids_dev.narrow(0, start, count).reshape({rows, len}), {}, {}, {}},
        forward);
  };
  const int64_t full_rows = n / seq_len;
  // This rank's rows (all of them in one process); not a structured binding, which C++17
  // lambdas cannot capture.
  const std::pair<int64_t, int64_t> rows = llmscope::job::shard_range(full_rows);
  const int64_t first_row = rows.first, end_row = rows.second;
  for_each_range(end_row - first_row, batch_rows, [&](int64_t start, int64_t stop) {
    pass((first_row + start) * seq_len, stop - start, seq_len);
  });
  const bool last_rank = llmscope::job::rank() == llmscope::job::world_size() - 1;
  if (n % seq_len != 0 && last_rank) pass(full_rows * seq_len, 1, n % seq_len);  // the tail

  // The job's ranks merge: moments rank by rank, histograms and sums exactly.
  for (auto& state : states) {
    state.moments.merge_across_job();
    for (auto& h : state.histograms) h.merge_across_job();
    if (!state.moments.started()) continue;  // no rank saw this site (reported below)
    const int64_t width = state.moments.mean(0).numel();
    if (!state.cross.defined()) state.cross = at::zeros({width}, at::kDouble).to(device);
    if (!state.sums.defined()) state.sums = at::zeros({kGroups}, at::kDouble).to(device);
    state.cross = llmscope::job::all_reduce_sum(state.cross).to(device);
    state.sums = llmscope::job::all_reduce_sum(state.sums).to(device);
  }

  // Per layer: r = sum x (y - ybar) / sqrt(M2_x * sum (y - ybar)^2), which is stats::pearson's
  // formula with the sums taken batch by batch.
  const double syy = (y - y.mean()).square().sum().item<double>();
  std::vector<at::Tensor> rs, counts, r_counts, sums;
  int64_t neurons = -1;
  for (auto& state : states) {
    at::Tensor m2 = state.moments.m2(0).reshape({-1});
    if (neurons >= 0 && m2.numel() != neurons) {
      throw llmscope::Error("site '" + state.site + "' has " + std::to_string(m2.numel()) +
                            " neurons, but '" + states.front().site + "' has " +
                            std::to_string(neurons) + " (all layers must have the same width)");
    }
    neurons = m2.numel();
    at::Tensor r = state.cross / (m2 * syy).sqrt();
    r = at::where((m2 > 0) & (syy > 0), r.clamp(-1.0, 1.0),
                  at::full_like(r, std::numeric_limits<double>::quiet_NaN()));
    rs.push_back(r.to(at::kCPU));
    std::vector<at::Tensor> per_group;
    for (auto& h : state.histograms) per_group.push_back(h.counts().to(at::kCPU));
    counts.push_back(at::stack(per_group));                                     // [groups, bins]
    r_counts.push_back(llmscope::stats::histogram_counts(rs.back(), r_edges));  // [r bins]
    sums.push_back(state.sums.to(at::kCPU));
  }
  at::Tensor r = at::stack(rs);             // [layers, neurons]
  at::Tensor hist = at::stack(counts);      // [layers, groups, bins]
  at::Tensor r_hist = at::stack(r_counts);  // [layers, r bins]
  const int64_t bins = edges.numel() - 1;
  at::Tensor density =
      llmscope::stats::histogram_density(hist.permute({2, 0, 1}).reshape({bins, -1}), edges)
          .reshape({bins, hist.size(0), kGroups})
          .permute({1, 2, 0})
          .contiguous();
  at::Tensor r_density = llmscope::stats::histogram_density(r_hist.t(), r_edges).t().contiguous();
  at::Tensor group_totals = tokens.counts.to(at::kLong).unsqueeze(0) * neurons;  // [1, groups]
  at::Tensor outside = group_totals - hist.sum(-1);                              // [layers, groups]
  // Pooled mean activation per group (nan for an empty group), over all values, not only those
  // inside the edges.
  at::Tensor means = at::stack(sums) / group_totals.to(at::kDouble);  // [layers, groups]

  Table result;
  put_tokens(result, tokens);
  List layer_list, site_list;
  for (size_t k = 0; k < layers.size(); ++k) {
    layer_list.emplace_back(layers[k]);
    site_list.emplace_back(states[k].site);
  }
  result["layers"] = layer_list;
  result["sites"] = site_list;
  result["neurons"] = neurons;
  result["r"] = r;
  result["counts"] = hist;
  result["density"] = density;
  result["outside"] = outside;
  result["means"] = means;
  result["edges"] = edges;
  result["r_counts"] = r_hist;
  result["r_density"] = r_density;
  result["r_edges"] = r_edges;
  result["seq_len"] = seq_len;
  result["seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace

LLMSCOPE_PLUGIN("token_length", "0.1.0", "Activation histograms and correlations by token length") {
  module.def(
      "lengths",
      "lengths(model, ids, opts) -> {lengths, median, group_counts, groups, tokens}: token "
      "lengths\n"
      "The length of a token is the number of characters (UTF-8 code points) of its text decoded "
      "on\n"
      "its own with the model's tokenizer, a leading space included (' the' is 4). ids: 1-D token "
      "ids\n"
      "(or [rows, pos], read row by row). opts: tokens (how many from the start, default 8192),\n"
      "lengths (precomputed values, one per token: for models without a tokenizer).\n"
      "Returns lengths [n] (int64), median (numpy's: the mean of the two middle values for even "
      "n),\n"
      "group_counts [3] (int64: shorter, equal, longer than the median), groups (their names), "
      "tokens (n).",
      [](const ModelPtr& model, const at::Tensor& ids, const Table& opts) {
        check_options(opts, {"tokens", "lengths"}, kOpts);
        Table result;
        put_tokens(result, read_tokens(model, ids, opts));
        return result;
      });
  module.def(
      "scan",
      "scan(model, ids, opts) -> table: per-layer activation statistics by token length, streamed\n"
      "ids: a 1-D token stream (or [rows, pos], read row by row), cut into rows of seq_len tokens "
      "and\n"
      "run batch_rows rows per pass (a shorter last row takes a pass of its own). Native hooks on "
      "every\n"
      "layer's site accumulate on the model's device; no activations are kept.\n"
      "opts: tokens (default 8192), lengths (precomputed per-token values instead of the "
      "tokenizer's),\n"
      "site (hook point with {L} for the layer, default 'blocks.{L}.mlp.hook_pre'), layers "
      "(0-based list,\n"
      "default all), batch_rows (16), seq_len (512, or the model's max_positions if fewer), edges\n"
      "(activation histogram bin edges, default linspace(-8, 5, 51)), r_edges (default "
      "linspace(-.8, .8, 81)).\n"
      "Returns, besides what lengths() returns: layers (list), sites (list), neurons, r [layers, "
      "neurons]\n"
      "(Pearson r of each neuron with length, float64; nan for a constant neuron), counts and "
      "density\n"
      "[layers, 3, bins] (activations of each length group pooled over neurons; groups are "
      "shorter,\n"
      "equal, longer), outside [layers, 3] (values beyond the edges), means [layers, 3] (pooled\n"
      "mean activation of each group), edges, r_counts and r_density [layers, r bins], r_edges,\n"
      "seq_len, seconds (wall time of the call). Results are on the CPU.\n"
      "In a job of several processes (llmscope run --nproc N) every rank scans its share of the "
      "rows\nand all ranks return the merged result, equal to one process's.",
      scan);
}
