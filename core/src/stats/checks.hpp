// Argument checks and conversions the statistics units share (internal to core/src/stats).
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "llmscope/error.hpp"

namespace llmscope::stats::detail {

inline void check_real(const at::Tensor& x, const std::string& what) {
  if (!x.defined()) throw Error(what + " is an undefined tensor");
  if (at::isComplexType(x.scalar_type())) throw Error(what + " must be real, got a complex tensor");
}

inline at::Tensor to_double(const at::Tensor& x) { return x.detach().to(at::kDouble); }

inline void same_device(const at::Tensor& a, const at::Tensor& b, const char* function) {
  if (a.device() != b.device()) {
    throw Error(std::string(function) + ": a and b are on different devices (" + a.device().str() +
                " and " + b.device().str() + ")");
  }
}

}  // namespace llmscope::stats::detail
