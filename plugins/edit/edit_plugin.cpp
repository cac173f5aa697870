// edit: activation edits (lessons 14-02, 14-03, 15-01 to 15-04, 15-06). One prompt; each edit
// runs in its own row of a batched pass, as a native hook at its site that changes only that row:
// scale, add a value, a vector or seeded noise, set, permute the units, zero, replace by the mean
// over positions, skip a block (its output = its input), or mix with another prompt's activation.
// Per edit the readout's log-probabilities are reduced to the targets', the top token, the KL from
// the clean run and the correlation of the edited with the clean logits, and every hidden state's
// change (norm of the difference from the clean run) and spread (std over units) come back per
// layer. Gradients flow through the edits when the caller's graph asks for them.
#include <torch/csrc/autograd/autograd.h>
#include <llmscope/plugin.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace llmscope::plugin;  // the SDK (plugin.hpp)

constexpr int kInput = 2;
constexpr int kEdits = 3;
constexpr int kOpts = 4;

const std::vector<std::string> kOps = {"scale", "add",  "noise", "set", "permute",
                                       "zero",  "mean", "skip",  "mix"};

struct Edit {
  Site site;
  std::string op;
  double value = 0.0;   // scale's factor, add's or set's value, noise's sd, mix's weight
  double offset = 0.0;  // noise: its mean
  at::Tensor vector;    // add or set: a [units] vector instead of a value
  int64_t seed = 0;     // noise and permute
  std::vector<int64_t> positions, units, heads;  // empty: all
  std::vector<int64_t> other;                    // mix: the other prompt's ids
  std::optional<int64_t>
      other_position;  // mix: its position (default: the same as each edited one)
};

std::string describe(size_t i) { return "edit " + std::to_string(i + 1); }

Edit read_edit(const llmscope::Model& model, const Value& v, size_t index) {
  const auto* t = std::get_if<Table>(&v.data);
  const std::string what = describe(index);
  if (t == nullptr) throw ArgumentError(kEdits, what + ": a table {site =, op = ...} expected");
  check_options(*t,
                {"site", "op", "factor", "value", "vector", "sd", "offset", "seed", "positions",
                 "units", "heads", "other", "other_position", "weight"},
                kEdits);
  Edit e;
  const std::string site = option<std::string>(*t, "site", "", kEdits);
  if (site.empty()) throw ArgumentError(kEdits, what + ": 'site' is required");
  e.site = site_at(model, site, 0, kEdits, what + ": site");
  e.op = option<std::string>(*t, "op", "", kEdits);
  if (std::find(kOps.begin(), kOps.end(), e.op) == kOps.end()) {
    throw ArgumentError(kEdits, what + ": op '" + e.op +
                                    "' is not one of scale, add, noise, set, permute, zero, mean, "
                                    "skip, mix");
  }
  auto ints = [&](const char* key) {
    const Value* x = find_option(*t, key);
    return x ? integers(*x, kEdits, what + ": " + key) : std::vector<int64_t>{};
  };
  e.positions = ints("positions");
  e.units = ints("units");
  e.heads = ints("heads");
  e.seed = option<int64_t>(*t, "seed", 0, kEdits);
  if (e.op == "scale") e.value = option<double>(*t, "factor", 1.0, kEdits);
  if (e.op == "noise") {
    e.value = option<double>(*t, "sd", 1.0, kEdits);
    e.offset = option<double>(*t, "offset", 0.0, kEdits);
  }
  if (e.op == "add" || e.op == "set") {
    if (const Value* vec = find_option(*t, "vector")) {
      const auto* tensor = std::get_if<at::Tensor>(&vec->data);
      if (tensor == nullptr) throw ArgumentError(kEdits, what + ": 'vector' must be a tensor");
      e.vector = tensor->to(at::kFloat).flatten();
    } else {
      e.value = option<double>(*t, "value", 0.0, kEdits);
    }
  }
  if (e.op == "skip") {
    const std::string& name = e.site.name;
    if (e.site.layer < 0 || name.find("hook_resid_post") == std::string::npos) {
      throw ArgumentError(kEdits, what +
                                      ": op 'skip' takes a block's output, "
                                      "blocks.L.hook_resid_post (got '" +
                                      name + "')");
    }
  }
  if (e.op == "mix") {
    const Value* other = find_option(*t, "other");
    if (other == nullptr) throw ArgumentError(kEdits, what + ": op 'mix' needs 'other' (a prompt)");
    e.other = token_ids(model, *other, kEdits, what + ": other");
    e.value = option<double>(*t, "weight", 0.5, kEdits);
    if (find_option(*t, "other_position") != nullptr) {
      e.other_position = option<int64_t>(*t, "other_position", 0, kEdits);
    }
  }
  return e;
}

// The edited copy of `act` [batch, pos, ...] in row `row`.
at::Tensor apply(const Edit& e, const at::Tensor& act, int64_t row, const at::Tensor& skip_source,
                 const at::Tensor& mix_source, const std::string& what) {
  const int64_t n_pos = act.size(1);
  at::Tensor out = act.clone();
  at::Tensor x = out[row];  // [pos, ...], a view
  // Selections: positions, then heads (dim 1 of a per-head site), then units (the last dim).
  std::vector<int64_t> positions = e.positions;
  for (int64_t& p : positions) {
    if (p < -n_pos || p >= n_pos) {
      throw llmscope::Error(what + ": position " + std::to_string(p) + " is outside the " +
                            std::to_string(n_pos) + "-token prompt");
    }
    if (p < 0) p += n_pos;
  }
  const at::Tensor pos =
      positions.empty() ? at::arange(n_pos, at::kLong) : at::tensor(positions, at::kLong);
  at::Tensor sel = x.index_select(0, pos.to(x.device()));  // a copy to edit, then put back
  at::Tensor target = sel;
  at::Tensor head_index, unit_index;
  if (!e.heads.empty()) {
    if (sel.dim() != 3)
      throw llmscope::Error(what + ": 'heads' needs a per-head site ([batch, pos, head, d_head])");
    head_index = at::tensor(e.heads, at::kLong).to(x.device());
    target = target.index_select(1, head_index);
  }
  if (!e.units.empty()) {
    unit_index = at::tensor(e.units, at::kLong).to(x.device());
    target = target.index_select(-1, unit_index);
  }
  // A source [P, ...] shaped like `sel`, cut to the same heads and units as `target`.
  auto selected = [&](at::Tensor t) {
    if (head_index.defined()) t = t.index_select(1, head_index);
    if (unit_index.defined()) t = t.index_select(-1, unit_index);
    return t;
  };
  at::Tensor edited;
  if (e.op == "scale") {
    edited = target * e.value;
  } else if (e.op == "add" || e.op == "set") {
    at::Tensor v = e.vector.defined() ? e.vector.to(target.device(), target.scalar_type())
                                      : at::full({}, e.value, target.options());
    if (e.vector.defined()) {
      // One value per unit, or, on a per-head site, one per head x unit (the flattened site).
      const int64_t per_token = target[0].numel();
      if (e.vector.numel() == per_token && target.dim() > 2) {
        v = v.view(target.sizes().slice(1));
      } else if (e.vector.numel() != target.size(-1)) {
        throw llmscope::Error(what + ": 'vector' has " + std::to_string(e.vector.numel()) +
                              " values for " + std::to_string(target.size(-1)) + " units (or " +
                              std::to_string(per_token) + " across the heads)");
      }
    }
    edited = e.op == "add" ? target + v : at::zeros_like(target) + v;
  } else if (e.op == "noise") {
    at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(e.seed));
    edited =
        target +
        (at::randn(target.sizes(), gen, at::TensorOptions().dtype(at::kFloat)) * e.value + e.offset)
            .to(target.device(), target.scalar_type());
  } else if (e.op == "permute") {
    at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(e.seed));
    const at::Tensor order = at::randperm(target.size(-1), gen, at::kLong).to(target.device());
    edited = target.index_select(-1, order);
  } else if (e.op == "zero") {
    edited = at::zeros_like(target);
  } else if (e.op == "mean") {
    edited = target.mean(0, /*keepdim=*/true).expand_as(target);
  } else if (e.op == "skip") {
    edited = selected(skip_source[row].index_select(0, pos.to(x.device())));
  } else {                                   // mix
    const at::Tensor other = mix_source[0];  // [other_pos, ...]
    at::Tensor from;
    if (e.other_position) {
      const int64_t q =
          *e.other_position < 0 ? *e.other_position + other.size(0) : *e.other_position;
      if (q < 0 || q >= other.size(0))
        throw llmscope::Error(what + ": other_position is outside the other prompt");
      from = selected(other[q].unsqueeze(0)).expand_as(target);
    } else {
      if (other.size(0) != n_pos) {
        throw llmscope::Error(what + ": the other prompt has " + std::to_string(other.size(0)) +
                              " tokens and this one " + std::to_string(n_pos) +
                              "; give other_position to mix in one position");
      }
      from = selected(other.index_select(0, pos.to(x.device())));
    }
    edited = target * (1.0 - e.value) + from.to(target.scalar_type()) * e.value;
  }
  // Put the edited part back: units, then heads, then positions.
  if (unit_index.defined()) {
    at::Tensor base = head_index.defined() ? sel.index_select(1, head_index) : sel;
    base = base.index_copy(-1, unit_index, edited);
    edited = base;
  }
  if (head_index.defined()) edited = sel.index_copy(1, head_index, edited);
  out[row] = x.index_copy(0, pos.to(x.device()), edited);
  return out;
}

}  // namespace

LLMSCOPE_PLUGIN("edit", "0.1.0", "Activation edits at any hook point, one edit per row") {
  module.def(
      "run",
      "run(model, input, edits, opts) -> {logprobs, top_ids, kl, logit_r, hidden_delta, ...}\n"
      "input: one prompt (a text or [pos] ids). edits: a list of {site =, op =, ...}; edit i\n"
      "runs in row i of a batched pass (row 0 of the result is edit 1). ops: scale (factor),\n"
      "add (value, or vector: per unit, or per head x unit on a per-head site), noise (sd,\n"
      "offset, seed), set (as add), permute (seed: the units in a random order), zero, mean\n"
      "(over the selected positions), skip (site\n"
      "blocks.L.hook_resid_post: the block's output = its input), mix (other = a prompt,\n"
      "weight w: (1 - w) this + w other; other_position, or the same positions). Selections:\n"
      "positions (negative from the end), heads (a per-head site), units; default all.\n"
      "opts: position (the readout, default -1), targets (token ids or one-token texts),\n"
      "batch_size (edits per pass, default 16), gradient (also the gradient of the first\n"
      "target's log-probability with respect to the input embeddings, through the edits).\n"
      "Returns logprobs [edits, targets] and clean_logprobs [targets] at the readout, top_ids\n"
      "[edits], kl [edits] (KL(clean || edited)), logit_r [edits] (Pearson r of the edited and\n"
      "clean logits over the vocabulary), hidden_delta [edits, n_layer + 1] (norm of the\n"
      "hidden state's change at the readout), block_change [edits, n_layer] (norm of what each\n"
      "block adds in the edited run: hidden state l + 1 minus l), hidden_std [edits, n_layer +\n"
      "1] and clean_std [n_layer + 1] (std over units at the readout), clean_top, targets;\n"
      "with gradient, embedding_grad [edits, pos] and clean_embedding_grad [pos] (its norm per\n"
      "input position).\n"
      "Each pass also runs the unedited prompt as its row 0, the reference of its edits, so an\n"
      "edit that changes nothing (scale 1, noise 0) reports exactly no change.",
      [](const ModelPtr& model, const Value& input, const List& edit_values, const Table& opts) {
        check_options(opts, {"position", "targets", "batch_size", "gradient"}, kOpts);
        const bool gradient = option<bool>(opts, "gradient", false, kOpts);
        const auto ids_list = token_ids(*model, input, kInput, "input");
        const auto n_pos = static_cast<int64_t>(ids_list.size());
        if (n_pos == 0) throw ArgumentError(kInput, "input: no tokens");
        if (edit_values.empty()) throw ArgumentError(kEdits, "edits: no edits");
        std::vector<Edit> edits;
        for (size_t i = 0; i < edit_values.size(); ++i)
          edits.push_back(read_edit(*model, edit_values[i], i));
        int64_t readout = option<int64_t>(opts, "position", -1, kOpts);
        if (readout < -n_pos || readout >= n_pos) {
          throw ArgumentError(kOpts, "option 'position': " + std::to_string(readout) +
                                         " is outside the " + std::to_string(n_pos) +
                                         "-token input");
        }
        if (readout < 0) readout += n_pos;
        const int64_t batch_size = batch_size_option(opts, 16, kOpts);

        at::NoGradGuard no_grad;
        const auto device = model->device();
        const at::Tensor ids = at::tensor(ids_list, at::kLong).unsqueeze(0).to(device);
        llmscope::ForwardOptions clean_forward;
        clean_forward.output_hidden_states = true;
        const auto clean = model->forward(llmscope::ForwardInput{ids, {}, {}, {}}, clean_forward);
        const at::Tensor clean_lp = clean.logits[0][readout].to(at::kDouble).log_softmax(-1);
        std::vector<at::Tensor> clean_hidden;  // [layers] of [d] at the readout
        for (const auto& h : clean.hidden_states)
          clean_hidden.push_back(h[0][readout].to(at::kDouble));
        const Value* given = find_option(opts, "targets");
        const std::vector<int64_t> targets =
            given ? tokens(*model, *given, kOpts, "option 'targets'")
                  : std::vector<int64_t>{clean_lp.argmax().item<int64_t>()};
        const at::Tensor target_index = at::tensor(targets, at::kLong).to(device);
        // The other prompts' activations for mix edits: one pass each, cached at their site.
        std::map<size_t, at::Tensor> mix_sources;
        for (size_t i = 0; i < edits.size(); ++i) {
          if (edits[i].op != "mix") continue;
          at::Tensor cached;
          llmscope::ForwardOptions f;
          f.strict_hooks = true;
          f.hooks.push_back(
              {edits[i].site.name, [&cached](const at::Tensor& act, const llmscope::HookContext&) {
                 cached = act.detach().clone();
                 return at::Tensor();
               }});
          model->forward(
              llmscope::ForwardInput{
                  at::tensor(edits[i].other, at::kLong).unsqueeze(0).to(device), {}, {}, {}},
              f);
          mix_sources[i] = cached;
        }

        std::vector<at::Tensor> lp_rows, top_rows, kl_rows, r_rows, delta_rows, std_rows, step_rows,
            grad_rows;
        at::Tensor clean_grad;
        for_each_range(
            static_cast<int64_t>(edits.size()), batch_size, [&](int64_t start, int64_t stop) {
              // Row 0 of every pass is the unedited prompt: the edits are compared with a reference
              // computed in the same batch, so an edit that changes nothing changes nothing, bit
              // for bit.
              const int64_t rows = stop - start + 1;
              llmscope::ForwardOptions forward;
              forward.strict_hooks = true;
              forward.output_hidden_states = true;
              // Skip edits read their block's input in the same pass.
              auto skip_inputs = std::make_shared<std::map<std::string, at::Tensor>>();
              for (int64_t k = start; k < stop; ++k) {
                const Edit& e = edits[static_cast<size_t>(k)];
                const int64_t row = k - start + 1;
                const std::string what = describe(k);
                const std::string pre =
                    "blocks." + std::to_string(e.site.layer) + ".hook_resid_pre";
                if (e.op == "skip" && skip_inputs->count(pre) == 0) {
                  (*skip_inputs)[pre] = at::Tensor();
                  forward.hooks.push_back({pre, [skip_inputs, pre](const at::Tensor& act,
                                                                   const llmscope::HookContext&) {
                                             (*skip_inputs)[pre] =
                                                 act;  // the graph stays whole for `gradient`
                                             return at::Tensor();
                                           }});
                }
                const at::Tensor mix = e.op == "mix" ? mix_sources.at(k) : at::Tensor();
                forward.hooks.push_back(
                    {e.site.name, [&e, row, what, pre, skip_inputs, mix](
                                      const at::Tensor& act, const llmscope::HookContext&) {
                       const at::Tensor skip = e.op == "skip" ? skip_inputs->at(pre) : at::Tensor();
                       return apply(e, act, row, skip, mix, what);
                     }});
              }
              // With `gradient`, the pass starts from the token embeddings and keeps its graph, so
              // the target's gradient flows back through every edit to the input.
              at::AutoGradMode grad_mode(gradient);
              at::Tensor embeds;
              if (gradient) {
                embeds = model->embed_tokens(ids.expand({rows, n_pos}).contiguous())
                             .detach()
                             .set_requires_grad(true);
              }
              const auto out = model->forward(
                  gradient
                      ? llmscope::ForwardInput{{}, embeds, {}, {}}
                      : llmscope::ForwardInput{ids.expand({rows, n_pos}).contiguous(), {}, {}, {}},
                  forward);
              if (gradient) {
                const at::Tensor lp_all =
                    out.logits.select(1, readout).to(at::kDouble).log_softmax(-1);
                const at::Tensor objective = lp_all.select(1, targets.front()).sum();
                const at::Tensor grad =
                    torch::autograd::grad({objective}, {embeds})[0];  // [rows, pos, d]
                const at::Tensor norms =
                    grad.to(at::kDouble).norm(2, {-1}).detach();  // [rows, pos]
                grad_rows.push_back(norms.slice(0, 1));
                if (!clean_grad.defined()) clean_grad = norms[0];
              }
              at::NoGradGuard reductions;  // the rest reads the pass; no graph
              const at::Tensor all_logits = out.logits.select(1, readout).to(at::kDouble);
              const at::Tensor ref_logits = all_logits[0];
              const at::Tensor ref_lp = ref_logits.log_softmax(-1);
              const at::Tensor logits = all_logits.slice(0, 1);  // [edits, vocab]
              const at::Tensor lp = logits.log_softmax(-1);
              lp_rows.push_back(lp.index_select(1, target_index));
              top_rows.push_back(lp.argmax(-1));
              kl_rows.push_back((ref_lp.exp().unsqueeze(0) * (ref_lp.unsqueeze(0) - lp)).sum(-1));
              const at::Tensor ref_centred = ref_logits - ref_logits.mean();
              const at::Tensor centred = logits - logits.mean(-1, true);
              r_rows.push_back(
                  ((centred * ref_centred).sum(-1) / (centred.norm(2, {-1}) * ref_centred.norm()))
                      .clamp(-1.0, 1.0));
              std::vector<at::Tensor> deltas, stds;
              for (size_t l = 0; l < out.hidden_states.size(); ++l) {
                const at::Tensor h =
                    out.hidden_states[l].select(1, readout).to(at::kDouble);  // [rows, d]
                deltas.push_back((h.slice(0, 1) - h[0].unsqueeze(0)).norm(2, {-1}));
                stds.push_back(h.slice(0, 1).std(-1));
              }
              delta_rows.push_back(at::stack(deltas, 1));
              std::vector<at::Tensor> steps;  // what each block changed in the edited rows
              for (size_t l = 0; l + 1 < out.hidden_states.size(); ++l) {
                steps.push_back((out.hidden_states[l + 1].select(1, readout).slice(0, 1) -
                                 out.hidden_states[l].select(1, readout).slice(0, 1))
                                    .to(at::kDouble)
                                    .norm(2, {-1}));
              }
              step_rows.push_back(at::stack(steps, 1));
              std_rows.push_back(at::stack(stds, 1));
            });
        std::vector<at::Tensor> clean_std;
        for (const auto& h : clean_hidden) clean_std.push_back(h.std());
        Table result;
        if (gradient) {
          result["embedding_grad"] = at::cat(grad_rows).cpu();
          result["clean_embedding_grad"] = clean_grad.cpu();
        }
        result["logprobs"] = at::cat(lp_rows).cpu();
        result["top_ids"] = at::cat(top_rows).cpu();
        result["kl"] = at::cat(kl_rows).cpu();
        result["logit_r"] = at::cat(r_rows).cpu();
        result["hidden_delta"] = at::cat(delta_rows).cpu();
        result["hidden_std"] = at::cat(std_rows).cpu();
        result["block_change"] = at::cat(step_rows).cpu();
        result["clean_std"] = at::stack(clean_std).cpu();
        result["clean_logprobs"] = clean_lp.index_select(0, target_index).cpu();
        result["clean_top"] = clean_lp.argmax().item<int64_t>();
        result["targets"] = at::tensor(targets, at::kLong);
        return result;
      });
}
