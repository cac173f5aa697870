// The matrix products (the models', and llmscope::matmul's for everyone else), on the CPU spread
// over ATen's intra-op threads (by output columns, or by matrix for batched products) with the BLAS
// held to one thread meanwhile: one pool of threads then does both the products and the
// element-wise work between them. Otherwise OpenBLAS runs each product on threads of its own, which
// spin after it and contend with ATen's threads for the same cores. Where that cannot be done (a
// GPU, one thread, a BLAS other than OpenBLAS, dtypes other than float32 and float64, inside a
// parallel region) these are ATen's own calls.
//
// Rows of separate items (the batch's sequences) can be multiplied apart, so that an item's
// result does not depend on what else is in the batch or where it sits: some BLAS kernels sum a
// row in another order at a tile's edge (OpenBLAS's Haswell and Zen sgemm; not its SkylakeX
// one), so the same prompt would give different float32 roundings in different batches. Where
// llmscope's own float32 kernel applies (sgemm.hpp: AVX2 CPUs without AVX-512) it makes the
// product instead, every row independent of the others, and nothing is multiplied apart.
#pragma once

#include <ATen/ATen.h>

namespace llmscope::detail {

// While one lives on a thread, that thread's products multiply each item's rows apart where the
// BLAS needs it (ItemsApart(true)) or not (ItemsApart(false)); apart is the default.
class ItemsApart {
 public:
  explicit ItemsApart(bool apart);
  ~ItemsApart();
  ItemsApart(const ItemsApart&) = delete;
  ItemsApart& operator=(const ItemsApart&) = delete;

 private:
  bool saved_;
};

// Whether the BLAS gives a row of a product of `dtype` the same whatever rows are multiplied
// with it and wherever it sits among them: a probe of products cut at tile edges, made once.
bool blas_rows_independent(at::ScalarType dtype);

// bias + a [M, K] b [K, N] (bias [N], or undefined for none): at::addmm / at::mm. a's rows are
// `items` equal blocks of rows, multiplied apart where ItemsApart says so and the BLAS needs it:
// each block then goes through exactly the calls it would alone (same threads' column ranges).
at::Tensor threaded_addmm(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b,
                          int64_t items = 1);

// The items of an activation [..., pos, d]: its matrices ([pos, d] is one, as [1, pos, d] is, so
// that unembedding a prompt's hidden states gives the pass's own logits bit for bit).
int64_t items_of(const at::Tensor& x);

// at::matmul(a, b) for a [..., M, K] and b [..., K, N] with the same leading dims, or b [K, N]
// (then a's matrices are items, as threaded_addmm says); other shapes are at::matmul's own.
// Batched products of some size read each matrix in place, whatever its strides. With `out`
// (batched operands only; the result's shape, any strides, e.g. a transposed view of the layout
// the caller wants next) the products are written there and it is returned; another shape throws.
at::Tensor threaded_matmul(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out = {});

}  // namespace llmscope::detail
