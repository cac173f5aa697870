// The Llama graph (LlamaForCausalLM; MistralForCausalLM and Qwen2ForCausalLM are the same graph):
// pre-RMSNorm blocks, grouped-query attention with rotary position embedding (rope_theta,
// rope scaling default/linear/llama3, head_dim when given), SiLU-gated MLP, and lm_head tied to
// embed_tokens when tie_word_embeddings. Qwen2 adds biases to q/k/v; Llama has attention_bias and
// mlp_bias; Mistral and Qwen2 may attend within a sliding window. Every Hugging Face module is a
// hook point.
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

const detail::SiteTable& models::llama_sites() {
  static const detail::SiteTable table(
      {
          {Step::kEmbed, "model.embed_tokens"},
      },
      {
          {Step::kResidPre, "model.layers.{L}:input"},
          {Step::kLn1In, "model.layers.{L}.input_layernorm:input"},
          {Step::kLn1, "model.layers.{L}.input_layernorm"},
          {Step::kAttnIn, "model.layers.{L}.self_attn:input"},
          {Step::kQProj, "model.layers.{L}.self_attn.q_proj", "[batch, pos, head * d_head]"},
          {Step::kKProj, "model.layers.{L}.self_attn.k_proj", "[batch, pos, kv_head * d_head]"},
          {Step::kVProj, "model.layers.{L}.self_attn.v_proj", "[batch, pos, kv_head * d_head]"},
          {Step::kQ},
          {Step::kK, nullptr,
           "[batch, pos, kv_head, d_head] (num_key_value_heads heads under grouped-query "
           "attention)"},
          {Step::kV, nullptr,
           "[batch, pos, kv_head, d_head] (num_key_value_heads heads under grouped-query "
           "attention)"},
          {Step::kRotQ},
          {Step::kRotK, nullptr, "[batch, pos, kv_head, d_head] (after rotary)"},
          {Step::kScores, nullptr, "[batch, head, query_pos, key_pos] (masked, scaled)"},
          {Step::kPattern},
          {Step::kZ},
          {Step::kMerged, "model.layers.{L}.self_attn.o_proj:input", "[batch, pos, head * d_head]"},
          {Step::kAttnProj, "model.layers.{L}.self_attn.o_proj"},
          {Step::kAttnOut, "model.layers.{L}.self_attn"},
          {Step::kResidMid},
          {Step::kLn2In, "model.layers.{L}.post_attention_layernorm:input"},
          {Step::kLn2, "model.layers.{L}.post_attention_layernorm"},
          {Step::kMlpIn, "model.layers.{L}.mlp:input"},
          {Step::kMlpPre, "model.layers.{L}.mlp.gate_proj",
           "[batch, pos, d_mlp] (gate, before the activation)"},
          {Step::kMlpPreLinear, "model.layers.{L}.mlp.up_proj"},
          {Step::kMlpAct, "model.layers.{L}.mlp.act_fn",
           "[batch, pos, d_mlp] (activation of the gate)"},
          {Step::kMlpPost, "model.layers.{L}.mlp.down_proj:input",
           "[batch, pos, d_mlp] (act(gate) * up)"},
          {Step::kProj, "model.layers.{L}.mlp.down_proj"},
          {Step::kMlpOut, "model.layers.{L}.mlp"},
          {Step::kResidPost, "model.layers.{L}"},
      },
      {
          {Step::kFinalNormIn, "model.norm:input"},
          {Step::kFinalNorm, "model.norm"},
          {Step::kBaseModel, "model"},
          {Step::kHeadIn, "lm_head:input"},
          {Step::kHead, "lm_head"},
      });
  return table;
}

namespace {

// The family members differ only in defaults and which projections carry biases.
enum class Variant { kLlama, kMistral, kQwen2 };

struct LlamaConfig {
  Variant variant = Variant::kLlama;
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0;
  int64_t num_attention_heads = 0, num_key_value_heads = 0, head_dim = 0;
  int64_t max_position_embeddings = 0, eos_token_id = -1;
  int64_t sliding_window = 0;  // 0: attend to every earlier position
  double rms_norm_eps = 1e-6;
  std::string hidden_act = "silu";
  detail::RopeConfig rope;
  bool qkv_bias = false, o_bias = false, mlp_bias = false;
  bool tie_word_embeddings = false;

  static LlamaConfig from_json(const nlohmann::json& json, const std::string& source,
                               Variant variant);
};

LlamaConfig LlamaConfig::from_json(const nlohmann::json& json, const std::string& source,
                                   Variant variant) {
  LlamaConfig c;
  c.variant = variant;
  c.vocab_size = detail::required_positive_int(json, "vocab_size", source);
  c.hidden_size = detail::required_positive_int(json, "hidden_size", source);
  c.intermediate_size = detail::required_positive_int(json, "intermediate_size", source);
  c.num_hidden_layers = detail::required_positive_int(json, "num_hidden_layers", source);
  c.num_attention_heads = detail::required_positive_int(json, "num_attention_heads", source);
  c.num_key_value_heads =
      detail::optional_positive_int(json, "num_key_value_heads", c.num_attention_heads, source);
  c.max_position_embeddings =
      detail::required_positive_int(json, "max_position_embeddings", source);
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    throw Error(source + ": num_attention_heads (" + std::to_string(c.num_attention_heads) +
                ") must be a multiple of num_key_value_heads (" +
                std::to_string(c.num_key_value_heads) + ")");
  }
  if (!json.contains("head_dim") || json["head_dim"].is_null()) {
    if (c.hidden_size % c.num_attention_heads != 0) {
      throw Error(source + ": hidden_size (" + std::to_string(c.hidden_size) +
                  ") must be divisible by num_attention_heads (" +
                  std::to_string(c.num_attention_heads) + ") when head_dim is not given");
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  } else {
    c.head_dim = detail::required_positive_int(json, "head_dim", source);
  }
  // Llama 3 lists several end-of-text ids: generation stops at the first.
  if (auto eos = json.find("eos_token_id"); eos != json.end()) {
    if (eos->is_number_integer()) {
      c.eos_token_id = *eos;
    } else if (eos->is_array() && !eos->empty() && (*eos)[0].is_number_integer()) {
      c.eos_token_id = (*eos)[0];
    }
  }
  if (json.contains("rms_norm_eps") && json["rms_norm_eps"].is_number())
    c.rms_norm_eps = json["rms_norm_eps"];
  c.hidden_act = json.value("hidden_act", std::string("silu"));
  check_activation_name(c.hidden_act, source);
  c.rope =
      detail::read_rope_config(json, source, {"rope_theta"}, 10000, {"partial_rotary_factor"}, 1.0);
  if (c.rope.partial != 1.0) {
    throw Error(source + ": partial_rotary_factor " + std::to_string(c.rope.partial) +
                " is not supported for this architecture (every dimension rotates)");
  }
  if (c.head_dim % 2 != 0) throw Error(source + ": head_dim must be even for rotary embeddings");
  c.tie_word_embeddings = detail::optional_flag(json, "tie_word_embeddings", false, source);
  if (variant == Variant::kQwen2) {
    c.qkv_bias = true;  // Qwen2's q/k/v always carry biases; o_proj and the MLP never do
    if (detail::optional_flag(json, "use_sliding_window", false, source))
      c.sliding_window = detail::optional_positive_int(json, "sliding_window", 0, source);
  } else {
    c.qkv_bias = c.o_bias = detail::optional_flag(json, "attention_bias", false, source);
    c.mlp_bias = detail::optional_flag(json, "mlp_bias", false, source);
    if (variant == Variant::kMistral)
      c.sliding_window = detail::optional_positive_int(json, "sliding_window", 0, source);
  }
  return c;
}

const char* model_type(Variant v) {
  return v == Variant::kQwen2 ? "qwen2" : v == Variant::kMistral ? "mistral" : "llama";
}

class LlamaModel final : public detail::CheckpointModel {
 public:
  LlamaModel(const LlamaConfig& config, const models::Checkpoint& checkpoint);

  ForwardOutput run(const ForwardInput& input, const ForwardOptions& options,
                    KvCache* cache) override;
  at::Tensor embed_tokens(const at::Tensor& input_ids) const override {
    return at::embedding(embed_tokens_, input_ids.to(device_, at::kLong));
  }

 private:
  struct Block {
    detail::Norm input_layernorm, post_attention_layernorm;
    detail::Linear q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
  };
  at::Tensor block_forward(int layer, const Block& block, at::Tensor x, const at::Tensor& allowed,
                           const detail::Rotary& rotary, detail::Pass& pass) const;

  LlamaConfig config_;
  at::Tensor embed_tokens_, lm_head_, inv_freq_;
  std::vector<Block> blocks_;
  detail::Norm norm_;
};

LlamaModel::LlamaModel(const LlamaConfig& config, const models::Checkpoint& checkpoint)
    : CheckpointModel({model_type(config.variant), config.num_hidden_layers, config.hidden_size,
                       config.vocab_size, config.max_position_embeddings, config.eos_token_id},
                      models::llama_sites(), checkpoint.dir, checkpoint.options),
      config_(config) {
  const int64_t d = config.hidden_size, inner = config.intermediate_size, vocab = config.vocab_size;
  const int64_t q_width = config.num_attention_heads * config.head_dim;
  const int64_t kv_width = config.num_key_value_heads * config.head_dim;
  const double eps = config.rms_norm_eps;
  constexpr auto kOutIn = detail::Linear::Layout::kOutIn;
  detail::WeightReader reader(
      checkpoint, "model.", "embed_tokens.weight", "Llama",
      "config.json (num_hidden_layers=" + std::to_string(config.num_hidden_layers) +
          ", hidden_size=" + std::to_string(d) +
          ", num_attention_heads=" + std::to_string(config.num_attention_heads) +
          ", num_key_value_heads=" + std::to_string(config.num_key_value_heads) + ", head_dim=" +
          std::to_string(config.head_dim) + ", intermediate_size=" + std::to_string(inner) +
          ", vocab_size=" + std::to_string(vocab) + ")");
  embed_tokens_ = reader.read("model.embed_tokens.weight", {vocab, d});
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    Block b;
    b.input_layernorm = reader.rms_norm(p + "input_layernorm", d, eps);
    b.q_proj = reader.linear(p + "self_attn.q_proj", d, q_width, kOutIn, config.qkv_bias);
    b.k_proj = reader.linear(p + "self_attn.k_proj", d, kv_width, kOutIn, config.qkv_bias);
    b.v_proj = reader.linear(p + "self_attn.v_proj", d, kv_width, kOutIn, config.qkv_bias);
    b.o_proj = reader.linear(p + "self_attn.o_proj", q_width, d, kOutIn, config.o_bias);
    b.post_attention_layernorm = reader.rms_norm(p + "post_attention_layernorm", d, eps);
    b.gate_proj = reader.linear(p + "mlp.gate_proj", d, inner, kOutIn, config.mlp_bias);
    b.up_proj = reader.linear(p + "mlp.up_proj", d, inner, kOutIn, config.mlp_bias);
    b.down_proj = reader.linear(p + "mlp.down_proj", inner, d, kOutIn, config.mlp_bias);
    blocks_.push_back(std::move(b));
  }
  norm_ = reader.rms_norm("model.norm", d, eps);
  if (config.tie_word_embeddings) {
    lm_head_ = embed_tokens_;
    if (reader.has("lm_head.weight")) reader.check_tied_copy("lm_head.weight", {vocab, d});
  } else {
    lm_head_ = reader.read("lm_head.weight", {vocab, d});
  }
  reader.check_unused(std::regex(R"(.*\.self_attn\.rotary_emb\.inv_freq$)"), "layers",
                      config.num_hidden_layers);
  set_parameters(reader);
  set_output_head({std::nullopt, "", norm_, lm_head_, {}});
  inv_freq_ = detail::rope_inverse_frequencies(config.rope, config.head_dim);
}

at::Tensor LlamaModel::block_forward(int layer, const Block& block, at::Tensor x,
                                     const at::Tensor& allowed, const detail::Rotary& rotary,
                                     detail::Pass& pass) const {
  const auto site = pass.block(layer);
  auto resid_pre = site(Step::kResidPre, std::move(x));
  auto ln1 = site(Step::kLn1, block.input_layernorm(site(Step::kLn1In, resid_pre)));

  auto attn_in = site(Step::kAttnIn, ln1);
  auto q = site(Step::kQProj, block.q_proj(attn_in));
  auto k = site(Step::kKProj, block.k_proj(attn_in));
  auto v = site(Step::kVProj, block.v_proj(attn_in));
  detail::ScoreScaling scaling;
  scaling.softmax_in_float32 = true;
  auto merged = detail::attention(site, q, k, v, config_.num_attention_heads, allowed, scaling,
                                  pass, &rotary, config_.num_key_value_heads);
  auto attn_out = site(Step::kAttnOut, site(Step::kAttnProj, block.o_proj(merged)));
  auto resid_mid = site(Step::kResidMid, resid_pre + attn_out);

  auto ln2 = site(Step::kLn2, block.post_attention_layernorm(site(Step::kLn2In, resid_mid)));
  auto mlp_out =
      site(Step::kMlpOut, detail::gated_mlp(site, block.gate_proj, block.up_proj, block.down_proj,
                                            config_.hidden_act, site(Step::kMlpIn, ln2)));
  return site(Step::kResidPost, resid_mid + mlp_out);
}

ForwardOutput LlamaModel::run(const ForwardInput& input, const ForwardOptions& options,
                              KvCache* cache) {
  detail::Pass pass(*this, input, options,
                    {config_.vocab_size, config_.hidden_size, config_.max_position_embeddings},
                    cache);
  const auto& in = pass.input();
  const at::Tensor allowed = detail::causal_mask(in, config_.sliding_window);
  auto x = in.has_ids ? pass.before(Step::kEmbed, at::embedding(embed_tokens_, in.ids))
                      : in.embeds;  // [batch, pos, d_model]
  const detail::Rotary rotary = detail::rotary_at(in.position_ids, inv_freq_, x.scalar_type());
  for (int layer = 0; layer < pass.layers(); ++layer) {
    pass.keep_hidden_state(x);
    x = block_forward(layer, blocks_[static_cast<size_t>(layer)], std::move(x), allowed, rotary,
                      pass);
  }
  return pass.finish_causal_lm(x, norm_, lm_head_);
}

std::unique_ptr<Model> load_variant(const models::Checkpoint& checkpoint, Variant variant) {
  return std::make_unique<LlamaModel>(
      LlamaConfig::from_json(checkpoint.config, checkpoint.config_source, variant), checkpoint);
}

}  // namespace

namespace models {

std::unique_ptr<Model> load_llama(const Checkpoint& checkpoint) {
  return load_variant(checkpoint, Variant::kLlama);
}
std::unique_ptr<Model> load_mistral(const Checkpoint& checkpoint) {
  return load_variant(checkpoint, Variant::kMistral);
}
std::unique_ptr<Model> load_qwen2(const Checkpoint& checkpoint) {
  return load_variant(checkpoint, Variant::kQwen2);
}

}  // namespace models
}  // namespace llmscope
