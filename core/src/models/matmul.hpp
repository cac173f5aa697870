// The models' matrix products, on the CPU spread over ATen's intra-op threads (by output columns,
// or by matrix for batched products) with the BLAS held to one thread meanwhile: one pool of
// threads then does both the products and the element-wise work between them. Otherwise OpenBLAS
// runs each product on threads of its own, which spin after it and contend with ATen's threads
// for the same cores. Where that cannot be done (a GPU, one thread, a BLAS other than OpenBLAS,
// dtypes other than float32 and float64, inside a parallel region) these are ATen's own calls.
#pragma once

#include <ATen/ATen.h>

namespace llmscope::detail {

// bias + a [M, K] b [K, N] (bias [N], or undefined for none): at::addmm / at::mm.
at::Tensor threaded_addmm(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b);

// at::matmul(a, b) for a [..., M, K] and b [..., K, N] with the same leading dims, or b [K, N].
// Batched products of some size read each matrix in place, whatever its strides. With `out`
// (batched operands only; the result's shape, any strides, e.g. a transposed view of the layout
// the caller wants next) the products are written there and it is returned; another shape throws.
at::Tensor threaded_matmul(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out = {});

}  // namespace llmscope::detail
