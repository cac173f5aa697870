// logit_lens: what each hidden state would predict if the model stopped there (lessons 13-15 to
// 13-17). One forward pass keeps the hidden states on the model's device; each goes through the
// model's own output head (Model::unembed) and is reduced there to top tokens, a target's rank,
// log-probability and z-score, and the KL divergence from the model's output distribution, so
// only [layers, pos] results come back, never [layers, pos, vocab].
#include <llmscope/plugin.hpp>

#include <string>
#include <vector>

namespace {

using namespace llmscope::plugin;  // the SDK (plugin.hpp)

constexpr int kIds = 2;
constexpr int kOpts = 3;

}  // namespace

LLMSCOPE_PLUGIN("logit_lens", "0.1.0",
                "The logit lens: every hidden state decoded through the model's output head") {
  module.def(
      "lens",
      "lens(model, ids, opts) -> {top_ids, top_logprobs, kl, target_*...}: the logit lens\n"
      "ids: one sequence ([pos] or [1, pos] ids, a list of ids, or a text). Hidden state l (0 =\n"
      "the embeddings, n_layer = the model's output) goes through the model's output head,\n"
      "m:unembed: with full_head (default true) a causal LM's final norm comes first (a masked\n"
      "LM's prediction transform: dense, activation, LayerNorm); without it, the unembedding\n"
      "alone, as the course's hidden_states[l] @ lm_head.weight^T. The last row is a causal LM's\n"
      "own output either way (Hugging Face's last hidden state is already normalised); a masked\n"
      "LM's only with the full head.\n"
      "opts: full_head, k (top tokens, default 5), target (a token id or one-token text, or one\n"
      "id per position, such as each position's next token).\n"
      "Returns top_ids [layers, pos, k] int64 and top_logprobs [layers, pos, k] float64 (log-\n"
      "softmax over the vocabulary), kl [layers, pos] (KL(model output || layer), nats), and with "
      "a\n"
      "target: target_rank [layers, pos] int64 (0 = the top token), target_logprob, target_z\n"
      "(the target's logit z-scored over the vocabulary at that position, unbiased std), target\n"
      "[pos]; also ids, layers (n_layer + 1), full_head.",
      [](const ModelPtr& model, const Value& ids_value, const Table& opts) {
        check_options(opts, {"full_head", "k", "target"}, kOpts);
        const bool full_head = option<bool>(opts, "full_head", true, kOpts);
        const int64_t k = option<int64_t>(opts, "k", 5, kOpts);
        if (k < 1 || k > model->vocab_size()) {
          throw ArgumentError(kOpts, "option 'k' must be between 1 and the vocabulary size (" +
                                         std::to_string(model->vocab_size()) + ")");
        }
        const std::vector<int64_t> id_list = token_ids(*model, ids_value, kIds, "ids");
        const auto n_pos = static_cast<int64_t>(id_list.size());
        // One target for every position, or one per position (e.g. each position's next token).
        at::Tensor targets;  // [pos] int64
        if (const Value* t = find_option(opts, "target")) {
          if (as_integer(*t) || std::holds_alternative<std::string>(t->data)) {
            targets = at::full({n_pos}, token(*model, *t, kOpts, "option 'target'"), at::kLong);
          } else {
            const auto per = integers(*t, kOpts, "option 'target'");
            if (static_cast<int64_t>(per.size()) != n_pos) {
              throw ArgumentError(kOpts, "option 'target': " + std::to_string(per.size()) +
                                             " ids for " + std::to_string(n_pos) +
                                             " positions; give one token or one per position");
            }
            for (const int64_t id : per) {
              check_token_id(*model, id, kOpts, "option 'target'");
            }
            targets = at::tensor(per, at::kLong);
          }
        }
        if (id_list.empty()) throw ArgumentError(kIds, "ids: no tokens");
        if (static_cast<int64_t>(id_list.size()) > model->max_positions()) {
          throw ArgumentError(kIds, "ids: " + std::to_string(id_list.size()) +
                                        " tokens; this model takes at most " +
                                        std::to_string(model->max_positions()));
        }

        at::NoGradGuard no_grad;
        const at::Tensor ids = at::tensor(id_list, at::kLong);
        llmscope::ForwardOptions forward;
        forward.output_hidden_states = true;
        // The last row is the model's own output whenever the lens's head is the model's: the
        // full head, or a causal LM's unembedding alone (its last hidden state is already after
        // the final norm).
        const bool last_is_output = full_head || model->is_causal();
        const auto out = model->forward(
            llmscope::ForwardInput{ids.unsqueeze(0).to(model->device()), {}, {}, {}}, forward);

        const int64_t layers = static_cast<int64_t>(out.hidden_states.size());
        const auto final_logprobs = out.logits[0].to(at::kDouble).log_softmax(-1);  // [pos, vocab]
        const auto final_probs = final_logprobs.exp();
        std::vector<at::Tensor> top_ids, top_lp, kl, rank, target_lp, target_z;
        for (int64_t l = 0; l < layers; ++l) {
          const at::Tensor logits =  // [pos, vocab]
              (last_is_output && l == layers - 1
                   ? out.logits[0]
                   : model->unembed(out.hidden_states[l][0], full_head))
                  .to(at::kDouble);
          const at::Tensor lp = logits.log_softmax(-1);
          auto [values, indices] = lp.topk(k, -1);
          top_ids.push_back(indices);
          top_lp.push_back(values);
          kl.push_back((final_probs * (final_logprobs - lp)).sum(-1));
          if (targets.defined()) {
            const at::Tensor index = targets.to(logits.device()).unsqueeze(-1);  // [pos, 1]
            const at::Tensor t_logit = logits.gather(-1, index).squeeze(-1);     // [pos]
            rank.push_back(logits.gt(t_logit.unsqueeze(-1)).sum(-1));
            target_lp.push_back(lp.gather(-1, index).squeeze(-1));
            target_z.push_back((t_logit - logits.mean(-1)) / logits.std(-1));
          }
        }
        Table result;
        result["top_ids"] = at::stack(top_ids).cpu();
        result["top_logprobs"] = at::stack(top_lp).cpu();
        result["kl"] = at::stack(kl).cpu();
        if (targets.defined()) {
          result["target"] = targets;
          result["target_rank"] = at::stack(rank).cpu();
          result["target_logprob"] = at::stack(target_lp).cpu();
          result["target_z"] = at::stack(target_z).cpu();
        }
        result["ids"] = ids;
        result["layers"] = layers;
        result["full_head"] = full_head;
        return result;
      });
}
