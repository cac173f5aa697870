// The steps' aliases and shapes, and the architectures' tables built from them.
#include "models/sites.hpp"

#include <stdexcept>
#include <string>

namespace llmscope::detail {
namespace {

struct StepInfo {
  Step step;
  const char* alias;  // TransformerLens's name, {L} for the layer; nullptr: none
  const char* shape;
};

// Indexed by Step, in its order.
const std::array<StepInfo, static_cast<size_t>(Step::kCount)>& step_info() {
  static const std::array<StepInfo, static_cast<size_t>(Step::kCount)> info = [] {
    const std::array<StepInfo, static_cast<size_t>(Step::kCount)> rows = {{
        // Before the blocks
        {Step::kEmbed, "hook_embed", "[batch, pos, d_model]"},
        {Step::kPosEmbed, "hook_pos_embed", "[batch, pos, d_model]"},
        {Step::kTokenTypeEmbed, "hook_token_type_embed", "[batch, pos, d_model]"},
        {Step::kEmbedNorm, nullptr, "[batch, pos, d_model]"},
        {Step::kEmbedDropout, nullptr, "[batch, pos, d_model]"},
        {Step::kEmbeddings, nullptr, "[batch, pos, d_model]"},
        // In a block
        {Step::kResidPre, "blocks.{L}.hook_resid_pre", "[batch, pos, d_model]"},
        {Step::kLn1In, nullptr, "[batch, pos, d_model]"},
        {Step::kLn1, "blocks.{L}.ln1.hook_normalized", "[batch, pos, d_model]"},
        {Step::kAttnIn, nullptr, "[batch, pos, d_model]"},
        {Step::kSelfAttnIn, nullptr, "[batch, pos, d_model]"},
        {Step::kQkvIn, nullptr, "[batch, pos, d_model]"},
        {Step::kQkv, nullptr, "[batch, pos, 3 * d_model] (q | k | v)"},
        {Step::kQProj, nullptr, "[batch, pos, d_model]"},
        {Step::kKProj, nullptr, "[batch, pos, d_model]"},
        {Step::kVProj, nullptr, "[batch, pos, d_model]"},
        {Step::kQ, "blocks.{L}.attn.hook_q", "[batch, pos, head, d_head]"},
        {Step::kK, "blocks.{L}.attn.hook_k", "[batch, pos, head, d_head]"},
        {Step::kV, "blocks.{L}.attn.hook_v", "[batch, pos, head, d_head]"},
        {Step::kRotQ, "blocks.{L}.attn.hook_rot_q", "[batch, pos, head, d_head] (after rotary)"},
        {Step::kRotK, "blocks.{L}.attn.hook_rot_k", "[batch, pos, head, d_head] (after rotary)"},
        {Step::kScores, "blocks.{L}.attn.hook_attn_scores",
         "[batch, head, query_pos, key_pos] (masked)"},
        {Step::kPattern, "blocks.{L}.attn.hook_pattern", "[batch, head, query_pos, key_pos]"},
        {Step::kZ, "blocks.{L}.attn.hook_z", "[batch, pos, head, d_head]"},
        {Step::kMerged, nullptr, "[batch, pos, d_model] (heads merged)"},
        {Step::kAttnProj, nullptr, "[batch, pos, d_model]"},
        {Step::kAttnDropout, nullptr, "[batch, pos, d_model]"},
        {Step::kAttnModule, nullptr, "[batch, pos, d_model]"},
        {Step::kAttnOut, "blocks.{L}.hook_attn_out", "[batch, pos, d_model]"},
        {Step::kResidMid, "blocks.{L}.hook_resid_mid", "[batch, pos, d_model]"},
        {Step::kAttnOutputModule, nullptr, "[batch, pos, d_model]"},
        {Step::kLn2In, nullptr, "[batch, pos, d_model]"},
        {Step::kLn2, "blocks.{L}.ln2.hook_normalized", "[batch, pos, d_model]"},
        {Step::kMlpIn, nullptr, "[batch, pos, d_model]"},
        {Step::kFcIn, nullptr, "[batch, pos, d_model]"},
        {Step::kMlpPre, "blocks.{L}.mlp.hook_pre", "[batch, pos, d_mlp]"},
        {Step::kMlpPreLinear, "blocks.{L}.mlp.hook_pre_linear", "[batch, pos, d_mlp]"},
        {Step::kActIn, nullptr, "[batch, pos, d_mlp]"},
        {Step::kMlpAct, nullptr, "[batch, pos, d_mlp]"},
        {Step::kMlpPost, "blocks.{L}.mlp.hook_post", "[batch, pos, d_mlp]"},
        {Step::kProjIn, nullptr, "[batch, pos, d_mlp]"},
        {Step::kProj, nullptr, "[batch, pos, d_model]"},
        {Step::kMlpDropout, nullptr, "[batch, pos, d_model]"},
        {Step::kMlpModule, nullptr, "[batch, pos, d_model]"},
        {Step::kMlpOut, "blocks.{L}.hook_mlp_out", "[batch, pos, d_model]"},
        {Step::kResidPost, "blocks.{L}.hook_resid_post", "[batch, pos, d_model]"},
        {Step::kMlpOutputModule, nullptr, "[batch, pos, d_model]"},
        {Step::kNormalizedResidPost, "blocks.{L}.hook_normalized_resid_post",
         "[batch, pos, d_model]"},
        // After the blocks
        {Step::kEncoder, nullptr, "[batch, pos, d_model] (last hidden state)"},
        {Step::kFinalNormIn, nullptr, "[batch, pos, d_model]"},
        {Step::kFinalNorm, "ln_final.hook_normalized", "[batch, pos, d_model]"},
        {Step::kBaseModel, nullptr, "[batch, pos, d_model] (last hidden state)"},
        {Step::kHeadIn, nullptr, "[batch, pos, d_model]"},
        {Step::kHead, nullptr, "[batch, pos, vocab]"},
        {Step::kTransformDense, nullptr, "[batch, pos, d_model]"},
        {Step::kTransformAct, nullptr, "[batch, pos, d_model]"},
        {Step::kTransformNorm, nullptr, "[batch, pos, d_model]"},
        {Step::kTransform, nullptr, "[batch, pos, d_model]"},
        {Step::kDecoder, nullptr, "[batch, pos, vocab]"},
        {Step::kLogits, "unembed.hook_logits", "[batch, pos, vocab]"},
    }};
    // One row per step, in the enum's order: a step added without its row is caught here.
    for (size_t i = 0; i < rows.size(); ++i) {
      if (static_cast<size_t>(rows[i].step) != i || rows[i].shape == nullptr)
        throw std::logic_error("sites.cpp: step_info() is out of step with enum Step at " +
                               std::to_string(i));
    }
    return rows;
  }();
  return info;
}

}  // namespace

SiteTable::Part SiteTable::part(const std::vector<SiteRow>& rows) {
  Part p;
  p.index.fill(kNoSite);
  for (const auto& row : rows) {
    const auto step = static_cast<size_t>(row.step);
    if (p.index[step] != kNoSite) {
      throw std::logic_error("site table lists step " + std::to_string(step) + " twice");
    }
    p.index[step] = static_cast<int>(p.specs.size());
    const StepInfo& info = step_info()[step];
    p.specs.push_back(
        {row.path, row.alias ? row.alias : info.alias, row.shape ? row.shape : info.shape});
  }
  return p;
}

SiteTable::SiteTable(const std::vector<SiteRow>& before, const std::vector<SiteRow>& block,
                     const std::vector<SiteRow>& after)
    : before_(part(before)), block_(part(block)), after_(part(after)) {}

HookPointTable SiteTable::hook_points(int n_layer) const {
  return HookPointTable(before_.specs, block_.specs, n_layer, after_.specs);
}

}  // namespace llmscope::detail
