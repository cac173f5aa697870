// GPT-2 (GPT2LMHeadModel): pre-LayerNorm blocks with fused Conv1D q|k|v, learned positions, and
// lm_head tied to wte when the checkpoint has none; every Hugging Face module a hook point.
#include <regex>

#include "llmscope/error.hpp"
#include "llmscope/gpt2_config.hpp"
#include "models/architectures.hpp"
#include "models/model_parts.hpp"

namespace llmscope {

using detail::Step;

// ---- Hook points: the steps this architecture has, in the order forward() reaches them, with
// Hugging Face's module paths (each step's alias and shape come from sites.cpp) ----

const detail::SiteTable& models::gpt2_sites() {
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
          {Step::kQkvIn, "transformer.h.{L}.attn.c_attn:input"},
          {Step::kQkv, "transformer.h.{L}.attn.c_attn"},
          {Step::kQ},
          {Step::kK},
          {Step::kV},
          {Step::kScores},
          {Step::kPattern, "transformer.h.{L}.attn.attn_dropout"},
          {Step::kZ},
          {Step::kMerged, "transformer.h.{L}.attn.c_proj:input"},
          {Step::kAttnProj, "transformer.h.{L}.attn.c_proj"},
          {Step::kAttnDropout, "transformer.h.{L}.attn.resid_dropout"},
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

namespace {

class Gpt2Model final : public detail::CheckpointModel {
 public:
  Gpt2Model(const Gpt2Config& config, const models::Checkpoint& checkpoint);

  ForwardOutput run(const ForwardInput& input, const ForwardOptions& options,
                    KvCache* cache) override;
  at::Tensor embed_tokens(const at::Tensor& input_ids) const override {
    return at::embedding(wte_, input_ids.to(device_, at::kLong));
  }

 private:
  struct Block {
    detail::Norm ln_1, ln_2;
    detail::Linear c_attn, attn_c_proj, c_fc, mlp_c_proj;  // Conv1D: stored [in, out]
  };
  at::Tensor block_forward(int layer, const Block& block, at::Tensor x, const at::Tensor& allowed,
                           detail::Pass& pass) const;

  Gpt2Config config_;
  at::Tensor wte_, wpe_, lm_head_;  // lm_head_ aliases wte_ when tied
  std::vector<Block> blocks_;
  detail::Norm ln_f_;
};

Gpt2Model::Gpt2Model(const Gpt2Config& config, const models::Checkpoint& checkpoint)
    : CheckpointModel({"gpt2", config.n_layer, config.n_embd, config.vocab_size, config.n_positions,
                       config.eos_token_id},
                      models::gpt2_sites(), checkpoint.dir, checkpoint.options),
      config_(config) {
  const int64_t d = config.n_embd, inner = config.n_inner, vocab = config.vocab_size;
  const double eps = config.layer_norm_epsilon;
  constexpr auto kConv1D = detail::Linear::Layout::kInOut;
  detail::WeightReader reader(
      checkpoint, "transformer.", "wte.weight", "GPT-2",
      "config.json (n_layer=" + std::to_string(config.n_layer) + ", n_embd=" + std::to_string(d) +
          ", n_inner=" + std::to_string(inner) + ", vocab_size=" + std::to_string(vocab) +
          ", n_positions=" + std::to_string(config.n_positions) + ")");
  wte_ = reader.read("transformer.wte.weight", {vocab, d});
  wpe_ = reader.read("transformer.wpe.weight", {config.n_positions, d});
  for (int64_t layer = 0; layer < config.n_layer; ++layer) {
    const std::string p = "transformer.h." + std::to_string(layer) + ".";
    Block block;
    block.ln_1 = reader.layer_norm(p + "ln_1", d, eps);
    block.c_attn = reader.linear(p + "attn.c_attn", d, 3 * d, kConv1D);
    block.attn_c_proj = reader.linear(p + "attn.c_proj", d, d, kConv1D);
    block.ln_2 = reader.layer_norm(p + "ln_2", d, eps);
    block.c_fc = reader.linear(p + "mlp.c_fc", d, inner, kConv1D);
    block.mlp_c_proj = reader.linear(p + "mlp.c_proj", inner, d, kConv1D);
    blocks_.push_back(std::move(block));
  }
  ln_f_ = reader.layer_norm("transformer.ln_f", d, eps);
  if (reader.has("lm_head.weight") && !config.tie_word_embeddings) {
    lm_head_ = reader.read("lm_head.weight", {vocab, d});
  } else {
    // Tied: Hugging Face ignores a stored lm_head when tie_word_embeddings is set.
    if (reader.has("lm_head.weight")) reader.check_tied_copy("lm_head.weight", {vocab, d});
    lm_head_ = wte_;
  }
  // Old checkpoints carry the causal mask as buffers; they are rebuilt, not read.
  reader.check_unused(std::regex(R"(.*\.attn\.(bias|masked_bias)$)"), "h", config.n_layer);
  set_parameters(reader);
  set_output_head({std::nullopt, "", ln_f_, lm_head_, {}});
}

at::Tensor Gpt2Model::block_forward(int layer, const Block& block, at::Tensor x,
                                    const at::Tensor& allowed, detail::Pass& pass) const {
  const auto site = pass.block(layer);
  // A module's ":input" site changes what that module sees, never the residual stream.
  auto resid_pre = site(Step::kResidPre, std::move(x));
  auto ln1 = site(Step::kLn1, block.ln_1(site(Step::kLn1In, resid_pre)));

  auto qkv = site(Step::kQkv, block.c_attn(site(Step::kQkvIn, site(Step::kAttnIn, ln1))));
  auto parts = qkv.split(config_.n_embd, -1);
  detail::ScoreScaling scaling;
  scaling.by_sqrt_d_head = config_.scale_attn_weights;
  if (config_.scale_attn_by_inverse_layer_idx) scaling.divisor = static_cast<double>(layer + 1);
  auto merged =
      detail::attention(site, parts[0], parts[1], parts[2], config_.n_head, allowed, scaling, pass);
  auto attn_out = site(Step::kAttnOut,
                       site(Step::kAttnDropout, site(Step::kAttnProj, block.attn_c_proj(merged))));
  auto resid_mid = site(Step::kResidMid, resid_pre + attn_out);
  auto ln2 = site(Step::kLn2, block.ln_2(site(Step::kLn2In, resid_mid)));

  auto mlp_out =
      site(Step::kMlpOut, detail::mlp(site, block.c_fc, block.mlp_c_proj,
                                      config_.activation_function, site(Step::kMlpIn, ln2)));
  return site(Step::kResidPost, resid_mid + mlp_out);
}

ForwardOutput Gpt2Model::run(const ForwardInput& input, const ForwardOptions& options,
                             KvCache* cache) {
  detail::Pass pass(*this, input, options,
                    {config_.vocab_size, config_.n_embd, config_.n_positions}, cache);
  const auto& in = pass.input();
  const at::Tensor allowed = detail::causal_mask(in);
  auto tokens = in.has_ids ? pass.before(Step::kEmbed, at::embedding(wte_, in.ids)) : in.embeds;
  auto positions = pass.before(Step::kPosEmbed, at::embedding(wpe_, in.position_ids));
  auto x = pass.before(Step::kEmbedDropout, tokens + positions);  // [batch, pos, d_model]

  for (int layer = 0; layer < pass.layers(); ++layer) {
    pass.keep_hidden_state(x);
    x = block_forward(layer, blocks_[static_cast<size_t>(layer)], std::move(x), allowed, pass);
  }
  return pass.finish_causal_lm(x, ln_f_, lm_head_);
}

}  // namespace

namespace models {

std::unique_ptr<Model> load_gpt2(const Checkpoint& checkpoint) {
  return std::make_unique<Gpt2Model>(
      Gpt2Config::from_json(checkpoint.config, checkpoint.config_source), checkpoint);
}

}  // namespace models
}  // namespace llmscope
