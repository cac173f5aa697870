// The steps of a forward pass that architectures show as hook sites, named by what they are, as
// llama.cpp names every tensor by its role (LLM_TENSOR_*) and maps roles to each architecture's
// names (internal header). An architecture's SiteTable lists the steps it has, in the order its
// pass reaches them, with its Hugging Face module paths; the TransformerLens alias and the shape
// of each step are written once, in sites.cpp, and a row overrides them only where the
// architecture differs. The shared parts (attention, mlp, the end of a causal LM) fire steps by
// name, so an architecture without a step simply has no site there.
#pragma once

#include <array>
#include <vector>

#include "llmscope/hook_points.hpp"

namespace llmscope::detail {

enum class Step : int {
  // Before the blocks
  kEmbed,
  kPosEmbed,
  kTokenTypeEmbed,
  kEmbedNorm,
  kEmbedDropout,
  kEmbeddings,
  // In a block
  kResidPre,
  kLn1In,
  kLn1,
  kAttnIn,
  kSelfAttnIn,
  kQkvIn,
  kQkv,
  kQProj,
  kKProj,
  kVProj,
  kQ,
  kK,
  kV,
  kRotQ,
  kRotK,
  kScores,
  kPattern,
  kZ,
  kMerged,  // the heads merged again: the output projection's input
  kAttnProj,
  kAttnDropout,
  kAttnModule,  // an attention module's output where the alias sits elsewhere
  kAttnOut,     // attention's contribution to the residual stream
  kResidMid,
  kAttnOutputModule,  // BERT's attention.output (dense, dropout, residual, LayerNorm)
  kLn2In,
  kLn2,
  kMlpIn,
  kFcIn,
  kMlpPre,
  kMlpPreLinear,
  kActIn,
  kMlpAct,   // the activation function's output
  kMlpPost,  // what the output projection multiplies (TransformerLens's hook_post)
  kProjIn,
  kProj,
  kMlpDropout,
  kMlpModule,  // an MLP module's output where the alias sits elsewhere
  kMlpOut,
  kResidPost,
  kMlpOutputModule,  // BERT's output (dense, dropout, residual, LayerNorm)
  kNormalizedResidPost,
  // After the blocks
  kEncoder,  // BERT's encoder output
  kFinalNormIn,
  kFinalNorm,
  kBaseModel,  // the base model's output (transformer, model, bert)
  kHeadIn,
  kHead,
  kTransformDense,
  kTransformAct,
  kTransformNorm,
  kTransform,
  kDecoder,
  kLogits,
  kCount
};

// One row of an architecture's table: its step, its Hugging Face module path (":input" for the
// module's input; nullptr where no module owns the step, as for per-head q/k/v), and, where they
// differ from the step's, its shape and alias.
struct SiteRow {
  Step step;
  const char* path = nullptr;
  const char* shape = nullptr;  // nullptr: the step's shape
  const char* alias = nullptr;  // nullptr: the step's alias
};

// A site an architecture does not have: its step runs without a hook.
constexpr int kNoSite = -1;

// One architecture's sites before, in and after its blocks; a step appears at most once in each.
class SiteTable {
 public:
  SiteTable(const std::vector<SiteRow>& before, const std::vector<SiteRow>& block,
            const std::vector<SiteRow>& after);
  // The hook-point table of a model with `n_layer` blocks.
  HookPointTable hook_points(int n_layer) const;
  // Where `step` is in each part (HookPointTable's local index), or kNoSite.
  int before(Step step) const { return before_.index[static_cast<size_t>(step)]; }
  int block(Step step) const { return block_.index[static_cast<size_t>(step)]; }
  int after(Step step) const { return after_.index[static_cast<size_t>(step)]; }

 private:
  struct Part {
    std::vector<HookPointSpec> specs;
    std::array<int, static_cast<size_t>(Step::kCount)> index;
  };
  static Part part(const std::vector<SiteRow>& rows);
  Part before_, block_, after_;
};

}  // namespace llmscope::detail
