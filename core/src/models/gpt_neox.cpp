// GPT-NeoX (GPTNeoXForCausalLM: Pythia): pre-LayerNorm blocks whose fused query_key_value is laid
// out per head ([head, 3, d_head]), rotary position embedding on the first rotary_pct of each
// head (rotate-half), attention scores in float32, parallel (x + attn(ln1 x) + mlp(ln2 x)) or
// sequential residual, and an untied embed_out unless tie_word_embeddings. Every Hugging Face
// module is a hook point.
#include <nlohmann/json.hpp>

#include <regex>

#include "llmscope/error.hpp"
#include "llmscope/gpt2_config.hpp"
#include "models/architectures.hpp"
#include "models/model_parts.hpp"

namespace llmscope {

using detail::Step;

// ---- Hook points: the steps this architecture has, in the order forward() reaches them, with
// Hugging Face's module paths (each step's alias and shape come from sites.cpp) ----

const detail::SiteTable& models::gpt_neox_sites() {
  static const detail::SiteTable table(
      {
          {Step::kEmbed, "gpt_neox.embed_in"},
          {Step::kEmbedDropout, "gpt_neox.emb_dropout"},
      },
      {
          {Step::kResidPre, "gpt_neox.layers.{L}:input"},
          {Step::kLn1In, "gpt_neox.layers.{L}.input_layernorm:input"},
          {Step::kLn1, "gpt_neox.layers.{L}.input_layernorm"},
          {Step::kAttnIn, "gpt_neox.layers.{L}.attention:input"},
          {Step::kQkvIn, "gpt_neox.layers.{L}.attention.query_key_value:input"},
          {Step::kQkv, "gpt_neox.layers.{L}.attention.query_key_value",
           "[batch, pos, 3 * d_model] (per head: q, k, v of head 0, then of head 1, ...)"},
          {Step::kQ},
          {Step::kK},
          {Step::kV},
          {Step::kRotQ},
          {Step::kRotK},
          {Step::kScores, nullptr, "[batch, head, query_pos, key_pos] (masked, scaled, float32)"},
          {Step::kPattern},
          {Step::kZ},
          {Step::kMerged, "gpt_neox.layers.{L}.attention.dense:input"},
          {Step::kAttnProj, "gpt_neox.layers.{L}.attention.dense"},
          {Step::kAttnModule, "gpt_neox.layers.{L}.attention"},
          {Step::kAttnOut, "gpt_neox.layers.{L}.post_attention_dropout"},
          {Step::kResidMid, nullptr,
           "[batch, pos, d_model] (sequential residual only: never fires with "
           "use_parallel_residual)"},
          {Step::kLn2In, "gpt_neox.layers.{L}.post_attention_layernorm:input"},
          {Step::kLn2, "gpt_neox.layers.{L}.post_attention_layernorm"},
          {Step::kMlpIn, "gpt_neox.layers.{L}.mlp:input"},
          {Step::kFcIn, "gpt_neox.layers.{L}.mlp.dense_h_to_4h:input"},
          {Step::kMlpPre, "gpt_neox.layers.{L}.mlp.dense_h_to_4h"},
          {Step::kActIn, "gpt_neox.layers.{L}.mlp.act:input"},
          {Step::kMlpPost, "gpt_neox.layers.{L}.mlp.act"},
          {Step::kProjIn, "gpt_neox.layers.{L}.mlp.dense_4h_to_h:input"},
          {Step::kProj, "gpt_neox.layers.{L}.mlp.dense_4h_to_h"},
          {Step::kMlpModule, "gpt_neox.layers.{L}.mlp"},
          {Step::kMlpOut, "gpt_neox.layers.{L}.post_mlp_dropout"},
          {Step::kResidPost, "gpt_neox.layers.{L}"},
      },
      {
          {Step::kFinalNormIn, "gpt_neox.final_layer_norm:input"},
          {Step::kFinalNorm, "gpt_neox.final_layer_norm"},
          {Step::kBaseModel, "gpt_neox"},
          {Step::kHeadIn, "embed_out:input"},
          {Step::kHead, "embed_out"},
      });
  return table;
}

namespace {

// config.json as transformers 4.x (rotary_pct, rotary_emb_base, rope_scaling) and 5.x
// (rope_parameters: rope_theta, partial_rotary_factor, rope_type) write it.
struct GptNeoxConfig {
  int64_t vocab_size = 0, hidden_size = 0, num_hidden_layers = 0, num_attention_heads = 0;
  int64_t intermediate_size = 0, max_position_embeddings = 0, eos_token_id = -1;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "gelu";
  detail::RopeConfig rope;  // rope.partial is rotary_pct
  bool use_parallel_residual = true;
  bool tie_word_embeddings = false;
  bool attention_bias = true;

  int64_t head_size() const { return hidden_size / num_attention_heads; }
  int64_t rotary_dims() const {
    return static_cast<int64_t>(static_cast<double>(head_size()) * rope.partial);
  }

  static GptNeoxConfig from_json(const nlohmann::json& json, const std::string& source);
};

GptNeoxConfig GptNeoxConfig::from_json(const nlohmann::json& json, const std::string& source) {
  GptNeoxConfig c;
  c.vocab_size = detail::required_positive_int(json, "vocab_size", source);
  c.hidden_size = detail::required_positive_int(json, "hidden_size", source);
  c.num_hidden_layers = detail::required_positive_int(json, "num_hidden_layers", source);
  c.num_attention_heads = detail::required_positive_int(json, "num_attention_heads", source);
  c.intermediate_size = detail::required_positive_int(json, "intermediate_size", source);
  c.max_position_embeddings =
      detail::required_positive_int(json, "max_position_embeddings", source);
  if (json.contains("eos_token_id") && json["eos_token_id"].is_number_integer())
    c.eos_token_id = json["eos_token_id"];
  if (json.contains("layer_norm_eps") && json["layer_norm_eps"].is_number())
    c.layer_norm_eps = json["layer_norm_eps"];
  c.hidden_act = json.value("hidden_act", std::string("gelu"));
  check_activation_name(c.hidden_act, source);
  c.use_parallel_residual = detail::optional_flag(json, "use_parallel_residual", true, source);
  c.tie_word_embeddings = detail::optional_flag(json, "tie_word_embeddings", false, source);
  c.attention_bias = detail::optional_flag(json, "attention_bias", true, source);
  if (c.hidden_size % c.num_attention_heads != 0) {
    throw Error(source + ": hidden_size (" + std::to_string(c.hidden_size) +
                ") must be divisible by num_attention_heads (" +
                std::to_string(c.num_attention_heads) + ")");
  }

  c.rope = detail::read_rope_config(json, source, {"rotary_emb_base", "rope_theta"}, 10000,
                                    {"rotary_pct", "partial_rotary_factor"}, 0.25);
  if (c.rotary_dims() < 2 || c.rotary_dims() % 2 != 0) {
    throw Error(source + ": rotary_pct " + std::to_string(c.rope.partial) + " of head size " +
                std::to_string(c.head_size()) + " gives " + std::to_string(c.rotary_dims()) +
                " rotary dimensions; an even number of at least 2 is needed");
  }
  return c;
}

class GptNeoxModel final : public detail::CheckpointModel {
 public:
  GptNeoxModel(const GptNeoxConfig& config, const models::Checkpoint& checkpoint);

  ForwardOutput run(const ForwardInput& input, const ForwardOptions& options,
                    KvCache* cache) override;
  at::Tensor embed_tokens(const at::Tensor& input_ids) const override {
    return at::embedding(embed_in_, input_ids.to(device_, at::kLong));
  }

 private:
  struct Block {
    detail::Norm input_layernorm, post_attention_layernorm;
    detail::Linear query_key_value, dense, dense_h_to_4h, dense_4h_to_h;
  };
  at::Tensor attention(int layer, const Block& block, const at::Tensor& x,
                       const at::Tensor& allowed, const detail::Rotary& rotary,
                       detail::Pass& pass) const;
  at::Tensor block_forward(int layer, const Block& block, at::Tensor x, const at::Tensor& allowed,
                           const detail::Rotary& rotary, detail::Pass& pass) const;

  GptNeoxConfig config_;
  at::Tensor embed_in_, embed_out_, inv_freq_;
  std::vector<Block> blocks_;
  detail::Norm final_layer_norm_;
};

GptNeoxModel::GptNeoxModel(const GptNeoxConfig& config, const models::Checkpoint& checkpoint)
    : CheckpointModel({"gpt_neox", config.num_hidden_layers, config.hidden_size, config.vocab_size,
                       config.max_position_embeddings, config.eos_token_id},
                      models::gpt_neox_sites(), checkpoint.dir, checkpoint.options),
      config_(config) {
  const int64_t d = config.hidden_size, inner = config.intermediate_size, vocab = config.vocab_size;
  const double eps = config.layer_norm_eps;
  const bool bias = config.attention_bias;
  detail::WeightReader reader(
      checkpoint, "gpt_neox.", "embed_in.weight", "GPT-NeoX",
      "config.json (num_hidden_layers=" + std::to_string(config.num_hidden_layers) +
          ", hidden_size=" + std::to_string(d) + ", intermediate_size=" + std::to_string(inner) +
          ", vocab_size=" + std::to_string(vocab) + ")");
  embed_in_ = reader.read("gpt_neox.embed_in.weight", {vocab, d});
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const std::string p = "gpt_neox.layers." + std::to_string(layer) + ".";
    Block b;
    b.input_layernorm = reader.layer_norm(p + "input_layernorm", d, eps);
    b.post_attention_layernorm = reader.layer_norm(p + "post_attention_layernorm", d, eps);
    b.query_key_value = reader.linear(p + "attention.query_key_value", d, 3 * d,
                                      detail::Linear::Layout::kOutIn, bias);
    b.dense = reader.linear(p + "attention.dense", d, d, detail::Linear::Layout::kOutIn, bias);
    b.dense_h_to_4h = reader.linear(p + "mlp.dense_h_to_4h", d, inner);
    b.dense_4h_to_h = reader.linear(p + "mlp.dense_4h_to_h", inner, d);
    blocks_.push_back(std::move(b));
  }
  final_layer_norm_ = reader.layer_norm("gpt_neox.final_layer_norm", d, eps);
  if (config.tie_word_embeddings) {
    embed_out_ = embed_in_;
    if (reader.has("embed_out.weight")) reader.check_tied_copy("embed_out.weight", {vocab, d});
  } else {
    embed_out_ = reader.read("embed_out.weight", {vocab, d});
  }
  // Buffers older transformers saved with the weights.
  reader.check_unused(std::regex(R"(.*\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$)"),
                      "layers", config.num_hidden_layers);
  set_parameters(reader);
  set_output_head({std::nullopt, "", final_layer_norm_, embed_out_, {}});
  inv_freq_ = detail::rope_inverse_frequencies(config.rope, config.rotary_dims());
}

at::Tensor GptNeoxModel::attention(int layer, const Block& block, const at::Tensor& x,
                                   const at::Tensor& allowed, const detail::Rotary& rotary,
                                   detail::Pass& pass) const {
  const auto site = pass.block(layer);
  const int64_t batch = x.size(0), pos = x.size(1), heads = config_.num_attention_heads;
  const int64_t d = config_.hidden_size, d_head = config_.head_size();
  auto qkv = site(Step::kQkv, block.query_key_value(site(Step::kQkvIn, site(Step::kAttnIn, x))));
  // Per head: [q | k | v] of head 0, then of head 1, ...
  auto per_head = qkv.view({batch, pos, heads, 3, d_head});
  auto q = per_head.select(3, 0).reshape({batch, pos, d});
  auto k = per_head.select(3, 1).reshape({batch, pos, d});
  auto v = per_head.select(3, 2).reshape({batch, pos, d});
  detail::ScoreScaling scaling;
  scaling.in_float32 = true;
  auto merged = detail::attention(site, q, k, v, heads, allowed, scaling, pass, &rotary);
  auto out = site(Step::kAttnModule, site(Step::kAttnProj, block.dense(merged)));
  return site(Step::kAttnOut, std::move(out));
}

at::Tensor GptNeoxModel::block_forward(int layer, const Block& block, at::Tensor x,
                                       const at::Tensor& allowed, const detail::Rotary& rotary,
                                       detail::Pass& pass) const {
  const auto site = pass.block(layer);
  auto resid_pre = site(Step::kResidPre, std::move(x));
  auto ln1 = site(Step::kLn1, block.input_layernorm(site(Step::kLn1In, resid_pre)));
  auto attn_out = attention(layer, block, ln1, allowed, rotary, pass);
  auto mlp = [&](const at::Tensor& h) {
    auto ln2 = site(Step::kLn2, block.post_attention_layernorm(site(Step::kLn2In, h)));
    auto out = detail::mlp(site, block.dense_h_to_4h, block.dense_4h_to_h, config_.hidden_act,
                           site(Step::kMlpIn, ln2));
    return site(Step::kMlpOut, site(Step::kMlpModule, std::move(out)));
  };
  if (config_.use_parallel_residual) {
    auto mlp_out = mlp(resid_pre);
    return site(Step::kResidPost, mlp_out + attn_out + resid_pre);
  }
  auto resid_mid = site(Step::kResidMid, attn_out + resid_pre);
  auto mlp_out = mlp(resid_mid);
  return site(Step::kResidPost, mlp_out + resid_mid);
}

ForwardOutput GptNeoxModel::run(const ForwardInput& input, const ForwardOptions& options,
                                KvCache* cache) {
  detail::Pass pass(*this, input, options,
                    {config_.vocab_size, config_.hidden_size, config_.max_position_embeddings},
                    cache);
  const auto& in = pass.input();
  const at::Tensor allowed = detail::causal_mask(in);
  auto tokens =
      in.has_ids ? pass.before(Step::kEmbed, at::embedding(embed_in_, in.ids)) : in.embeds;
  auto x = pass.before(Step::kEmbedDropout, tokens);  // [batch, pos, d_model]
  const detail::Rotary rotary = detail::rotary_at(in.position_ids, inv_freq_, x.scalar_type());
  for (int layer = 0; layer < pass.layers(); ++layer) {
    pass.keep_hidden_state(x);
    x = block_forward(layer, blocks_[static_cast<size_t>(layer)], std::move(x), allowed, rotary,
                      pass);
  }
  return pass.finish_causal_lm(x, final_layer_norm_, embed_out_);
}

}  // namespace

namespace models {

std::unique_ptr<Model> load_gpt_neox(const Checkpoint& checkpoint) {
  return std::make_unique<GptNeoxModel>(
      GptNeoxConfig::from_json(checkpoint.config, checkpoint.config_source), checkpoint);
}

}  // namespace models
}  // namespace llmscope
