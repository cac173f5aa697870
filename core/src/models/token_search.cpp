#include "llmscope/token_search.hpp"

#include <algorithm>
#include <string>

#include "llmscope/error.hpp"

namespace llmscope {

namespace {

at::Tensor as_rows(const at::Tensor& t, const char* what) {
  if (t.is_floating_point() || t.is_complex() || t.scalar_type() == at::kBool) {
    throw Error(std::string(what) + " must be an integer tensor, got " +
                c10::toString(t.scalar_type()));
  }
  if (t.dim() != 1 && t.dim() != 2) {
    throw Error(std::string(what) + " must be [pos] or [batch, pos], got shape " +
                shape_string(t.sizes()));
  }
  return (t.dim() == 1 ? t.unsqueeze(0) : t).to(at::kCPU, at::kLong).contiguous();
}

}  // namespace

TokenMatches find_token_sequence(const at::Tensor& ids, const std::vector<int64_t>& target,
                                 const at::Tensor& mask) {
  if (target.empty()) throw Error("find_tokens: the target has no tokens");
  at::Tensor rows = as_rows(ids, "find_tokens: ids");
  at::Tensor keep;
  if (mask.defined()) {
    if (mask.sizes() != ids.sizes()) {
      throw Error("find_tokens: mask must have the shape of ids (" + shape_string(ids.sizes()) +
                  "), got " + shape_string(mask.sizes()));
    }
    keep = (mask.dim() == 1 ? mask.unsqueeze(0) : mask).to(at::kCPU).ne(0).contiguous();
  }
  const int64_t batch = rows.size(0), length = rows.size(1);
  const auto n = static_cast<int64_t>(target.size());
  TokenMatches found;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t* row = rows.data_ptr<int64_t>() + b * length;
    const bool* unpadded = keep.defined() ? keep.data_ptr<bool>() + b * length : nullptr;
    for (int64_t end = n; end <= length; ++end) {
      const int64_t start = end - n;
      if (!std::equal(target.begin(), target.end(), row + start)) continue;
      if (unpadded != nullptr &&
          !std::all_of(unpadded + start, unpadded + end, [](bool on) { return on; }))
        continue;
      found.rows.push_back(b);
      found.positions.push_back(end - 1);
    }
  }
  return found;
}

}  // namespace llmscope
