#include "gpt2.hpp"

#include <spdlog/spdlog.h>

#include <cmath>
#include <regex>

#include "llmscope/error.hpp"
#include "llmscope/text_match.hpp"
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

// y = x W + b with W stored [in, out], for x of any leading shape.
at::Tensor conv1d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  auto flat = x.reshape({-1, x.size(-1)});
  auto out_shape = x.sizes().vec();
  out_shape.back() = weight.size(1);
  return at::addmm(bias, flat, weight).view(out_shape);
}

}  // namespace

HookPointTable Gpt2Model::hook_point_table(int n_layer) {
  return HookPointTable(kBeforeSites, kBlockSites, n_layer, kAfterSites);
}

Gpt2Model::Gpt2Model(const Gpt2Config& config, const SafetensorsSet& weights,
                     const LoadOptions& options, std::filesystem::path source)
    : Model(hook_point_table(static_cast<int>(config.n_layer)), std::move(source)),
      config_(config),
      dtype_(options.dtype),
      device_(options.device) {
  static_assert(kNumBeforeSites == 3 && kNumAfterSites == 5, "site enums match their tables");
  if (kBlockSites.size() != kNumBlockSites)
    throw std::logic_error("GPT-2 block site table is out of sync");
  const int64_t d = config.n_embd, inner = config.n_inner, vocab = config.vocab_size;
  detail::WeightReader reader(
      weights, options, "transformer.", "wte.weight", "GPT-2",
      "config.json (n_layer=" + std::to_string(config.n_layer) + ", n_embd=" + std::to_string(d) +
          ", n_inner=" + std::to_string(inner) + ", vocab_size=" + std::to_string(vocab) +
          ", n_positions=" + std::to_string(config.n_positions) + ")");
  wte_ = reader.read("transformer.wte.weight", {vocab, d});
  wpe_ = reader.read("transformer.wpe.weight", {config.n_positions, d});
  auto layer_norm_of = [&](const std::string& name) {
    return LayerNorm{reader.read(name + ".weight", {d}), reader.read(name + ".bias", {d})};
  };
  auto conv_of = [&](const std::string& name, int64_t in, int64_t out) {
    return Conv1D{reader.read(name + ".weight", {in, out}), reader.read(name + ".bias", {out})};
  };
  for (int64_t layer = 0; layer < config.n_layer; ++layer) {
    const std::string p = "transformer.h." + std::to_string(layer) + ".";
    Block block;
    block.ln_1 = layer_norm_of(p + "ln_1");
    block.c_attn = conv_of(p + "attn.c_attn", d, 3 * d);
    block.attn_c_proj = conv_of(p + "attn.c_proj", d, d);
    block.ln_2 = layer_norm_of(p + "ln_2");
    block.c_fc = conv_of(p + "mlp.c_fc", d, inner);
    block.mlp_c_proj = conv_of(p + "mlp.c_proj", inner, d);
    blocks_.push_back(std::move(block));
  }
  ln_f_ = layer_norm_of("transformer.ln_f");
  if (reader.has("lm_head.weight") && !config.tie_word_embeddings) {
    lm_head_ = reader.read("lm_head.weight", {vocab, d});
    lm_head_tied_ = false;
  } else {
    // Tied: Hugging Face ignores a stored lm_head when tie_word_embeddings is set.
    if (reader.has("lm_head.weight")) reader.read("lm_head.weight", {vocab, d});
    lm_head_ = wte_;
  }
  // Old checkpoints carry the causal mask as buffers; they are rebuilt, not read.
  reader.check_unused(std::regex(R"(.*\.attn\.(bias|masked_bias)$)"), "h", config.n_layer);
}

std::vector<std::pair<std::string, at::Tensor>> Gpt2Model::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out = {{"transformer.wte.weight", wte_},
                                                         {"transformer.wpe.weight", wpe_}};
  for (size_t layer = 0; layer < blocks_.size(); ++layer) {
    const auto& b = blocks_[layer];
    const std::string p = "transformer.h." + std::to_string(layer) + ".";
    out.insert(out.end(), {{p + "ln_1.weight", b.ln_1.weight},
                           {p + "ln_1.bias", b.ln_1.bias},
                           {p + "attn.c_attn.weight", b.c_attn.weight},
                           {p + "attn.c_attn.bias", b.c_attn.bias},
                           {p + "attn.c_proj.weight", b.attn_c_proj.weight},
                           {p + "attn.c_proj.bias", b.attn_c_proj.bias},
                           {p + "ln_2.weight", b.ln_2.weight},
                           {p + "ln_2.bias", b.ln_2.bias},
                           {p + "mlp.c_fc.weight", b.c_fc.weight},
                           {p + "mlp.c_fc.bias", b.c_fc.bias},
                           {p + "mlp.c_proj.weight", b.mlp_c_proj.weight},
                           {p + "mlp.c_proj.bias", b.mlp_c_proj.bias}});
  }
  out.emplace_back("transformer.ln_f.weight", ln_f_.weight);
  out.emplace_back("transformer.ln_f.bias", ln_f_.bias);
  if (!lm_head_tied_) out.emplace_back("lm_head.weight", lm_head_);
  return out;
}

at::Tensor Gpt2Model::embed_tokens(const at::Tensor& input_ids) const {
  return at::embedding(wte_, input_ids.to(device_, at::kLong));
}

at::Tensor Gpt2Model::layer_norm(const LayerNorm& ln, const at::Tensor& x) const {
  return at::layer_norm(x, {config_.n_embd}, ln.weight, ln.bias, config_.layer_norm_epsilon);
}

at::Tensor Gpt2Model::activation(const at::Tensor& x) const {
  return detail::activation(config_.activation_function, x);
}

at::Tensor Gpt2Model::attention(int layer, const Block& block, const at::Tensor& x,
                                const at::Tensor& allowed, HookRun* run, ForwardOutput& out,
                                bool want_attentions) {
  const HookPointTable& sites = hook_points();
  auto site = [&](int local, at::Tensor t) {
    return at_site(run, sites.block_id(layer, local), std::move(t));
  };
  const int64_t batch = x.size(0), pos = x.size(1), heads = config_.n_head,
                d_head = config_.head_dim();

  auto qkv = site(kCAttn, conv1d(site(kCAttnIn, x), block.c_attn.weight, block.c_attn.bias));
  auto parts = qkv.split(config_.n_embd, -1);
  auto q = site(kQ, parts[0].view({batch, pos, heads, d_head}));  // [batch, pos, head, d_head]
  auto k = site(kK, parts[1].view({batch, pos, heads, d_head}));
  auto v = site(kV, parts[2].view({batch, pos, heads, d_head}));

  // [batch, head, query_pos, key_pos]
  auto scores = at::matmul(q.transpose(1, 2), k.permute({0, 2, 3, 1}));
  if (config_.scale_attn_weights) scores = scores / std::sqrt(static_cast<double>(d_head));
  if (config_.scale_attn_by_inverse_layer_idx) scores = scores / static_cast<double>(layer + 1);
  // Masked scores get the dtype's lowest value, as Hugging Face does: a fully masked row (a
  // left-padding query) becomes a uniform average instead of NaN.
  scores = scores.masked_fill(allowed.logical_not(), detail::lowest_value(scores.scalar_type()));
  scores = site(kScores, scores);
  auto pattern = site(kPattern, at::softmax(scores, -1));
  if (want_attentions) out.attentions.push_back(pattern);

  auto z = site(
      kZ, at::matmul(pattern, v.transpose(1, 2)).transpose(1, 2));  // [batch, pos, head, d_head]
  auto merged = site(kAttnProjIn, z.reshape({batch, pos, config_.n_embd}));
  auto projected =
      site(kAttnProj, conv1d(merged, block.attn_c_proj.weight, block.attn_c_proj.bias));
  return site(kAttnResidDrop, std::move(projected));
}

at::Tensor Gpt2Model::block_forward(int layer, const Block& block, at::Tensor x,
                                    const at::Tensor& allowed, HookRun* run, ForwardOutput& out,
                                    bool want_attentions) {
  const HookPointTable& sites = hook_points();
  auto site = [&](int local, at::Tensor t) {
    return at_site(run, sites.block_id(layer, local), std::move(t));
  };
  // A module's ":input" site changes what that module sees, never the residual stream.
  auto resid_pre = site(kBlockIn, std::move(x));
  auto ln1 = site(kLn1, layer_norm(block.ln_1, site(kLn1In, resid_pre)));
  auto attn_out =
      site(kAttn, attention(layer, block, site(kAttnIn, ln1), allowed, run, out, want_attentions));
  auto resid_mid = site(kResidMid, resid_pre + attn_out);
  auto ln2 = site(kLn2, layer_norm(block.ln_2, site(kLn2In, resid_mid)));

  auto mlp_in = site(kMlpIn, ln2);
  auto pre = site(kFc, conv1d(site(kFcIn, mlp_in), block.c_fc.weight, block.c_fc.bias));
  auto post = site(kAct, activation(site(kActIn, pre)));
  auto mlp_proj = site(
      kMlpProj, conv1d(site(kMlpProjIn, post), block.mlp_c_proj.weight, block.mlp_c_proj.bias));
  auto mlp_out = site(kMlp, site(kMlpDrop, std::move(mlp_proj)));
  return site(kBlockOut, resid_mid + mlp_out);
}

ForwardOutput Gpt2Model::forward(const ForwardInput& input, const ForwardOptions& options) {
  auto in = detail::prepare_input(input, {config_.vocab_size, config_.n_embd, config_.n_positions},
                                  device_, dtype_);
  const at::Tensor allowed = detail::causal_mask(in);
  const int n_layer = static_cast<int>(config_.n_layer);
  const int n_run = detail::layers_to_run(options, n_layer);
  const HookPointTable& sites = hook_points();
  std::optional<HookRun> hook_run = detail::begin_pass(*this, options);
  HookRun* run = hook_run ? &*hook_run : nullptr;

  ForwardOutput out;
  auto tokens =
      in.has_ids ? at_site(run, sites.before_id(kWte), at::embedding(wte_, in.ids)) : in.embeds;
  auto positions = at_site(run, sites.before_id(kWpe), at::embedding(wpe_, in.position_ids));
  auto x = at_site(run, sites.before_id(kDrop), tokens + positions);  // [batch, pos, d_model]

  for (int layer = 0; layer < n_run; ++layer) {
    if (options.output_hidden_states) out.hidden_states.push_back(x);
    x = block_forward(layer, blocks_[static_cast<size_t>(layer)], std::move(x), allowed, run, out,
                      options.output_attentions);
  }
  if (options.stop_at_layer) {
    if (options.output_hidden_states) out.hidden_states.push_back(x);
  } else {
    auto final_hidden = at_site(run, sites.after_id(kLnF),
                                layer_norm(ln_f_, at_site(run, sites.after_id(kLnFIn), x)));
    final_hidden = at_site(run, sites.after_id(kTransformer), std::move(final_hidden));
    if (options.output_hidden_states) out.hidden_states.push_back(final_hidden);
    auto head_in = at_site(run, sites.after_id(kLmHeadIn), final_hidden);
    out.logits = at_site(run, sites.after_id(kLmHead), at::matmul(head_in, lm_head_.t()));
  }
  detail::finish_pass(run, out, options, n_run, n_layer);
  return out;
}

}  // namespace llmscope
