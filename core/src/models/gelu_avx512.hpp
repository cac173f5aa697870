// GELU's tanh approximation (GPT-2's gelu_new) in one AVX-512 pass, for float32 CPU tensors.
#pragma once

#include <ATen/ATen.h>

namespace llmscope::detail {

// 0.5 x (1 + tanh(y)), y = sqrt(2/pi) (x + 0.044715 x^3), computed as x / (1 + e^(-2y)) (the same
// function): within a few float32 ulps of at::gelu(x, "tanh") at a quarter of its time, which
// spends most of it in an exact tanh. Returns an undefined tensor where it does not apply (not a
// CPU float32 tensor, a result that needs gradients, a CPU without AVX-512): use at::gelu then.
at::Tensor gelu_tanh_avx512(const at::Tensor& x);

}  // namespace llmscope::detail
