// GELU's tanh approximation (GPT-2's gelu_new) in one vector pass (AVX-512 or AVX2 with FMA), for
// float32 CPU tensors.
#pragma once

#include <ATen/ATen.h>

namespace llmscope::detail {

// 0.5 x (1 + tanh(y)), y = sqrt(2/pi) (x + 0.044715 x^3), computed as x / (1 + e^(-2y)) (the same
// function): within a few float32 ulps of at::gelu(x, "tanh") at a fraction of its time, which
// spends most of it in an exact tanh. Returns an undefined tensor where it does not apply (not a
// CPU float32 tensor, a result that needs gradients, a CPU with neither AVX-512 nor AVX2 and
// FMA): use at::gelu then.
at::Tensor gelu_tanh_fast(const at::Tensor& x);

}  // namespace llmscope::detail
