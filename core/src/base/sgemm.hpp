// Float32 products made by llmscope's own AVX2 kernel, on CPUs with AVX2 and FMA but no AVX-512
// (AMD before Zen 4, Intel's client cores). OpenBLAS's sgemm for these CPUs sums a row of a product
// in another order depending on where the row falls among its tiles, so keeping a prompt's result
// independent of its batch meant multiplying each prompt apart, re-packing every weight once per
// prompt (about a tenth of a forward pass). Here every output element is one chain of fused
// multiply-adds over k in fixed blocks, the same whatever the rows, columns or threads around it:
// a row's bits do not depend on the batch, its place in it, or the thread count, and the batch is
// one product. The bias is added as the first block is stored, not copied into the output first.
#pragma once

#include <ATen/ATen.h>

namespace llmscope::detail {

// Whether bias + a b is made by sgemm(): float32 CPU operands recording no gradient, a [M, K] and
// b [K, N] of any strides with K >= 1 and N >= 16 (narrower products waste the kernel's 16
// columns), bias undefined or float32 [N], on a CPU with AVX2 and FMA and without AVX-512 (where
// OpenBLAS's kernels are twice as wide and keep rows independent). Nothing here depends on M, so
// a prompt takes the same path alone as in a batch.
bool sgemm_applies(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b);

// bias + a b, a new contiguous [M, N]; bias may be undefined. Columns are shared among ATen's
// threads as they become free. Requires sgemm_applies().
at::Tensor sgemm(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b);

}  // namespace llmscope::detail
