// Masked-token prediction for masked language models (BERT): the top-k tokens at every
// [MASK] position of an input, with their probabilities.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "llmscope/hooks.hpp"
#include "llmscope/model.hpp"

namespace llmscope {

struct MaskPrediction {
  int64_t position = 0;      // 0-based token position of the [MASK]
  std::vector<int64_t> ids;  // top-k token ids, most likely first
  std::vector<double> probabilities;
};

// `input_ids` is one sequence ([pos] or [1, pos]); hooks apply as on any forward pass.
// Throws llmscope::Error for a causal model or an input without `mask_token_id`.
std::vector<MaskPrediction> predict_masks(Model& model, const at::Tensor& input_ids,
                                          int64_t mask_token_id, int64_t k = 5,
                                          const std::vector<NamedHook>& hooks = {});

}  // namespace llmscope
