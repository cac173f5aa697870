// GPT-2 (GPT2LMHeadModel): pre-LayerNorm blocks with fused Conv1D q|k|v, learned positions, and
// lm_head tied to wte when the checkpoint has none; every Hugging Face module a hook point.
#include <regex>

#include "llmscope/error.hpp"
#include "llmscope/gpt2_config.hpp"
#include "models/architectures.hpp"
#include "models/model_parts.hpp"

namespace llmscope {
namespace {

// ---- Hook points: one table, in the order forward() reaches each site. ----

enum BeforeSite : int { kWte, kWpe, kDrop, kNumBeforeSites };
const std::vector<HookPointSpec> kBeforeSites = {
    {"transformer.wte", "hook_embed", "[batch, pos, d_model]"},
    {"transformer.wpe", "hook_pos_embed", "[batch, pos, d_model]"},
    {"transformer.drop", nullptr, "[batch, pos, d_model]"},
};

enum BlockSite : int {
  kBlockIn,
  kLn1In,
  kLn1,
  kAttnIn,
  kCAttnIn,
  kCAttn,
  kQ,
  kK,
  kV,
  kScores,
  kPattern,
  kZ,
  kAttnProjIn,
  kAttnProj,
  kAttnResidDrop,
  kAttn,
  kResidMid,
  kLn2In,
  kLn2,
  kMlpIn,
  kFcIn,
  kFc,
  kActIn,
  kAct,
  kMlpProjIn,
  kMlpProj,
  kMlpDrop,
  kMlp,
  kBlockOut,
  kNumBlockSites
};
const std::vector<HookPointSpec> kBlockSites = {
    {"transformer.h.{L}:input", "blocks.{L}.hook_resid_pre", "[batch, pos, d_model]"},
    {"transformer.h.{L}.ln_1:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.ln_1", "blocks.{L}.ln1.hook_normalized", "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn.c_attn:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn.c_attn", nullptr, "[batch, pos, 3 * d_model] (q | k | v)"},
    {nullptr, "blocks.{L}.attn.hook_q", "[batch, pos, head, d_head]"},
    {nullptr, "blocks.{L}.attn.hook_k", "[batch, pos, head, d_head]"},
    {nullptr, "blocks.{L}.attn.hook_v", "[batch, pos, head, d_head]"},
    {nullptr, "blocks.{L}.attn.hook_attn_scores", "[batch, head, query_pos, key_pos] (masked)"},
    {"transformer.h.{L}.attn.attn_dropout", "blocks.{L}.attn.hook_pattern",
     "[batch, head, query_pos, key_pos]"},
    {nullptr, "blocks.{L}.attn.hook_z", "[batch, pos, head, d_head]"},
    {"transformer.h.{L}.attn.c_proj:input", nullptr, "[batch, pos, d_model] (heads merged)"},
    {"transformer.h.{L}.attn.c_proj", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn.resid_dropout", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn", "blocks.{L}.hook_attn_out", "[batch, pos, d_model]"},
    {nullptr, "blocks.{L}.hook_resid_mid", "[batch, pos, d_model]"},
    {"transformer.h.{L}.ln_2:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.ln_2", "blocks.{L}.ln2.hook_normalized", "[batch, pos, d_model]"},
    {"transformer.h.{L}.mlp:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.mlp.c_fc:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.mlp.c_fc", "blocks.{L}.mlp.hook_pre", "[batch, pos, d_mlp]"},
    {"transformer.h.{L}.mlp.act:input", nullptr, "[batch, pos, d_mlp]"},
    {"transformer.h.{L}.mlp.act", "blocks.{L}.mlp.hook_post", "[batch, pos, d_mlp]"},
    {"transformer.h.{L}.mlp.c_proj:input", nullptr, "[batch, pos, d_mlp]"},
    {"transformer.h.{L}.mlp.c_proj", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.mlp.dropout", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.mlp", "blocks.{L}.hook_mlp_out", "[batch, pos, d_model]"},
    {"transformer.h.{L}", "blocks.{L}.hook_resid_post", "[batch, pos, d_model]"},
};

enum AfterSite : int { kLnFIn, kLnF, kTransformer, kLmHeadIn, kLmHead, kNumAfterSites };
const std::vector<HookPointSpec> kAfterSites = {
    {"transformer.ln_f:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.ln_f", "ln_final.hook_normalized", "[batch, pos, d_model]"},
    {"transformer", nullptr, "[batch, pos, d_model] (last hidden state)"},
    {"lm_head:input", nullptr, "[batch, pos, d_model]"},
    {"lm_head", nullptr, "[batch, pos, vocab]"},
};

const detail::AttentionSites kAttentionSites = {kQ, kK, kV, kScores, kPattern, kZ, kAttnProjIn};
const detail::MlpSites kMlpSites = {kFcIn,           kFc,        kActIn,   kAct,
                                    detail::kNoSite, kMlpProjIn, kMlpProj, kMlpDrop};

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
                      models::gpt2_hook_points(static_cast<int>(config.n_layer)), checkpoint.dir,
                      checkpoint.options),
      config_(config) {
  static_assert(kNumBeforeSites == 3 && kNumAfterSites == 5, "site enums match their tables");
  if (kBlockSites.size() != kNumBlockSites)
    throw std::logic_error("GPT-2 block site table is out of sync");
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
  auto resid_pre = site(kBlockIn, std::move(x));
  auto ln1 = site(kLn1, block.ln_1(site(kLn1In, resid_pre)));

  auto qkv = site(kCAttn, block.c_attn(site(kCAttnIn, site(kAttnIn, ln1))));
  auto parts = qkv.split(config_.n_embd, -1);
  detail::ScoreScaling scaling;
  scaling.by_sqrt_d_head = config_.scale_attn_weights;
  if (config_.scale_attn_by_inverse_layer_idx) scaling.divisor = static_cast<double>(layer + 1);
  auto merged = detail::attention(site, kAttentionSites, parts[0], parts[1], parts[2],
                                  config_.n_head, allowed, scaling, pass);
  auto attn_out = site(kAttn, site(kAttnResidDrop, site(kAttnProj, block.attn_c_proj(merged))));
  auto resid_mid = site(kResidMid, resid_pre + attn_out);
  auto ln2 = site(kLn2, block.ln_2(site(kLn2In, resid_mid)));

  auto mlp_out = site(kMlp, detail::mlp(site, kMlpSites, block.c_fc, block.mlp_c_proj,
                                        config_.activation_function, site(kMlpIn, ln2)));
  return site(kBlockOut, resid_mid + mlp_out);
}

ForwardOutput Gpt2Model::run(const ForwardInput& input, const ForwardOptions& options,
                             KvCache* cache) {
  detail::Pass pass(*this, input, options,
                    {config_.vocab_size, config_.n_embd, config_.n_positions}, cache);
  const auto& in = pass.input();
  const at::Tensor allowed = detail::causal_mask(in);
  auto tokens = in.has_ids ? pass.before(kWte, at::embedding(wte_, in.ids)) : in.embeds;
  auto positions = pass.before(kWpe, at::embedding(wpe_, in.position_ids));
  auto x = pass.before(kDrop, tokens + positions);  // [batch, pos, d_model]

  for (int layer = 0; layer < pass.layers(); ++layer) {
    pass.keep_hidden_state(x);
    x = block_forward(layer, blocks_[static_cast<size_t>(layer)], std::move(x), allowed, pass);
  }
  return pass.finish_causal_lm(x, ln_f_, lm_head_,
                               {kLnFIn, kLnF, kTransformer, kLmHeadIn, kLmHead});
}

}  // namespace

namespace models {

HookPointTable gpt2_hook_points(int n_layer) {
  return HookPointTable(kBeforeSites, kBlockSites, n_layer, kAfterSites);
}

std::unique_ptr<Model> load_gpt2(const Checkpoint& checkpoint) {
  return std::make_unique<Gpt2Model>(
      Gpt2Config::from_json(checkpoint.config, checkpoint.config_source), checkpoint);
}

}  // namespace models
}  // namespace llmscope
