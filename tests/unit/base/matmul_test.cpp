// The matrix products spread over ATen's threads (base/matmul.hpp): the models' threaded_addmm
// and threaded_matmul give ATen's results, keep an item's rows the same bits in any batch and
// leave gradients to ATen; llmscope::matmul is at::matmul for every shape.
#include "llmscope/matmul.hpp"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <gmock/gmock.h>

#include "base/matmul.hpp"

namespace llmscope::testing {
namespace {

// OpenBLAS's openblas_get_num_threads, or null under another BLAS.
using ThreadCount = int (*)();
ThreadCount openblas_threads() {
  return reinterpret_cast<ThreadCount>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
}

// The products split over threads (columns, or matrices of a batch) give ATen's own results, for
// both weight layouts, with and without a bias, for a non-contiguous operand and below the size
// where splitting pays; and the BLAS gets its thread count back.
TEST(ThreadedMatmul, GivesATensOwnProducts) {
  const int saved = at::get_num_threads();
  at::set_num_threads(2);
  auto blas_threads = openblas_threads();
  const int blas_before = blas_threads ? blas_threads() : 0;
  at::manual_seed(5);
  auto a = at::randn({96, 80}), b = at::randn({80, 300}), bias = at::randn({300});
  auto out_in = at::randn({300, 80});  // nn.Linear's [out, in]
  EXPECT_TRUE(at::allclose(detail::threaded_addmm(bias, a, b), at::addmm(bias, a, b), 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(detail::threaded_addmm(at::Tensor(), a, out_in.t()),
                           at::mm(a, out_in.t()), 1e-5, 1e-5));
  auto small = at::randn({3, 4});
  EXPECT_TRUE(
      at::equal(detail::threaded_addmm(at::Tensor(), small, small.t()), at::mm(small, small.t())));
  // Batched, as attention uses them: [batch, heads, pos, d] by a permuted [batch, heads, d, pos].
  // Large enough (2^18 multiply-adds) to go matrix by matrix, as strided views.
  auto q = at::randn({2, 3, 64, 32}), k = at::randn({2, 64, 3, 32}).permute({0, 2, 3, 1});
  EXPECT_TRUE(at::allclose(detail::threaded_matmul(q, k), at::matmul(q, k), 1e-5, 1e-5));
  auto x3 = at::randn({2, 48, 80});  // [batch, pos, d] by a weight
  EXPECT_TRUE(at::allclose(detail::threaded_matmul(x3, b), at::matmul(x3, b), 1e-5, 1e-5));
  EXPECT_EQ(detail::threaded_matmul(x3, b).sizes(), (at::IntArrayRef{2, 48, 300}));
  // Written into a caller's strided view: z as [batch, pos, head, d] from [batch, head, pos, d].
  auto v = at::randn({2, 3, 64, 32});
  auto z = at::empty({2, 64, 3, 32});
  const auto pattern = at::softmax(at::randn({2, 3, 64, 64}), -1);
  EXPECT_EQ(detail::threaded_matmul(pattern, v, z.transpose(1, 2)).data_ptr(), z.data_ptr());
  EXPECT_TRUE(at::allclose(z, at::matmul(pattern, v).transpose(1, 2), 1e-5, 1e-5));
  // An out of another shape (z itself, not its [batch, head, pos, d] view) is refused by name.
  EXPECT_THAT([&] { detail::threaded_matmul(pattern, v, z); },
              ::testing::ThrowsMessage<c10::Error>(::testing::HasSubstr("threaded_matmul: out")));
  if (blas_threads) EXPECT_EQ(blas_threads(), blas_before);
  at::set_num_threads(saved);
}

TEST(ThreadedMatmul, AnItemsRowsAreTheSameBitsInAnyBatch) {
  // Items of 11 rows (a prompt's tokens), with a bias and without, at 1 and 2 threads: an item
  // alone and the same item at every place of a batch of 5 other ones give the same bits, as
  // do [batch, pos, d] products by a weight (the head). The probe's verdict is checked against
  // what the BLAS does: where it says rows are independent, they are so without the split.
  const int saved = at::get_num_threads();
  at::manual_seed(7);
  const auto w = at::randn({768, 700}), bias = at::randn({700});
  const auto prompt = at::randn({11, 768});
  for (const int threads : {1, 2}) {
    at::set_num_threads(threads);
    const auto alone = detail::threaded_addmm(bias, prompt, w, 1);
    const auto alone_head = detail::threaded_matmul(prompt.unsqueeze(0), w);
    for (int64_t place = 0; place < 5; ++place) {
      auto batch = at::randn({5, 11, 768});
      batch[place].copy_(prompt);
      const auto rows = batch.reshape({55, 768});
      EXPECT_TRUE(
          at::equal(detail::threaded_addmm(bias, rows, w, 5).narrow(0, place * 11, 11), alone))
          << "item " << place << " at " << threads << " threads";
      EXPECT_TRUE(at::equal(detail::threaded_matmul(batch, w)[place], alone_head[0]))
          << "head, item " << place << " at " << threads << " threads";
    }
  }
  if (detail::blas_rows_independent(at::kFloat)) {
    const auto rows = at::randn({40, 768});
    EXPECT_TRUE(at::equal(at::mm(rows, w).narrow(0, 3, 11), at::mm(rows.narrow(0, 3, 11), w)));
  }
  {
    // Apart or not, the same numbers to rounding; out of a forward pass the caller chooses.
    const detail::ItemsApart together(false);
    const auto rows = at::randn({55, 768});
    EXPECT_TRUE(at::allclose(detail::threaded_addmm(bias, rows, w, 5), at::addmm(bias, rows, w),
                             1e-4, 1e-4));
  }
  at::set_num_threads(saved);
}

TEST(ThreadedMatmul, LeavesGradientsToATen) {
  // Gradient ascent on embeddings (actmax) runs the threaded products with inputs that need
  // gradients; ATen's out= calls refuse those, so such products must stay ATen's own.
  const int saved = at::get_num_threads();
  at::set_num_threads(2);
  at::manual_seed(6);
  auto x = at::randn({96, 80}).set_requires_grad(true);
  auto w = at::randn({80, 300}), bias = at::randn({300});
  auto y = detail::threaded_addmm(bias, x, w);
  ASSERT_TRUE(y.requires_grad());
  y.sum().backward();
  EXPECT_TRUE(at::allclose(x.grad(), w.sum(1).expand({96, 80}), 1e-4, 1e-4));
  auto q = at::randn({2, 3, 40, 16}).set_requires_grad(true);
  auto k = at::randn({2, 3, 16, 40});
  detail::threaded_matmul(q, k).sum().backward();
  EXPECT_TRUE(at::allclose(q.grad(), k.sum(-1).unsqueeze(-2).expand({2, 3, 40, 16}), 1e-4, 1e-4));
  at::set_num_threads(saved);
}

// llmscope::matmul gives at::matmul's results for the shapes it splits (matrices by a matrix, a
// batch by a batch, a batch of one whose columns are cut among the threads) and for those it
// leaves to ATen (vectors, broadcast batches, integers, empty ones), and at::matmul's errors.
TEST(Matmul, IsATensMatmulForEveryShape) {
  const int saved = at::get_num_threads();
  auto blas_threads = openblas_threads();
  const int blas_before = blas_threads ? blas_threads() : 0;
  at::manual_seed(8);
  const auto a = at::randn({96, 80}), b = at::randn({80, 300});
  const auto same = [](const at::Tensor& got, const at::Tensor& want) {
    return got.sizes() == want.sizes() && got.scalar_type() == want.scalar_type() &&
           at::allclose(got, want, 1e-5, 1e-5);
  };
  for (const int threads : {1, 2, 3}) {
    at::set_num_threads(threads);
    SCOPED_TRACE(std::to_string(threads) + " threads");
    EXPECT_TRUE(same(llmscope::matmul(a, b), at::matmul(a, b)));
    EXPECT_TRUE(same(llmscope::matmul(a.to(at::kDouble), b.to(at::kDouble)),
                     at::matmul(a.to(at::kDouble), b.to(at::kDouble))));
    EXPECT_TRUE(
        same(llmscope::matmul(b.t(), a.t()), at::matmul(b.t(), a.t())));  // transposed operands
    const auto batch = at::randn({3, 96, 80});
    EXPECT_TRUE(same(llmscope::matmul(batch, b), at::matmul(batch, b)));
    const auto batches = at::randn({3, 80, 300});
    EXPECT_TRUE(same(llmscope::matmul(batch, batches), at::matmul(batch, batches)));
    EXPECT_TRUE(
        same(llmscope::matmul(a.unsqueeze(0), b.unsqueeze(0)), at::matmul(a, b).unsqueeze(0)));
    EXPECT_TRUE(same(llmscope::matmul(a, batches), at::matmul(a, batches)));  // broadcast: ATen's
    EXPECT_TRUE(same(llmscope::matmul(a, b.select(1, 0)), at::matmul(a, b.select(1, 0))));
    EXPECT_TRUE(same(llmscope::matmul(b.select(1, 0), b), at::matmul(b.select(1, 0), b)));
    EXPECT_TRUE(same(llmscope::matmul(b.select(1, 0), b.select(1, 1)),
                     at::dot(b.select(1, 0), b.select(1, 1))));
    const auto ints = at::randint(-5, 5, {30, 20}, at::kLong);
    EXPECT_TRUE(at::equal(llmscope::matmul(ints, ints.t()), at::matmul(ints, ints.t())));
    EXPECT_EQ(llmscope::matmul(at::empty({0, 80}), b).sizes(), (at::IntArrayRef{0, 300}));
    EXPECT_TRUE(
        same(llmscope::matmul(at::empty({2, 5, 0}), at::empty({2, 0, 7})), at::zeros({2, 5, 7})));
    EXPECT_THAT([&] { llmscope::matmul(a, a); },
                ::testing::ThrowsMessage<c10::Error>(::testing::HasSubstr("cannot be multiplied")));
    if (blas_threads) EXPECT_EQ(blas_threads(), blas_before);
  }
  auto x = a.clone().set_requires_grad(true);
  llmscope::matmul(x, b).sum().backward();
  EXPECT_TRUE(at::allclose(x.grad(), b.sum(1).expand({96, 80}), 1e-4, 1e-4));
  at::set_num_threads(saved);
}

}  // namespace
}  // namespace llmscope::testing
