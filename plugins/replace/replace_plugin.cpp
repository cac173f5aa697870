// replace: a layer's activations replaced at one position — the top fraction of units (or chosen
// units) set to that position's median, zero or mean — as one pass (`run`) or as the course's
// successive median replacement over layers × rates (`sweep`, lesson 17-01), batched so that one
// forward pass carries many interventions. The interventions run as native hooks, so
// activations never travel through Lua. In a job of several ranks (llmscope/job.hpp) the sweep's
// passes are shared out and every rank ends with the whole result.
#include <llmscope/job.hpp>
#include <llmscope/plugin.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace {

using namespace llmscope::plugin;  // the SDK (plugin.hpp)

// The value the chosen units take, per row of `rows` [rows, units]: [rows, 1].
at::Tensor fill_value(const at::Tensor& rows, const std::string& mode) {
  if (mode == "median")
    return std::get<0>(rows.median(-1, /*keepdim=*/true));  // the lower median, as torch.median
  if (mode == "mean") return rows.mean(-1, /*keepdim=*/true);
  return at::zeros({rows.size(0), 1}, rows.options());
}

// Replaces units of `act` ([batch, pos, units]) at `position` of each row, in place on a copy.
at::Tensor replaced(const at::Tensor& act, int64_t position, const std::string& mode,
                    double fraction, const at::Tensor& units, at::Tensor& chosen_out) {
  auto out = act.clone();
  const int64_t n = act.size(-1);
  auto rows = out.select(1, position);  // [batch, units], a view into `out`
  at::Tensor chosen;
  if (units.defined()) {
    chosen = units.to(act.device(), at::kLong).unsqueeze(0).expand({rows.size(0), units.numel()});
  } else {
    const int64_t k = std::max<int64_t>(1, static_cast<int64_t>(fraction * static_cast<double>(n)));
    chosen = std::get<1>(rows.topk(k, -1));  // [batch, k]
  }
  auto fill = fill_value(rows, mode);  // [batch, 1]
  rows.scatter_(-1, chosen, fill.expand({rows.size(0), chosen.size(1)}));
  chosen_out = chosen;
  return out;
}

// How many units a rate replaces: max(1, floor(rate * units)), the course's int(rate * n) made
// to replace at least one.
int64_t units_for_rate(double rate, int64_t units) {
  return std::max<int64_t>(1, static_cast<int64_t>(rate * static_cast<double>(units)));
}

// Row i of `rows` [rows, units] with its top k[i] units replaced (k [rows] int64): the largest
// k_max values by topk, of which each row keeps its first k[i]. Returns a new tensor.
at::Tensor replace_top(const at::Tensor& rows, const at::Tensor& k, const std::string& mode) {
  const int64_t k_max = k.max().item<int64_t>();
  auto top = std::get<1>(rows.topk(k_max, -1, /*largest=*/true, /*sorted=*/true));  // [rows, k_max]
  auto keep = at::arange(k_max, k.options()).unsqueeze(0) < k.unsqueeze(1);         // [rows, k_max]
  auto mask = at::zeros(rows.sizes(), rows.options().dtype(at::kBool)).scatter(-1, top, keep);
  return at::where(mask, fill_value(rows, mode), rows);
}

// The one prompt of a sweep as [1, pos] on the model's device.
at::Tensor one_prompt(const ModelPtr& model, const at::Tensor& ids) {
  if (ids.dim() == 2 && ids.size(0) != 1) {
    throw ArgumentError(2, "one prompt expected ([pos] or [1, pos] ids), got a batch of " +
                               std::to_string(ids.size(0)));
  }
  if (ids.dim() != 1 && ids.dim() != 2)
    throw ArgumentError(2, "token ids [pos] or [1, pos] expected");
  if (ids.numel() == 0) throw ArgumentError(2, "the prompt has no tokens");
  return (ids.dim() == 1 ? ids.unsqueeze(0) : ids).to(model->device(), at::kLong);
}

// The target token: an id, the first token of a string (as the course's encode(' night')[0]),
// or -1 for "the clean prediction".
int64_t target_option(const ModelPtr& model, const Table& opts, int index) {
  auto it = opts.find("target");
  if (it == opts.end() || it->second.is_nil()) return -1;
  if (auto* text = std::get_if<std::string>(&it->second.data)) {
    llmscope::EncodeOptions encode;
    encode.add_special_tokens = false;
    auto ids = tokenizer_of(*model, index, "option 'target'").encode(*text, encode);
    if (ids.empty())
      throw ArgumentError(index, "option 'target': '" + *text + "' encodes to no tokens");
    return ids.front();
  }
  return check_token_id(*model, option<int64_t>(opts, "target", -1, index), index,
                        "option 'target'");
}

// Rows per forward pass when `batch_size` is not given: as many as keep the pass's logits
// ([rows, pos, vocab] float32) under about 64 MiB. Larger batches re-read the weights less often,
// but past this size the fresh logits buffer costs more than it saves (docs/performance.md).
int64_t default_batch_size(const ModelPtr& model, int64_t tokens) {
  const double per_row =
      static_cast<double>(tokens) * static_cast<double>(model->vocab_size()) * 4.0;
  return std::max<int64_t>(1, static_cast<int64_t>(64.0 * 1024 * 1024 / per_row));
}

constexpr const char* kSweepDoc =
    "sweep(model, ids, opts) -> {delta, ...}: successive replacement over layers x rates (lesson "
    "17-01)\n"
    "At one position of one prompt, for every layer and every rate, the top max(1, floor(rate * "
    "n))\n"
    "of the layer's n units are replaced by that position's median (or zero, or mean), and the\n"
    "target token's log-probability at that position is compared with the clean run.\n"
    "Batched: the prompt is repeated over a batch and row i carries intervention i (a per-layer\n"
    "hook acts only on its rows), so layers x rates interventions take a few passes, not one "
    "each.\n"
    "opts: layers (0-based list, default all), rates (list in (0, 1], default 0.1 ... 0.9),\n"
    "mode ('median' | 'zero' | 'mean', default 'median'), target (token id, or a string whose "
    "first\n"
    "token is used; default the clean prediction), position (0-based, negative from the end;\n"
    "default -1), site (hook point with {L} for the layer, default 'blocks.{L}.mlp.hook_pre'),\n"
    "batch_size (rows per pass; default: logits under ~64 MiB), loop (true: one pass per\n"
    "intervention, for comparison; default false).\n"
    "Returns delta [layers, rates] float64 = clean - replaced log-prob of the target (positive: "
    "the\n"
    "target lost probability), logprob [layers, rates] (replaced), prediction [layers, rates] "
    "int64\n"
    "(argmax token), clean_logprobs [vocab] (log-softmax of the clean run at the position),\n"
    "clean_prediction, target, position (0-based), units (n), k (list: units replaced per rate),\n"
    "layers, rates, forwards (passes run, the clean one included; in a job, every rank's), "
    "seconds\n"
    "(wall time).";

Table sweep(const ModelPtr& model, const at::Tensor& ids_in, const Table& opts) {
  check_options(opts,
                {"layers", "rates", "mode", "target", "position", "site", "batch_size", "loop"}, 3);
  const auto started = std::chrono::steady_clock::now();
  const auto ids = one_prompt(model, ids_in);  // [1, pos]
  const int64_t tokens = ids.size(1);
  const auto layers = layers_option(*model, opts, "layers", 3);
  const auto rates =
      option<std::vector<double>>(opts, "rates", {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}, 3);
  if (rates.empty()) throw ArgumentError(3, "option 'rates' is empty");
  for (double rate : rates) {
    if (!(rate > 0 && rate <= 1)) {
      throw ArgumentError(
          3, "option 'rates': every rate must be in (0, 1], got " + std::to_string(rate));
    }
  }
  const auto mode = option<std::string>(opts, "mode", "median", 3);
  if (mode != "median" && mode != "zero" && mode != "mean") {
    throw ArgumentError(3, "option 'mode' must be 'median', 'zero' or 'mean', got '" + mode + "'");
  }
  const auto site = option<std::string>(opts, "site", "blocks.{L}.mlp.hook_pre", 3);
  if (site.find("{L}") == std::string::npos) {
    throw ArgumentError(3, "option 'site' must contain {L} for the layer, got '" + site + "'");
  }
  sites_at(*model, site, layers, 3, "option 'site'");  // typos fail now
  const int64_t position_opt = option<int64_t>(opts, "position", -1, 3);
  const int64_t position = position_opt < 0 ? position_opt + tokens : position_opt;
  if (position < 0 || position >= tokens) {
    throw ArgumentError(3, "option 'position': " + std::to_string(position_opt) +
                               " is outside the " + std::to_string(tokens) +
                               " tokens of the prompt");
  }
  const bool loop = option<bool>(opts, "loop", false, 3);
  const int64_t batch_size = batch_size_option(opts, default_batch_size(model, tokens), 3);
  int64_t target = target_option(model, opts, 3);

  at::NoGradGuard no_grad;
  const auto n_layers = static_cast<int64_t>(layers.size());
  const auto n_rates = static_cast<int64_t>(rates.size());
  const int64_t total = n_layers * n_rates;  // intervention i: layer i / n_rates, rate i % n_rates

  // The clean run.
  auto clean_logits =
      model->forward(llmscope::ForwardInput{ids, {}, {}, {}}).logits;  // [1, pos, vocab]
  auto clean_logprobs = clean_logits[0][position].to(at::kDouble).log_softmax(-1);  // [vocab]
  const int64_t clean_prediction = clean_logprobs.argmax().item<int64_t>();
  if (target < 0) target = clean_prediction;
  const double clean_target = clean_logprobs[target].item<double>();

  int64_t units = -1;
  auto logprob = at::empty({total}, at::kDouble);
  auto prediction = at::empty({total}, at::kLong);
  int64_t forwards = 1;
  const int64_t rows_per_pass = loop ? 1 : batch_size;
  // This rank's interventions (all of them outside a job), gathered below.
  const std::pair<int64_t, int64_t> mine = llmscope::job::shard_batches(total, rows_per_pass);
  for_each_range(mine.second - mine.first, rows_per_pass, [&](int64_t from, int64_t to) {
    const int64_t first = mine.first + from, count = to - from;
    // The rows of this pass, grouped by layer: layer -> (row indices, rates).
    std::map<int64_t, std::pair<std::vector<int64_t>, std::vector<double>>> by_layer;
    for (int64_t row = 0; row < count; ++row) {
      const int64_t i = first + row;
      auto& entry = by_layer[layers[static_cast<size_t>(i / n_rates)]];
      entry.first.push_back(row);
      entry.second.push_back(rates[static_cast<size_t>(i % n_rates)]);
    }
    llmscope::ForwardOptions forward;
    forward.strict_hooks = true;  // a site the pass never reaches is an error, not a no-op
    for (const auto& [layer, rows_and_rates] : by_layer) {
      const auto& [rows, row_rates] = rows_and_rates;
      const auto name = site_at(*model, site, layer, 3, "option 'site'").name;
      forward.hooks.push_back(
          {name, [&, name, rows = rows, row_rates = row_rates](const at::Tensor& act,
                                                               const llmscope::HookContext&) {
             if (act.dim() != 3)
               throw llmscope::Error("site '" + name + "' is not [batch, pos, units]");
             units = act.size(-1);
             std::vector<int64_t> k;
             for (double rate : row_rates) k.push_back(units_for_rate(rate, units));
             auto index = at::tensor(rows, at::kLong).to(act.device());
             auto out = act.clone();
             auto at_position = out.select(1, position);  // [batch, units], a view into out
             auto chosen = at_position.index_select(0, index);
             auto changed = replace_top(chosen, at::tensor(k, at::kLong).to(act.device()), mode);
             at_position.index_copy_(0, index, changed);
             return out;
           }});
    }
    auto batch = ids.expand({count, tokens}).contiguous();
    auto logits = model->forward(llmscope::ForwardInput{batch, {}, {}, {}}, forward)
                      .logits;  // [count, pos, vocab]
    ++forwards;
    auto lp = logits.select(1, position).to(at::kDouble).log_softmax(-1);  // [count, vocab]
    logprob.narrow(0, first, count).copy_(lp.select(1, target));
    prediction.narrow(0, first, count).copy_(lp.argmax(-1));
  });
  if (llmscope::job::world_size() > 1) {
    logprob =
        llmscope::job::all_gather_concat(logprob.narrow(0, mine.first, mine.second - mine.first));
    prediction = llmscope::job::all_gather_concat(
        prediction.narrow(0, mine.first, mine.second - mine.first));
    units = llmscope::job::all_gather(at::full({1}, units, at::kLong)).max().item<int64_t>();
    forwards = llmscope::job::all_reduce_sum(at::full({1}, forwards, at::kLong)).item<int64_t>();
  }
  std::vector<int64_t> k;
  for (double rate : rates) k.push_back(units_for_rate(rate, units));
  logprob = logprob.view({n_layers, n_rates});

  Table result;
  result["delta"] = logprob.neg().add(clean_target);
  result["logprob"] = logprob;
  result["prediction"] = prediction.view({n_layers, n_rates});
  result["clean_logprobs"] = clean_logprobs.to(at::kFloat).cpu();
  result["clean_prediction"] = clean_prediction;
  result["target"] = target;
  result["position"] = position;
  result["units"] = units;
  result["k"] = k;
  result["layers"] = layers;
  result["rates"] = rates;
  result["forwards"] = forwards;
  result["seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace

LLMSCOPE_PLUGIN("replace", "0.2.0",
                "Replace a layer's top units by the median, zero or mean at one position") {
  module.def(
      "run",
      "run(model, ids, opts) -> {logits, replaced}: one pass with activations replaced\n"
      "opts: site (hook point, default blocks.<layer>.mlp.hook_pre), layer (0-based, default 0),\n"
      "mode ('median' | 'zero' | 'mean', default 'median'), fraction (of units, default 0.1; the "
      "top\n"
      "k = max(1, floor(fraction * n)) by value), units (list of unit indices instead of the top\n"
      "fraction), position (0-based token position, negative from the end; default -1).\n"
      "Returns logits [batch, pos, vocab] and replaced: the unit indices per row [batch, k].",
      [](const ModelPtr& model, const at::Tensor& ids, const Table& opts) {
        check_options(opts, {"site", "layer", "mode", "fraction", "units", "position"}, 3);
        const int64_t layer = layer_option(*model, opts, "layer", 0, 3);
        const auto site =
            site_at(*model, option<std::string>(opts, "site", "blocks.{L}.mlp.hook_pre", 3), layer,
                    3, "option 'site'")
                .name;
        const auto mode = option<std::string>(opts, "mode", "median", 3);
        if (mode != "median" && mode != "zero" && mode != "mean") {
          throw ArgumentError(
              3, "option 'mode' must be 'median', 'zero' or 'mean', got '" + mode + "'");
        }
        const double fraction = option<double>(opts, "fraction", 0.1, 3);
        if (!(fraction > 0 && fraction <= 1))
          throw ArgumentError(3, "option 'fraction' must be in (0, 1]");
        const int64_t position = option<int64_t>(opts, "position", -1, 3);
        at::Tensor units;
        if (auto list =
                option<std::optional<std::vector<int64_t>>>(opts, "units", std::nullopt, 3)) {
          if (list->empty()) throw ArgumentError(3, "option 'units' is empty");
          units = at::tensor(*list, at::kLong);
        }
        at::Tensor chosen;
        llmscope::ForwardOptions forward;
        forward.strict_hooks = true;  // a site the pass never reaches is an error, not a no-op
        forward.hooks.push_back(
            {site, [&](const at::Tensor& act, const llmscope::HookContext&) {
               if (act.dim() != 3) {
                 throw llmscope::Error("site '" + site + "' is not [batch, pos, units]");
               }
               const int64_t pos = position < 0 ? position + act.size(1) : position;
               if (pos < 0 || pos >= act.size(1)) {
                 throw llmscope::Error("position " + std::to_string(position) + " is outside the " +
                                       std::to_string(act.size(1)) + " tokens of the input");
               }
               if (units.defined() && (units.min().item<int64_t>() < 0 ||
                                       units.max().item<int64_t>() >= act.size(-1))) {
                 throw llmscope::Error("unit index out of range for " +
                                       std::to_string(act.size(-1)) + " units");
               }
               return replaced(act, pos, mode, fraction, units, chosen);
             }});
        at::NoGradGuard no_grad;
        auto out = model->forward(
            llmscope::ForwardInput{ids.dim() == 1 ? ids.unsqueeze(0) : ids, {}, {}, {}}, forward);
        Table result;
        result["logits"] = out.logits;
        result["replaced"] = chosen;
        return result;
      });
  module.def("sweep", kSweepDoc, sweep);
}
