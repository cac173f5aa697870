// heads: what each attention head contributes to a prediction (lessons 16-01 to 16-03). Every
// chosen (layer, head) is ablated in its own row of a batched pass: a native hook on the layer's
// attn.hook_z (the heads' outputs before the output projection) replaces that head's output at
// the chosen positions with zeros or with its mean over a reference set, and the readout
// position's log-probabilities are reduced on the device to the targets', the top token and the
// KL divergence from the clean run.
#include <llmscope/matmul.hpp>
#include <llmscope/plugin.hpp>
#include <llmscope/stats.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace llmscope::plugin;  // the SDK (plugin.hpp)

constexpr int kInput = 2;
constexpr int kOpts = 3;

std::string z_site(int64_t layer) { return "blocks." + std::to_string(layer) + ".attn.hook_z"; }

// The number of heads, from hook_z's shape in a one-token pass of the first layer.
int64_t count_heads(llmscope::Model& model) {
  int64_t heads = 0;
  llmscope::ForwardOptions forward;
  forward.strict_hooks = true;
  forward.stop_at_layer = 1;
  forward.hooks.push_back({z_site(0), [&](const at::Tensor& act, const llmscope::HookContext&) {
                             heads = act.size(2);
                             return at::Tensor();
                           }});
  model.forward(llmscope::ForwardInput{at::zeros({1, 1}, at::kLong).to(model.device()), {}, {}, {}},
                forward);
  return heads;
}

// Each layer's per-head mean output over every real position of `rows`: [layers] of [heads,
// d_head].
std::map<int64_t, at::Tensor> head_means(llmscope::Model& model, const TokenRows& rows,
                                         const std::vector<int64_t>& layers) {
  std::map<int64_t, at::Tensor> sums;
  int64_t tokens = 0;
  std::vector<Site> sites;
  for (const int64_t l : layers) {
    sites.push_back(site_at(model, z_site(l), l, kOpts, "option 'reference'"));
  }
  for_each_batch(rows, 8, [&](const RowBatch& batch) {
    const at::Tensor real = batch.real.to(model.device());
    tokens += batch.real.sum().item<int64_t>();
    read_sites(model, batch, sites, [&](size_t index, const at::Tensor& act) {
      const at::Tensor sum = act.index({real}).to(at::kDouble).sum(0);  // [heads, d_head]
      auto& total = sums[layers[index]];
      total = total.defined() ? total + sum : sum;
    });
  });
  for (auto& [layer, total] : sums) total = total / static_cast<double>(tokens);
  return sums;
}

}  // namespace

LLMSCOPE_PLUGIN("heads", "0.1.0", "Attention heads: ablation of every layer x head, batched") {
  module.def(
      "ablate",
      "ablate(model, input, opts) -> {logprobs, top_ids, kl, clean_*...}: every head ablated\n"
      "input: one prompt (a text, or [pos] / [1, pos] ids). Each chosen (layer, head) is ablated\n"
      "in its own row of a batched pass: its output at attn.hook_z (before the output\n"
      "projection) is replaced at `positions` by zeros or by its mean over `reference`.\n"
      "opts: layers (default all), heads (head indices, default all), method ('zero' or 'mean'),\n"
      "reference (rows whose real tokens give the means: ids [rows, pos], {ids =, mask =} or a\n"
      "list of texts; default the input), positions (ablated positions, negative from the end;\n"
      "default all), position (the readout, default -1), targets (token ids or one-token texts\n"
      "whose log-probabilities are reported; default the clean prediction), batch_size\n"
      "(ablations per pass, default 16), compare (positions whose final hidden state is\n"
      "compared with the readout's by cosine similarity), token_similarity (every hidden\n"
      "state's cosine similarities between the tokens).\n"
      "Returns logprobs [layers, heads, targets] float64 at the readout, top_ids [layers, heads]\n"
      "int64, kl [layers, heads] (KL(clean || ablated), nats), clean_logprobs [targets],\n"
      "clean_top, targets [targets] int64, layers, heads (the lists), n_head; with compare,\n"
      "similarity [layers, heads, compared] and clean_similarity [compared]; with\n"
      "token_similarity, token_similarity [layers, heads, n_layer + 1, pairs] and\n"
      "clean_token_similarity [n_layer + 1, pairs] (pairs i < j, row by row).",
      [](const ModelPtr& model, const Value& input, const Table& opts) {
        check_options(opts,
                      {"layers", "heads", "method", "reference", "positions", "position", "targets",
                       "batch_size", "compare", "token_similarity"},
                      kOpts);
        const std::vector<int64_t> ids_list = token_ids(*model, input, kInput, "input");
        const auto n_pos = static_cast<int64_t>(ids_list.size());
        if (n_pos == 0) throw ArgumentError(kInput, "input: no tokens");
        const auto layers = layers_option(*model, opts, "layers", kOpts);
        const std::string method = option<std::string>(opts, "method", "zero", kOpts);
        if (method != "zero" && method != "mean") {
          throw ArgumentError(kOpts,
                              "option 'method' must be 'zero' or 'mean', got '" + method + "'");
        }
        if (method == "zero" && find_option(opts, "reference") != nullptr) {
          throw ArgumentError(kOpts, "option 'reference' gives the means of method 'mean'");
        }
        const int64_t batch_size = batch_size_option(opts, 16, kOpts);
        auto in_prompt = [&](int64_t p, const std::string& what) {
          if (p < -n_pos || p >= n_pos) {
            throw ArgumentError(kOpts, what + ": " + std::to_string(p) + " is outside the " +
                                           std::to_string(n_pos) + "-token input");
          }
          return p < 0 ? p + n_pos : p;
        };
        const int64_t readout =
            in_prompt(option<int64_t>(opts, "position", -1, kOpts), "option 'position'");
        std::vector<int64_t> positions;
        if (const Value* p = find_option(opts, "positions")) {
          for (const int64_t q : integers(*p, kOpts, "option 'positions'")) {
            positions.push_back(in_prompt(q, "option 'positions'"));
          }
          if (positions.empty()) throw ArgumentError(kOpts, "option 'positions' is empty");
        } else {
          for (int64_t q = 0; q < n_pos; ++q) positions.push_back(q);
        }

        // Positions whose final hidden state is compared (cosine) with the readout's.
        std::vector<int64_t> compare;
        if (const Value* c = find_option(opts, "compare")) {
          for (const int64_t q : integers(*c, kOpts, "option 'compare'")) {
            compare.push_back(in_prompt(q, "option 'compare'"));
          }
        }

        const bool token_similarity = option<bool>(opts, "token_similarity", false, kOpts);

        at::NoGradGuard no_grad;
        const auto device = model->device();
        const int64_t n_head = count_heads(*model);
        std::vector<int64_t> heads;
        if (const Value* h = find_option(opts, "heads")) {
          heads = integers(*h, kOpts, "option 'heads'");
          if (heads.empty()) throw ArgumentError(kOpts, "option 'heads' is empty");
          for (const int64_t head : heads) {
            if (head < 0 || head >= n_head) {
              throw ArgumentError(kOpts, "option 'heads': " + std::to_string(head) +
                                             " is not a head (0 to " + std::to_string(n_head - 1) +
                                             ")");
            }
          }
        } else {
          for (int64_t head = 0; head < n_head; ++head) heads.push_back(head);
        }
        std::map<int64_t, at::Tensor> means;
        if (method == "mean") {
          const Value* ref = find_option(opts, "reference");
          TokenRows rows;
          if (ref != nullptr) {
            rows = token_rows(*model, *ref, kOpts, "option 'reference'");
          } else {
            rows.ids = at::tensor(ids_list, at::kLong).unsqueeze(0);
            rows.lengths = {n_pos};
          }
          means = head_means(*model, rows, layers);
        }

        const at::Tensor ids = at::tensor(ids_list, at::kLong).unsqueeze(0).to(device);
        llmscope::ForwardOptions clean_forward;
        clean_forward.output_hidden_states = !compare.empty() || token_similarity;
        const auto clean = model->forward(llmscope::ForwardInput{ids, {}, {}, {}}, clean_forward);
        const at::Tensor compare_index = at::tensor(compare, at::kLong).to(device);
        // Every hidden state's cosine similarities between the tokens, above the diagonal:
        // [rows, hidden states, pos (pos - 1) / 2].
        auto token_pairs = [&](const llmscope::ForwardOutput& out) {
          std::vector<at::Tensor> per_state;
          for (const auto& h : out.hidden_states) {
            const at::Tensor x = h.to(at::kDouble);
            const at::Tensor u = x / x.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-12);
            const at::Tensor cos = llmscope::matmul(u, u.transpose(1, 2));  // [rows, pos, pos]
            per_state.push_back(llmscope::stats::upper_triangle(cos));
          }
          return at::stack(per_state, 1);
        };
        // cos(final hidden state at the readout, at each compared position): [rows, k].
        auto similarity = [&](const llmscope::ForwardOutput& out) {
          const at::Tensor h = out.hidden_states.back().to(at::kDouble);  // [rows, pos, d]
          const at::Tensor a = h.select(1, readout).unsqueeze(1);         // [rows, 1, d]
          const at::Tensor b = h.index_select(1, compare_index);          // [rows, k, d]
          return at::cosine_similarity(a, b, -1);
        };
        const at::Tensor clean_lp = clean.logits[0][readout].to(at::kDouble).log_softmax(-1);
        const Value* given = find_option(opts, "targets");
        const std::vector<int64_t> targets =
            given ? tokens(*model, *given, kOpts, "option 'targets'")
                  : std::vector<int64_t>{clean_lp.argmax().item<int64_t>()};
        const at::Tensor target_index = at::tensor(targets, at::kLong).to(device);
        const at::Tensor position_index = at::tensor(positions, at::kLong).to(device);

        // Every ablation, layer-major: (layer, head).
        std::vector<std::pair<int64_t, int64_t>> ablations;
        for (const int64_t l : layers) {
          for (const int64_t h : heads) ablations.emplace_back(l, h);
        }
        std::vector<at::Tensor> lp_rows, top_rows, kl_rows, sim_rows, pair_rows;
        const at::Tensor clean_p = clean_lp.exp();
        // Per layer in each batch: the rows it ablates and their heads.
        for_each_group_batch(
            ablations, batch_size, [&](int64_t start, int64_t stop, const auto& by_layer) {
              const int64_t batch = stop - start;
              llmscope::ForwardOptions forward;
              forward.strict_hooks = true;
              forward.output_hidden_states = !compare.empty() || token_similarity;
              for (const auto& [layer, group] : by_layer) {
                const at::Tensor rows = at::tensor(group.rows, at::kLong).to(device);
                const at::Tensor hs = at::tensor(group.values, at::kLong).to(device);
                const at::Tensor mean = method == "mean" ? means.at(layer) : at::Tensor();
                forward.hooks.push_back(
                    {z_site(layer), [rows, hs, mean, &position_index](
                                        const at::Tensor& act, const llmscope::HookContext&) {
                       at::Tensor out = act.clone();  // [batch, pos, heads, d_head]
                       // out[rows[i], positions, hs[i], :] for every i: index rows and heads
                       // together.
                       const at::Tensor r = rows.unsqueeze(1);            // [k, 1]
                       const at::Tensor p = position_index.unsqueeze(0);  // [1, P]
                       const at::Tensor h = hs.unsqueeze(1);              // [k, 1]
                       if (mean.defined()) {
                         const at::Tensor fill =
                             mean.index({hs}).to(out.scalar_type()).unsqueeze(1);
                         out.index_put_({r, p, h},
                                        fill.expand({hs.size(0), p.size(1), fill.size(2)}));
                       } else {
                         out.index_put_({r, p, h}, at::zeros({}, out.options()));
                       }
                       return out;
                     }});
              }
              const auto out = model->forward(
                  llmscope::ForwardInput{ids.expand({batch, n_pos}).contiguous(), {}, {}, {}},
                  forward);
              const at::Tensor lp = out.logits.select(1, readout).to(at::kDouble).log_softmax(-1);
              lp_rows.push_back(lp.index_select(1, target_index));
              top_rows.push_back(lp.argmax(-1));
              kl_rows.push_back((clean_p.unsqueeze(0) * (clean_lp.unsqueeze(0) - lp)).sum(-1));
              if (!compare.empty()) sim_rows.push_back(similarity(out));
              if (token_similarity) pair_rows.push_back(token_pairs(out));
            });
        const auto n_layers = static_cast<int64_t>(layers.size());
        const auto n_heads = static_cast<int64_t>(heads.size());
        const auto n_targets = static_cast<int64_t>(targets.size());
        Table result;
        result["logprobs"] = at::cat(lp_rows).view({n_layers, n_heads, n_targets}).cpu();
        result["top_ids"] = at::cat(top_rows).view({n_layers, n_heads}).cpu();
        result["kl"] = at::cat(kl_rows).view({n_layers, n_heads}).cpu();
        result["clean_logprobs"] = clean_lp.index_select(0, target_index).cpu();
        if (token_similarity) {
          const at::Tensor pairs = at::cat(pair_rows);  // [ablations, states, pairs]
          result["token_similarity"] =
              pairs.view({n_layers, n_heads, pairs.size(1), pairs.size(2)}).cpu();
          result["clean_token_similarity"] = token_pairs(clean)[0].cpu();
        }
        if (!compare.empty()) {
          const auto k = static_cast<int64_t>(compare.size());
          result["similarity"] = at::cat(sim_rows).view({n_layers, n_heads, k}).cpu();
          result["clean_similarity"] = similarity(clean)[0].cpu();
        }
        result["clean_top"] = clean_lp.argmax().item<int64_t>();
        result["targets"] = at::tensor(targets, at::kLong);
        List layer_list, head_list;
        for (const int64_t l : layers) layer_list.push_back(l);
        for (const int64_t h : heads) head_list.push_back(h);
        result["layers"] = layer_list;
        result["heads"] = head_list;
        result["n_head"] = n_head;
        result["method"] = method;
        return result;
      });
}
