// The one matrix product for code outside the models: the Lua DSL's matmul, the statistics'
// similarity matrices, plugins. The models' own products go through the same split.
#pragma once

#include <ATen/ATen.h>

namespace llmscope {

// at::matmul(a, b), for every shape and dtype at::matmul takes. On the CPU, float32 and float64
// products of some size run on ATen's intra-op threads with the BLAS held to one thread
// meanwhile, as the models' products do: [M, K] by [K, N] by output columns, [..., M, K] by
// [..., K, N] with the same leading dims matrix by matrix, [..., M, K] by [K, N] with a's matrices
// multiplied apart where the BLAS would otherwise round a row differently by where it sits (each
// one's result is then the same as alone). On CPUs with AVX2 and without AVX-512, float32 products
// by a matrix are llmscope's own kernel's, whose rows never depend on their neighbours or the
// thread count; results agree with at::matmul's to float rounding. at::matmul would run them on
// OpenBLAS's own threads, which spin after each product and contend with ATen's threads for the
// cores during the element-wise work around it (on two cores, products with a GELU and a layer norm
// between them took 1.45x as long). Products that record gradients, and other shapes, are ATen's
// own.
at::Tensor matmul(const at::Tensor& a, const at::Tensor& b);

// Who makes float32 products of matrices on this CPU, for reports: "llmscope's AVX2 kernel" or
// "the BLAS".
const char* cpu_float32_products();

}  // namespace llmscope
