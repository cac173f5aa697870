// Finding a word in token ids: every occurrence of a token sequence, reported by the position
// of its last token — the token that has read the whole word in a causal model (lesson 12-14).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace llmscope {

struct TokenMatches {
  std::vector<int64_t> rows;       // 0-based batch row of each occurrence
  std::vector<int64_t> positions;  // 0-based position of its last token
};

// Every occurrence of `target` (a non-empty id sequence) in `ids` ([pos] or [batch, pos],
// integer), row by row and left to right, overlapping ones included. With `mask` (shaped like
// ids; 0 = padding), an occurrence must lie wholly on unpadded positions.
TokenMatches find_token_sequence(const at::Tensor& ids, const std::vector<int64_t>& target,
                                 const at::Tensor& mask = {});

}  // namespace llmscope
