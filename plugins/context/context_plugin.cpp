// context: how much a layer's activations depend on context (lesson 12-10). `spacing` compares
// each word run alone with and without a leading space; `in_context` compares every token of a
// passage in context with the same token run alone. Activations are reduced inside native hooks
// on the model's device; only the per-word / per-token vectors the comparison needs come back.
// In a job of several ranks (llmscope/job.hpp) the batched passes are shared out and every rank
// ends with the whole result.
#include <llmscope/job.hpp>
#include <llmscope/plugin.hpp>
#include <llmscope/stats.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace {

using namespace llmscope::plugin;  // the SDK (plugin.hpp)

constexpr int kOpts = 3;  // the options table is argument 3 of both functions

// Where to read: a hook site and the layer it lives in (-1 outside the blocks), from the
// options `layer` (default two thirds of the depth, the course's layer 8 of 12) and `site`.
struct Reading {
  Site site;
  int64_t batch_size = 64;
};

Reading reading_from(const llmscope::Model& model, const Table& opts) {
  const int64_t layer = layer_option(model, opts, "layer", model.n_layer() * 2 / 3, kOpts);
  Reading reading;
  reading.site = site_at(model, option<std::string>(opts, "site", "blocks.{L}.mlp.hook_pre", kOpts),
                         layer, kOpts, "option 'site'");
  reading.batch_size = batch_size_option(opts, 64, kOpts);
  return reading;
}

// Batched passes over `rows` (padding masked, each stopping after the site's block) that hand
// every batch's site activation, as [batch, pos, units] float32, to take(batch, act).
template <typename Take>
void read_site(llmscope::Model& model, const Reading& reading, const TokenRows& rows, Take take) {
  for_each_batch(rows, reading.batch_size, [&](const RowBatch& batch) {
    read_sites(model, batch, {reading.site}, [&](size_t, const at::Tensor& act) {
      take(batch, act.flatten(2).to(at::kFloat));  // per-head sites: heads x d_head units
    });
  });
}

// This rank's rows of `rows` (all of them outside a job): whole batches of the one-process plan.
TokenRows my_rows(const TokenRows& rows, int64_t batch_size) {
  const std::pair<int64_t, int64_t> mine = llmscope::job::shard_batches(rows.size(), batch_size);
  return {rows.ids.narrow(0, mine.first, mine.second - mine.first),
          {rows.lengths.begin() + mine.first, rows.lengths.begin() + mine.second}};
}

// Every rank's [rows, units] parts in rank order (the parts themselves outside a job).
at::Tensor all_rows(const std::vector<at::Tensor>& parts) {
  return llmscope::job::all_gather_concat(parts.empty() ? at::Tensor() : at::cat(parts, 0));
}

// Pearson r over all values of two same-shaped tensors (stats::pearson on the flattened values).
double pearson_all(const at::Tensor& a, const at::Tensor& b) {
  return llmscope::stats::pearson(a.reshape({-1, 1}), b.reshape({-1})).item<double>();
}

// Summary of `diff` = a - b: mean, std, mean |diff|, max |diff| (plain numbers for Lua).
Table difference_stats(const at::Tensor& diff) {
  auto d = diff.to(at::kDouble);
  Table t;
  t["mean"] = d.mean().item<double>();
  t["std"] = d.numel() > 1 ? d.std().item<double>() : 0.0;
  t["mean_abs"] = d.abs().mean().item<double>();
  t["max_abs"] = d.abs().max().item<double>();
  return t;
}

// Token ids of a passage: one sequence as the SDK reads it (llmscope/plugin_inputs.hpp).
at::Tensor passage_ids(const llmscope::Model& model, const Value& value) {
  const std::vector<int64_t> ids = token_ids(model, value, 2, "passage");
  if (ids.size() < 2)
    throw ArgumentError(2,
                        "the passage needs at least 2 tokens, got " + std::to_string(ids.size()));
  if (static_cast<int64_t>(ids.size()) > model.max_positions()) {
    throw ArgumentError(2, "the passage has " + std::to_string(ids.size()) +
                               " tokens; this model takes at most " +
                               std::to_string(model.max_positions()));
  }
  return at::tensor(ids, at::kLong);
}

}  // namespace

LLMSCOPE_PLUGIN("context", "0.1.0",
                "Context-modulated activation: words with and without a leading space, tokens in a "
                "passage vs alone") {
  module.def(
      "spacing",
      "spacing(model, words, opts) -> {acts, r, ...}: each word alone, without and with a leading "
      "space\n"
      "Every word runs as `word` and as `prefix .. word` (default prefix ' '), each on its own (a\n"
      "right-padded batch with an attention mask), and the site's activations are averaged over "
      "the\n"
      "word's tokens. opts: layer (0-based, default n_layer*2/3), site (default\n"
      "blocks.<layer>.mlp.hook_pre, the MLP pre-activations), prefix (default ' '), batch_size\n"
      "(sequences per pass, default 64). Returns acts [2, words, units] float32 (0: without, 1: "
      "with\n"
      "the prefix), r (Pearson r over all values of acts[0] and acts[1], as stats.pearson),\n"
      "n_tokens [2, words] int64, diff {mean, std, mean_abs, max_abs} of acts[1] - acts[0],\n"
      "unit_mean_abs_diff [units] (mean |difference| per unit over the words), layer, site.",
      [](const ModelPtr& model, const std::vector<std::string>& words, const Table& opts) {
        check_options(opts, {"layer", "site", "prefix", "batch_size"}, kOpts);
        if (words.empty()) throw ArgumentError(2, "words: expected a non-empty list of strings");
        const llmscope::Tokenizer* tokenizer = model->tokenizer();
        if (tokenizer == nullptr) {
          throw llmscope::Error(
              "spacing needs a model with a tokenizer (vocab.json + merges.txt or tokenizer.json "
              "beside the weights): " +
              model->source().string() + " has none");
        }
        const Reading reading = reading_from(*model, opts);
        const auto prefix = option<std::string>(opts, "prefix", " ", kOpts);
        if (prefix.empty()) throw ArgumentError(kOpts, "option 'prefix' must not be empty");

        // Sequences 0..n-1 are the bare words, n..2n-1 the prefixed ones.
        const auto n = static_cast<int64_t>(words.size());
        std::vector<std::vector<int64_t>> sequences;
        sequences.reserve(static_cast<size_t>(2 * n));
        for (int variant = 0; variant < 2; ++variant) {
          for (const auto& word : words) {
            auto ids = tokenizer->encode(variant == 0 ? word : prefix + word);
            if (ids.empty()) throw ArgumentError(2, "words: '" + word + "' gives no tokens");
            if (static_cast<int64_t>(ids.size()) > model->max_positions()) {
              throw ArgumentError(2,
                                  "words: '" + word + "' gives more tokens than the model takes");
            }
            sequences.push_back(std::move(ids));
          }
        }

        at::NoGradGuard no_grad;
        const TokenRows rows = padded_rows(sequences, pad_token_id(*model));
        std::vector<at::Tensor> means;  // one [batch, units] per pass
        read_site(*model, reading, my_rows(rows, reading.batch_size),
                  [&](const RowBatch& batch, const at::Tensor& act) {
                    const at::Tensor m =
                        batch.real.to(act.device(), act.scalar_type()).unsqueeze(-1);
                    means.push_back((act * m).sum(1) / m.sum(1));  // [batch, units] over tokens
                  });
        auto acts = all_rows(means).reshape({2, n, -1});  // [2, words, units]
        auto diff = acts[1] - acts[0];                    // [words, units]

        Table result;
        result["acts"] = acts;
        result["r"] = pearson_all(acts[0], acts[1]);
        result["n_tokens"] = at::tensor(rows.lengths, at::kLong).reshape({2, n});
        result["diff"] = difference_stats(diff);
        result["unit_mean_abs_diff"] = diff.abs().mean(0);
        result["layer"] = reading.site.layer;
        result["site"] = reading.site.name;
        return result;
      });

  module.def(
      "in_context",
      "in_context(model, ids, opts) -> {acts, r, ...}: each token of a passage in context vs "
      "alone\n"
      "ids: the passage, a tensor [pos] or [1, pos], a list of ids, or a string (tokenised). One\n"
      "pass reads the site at every position of the passage; a second (batched) pass runs every\n"
      "token on its own as a one-token sequence. opts: layer (0-based, default n_layer*2/3), site\n"
      "(default blocks.<layer>.mlp.hook_pre), batch_size (one-token sequences per pass, default "
      "64).\n"
      "Returns acts [2, units, pos] float32 (0: in context, 1: alone), r (Pearson r over all "
      "values),\n"
      "diff {mean, std, mean_abs, max_abs} of in context - alone, token_r [pos] (r over units for\n"
      "each token), token_mean_abs_diff [pos], ids [pos], layer, site. In a causal model token 0\n"
      "sees only itself, so its two columns agree.",
      [](const ModelPtr& model, const Value& passage, const Table& opts) {
        check_options(opts, {"layer", "site", "batch_size"}, kOpts);
        const Reading reading = reading_from(*model, opts);
        auto ids = passage_ids(*model, passage);  // [pos], CPU
        const int64_t T = ids.size(0);

        at::NoGradGuard no_grad;
        at::Tensor in_text;  // [pos, units]
        read_site(*model, reading, TokenRows{ids.unsqueeze(0), {T}},
                  [&](const RowBatch&, const at::Tensor& act) { in_text = act[0].clone(); });
        std::vector<at::Tensor> alone_parts;  // [batch, units] each
        read_site(
            *model, reading,
            my_rows(TokenRows{ids.unsqueeze(1), std::vector<int64_t>(T, 1)}, reading.batch_size),
            [&](const RowBatch&, const at::Tensor& act) {
              alone_parts.push_back(act.select(1, 0).clone());
            });
        auto alone = all_rows(alone_parts).to(in_text.device());  // [pos, units]
        auto acts =
            at::stack({in_text, alone}, 0).permute({0, 2, 1}).contiguous();  // [2, units, pos]
        auto diff = in_text - alone;                                         // [pos, units]

        // r over units for each token: the cosine of the centred vectors.
        auto a = in_text.to(at::kDouble);
        auto b = alone.to(at::kDouble);
        a = a - a.mean(1, true);
        b = b - b.mean(1, true);
        auto token_r =
            ((a * b).sum(1) / (a.square().sum(1) * b.square().sum(1)).sqrt()).clamp(-1.0, 1.0);

        Table result;
        result["acts"] = acts;
        result["r"] = pearson_all(in_text, alone);
        result["diff"] = difference_stats(diff);
        result["token_r"] = token_r;
        result["token_mean_abs_diff"] = diff.abs().mean(1);
        result["ids"] = ids;
        result["layer"] = reading.site.layer;
        result["site"] = reading.site.name;
        return result;
      });
}
