// patch: activation patching and attribution patching (lessons 15-05, 16-06, 16-07). A clean and
// a corrupted prompt of the same length; the metric is logit(a) - logit(b) at a readout position.
// `activation` patches the clean run's activation into the corrupted run at each (site, position)
// — or each (layer, head) of attn.hook_z — in its own row of batched passes; `attribution`
// estimates all of them at once from one clean forward pass and one corrupted forward and backward
// pass: (a_clean - a_corrupted) . d metric / d a.
#include <torch/csrc/autograd/autograd.h>
#include <llmscope/plugin.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace llmscope::plugin;  // the SDK (plugin.hpp)

constexpr int kClean = 2;
constexpr int kCorrupted = 3;
constexpr int kOpts = 4;

struct Setup {
  at::Tensor clean, corrupted;  // [1, pos] int64 on the model's device
  int64_t n_pos = 0;
  int64_t readout = 0;
  int64_t a = 0, b = 0;  // the metric's tokens
  std::vector<Site> sites;
  bool per_head = false;           // sites are attn.hook_z, patched per head
  bool together = false;           // all `positions` in one patch
  std::vector<int64_t> positions;  // patched positions
};

Setup read_setup(llmscope::Model& model, const Value& clean, const Value& corrupted,
                 const Table& opts, const std::vector<std::string>& extra_options) {
  std::vector<std::string> known = {"sites",  "layers",   "positions", "position",
                                    "metric", "per_head", "together"};
  known.insert(known.end(), extra_options.begin(), extra_options.end());
  check_options(opts, known, kOpts);
  Setup s;
  const auto clean_ids = token_ids(model, clean, kClean, "clean");
  const auto corrupted_ids = token_ids(model, corrupted, kCorrupted, "corrupted");
  if (clean_ids.size() != corrupted_ids.size()) {
    throw ArgumentError(
        kCorrupted, "corrupted: the clean prompt has " + std::to_string(clean_ids.size()) +
                        " tokens and the corrupted one " + std::to_string(corrupted_ids.size()) +
                        "; patching needs prompts of the same length (align them, "
                        "e.g. with names of one token each)");
  }
  if (clean_ids.empty()) throw ArgumentError(kClean, "clean: no tokens");
  s.n_pos = static_cast<int64_t>(clean_ids.size());
  s.clean = at::tensor(clean_ids, at::kLong).unsqueeze(0).to(model.device());
  s.corrupted = at::tensor(corrupted_ids, at::kLong).unsqueeze(0).to(model.device());
  auto in_prompt = [&](int64_t p, const std::string& what) {
    if (p < -s.n_pos || p >= s.n_pos) {
      throw ArgumentError(kOpts, what + ": " + std::to_string(p) + " is outside the " +
                                     std::to_string(s.n_pos) + "-token prompts");
    }
    return p < 0 ? p + s.n_pos : p;
  };
  s.readout = in_prompt(option<int64_t>(opts, "position", -1, kOpts), "option 'position'");
  const Value* metric = find_option(opts, "metric");
  const auto* pair = metric != nullptr ? std::get_if<List>(&metric->data) : nullptr;
  if (pair == nullptr || pair->size() != 2) {
    throw ArgumentError(kOpts,
                        "option 'metric' must be two tokens {a, b}: the metric is logit(a) - "
                        "logit(b) at the readout");
  }
  s.a = token(model, (*pair)[0], kOpts, "option 'metric'");
  s.b = token(model, (*pair)[1], kOpts, "option 'metric'");
  s.per_head = option<bool>(opts, "per_head", false, kOpts);
  s.together = option<bool>(opts, "together", false, kOpts);
  // Without `sites`, `layers` picks the layers of the default site.
  if (find_option(opts, "sites") != nullptr) {
    s.sites = *sites_option(model, opts, "sites", "layers", kOpts);
  } else {
    const auto layers = layers_option(model, opts, "layers", kOpts);
    s.sites = sites_at(model, s.per_head ? "blocks.{L}.attn.hook_z" : "blocks.{L}.hook_resid_pre",
                       layers, kOpts, "option 'sites'");
  }
  if (const Value* p = find_option(opts, "positions")) {
    for (const int64_t q : integers(*p, kOpts, "option 'positions'")) {
      s.positions.push_back(in_prompt(q, "option 'positions'"));
    }
    if (s.positions.empty()) throw ArgumentError(kOpts, "option 'positions' is empty");
  } else {
    for (int64_t q = 0; q < s.n_pos; ++q) s.positions.push_back(q);
  }
  return s;
}

// logit(a) - logit(b) at the readout, per row: [rows].
at::Tensor metric_of(const at::Tensor& logits, const Setup& s) {
  const at::Tensor row = logits.select(1, s.readout).to(at::kDouble);
  return row.select(1, s.a) - row.select(1, s.b);
}

// One pass of `ids` caching every site's activation: [sites] of [1, pos, ...].
std::vector<at::Tensor> cache_sites(llmscope::Model& model, const at::Tensor& ids, const Setup& s,
                                    at::Tensor* metric) {
  std::vector<at::Tensor> acts(s.sites.size());
  llmscope::ForwardOptions forward;
  forward.strict_hooks = true;
  for (size_t i = 0; i < s.sites.size(); ++i) {
    forward.hooks.push_back(
        {s.sites[i].name, [&acts, i](const at::Tensor& act, const llmscope::HookContext&) {
           acts[i] = act.detach().clone();
           return at::Tensor();
         }});
  }
  const auto out = model.forward(llmscope::ForwardInput{ids, {}, {}, {}}, forward);
  if (metric != nullptr) *metric = metric_of(out.logits, s);
  return acts;
}

void check_per_head(const Setup& s, const std::vector<at::Tensor>& acts) {
  if (!s.per_head) return;
  for (size_t i = 0; i < acts.size(); ++i) {
    if (acts[i].dim() != 4) {
      throw ArgumentError(kOpts, "option 'per_head': site '" + s.sites[i].name +
                                     "' is not per head ([batch, pos, head, d_head])");
    }
  }
}

// The fields both functions return: `values` under `key` ("metric" or "estimate"), normalized
// between the corrupted (0) and the clean (1) metric, and what was read.
Table results(const Setup& s, const char* key, const at::Tensor& values, double clean,
              double corrupted) {
  List names;
  for (const auto& site : s.sites) names.push_back(site.name);
  Table result;
  result[key] = values;
  result["normalized"] = (values - corrupted) / (clean - corrupted);
  result["clean_metric"] = clean;
  result["corrupted_metric"] = corrupted;
  result["sites"] = names;
  result["positions"] = at::tensor(s.positions, at::kLong);
  result["per_head"] = s.per_head;
  return result;
}

}  // namespace

LLMSCOPE_PLUGIN("patch", "0.1.0", "Activation patching and attribution patching") {
  module.def(
      "activation",
      "activation(model, clean, corrupted, opts) -> {metric, normalized, clean_metric, ...}\n"
      "clean, corrupted: prompts of the same token length (texts or ids). The metric is\n"
      "logit(a) - logit(b) at the readout. The clean run's activation is patched into the\n"
      "corrupted run at each site and position (per_head: each head of attn.hook_z at all\n"
      "`positions`), one patch per row of batched passes.\n"
      "opts: metric ({a, b}: token ids or one-token texts; required), sites (hook points or a\n"
      "{L} template over `layers`; default blocks.{L}.hook_resid_pre, or attn.hook_z with\n"
      "per_head), layers, positions (patched positions; default all), position (the readout,\n"
      "default -1), per_head (default false), together (all positions, and heads, of a site in\n"
      "one patch; default false), batch_size (patches per pass, default 16).\n"
      "Returns metric [sites, positions] (per_head: [sites, heads]; together: [sites, 1])\n"
      "float64, normalized (0 = the corrupted run, 1 = the clean run), clean_metric,\n"
      "corrupted_metric, sites, positions.",
      [](const ModelPtr& model, const Value& clean, const Value& corrupted, const Table& opts) {
        const Setup s = read_setup(*model, clean, corrupted, opts, {"batch_size"});
        const int64_t batch_size = batch_size_option(opts, 16, kOpts);
        at::NoGradGuard no_grad;
        at::Tensor clean_metric, corrupted_metric;
        const auto clean_acts = cache_sites(*model, s.clean, s, &clean_metric);
        check_per_head(s, clean_acts);
        corrupted_metric = metric_of(
            model->forward(llmscope::ForwardInput{s.corrupted, {}, {}, {}}, {}).logits, s);
        // Every patch: (site, position) or (site, head).
        const int64_t per_site = s.together   ? 1
                                 : s.per_head ? clean_acts.front().size(2)
                                              : static_cast<int64_t>(s.positions.size());
        std::vector<std::pair<size_t, int64_t>> patches;  // (site, position or head index)
        for (size_t i = 0; i < s.sites.size(); ++i) {
          for (int64_t k = 0; k < per_site; ++k) patches.emplace_back(i, k);
        }
        const auto device = model->device();
        const at::Tensor positions = at::tensor(s.positions, at::kLong).to(device);
        std::vector<at::Tensor> metrics;
        for_each_group_batch(
            patches, batch_size, [&](int64_t start, int64_t stop, const auto& by_site) {
              const int64_t rows = stop - start;
              llmscope::ForwardOptions forward;
              forward.strict_hooks = true;
              for (const auto& [site, group] : by_site) {
                const at::Tensor r = at::tensor(group.rows, at::kLong).to(device);
                const at::Tensor items = at::tensor(group.values, at::kLong).to(device);
                const at::Tensor source = clean_acts[site][0];  // [pos, ...]
                const bool per_head = s.per_head;
                const bool together = s.together;
                forward.hooks.push_back(
                    {s.sites[site].name, [r, items, source, per_head, together, &positions](
                                             const at::Tensor& act, const llmscope::HookContext&) {
                       at::Tensor out = act.clone();
                       if (together) {
                         // Every patched position (all heads) of rows r at once.
                         const at::Tensor from = source.index({positions}).to(out.scalar_type());
                         std::vector<int64_t> sizes = {r.size(0)};  // [k, P, ...]
                         sizes.insert(sizes.end(), from.sizes().begin(), from.sizes().end());
                         out.index_put_({r.unsqueeze(1), positions.unsqueeze(0)},
                                        from.unsqueeze(0).expand(sizes));
                         return out;
                       }
                       if (per_head) {
                         // Head items[i] of row r[i] at every patched position.
                         const at::Tensor p = positions.unsqueeze(0);  // [1, P]
                         const at::Tensor from = source
                                                     .index({positions})      // [P, heads, d]
                                                     .index_select(1, items)  // [P, k, d]
                                                     .permute({1, 0, 2});     // [k, P, d]
                         out.index_put_({r.unsqueeze(1), p, items.unsqueeze(1)},
                                        from.to(out.scalar_type()));
                       } else {
                         // Row r[i] takes the clean activation at position positions[items[i]].
                         const at::Tensor at_pos = positions.index({items});  // [k]
                         out.index_put_({r, at_pos}, source.index({at_pos}).to(out.scalar_type()));
                       }
                       return out;
                     }});
              }
              const auto out = model->forward(
                  llmscope::ForwardInput{
                      s.corrupted.expand({rows, s.n_pos}).contiguous(), {}, {}, {}},
                  forward);
              metrics.push_back(metric_of(out.logits, s));
            });
        const at::Tensor metric =
            at::cat(metrics).view({static_cast<int64_t>(s.sites.size()), per_site}).cpu();
        return results(s, "metric", metric, clean_metric.item<double>(),
                       corrupted_metric.item<double>());
      });

  module.def(
      "attribution",
      "attribution(model, clean, corrupted, opts) -> {estimate, ...}: attribution patching\n"
      "The first-order estimate of `activation`'s metric change for every patch at once, from one\n"
      "clean forward pass and one corrupted forward and backward pass: (a_clean - a_corrupted) .\n"
      "d metric / d a at the corrupted activations, summed over each patch's units.\n"
      "opts: as activation (no batch_size).\n"
      "Returns estimate [sites, positions] (per_head: [sites, heads]; together: [sites, 1])\n"
      "float64: the estimated metric after each patch (corrupted_metric + the first-order\n"
      "change), normalized, clean_metric, corrupted_metric, sites, positions.",
      [](const ModelPtr& model, const Value& clean, const Value& corrupted, const Table& opts) {
        const Setup s = read_setup(*model, clean, corrupted, opts, {});
        at::Tensor clean_metric;
        std::vector<at::Tensor> clean_acts;
        {
          at::NoGradGuard no_grad;
          clean_acts = cache_sites(*model, s.clean, s, &clean_metric);
        }
        check_per_head(s, clean_acts);
        // The corrupted pass with a zero tensor added at each site: the gradient with respect to
        // it is the gradient with respect to the activation, and the graph stays whole, so later
        // sites do not cut earlier ones off.
        at::AutoGradMode grad_mode(true);
        std::vector<at::Tensor> zeros(s.sites.size()), corrupted_acts(s.sites.size());
        llmscope::ForwardOptions forward;
        forward.strict_hooks = true;
        for (size_t i = 0; i < s.sites.size(); ++i) {
          forward.hooks.push_back(
              {s.sites[i].name,
               [&zeros, &corrupted_acts, i](const at::Tensor& act, const llmscope::HookContext&) {
                 corrupted_acts[i] = act.detach().clone();
                 zeros[i] = at::zeros_like(act).set_requires_grad(true);
                 return act + zeros[i];
               }});
        }
        const auto out = model->forward(llmscope::ForwardInput{s.corrupted, {}, {}, {}}, forward);
        const at::Tensor metric = metric_of(out.logits, s).sum();
        const auto grads = torch::autograd::grad({metric}, zeros, /*grad_outputs=*/{},
                                                 /*retain_graph=*/false, /*create_graph=*/false,
                                                 /*allow_unused=*/true);
        at::NoGradGuard no_grad;
        const auto device = model->device();
        const at::Tensor positions = at::tensor(s.positions, at::kLong).to(device);
        std::vector<at::Tensor> rows;
        for (size_t i = 0; i < s.sites.size(); ++i) {
          const at::Tensor grad =
              grads[i].defined() ? grads[i][0] : at::zeros_like(corrupted_acts[i][0]);
          const at::Tensor change =
              ((clean_acts[i][0] - corrupted_acts[i][0]).to(at::kDouble) * grad.to(at::kDouble))
                  .index({positions});  // [P, ...]
          if (s.together) {
            rows.push_back(change.sum().reshape({1}));  // [1]: every position (and head) at once
          } else if (s.per_head) {
            rows.push_back(change.sum(at::IntArrayRef{0, 2}));  // [heads]
          } else {
            rows.push_back(change.flatten(1).sum(1));  // [P]
          }
        }
        const double d = metric.item<double>();
        return results(s, "estimate", (at::stack(rows) + d).cpu(), clean_metric.item<double>(), d);
      });
}
