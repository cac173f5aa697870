// replace: one forward pass with a layer's activations replaced at one position — the top
// fraction of units (or chosen units) set to that position's median, zero or mean. The
// intervention runs as a native hook, so activations never travel through Lua.
#include <llmscope/plugin.hpp>

#include <algorithm>

namespace {

using llmscope::plugin::ArgumentError;
using llmscope::plugin::ModelPtr;
using llmscope::plugin::Table;
using llmscope::plugin::option;

// Replaces units of `act` ([batch, pos, units]) at `position` of each row, in place on a copy.
at::Tensor replaced(const at::Tensor& act, int64_t position, const std::string& mode, double fraction,
                    const at::Tensor& units, at::Tensor& chosen_out) {
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
  at::Tensor fill;  // [batch, 1]
  if (mode == "median") {
    fill = std::get<0>(rows.median(-1, /*keepdim=*/true));  // the lower median, as torch.median
  } else if (mode == "mean") {
    fill = rows.mean(-1, /*keepdim=*/true);
  } else {
    fill = at::zeros({rows.size(0), 1}, rows.options());
  }
  rows.scatter_(-1, chosen, fill.expand({rows.size(0), chosen.size(1)}));
  chosen_out = chosen;
  return out;
}

}  // namespace

LLMSCOPE_PLUGIN("replace", "0.1.0", "Replace a layer's top units by the median, zero or mean at one position") {
  module.def(
      "run",
      "run(model, ids, opts) -> {logits, replaced}: one pass with activations replaced\n"
      "opts: site (hook point, default blocks.<layer>.mlp.hook_pre), layer (0-based, default 0),\n"
      "mode ('median' | 'zero' | 'mean', default 'median'), fraction (of units, default 0.1; the top\n"
      "k = max(1, floor(fraction * n)) by value), units (list of unit indices instead of the top\n"
      "fraction), position (0-based token position, negative from the end; default -1).\n"
      "Returns logits [batch, pos, vocab] and replaced: the unit indices per row [batch, k].",
      [](const ModelPtr& model, const at::Tensor& ids, const Table& opts) {
        llmscope::plugin::check_options(opts, {"site", "layer", "mode", "fraction", "units", "position"}, 3);
        const int64_t layer = option<int64_t>(opts, "layer", 0, 3);
        if (layer < 0 || layer >= model->n_layer()) {
          throw ArgumentError(3, "option 'layer': " + std::to_string(layer) + " is not a layer of this " +
                                     std::to_string(model->n_layer()) + "-layer model");
        }
        const auto site = option<std::string>(opts, "site", "blocks." + std::to_string(layer) + ".mlp.hook_pre", 3);
        const auto mode = option<std::string>(opts, "mode", "median", 3);
        if (mode != "median" && mode != "zero" && mode != "mean") {
          throw ArgumentError(3, "option 'mode' must be 'median', 'zero' or 'mean', got '" + mode + "'");
        }
        const double fraction = option<double>(opts, "fraction", 0.1, 3);
        if (!(fraction > 0 && fraction <= 1)) throw ArgumentError(3, "option 'fraction' must be in (0, 1]");
        const int64_t position = option<int64_t>(opts, "position", -1, 3);
        at::Tensor units;
        if (auto list = option<std::optional<std::vector<int64_t>>>(opts, "units", std::nullopt, 3)) {
          if (list->empty()) throw ArgumentError(3, "option 'units' is empty");
          units = at::tensor(*list, at::kLong);
        }
        at::Tensor chosen;
        llmscope::ForwardOptions forward;
        forward.strict_hooks = true;  // a site the pass never reaches is an error, not a no-op
        forward.hooks.push_back({site, [&](const at::Tensor& act, const llmscope::HookContext&) {
                                   if (act.dim() != 3) {
                                     throw llmscope::Error("site '" + site + "' is not [batch, pos, units]");
                                   }
                                   const int64_t pos = position < 0 ? position + act.size(1) : position;
                                   if (pos < 0 || pos >= act.size(1)) {
                                     throw llmscope::Error("position " + std::to_string(position) +
                                                           " is outside the " + std::to_string(act.size(1)) +
                                                           " tokens of the input");
                                   }
                                   if (units.defined() && (units.min().item<int64_t>() < 0 ||
                                                           units.max().item<int64_t>() >= act.size(-1))) {
                                     throw llmscope::Error("unit index out of range for " +
                                                           std::to_string(act.size(-1)) + " units");
                                   }
                                   return replaced(act, pos, mode, fraction, units, chosen);
                                 }});
        at::NoGradGuard no_grad;
        auto out = model->forward(llmscope::ForwardInput{ids.dim() == 1 ? ids.unsqueeze(0) : ids, {}, {}, {}}, forward);
        Table result;
        result["logits"] = out.logits;
        result["replaced"] = chosen;
        return result;
      });
}
