// The steps' aliases and shapes, and the architectures' tables built from them.
#include "models/sites.hpp"

#include <stdexcept>
#include <string>

namespace llmscope::detail {
namespace {

struct StepInfo {
  const char* alias;  // TransformerLens's name, {L} for the layer; nullptr: none
  const char* shape;
};

// Indexed by Step, in its order.
const std::array<StepInfo, static_cast<size_t>(Step::kCount)>& step_info() {
  static const std::array<StepInfo, static_cast<size_t>(Step::kCount)> info = {{
      // Before the blocks
      {"hook_embed", "[batch, pos, d_model]"},
      {"hook_pos_embed", "[batch, pos, d_model]"},
      {"hook_token_type_embed", "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      // In a block
      {"blocks.{L}.hook_resid_pre", "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {"blocks.{L}.ln1.hook_normalized", "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, 3 * d_model] (q | k | v)"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {"blocks.{L}.attn.hook_q", "[batch, pos, head, d_head]"},
      {"blocks.{L}.attn.hook_k", "[batch, pos, head, d_head]"},
      {"blocks.{L}.attn.hook_v", "[batch, pos, head, d_head]"},
      {"blocks.{L}.attn.hook_rot_q", "[batch, pos, head, d_head] (after rotary)"},
      {"blocks.{L}.attn.hook_rot_k", "[batch, pos, head, d_head] (after rotary)"},
      {"blocks.{L}.attn.hook_attn_scores", "[batch, head, query_pos, key_pos] (masked)"},
      {"blocks.{L}.attn.hook_pattern", "[batch, head, query_pos, key_pos]"},
      {"blocks.{L}.attn.hook_z", "[batch, pos, head, d_head]"},
      {nullptr, "[batch, pos, d_model] (heads merged)"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {"blocks.{L}.hook_attn_out", "[batch, pos, d_model]"},
      {"blocks.{L}.hook_resid_mid", "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {"blocks.{L}.ln2.hook_normalized", "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {"blocks.{L}.mlp.hook_pre", "[batch, pos, d_mlp]"},
      {"blocks.{L}.mlp.hook_pre_linear", "[batch, pos, d_mlp]"},
      {nullptr, "[batch, pos, d_mlp]"},
      {nullptr, "[batch, pos, d_mlp]"},
      {"blocks.{L}.mlp.hook_post", "[batch, pos, d_mlp]"},
      {nullptr, "[batch, pos, d_mlp]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {"blocks.{L}.hook_mlp_out", "[batch, pos, d_model]"},
      {"blocks.{L}.hook_resid_post", "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {"blocks.{L}.hook_normalized_resid_post", "[batch, pos, d_model]"},
      // After the blocks
      {nullptr, "[batch, pos, d_model] (last hidden state)"},
      {nullptr, "[batch, pos, d_model]"},
      {"ln_final.hook_normalized", "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model] (last hidden state)"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, vocab]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, d_model]"},
      {nullptr, "[batch, pos, vocab]"},
      {"unembed.hook_logits", "[batch, pos, vocab]"},
  }};
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
