// subspace: removing the top singular directions of a layer's activations over a text (lesson
// 17-04). The [pos, units] matrix is decomposed by SVD as the course does (uncentred), its top k
// singular values are zeroed, and each token's mean across units is added back; the effect is
// measured on the hidden states (drift), on token similarity and on next-token log-probabilities.
// The removal runs as a native hook; `sweep` batches one removal per layer into few passes, and
// in a job of several ranks (llmscope/job.hpp) shares the passes out, every rank ending with the
// whole result.
#include <llmscope/job.hpp>
#include <llmscope/matmul.hpp>
#include <llmscope/plugin.hpp>
#include <llmscope/stats.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace {

using namespace llmscope::plugin;  // the SDK (plugin.hpp)

struct Removal {
  at::Tensor proj;             // [pos, units], the activation's dtype; undefined when k = 0
  double variance = 0;         // 100 * sum of the removed s^2 / sum of all s^2
  at::Tensor singular_values;  // [min(pos, units)] float64, descending
};

// The course's removal: U, s, Vh = svd(A) (uncentred, reduced); s[:k] = 0; proj = U diag(s) Vh,
// plus each token's mean across units when `add_mean`. In float64, returned in A's dtype.
// k = 0 removes nothing and leaves proj undefined: the activation stays exactly as it is.
Removal remove_top(const at::Tensor& a, int64_t k, bool add_mean, const std::string& site) {
  auto a64 = a.to(at::kDouble);  // [pos, units]
  auto [u, s, vh] = at::linalg_svd(a64, /*full_matrices=*/false);
  if (k > s.size(0)) {
    throw llmscope::Error("cannot remove " + std::to_string(k) + " directions from '" + site +
                          "': its [" + std::to_string(a.size(0)) + ", " +
                          std::to_string(a.size(1)) + "] activation matrix has " +
                          std::to_string(s.size(0)) + " singular values");
  }
  Removal removal;
  removal.singular_values = s;
  if (k == 0) return removal;
  auto energy = s.square();
  removal.variance =
      100.0 * energy.narrow(0, 0, k).sum().item<double>() / energy.sum().item<double>();
  auto kept = s.clone();
  kept.narrow(0, 0, k).zero_();
  auto proj = llmscope::matmul(u * kept.unsqueeze(0), vh);  // [pos, units]
  if (add_mean) proj = proj + a64.mean(-1, /*keepdim=*/true);
  removal.proj = proj.to(a.scalar_type());
  return removal;
}

// torch.cov(x) for x [pos, units]: the tokens are the variables, the units the observations.
at::Tensor token_covariance(const at::Tensor& x) {
  auto x64 = x.to(at::kDouble);
  auto centred = x64 - x64.mean(1, /*keepdim=*/true);
  return llmscope::matmul(centred, centred.t()) / static_cast<double>(x.size(1) - 1);  // [pos, pos]
}

// The covariance's eigenvalues as % of their sum, largest first.
at::Tensor spectrum(const at::Tensor& cov) {
  auto ev = at::linalg_eigvalsh(cov).flip({0});
  return ev * (100.0 / ev.sum().item<double>());
}

// The one text as [1, pos] on the model's device.
at::Tensor one_text(const ModelPtr& model, const at::Tensor& ids) {
  if (ids.dim() == 2 && ids.size(0) != 1) {
    throw ArgumentError(2, "one text expected ([pos] or [1, pos] ids), got a batch of " +
                               std::to_string(ids.size(0)));
  }
  if (ids.dim() != 1 && ids.dim() != 2)
    throw ArgumentError(2, "token ids [pos] or [1, pos] expected");
  const int64_t need = model->is_causal() ? 3 : 2;
  if (ids.numel() < need) {
    throw ArgumentError(2, "the text needs at least " + std::to_string(need) + " tokens, got " +
                               std::to_string(ids.numel()));
  }
  return (ids.dim() == 1 ? ids.unsqueeze(0) : ids).to(model->device(), at::kLong);
}

struct Common {
  std::string site;
  int64_t k = 1;
  bool add_mean = true;
};

Common common_options(const ModelPtr& model, const Table& opts) {
  Common c;
  c.site = option<std::string>(opts, "site", "blocks.{L}.mlp.hook_pre", 3);
  if (c.site.find("{L}") == std::string::npos) {
    throw ArgumentError(3, "option 'site' must contain {L} for the layer, got '" + c.site + "'");
  }
  site_at(*model, c.site, 0, 3, "option 'site'");  // a typo fails before any pass
  c.k = option<int64_t>(opts, "k", 1, 3);
  if (c.k < 0) throw ArgumentError(3, "option 'k' must be at least 0, got " + std::to_string(c.k));
  c.add_mean = option<bool>(opts, "add_mean", true, 3);
  return c;
}

// Log-probability of each scored token ([rows, scored] float64): a causal model's prediction of
// the next token at positions 0..pos-2; a masked model's reconstruction of each token in place.
at::Tensor token_logprobs(const ModelPtr& model, const at::Tensor& logits, const at::Tensor& ids) {
  const int64_t pos = ids.size(1);
  const bool causal = model->is_causal();
  const int64_t scored = causal ? pos - 1 : pos;
  auto targets = (causal ? ids.narrow(1, 1, scored) : ids)[0];  // [scored]
  auto out = at::empty({logits.size(0), scored}, at::kDouble);
  for (int64_t row = 0; row < logits.size(0);
       ++row) {  // one row at a time keeps float64 copies small
    auto lp = logits[row].narrow(0, 0, scored).to(at::kDouble).log_softmax(-1);  // [scored, vocab]
    out[row].copy_(lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1));
  }
  return out;
}

double item(const at::Tensor& t) { return t.item<double>(); }

constexpr const char* kRemoveDoc =
    "remove(model, ids, opts) -> {...}: remove the top-k singular directions at one layer (lesson "
    "17-04)\n"
    "At the layer's site over one text, A [pos, units] -> U, s, Vh = svd(A) (uncentred); s[:k] = "
    "0;\n"
    "proj = U diag(s) Vh + A.mean(-1, keepdim) (each token's mean restored); the pass continues\n"
    "with proj. k = 0 removes nothing and changes nothing.\n"
    "opts: layer (0-based, default n_layer // 2), k (default 1), site (hook point with {L},\n"
    "default 'blocks.{L}.mlp.hook_pre'), add_mean (default true), cosine_layer (hidden-state "
    "index\n"
    "for the token cosine matrices, default layer + 1), first_token (include token 0 in them;\n"
    "default false, as the course), activations (return A and proj; default false).\n"
    "Returns variance (% of sum s^2 removed), singular_values [min(pos, units)], drift\n"
    "[n_layer + 1] (||hidden_states[i] clean - removed||), delta [scored] (clean - removed\n"
    "log-prob of the actual next token; for a masked model, of each token in place),\n"
    "logprob_clean, logprob_removed, targets (the scored token ids), t, p, df (one-sample t-test\n"
    "of delta against 0), mean_delta, cosine_clean, cosine_removed [n, n], cov_clean, cov_removed\n"
    "[pos, pos] (token x token covariance, as torch.cov(A)), spectrum_clean, spectrum_removed\n"
    "[pos] (their eigenvalues as % of the total, largest first), A and proj [pos, units] when\n"
    "asked, layer, k, cosine_layer, seconds.";

Table remove_directions(const ModelPtr& model, const at::Tensor& ids_in, const Table& opts) {
  check_options(
      opts, {"layer", "k", "site", "add_mean", "cosine_layer", "first_token", "activations"}, 3);
  const auto started = std::chrono::steady_clock::now();
  const auto ids = one_text(model, ids_in);  // [1, pos]
  const int64_t n_layer = model->n_layer();
  const int64_t layer = layer_option(*model, opts, "layer", n_layer / 2, 3);
  const auto c = common_options(model, opts);
  const int64_t cosine_layer = option<int64_t>(opts, "cosine_layer", layer + 1, 3);
  if (cosine_layer < 0 || cosine_layer > n_layer) {
    throw ArgumentError(3, "option 'cosine_layer': hidden-state index " +
                               std::to_string(cosine_layer) + " is outside 0 to " +
                               std::to_string(n_layer));
  }
  const bool first_token = option<bool>(opts, "first_token", false, 3);
  const bool activations = option<bool>(opts, "activations", false, 3);
  const auto site = site_at(*model, c.site, layer, 3, "option 'site'").name;

  at::NoGradGuard no_grad;
  llmscope::ForwardOptions clean_options;
  clean_options.output_hidden_states = true;
  auto clean = model->forward(llmscope::ForwardInput{ids, {}, {}, {}}, clean_options);

  Removal removal;
  at::Tensor a;
  llmscope::ForwardOptions removed_options;
  removed_options.output_hidden_states = true;
  removed_options.strict_hooks = true;
  removed_options.hooks.push_back({site, [&](const at::Tensor& act, const llmscope::HookContext&) {
                                     if (act.dim() != 3)
                                       throw llmscope::Error("site '" + site +
                                                             "' is not [batch, pos, units]");
                                     a = act[0].clone();  // [pos, units]
                                     removal = remove_top(a, c.k, c.add_mean, site);
                                     if (!removal.proj.defined())
                                       return at::Tensor();  // k = 0: unchanged
                                     return removal.proj.unsqueeze(0);
                                   }});
  auto removed = model->forward(llmscope::ForwardInput{ids, {}, {}, {}}, removed_options);

  auto drift = at::empty({n_layer + 1}, at::kDouble);
  for (int64_t i = 0; i <= n_layer; ++i) {
    drift[i] = (clean.hidden_states[static_cast<size_t>(i)] -
                removed.hidden_states[static_cast<size_t>(i)])
                   .to(at::kDouble)
                   .norm();
  }
  auto lp_clean = token_logprobs(model, clean.logits, ids)[0];      // [scored]
  auto lp_removed = token_logprobs(model, removed.logits, ids)[0];  // [scored]
  auto delta = lp_clean - lp_removed;
  auto test = llmscope::stats::ttest_1samp(delta, 0.0);

  const int64_t skip = first_token ? 0 : 1;
  auto tokens_at = [&](const llmscope::ForwardOutput& out) {
    const auto& h = out.hidden_states[static_cast<size_t>(cosine_layer)][0];  // [pos, d_model]
    return llmscope::stats::cosine_matrix(h.narrow(0, skip, h.size(0) - skip).to(at::kDouble));
  };
  auto proj = removal.proj.defined() ? removal.proj : a;
  auto cov_clean = token_covariance(a);
  auto cov_removed = token_covariance(proj);
  const bool causal = model->is_causal();

  Table result;
  result["variance"] = removal.variance;
  result["singular_values"] = removal.singular_values.cpu();
  result["drift"] = drift;
  result["delta"] = delta.cpu();
  result["logprob_clean"] = lp_clean.cpu();
  result["logprob_removed"] = lp_removed.cpu();
  result["targets"] = (causal ? ids.narrow(1, 1, ids.size(1) - 1) : ids)[0].cpu();
  result["t"] = item(test.t);
  result["p"] = item(test.p);
  result["df"] = item(test.df);
  result["mean_delta"] = item(delta.mean());
  result["cosine_clean"] = tokens_at(clean).cpu();
  result["cosine_removed"] = tokens_at(removed).cpu();
  result["cov_clean"] = cov_clean.cpu();
  result["cov_removed"] = cov_removed.cpu();
  result["spectrum_clean"] = spectrum(cov_clean).cpu();
  result["spectrum_removed"] = spectrum(cov_removed).cpu();
  if (activations) {
    result["A"] = a;
    result["proj"] = proj;
  }
  result["layer"] = layer;
  result["k"] = c.k;
  result["cosine_layer"] = cosine_layer;
  result["seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

constexpr const char* kSweepDoc =
    "sweep(model, ids, opts) -> {...}: the removal of `remove` at every layer in turn (lesson "
    "17-04)\n"
    "Batched: the text is repeated over a batch and row i carries the removal at layer i (each\n"
    "layer's hook acts only on its row), so n layers take a few passes instead of n.\n"
    "opts: layers (0-based list, default all), k (default 1), site (default\n"
    "'blocks.{L}.mlp.hook_pre'), add_mean (default true), batch_size (rows per pass; default:\n"
    "logits under ~64 MiB), loop (true: one pass per layer, for comparison; default false).\n"
    "Returns layers, variance [layers] (% of sum s^2 removed), t, p [layers] (one-sample t-test "
    "of\n"
    "the per-token delta against 0), mean_delta [layers], delta [layers, scored] (clean - removed\n"
    "log-prob of the actual next token), logprob_clean [scored], r_t and r_delta (Pearson r of\n"
    "variance with t and with mean_delta over layers), k, forwards (passes, the clean one\n"
    "included; in a job, every rank's), seconds.";

Table sweep_layers(const ModelPtr& model, const at::Tensor& ids_in, const Table& opts) {
  check_options(opts, {"layers", "k", "site", "add_mean", "batch_size", "loop"}, 3);
  const auto started = std::chrono::steady_clock::now();
  const auto ids = one_text(model, ids_in);  // [1, pos]
  const int64_t tokens = ids.size(1);
  const std::vector<int64_t> layers = layers_option(*model, opts, "layers", 3);
  const auto c = common_options(model, opts);
  const bool loop = option<bool>(opts, "loop", false, 3);
  const double per_row =
      static_cast<double>(tokens) * static_cast<double>(model->vocab_size()) * 4.0;
  const int64_t fallback = std::max<int64_t>(1, static_cast<int64_t>(64.0 * 1024 * 1024 / per_row));
  const int64_t batch_size = batch_size_option(opts, fallback, 3);

  at::NoGradGuard no_grad;
  auto clean_logits = model->forward(llmscope::ForwardInput{ids, {}, {}, {}}).logits;
  auto lp_clean = token_logprobs(model, clean_logits, ids)[0];  // [scored]
  const auto n = static_cast<int64_t>(layers.size());
  auto delta = at::empty({n, lp_clean.size(0)}, at::kDouble);
  auto variance = at::zeros({n}, at::kDouble);
  int64_t forwards = 1;
  const int64_t rows_per_pass = loop ? 1 : batch_size;
  // This rank's layers (all of them outside a job), gathered below.
  const std::pair<int64_t, int64_t> mine = llmscope::job::shard_batches(n, rows_per_pass);
  for_each_range(mine.second - mine.first, rows_per_pass, [&](int64_t from, int64_t to) {
    const int64_t first = mine.first + from, count = to - from;
    llmscope::ForwardOptions forward;
    forward.strict_hooks = true;
    for (int64_t row = 0; row < count; ++row) {
      const int64_t i = first + row;
      const auto site =
          site_at(*model, c.site, layers[static_cast<size_t>(i)], 3, "option 'site'").name;
      forward.hooks.push_back(
          {site, [&, i, row, site](const at::Tensor& act, const llmscope::HookContext&) {
             if (act.dim() != 3)
               throw llmscope::Error("site '" + site + "' is not [batch, pos, units]");
             auto removal = remove_top(act[row], c.k, c.add_mean, site);
             variance[i] = removal.variance;
             if (!removal.proj.defined()) return at::Tensor();  // k = 0: unchanged
             auto out = act.clone();
             out[row].copy_(removal.proj);
             return out;
           }});
    }
    auto batch = ids.expand({count, tokens}).contiguous();
    auto logits = model->forward(llmscope::ForwardInput{batch, {}, {}, {}}, forward).logits;
    ++forwards;
    // Every row holds the same text, so row 0's ids are every row's targets.
    delta.narrow(0, first, count)
        .copy_(lp_clean.unsqueeze(0) - token_logprobs(model, logits, batch));
  });
  if (llmscope::job::world_size() > 1) {
    delta = llmscope::job::all_gather_concat(delta.narrow(0, mine.first, mine.second - mine.first));
    variance =
        llmscope::job::all_gather_concat(variance.narrow(0, mine.first, mine.second - mine.first));
    forwards = llmscope::job::all_reduce_sum(at::full({1}, forwards, at::kLong)).item<int64_t>();
  }
  auto test = llmscope::stats::ttest_1samp(delta.t(), 0.0);  // samples = tokens, one test per layer
  auto mean_delta = delta.mean(1);
  auto r_t = llmscope::stats::pearson(test.t.unsqueeze(1), variance);
  auto r_delta = llmscope::stats::pearson(mean_delta.unsqueeze(1), variance);

  Table result;
  result["layers"] = layers;
  result["variance"] = variance;
  result["t"] = test.t;
  result["p"] = test.p;
  result["mean_delta"] = mean_delta;
  result["delta"] = delta;
  result["logprob_clean"] = lp_clean.cpu();
  result["r_t"] = n > 1 ? item(r_t[0]) : std::nan("");
  result["r_delta"] = n > 1 ? item(r_delta[0]) : std::nan("");
  result["k"] = c.k;
  result["forwards"] = forwards;
  result["seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace

LLMSCOPE_PLUGIN("subspace", "0.1.0",
                "Remove the top singular directions of a layer's activations (subspace removal)") {
  module.def("remove", kRemoveDoc, remove_directions);
  module.def("sweep", kSweepDoc, sweep_layers);
}
