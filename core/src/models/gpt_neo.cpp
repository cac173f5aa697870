// GPT-Neo (GPTNeoForCausalLM): GPT-2's block with alternating global and local (windowed) causal
// attention, separate q/k/v projections without bias, scores in float32 and not scaled by
// 1/sqrt(d_head), lm_head tied to wte. Every Hugging Face module is a hook point.
#include "models/gpt_neo.hpp"

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

const detail::SiteTable& models::gpt_neo_sites() {
  static const detail::SiteTable table(
      {
          {Step::kEmbed, "transformer.wte"},
          {Step::kPosEmbed, "transformer.wpe"},
          {Step::kEmbedDropout, "transformer.drop"},
      },
      {
          {Step::kResidPre, "transformer.h.{L}:input"},
          {Step::kLn1In, "transformer.h.{L}.ln_1:input"},
          {Step::kLn1, "transformer.h.{L}.ln_1"},
          {Step::kAttnIn, "transformer.h.{L}.attn:input"},
          {Step::kSelfAttnIn, "transformer.h.{L}.attn.attention:input"},
          {Step::kQProj, "transformer.h.{L}.attn.attention.q_proj"},
          {Step::kKProj, "transformer.h.{L}.attn.attention.k_proj"},
          {Step::kVProj, "transformer.h.{L}.attn.attention.v_proj"},
          {Step::kQ},
          {Step::kK},
          {Step::kV},
          {Step::kScores, nullptr, "[batch, head, query_pos, key_pos] (masked, unscaled)"},
          {Step::kPattern, "transformer.h.{L}.attn.attention.attn_dropout"},
          {Step::kZ},
          {Step::kMerged, "transformer.h.{L}.attn.attention.out_proj:input"},
          {Step::kAttnProj, "transformer.h.{L}.attn.attention.out_proj"},
          {Step::kAttnDropout, "transformer.h.{L}.attn.attention.resid_dropout"},
          {Step::kAttnModule, "transformer.h.{L}.attn.attention"},
          {Step::kAttnOut, "transformer.h.{L}.attn"},
          {Step::kResidMid},
          {Step::kLn2In, "transformer.h.{L}.ln_2:input"},
          {Step::kLn2, "transformer.h.{L}.ln_2"},
          {Step::kMlpIn, "transformer.h.{L}.mlp:input"},
          {Step::kFcIn, "transformer.h.{L}.mlp.c_fc:input"},
          {Step::kMlpPre, "transformer.h.{L}.mlp.c_fc"},
          {Step::kActIn, "transformer.h.{L}.mlp.act:input"},
          {Step::kMlpPost, "transformer.h.{L}.mlp.act"},
          {Step::kProjIn, "transformer.h.{L}.mlp.c_proj:input"},
          {Step::kProj, "transformer.h.{L}.mlp.c_proj"},
          {Step::kMlpDropout, "transformer.h.{L}.mlp.dropout"},
          {Step::kMlpOut, "transformer.h.{L}.mlp"},
          {Step::kResidPost, "transformer.h.{L}"},
      },
      {
          {Step::kFinalNormIn, "transformer.ln_f:input"},
          {Step::kFinalNorm, "transformer.ln_f"},
          {Step::kBaseModel, "transformer"},
          {Step::kHeadIn, "lm_head:input"},
          {Step::kHead, "lm_head"},
      });
  return table;
}

GptNeoConfig GptNeoConfig::from_json(const nlohmann::json& json, const std::string& source) {
  GptNeoConfig c;
  c.vocab_size = detail::required_positive_int(json, "vocab_size", source);
  c.max_position_embeddings =
      detail::required_positive_int(json, "max_position_embeddings", source);
  c.hidden_size = detail::required_positive_int(json, "hidden_size", source);
  c.num_layers = detail::required_positive_int(json, "num_layers", source);
  c.num_heads = detail::required_positive_int(json, "num_heads", source);
  c.intermediate_size =
      detail::optional_positive_int(json, "intermediate_size", 4 * c.hidden_size, source);
  c.window_size = detail::optional_positive_int(json, "window_size", c.window_size, source);
  c.layer_norm_epsilon = json.value("layer_norm_epsilon", 1e-5);
  c.activation_function = json.value("activation_function", std::string("gelu_new"));
  check_activation_name(c.activation_function, source);
  if (json.contains("eos_token_id") && json["eos_token_id"].is_number_integer())
    c.eos_token_id = json["eos_token_id"];
  if (c.hidden_size % c.num_heads != 0) {
    throw Error(source + ": hidden_size (" + std::to_string(c.hidden_size) +
                ") must be divisible by num_heads (" + std::to_string(c.num_heads) + ")");
  }
  // [[["global", "local"], 6]] -> global, local, global, local, ... (12 layers)
  const auto& types = json.contains("attention_types")
                          ? json["attention_types"]
                          : nlohmann::json::parse(R"([[["global", "local"], 1]])");
  try {
    for (const auto& group : types) {
      for (int64_t repeat = 0; repeat < group.at(1).get<int64_t>(); ++repeat) {
        for (const auto& kind : group.at(0)) c.attention_layers.push_back(kind.get<std::string>());
      }
    }
  } catch (const nlohmann::json::exception&) {
    throw Error(source + ": attention_types must look like [[[\"global\", \"local\"], 6]], got " +
                types.dump());
  }
  if (!json.contains("attention_types") &&
      c.attention_layers.size() != static_cast<size_t>(c.num_layers)) {
    c.attention_layers.clear();
    for (int64_t i = 0; i < c.num_layers; ++i)
      c.attention_layers.push_back(i % 2 ? "local" : "global");
  }
  if (c.attention_layers.size() != static_cast<size_t>(c.num_layers)) {
    throw Error(source + ": attention_types describe " + std::to_string(c.attention_layers.size()) +
                " layers but num_layers is " + std::to_string(c.num_layers));
  }
  for (const auto& kind : c.attention_layers) {
    if (kind != "global" && kind != "local") {
      throw Error(source + ": attention type '" + kind +
                  "' is not supported (expected global or local)");
    }
  }
  return c;
}

namespace {

class GptNeoModel final : public detail::CheckpointModel {
 public:
  GptNeoModel(const GptNeoConfig& config, const models::Checkpoint& checkpoint);

  ForwardOutput run(const ForwardInput& input, const ForwardOptions& options,
                    KvCache* cache) override;
  at::Tensor embed_tokens(const at::Tensor& input_ids) const override {
    return at::embedding(wte_, input_ids.to(device_, at::kLong));
  }

 private:
  struct Block {
    detail::Norm ln_1, ln_2;
    detail::Linear q_proj, k_proj, v_proj, out_proj, c_fc, c_proj;
    bool local = false;  // windowed attention
  };
  at::Tensor block_forward(int layer, const Block& block, at::Tensor x, const at::Tensor& allowed,
                           detail::Pass& pass) const;

  GptNeoConfig config_;
  at::Tensor wte_, wpe_;
  std::vector<Block> blocks_;
  detail::Norm ln_f_;
};

GptNeoModel::GptNeoModel(const GptNeoConfig& config, const models::Checkpoint& checkpoint)
    : CheckpointModel({"gpt_neo", config.num_layers, config.hidden_size, config.vocab_size,
                       config.max_position_embeddings, config.eos_token_id},
                      models::gpt_neo_sites(), checkpoint.dir, checkpoint.options),
      config_(config) {
  const int64_t d = config.hidden_size, inner = config.intermediate_size, vocab = config.vocab_size;
  const double eps = config.layer_norm_epsilon;
  detail::WeightReader reader(
      checkpoint, "transformer.", "wte.weight", "GPT-Neo",
      "config.json (num_layers=" + std::to_string(config.num_layers) +
          ", hidden_size=" + std::to_string(d) + ", intermediate_size=" + std::to_string(inner) +
          ", vocab_size=" + std::to_string(vocab) +
          ", max_position_embeddings=" + std::to_string(config.max_position_embeddings) + ")");
  wte_ = reader.read("transformer.wte.weight", {vocab, d});
  wpe_ = reader.read("transformer.wpe.weight", {config.max_position_embeddings, d});
  constexpr auto kOutIn = detail::Linear::Layout::kOutIn;
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    const std::string p = "transformer.h." + std::to_string(layer) + ".";
    Block b;
    b.ln_1 = reader.layer_norm(p + "ln_1", d, eps);
    b.q_proj = reader.linear(p + "attn.attention.q_proj", d, d, kOutIn, /*with_bias=*/false);
    b.k_proj = reader.linear(p + "attn.attention.k_proj", d, d, kOutIn, /*with_bias=*/false);
    b.v_proj = reader.linear(p + "attn.attention.v_proj", d, d, kOutIn, /*with_bias=*/false);
    b.out_proj = reader.linear(p + "attn.attention.out_proj", d, d);
    b.ln_2 = reader.layer_norm(p + "ln_2", d, eps);
    b.c_fc = reader.linear(p + "mlp.c_fc", d, inner);
    b.c_proj = reader.linear(p + "mlp.c_proj", inner, d);
    b.local = config.attention_layers[static_cast<size_t>(layer)] == "local";
    blocks_.push_back(std::move(b));
  }
  ln_f_ = reader.layer_norm("transformer.ln_f", d, eps);
  // Tied to wte, as in Hugging Face.
  if (reader.has("lm_head.weight")) reader.check_tied_copy("lm_head.weight", {vocab, d});
  reader.check_unused(std::regex(R"(.*\.attn\.attention\.(bias|masked_bias)$)"), "h",
                      config.num_layers);
  set_parameters(reader);
  set_output_head({std::nullopt, "", ln_f_, wte_, {}});
}

at::Tensor GptNeoModel::block_forward(int layer, const Block& block, at::Tensor x,
                                      const at::Tensor& allowed, detail::Pass& pass) const {
  const auto site = pass.block(layer);
  auto resid_pre = site(Step::kResidPre, std::move(x));
  auto ln1 = site(Step::kLn1, block.ln_1(site(Step::kLn1In, resid_pre)));

  auto attn_in = site(Step::kSelfAttnIn, site(Step::kAttnIn, ln1));
  auto q = site(Step::kQProj, block.q_proj(attn_in));
  auto k = site(Step::kKProj, block.k_proj(attn_in));
  auto v = site(Step::kVProj, block.v_proj(attn_in));
  detail::ScoreScaling scaling;
  scaling.by_sqrt_d_head = false;
  scaling.in_float32 = true;
  auto merged = detail::attention(site, q, k, v, config_.num_heads, allowed, scaling, pass);
  auto projected = site(Step::kAttnProj, block.out_proj(merged));
  auto attn_out =
      site(Step::kAttnOut, site(Step::kAttnModule, site(Step::kAttnDropout, std::move(projected))));
  auto resid_mid = site(Step::kResidMid, resid_pre + attn_out);
  auto ln2 = site(Step::kLn2, block.ln_2(site(Step::kLn2In, resid_mid)));

  auto mlp_out =
      site(Step::kMlpOut, detail::mlp(site, block.c_fc, block.c_proj, config_.activation_function,
                                      site(Step::kMlpIn, ln2)));
  return site(Step::kResidPost, resid_mid + mlp_out);
}

ForwardOutput GptNeoModel::run(const ForwardInput& input, const ForwardOptions& options,
                               KvCache* cache) {
  detail::Pass pass(*this, input, options,
                    {config_.vocab_size, config_.hidden_size, config_.max_position_embeddings},
                    cache);
  const auto& in = pass.input();
  const at::Tensor global_mask = detail::causal_mask(in);
  const at::Tensor local_mask = detail::causal_mask(in, config_.window_size);
  auto tokens = in.has_ids ? pass.before(Step::kEmbed, at::embedding(wte_, in.ids)) : in.embeds;
  auto positions = pass.before(Step::kPosEmbed, at::embedding(wpe_, in.position_ids));
  auto x = pass.before(Step::kEmbedDropout, tokens + positions);  // [batch, pos, d_model]
  for (int layer = 0; layer < pass.layers(); ++layer) {
    pass.keep_hidden_state(x);
    const auto& block = blocks_[static_cast<size_t>(layer)];
    x = block_forward(layer, block, std::move(x), block.local ? local_mask : global_mask, pass);
  }
  return pass.finish_causal_lm(x, ln_f_, wte_);
}

}  // namespace

namespace models {

std::unique_ptr<Model> load_gpt_neo(const Checkpoint& checkpoint) {
  return std::make_unique<GptNeoModel>(
      GptNeoConfig::from_json(checkpoint.config, checkpoint.config_source), checkpoint);
}

}  // namespace models
}  // namespace llmscope
