// llmscope's own float32 kernel (base/sgemm.hpp): which products it takes, that it gives the
// products to float32 rounding for every edge of its tiles and blocks and every operand layout,
// that a row's bits do not depend on the rows or threads around it, and that NaN and infinity stay
// in their own rows and columns.
#include "base/sgemm.hpp"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "base/avx2_math.hpp"
#include "base/avx512_math.hpp"

namespace llmscope::testing {
namespace {

bool kernel_cpu() { return cpu_has_avx2_fma() && !cpu_has_avx512(); }

// Restores ATen's thread count.
struct Threads {
  explicit Threads(int n) : saved(at::get_num_threads()) { at::set_num_threads(n); }
  ~Threads() { at::set_num_threads(saved); }
  int saved;
};

TEST(Sgemm, TakesFloat32ProductsOfSixteenColumnsOrMoreOnAvx2Cpus) {
  const auto a = at::randn({5, 8}), b = at::randn({8, 16}), bias = at::randn({16});
  EXPECT_EQ(detail::sgemm_applies(bias, a, b), kernel_cpu());
  EXPECT_EQ(detail::sgemm_applies(at::Tensor(), a, b), kernel_cpu());
  if (!kernel_cpu()) GTEST_SKIP() << "the kernel needs AVX2 and FMA without AVX-512";
  EXPECT_FALSE(detail::sgemm_applies(at::Tensor(), a, b.narrow(1, 0, 15)));  // too narrow
  EXPECT_FALSE(detail::sgemm_applies(at::Tensor(), a.to(at::kDouble), b.to(at::kDouble)));
  EXPECT_FALSE(detail::sgemm_applies(at::Tensor(), a, b.to(at::kDouble)));
  EXPECT_FALSE(detail::sgemm_applies(bias.to(at::kDouble), a, b));
  EXPECT_FALSE(detail::sgemm_applies(at::randn({5, 16}), a, b));  // a bias of another shape
  EXPECT_FALSE(detail::sgemm_applies(at::Tensor(), a.narrow(1, 0, 0), b.narrow(0, 0, 0)));
  EXPECT_FALSE(detail::sgemm_applies(at::Tensor(), a.clone().set_requires_grad(true), b));
  {
    const at::NoGradGuard no_grad;  // gradients not recorded: a leaf needing one is just data
    EXPECT_TRUE(detail::sgemm_applies(at::Tensor(), a.clone().set_requires_grad(true), b));
  }
}

// Against float64 products: an element's error is within float32's rounding of its terms' sizes.
void expect_product(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b,
                    const std::string& what) {
  ASSERT_TRUE(detail::sgemm_applies(bias, a, b)) << what;
  const at::Tensor got = detail::sgemm(bias, a, b);
  ASSERT_EQ(got.sizes(), (at::IntArrayRef{a.size(0), b.size(1)})) << what;
  const at::Tensor a64 = a.to(at::kDouble), b64 = b.to(at::kDouble);
  at::Tensor want = at::mm(a64, b64), scale = at::mm(a64.abs(), b64.abs());
  if (bias.defined()) {
    want += bias.to(at::kDouble);
    scale += bias.to(at::kDouble).abs();
  }
  const double eps = 1.2e-7 * static_cast<double>(a.size(1) + 2);
  const at::Tensor excess = (got.to(at::kDouble) - want).abs() - scale * eps - 1e-30;
  EXPECT_LE(excess.max().item<double>(), 0.0) << what;
}

TEST(Sgemm, GivesTheProductAtEveryEdgeAndLayout) {
  if (!kernel_cpu()) GTEST_SKIP() << "the kernel needs AVX2 and FMA without AVX-512";
  at::manual_seed(11);
  for (const int threads : {1, 2, 3}) {
    const Threads set(threads);
    // Rows around the tile's 6 and the row block's 96, depths around the block of 256 and the
    // transposes' 8, columns around the tile's 16, a unit's least 32 and a last unit narrower
    // than that, and a unit's most 2048 (at 4200 columns the first unit is 2048 at one thread).
    for (const int64_t m : {1, 5, 6, 7, 97, 200}) {
      for (const int64_t k : {1, 7, 9, 256, 257, 600}) {
        for (const int64_t n : {16, 17, 130, 2100, 4200}) {
          if (m * k * n > 40'000'000) continue;
          const std::string shape = std::to_string(m) + "x" + std::to_string(k) + "x" +
                                    std::to_string(n) + " at " + std::to_string(threads);
          const auto a = at::randn({m, k}), bias = at::randn({n});
          expect_product(bias, a, at::randn({k, n}), "rows of b in memory, " + shape);
          expect_product(at::Tensor(), a, at::randn({n, k}).t(), "columns in memory, " + shape);
        }
      }
    }
  }
  // Operands of other strides: a transposed and a cut from a wider matrix, b every other column.
  const auto wide = at::randn({300, 2 * 700});
  expect_product(at::randn({700}), at::randn({300, 90}).t(), wide.slice(1, 0, 1400, 2),
                 "strided operands");
  expect_product(at::Tensor(), at::randn({90, 400}).narrow(1, 3, 300), wide.narrow(1, 5, 33),
                 "a row stride wider than its rows");
  // Deep enough that a is packed in chunks of rows (2^22 floats: 384 rows at k = 9000).
  expect_product(at::randn({20}), at::randn({1000, 9000}), at::randn({9000, 20}), "chunks of rows");
  // Two chunks alike (1056 and 1044 rows) where 2016 rows would fit one and leave 84.
  expect_product(at::Tensor(), at::randn({2100, 2048}), at::randn({2048, 20}), "chunks alike");
  EXPECT_EQ(detail::sgemm(at::Tensor(), at::randn({0, 9}), at::randn({9, 20})).sizes(),
            at::IntArrayRef({0, 20}));
}

TEST(Sgemm, RowsAreTheSameBitsWhateverTheRowsAndThreadsAroundThem) {
  if (!kernel_cpu()) GTEST_SKIP() << "the kernel needs AVX2 and FMA without AVX-512";
  at::manual_seed(12);
  const auto w = at::randn({768, 700}), linear = at::randn({700, 768}), bias = at::randn({700});
  const auto rows = at::randn({137, 768});
  const Threads one(1);
  const auto whole = detail::sgemm(bias, rows, w), whole_t = detail::sgemm({}, rows, linear.t());
  for (const int threads : {1, 2, 3}) {
    const Threads set(threads);
    EXPECT_TRUE(at::equal(detail::sgemm(bias, rows, w), whole)) << threads << " threads";
    EXPECT_TRUE(at::equal(detail::sgemm({}, rows, linear.t()), whole_t)) << threads << " threads";
    for (const int64_t start : {0, 1, 5, 6, 11, 96, 100}) {
      for (const int64_t count : {1, 5, 13, 37}) {
        EXPECT_TRUE(at::equal(detail::sgemm(bias, rows.narrow(0, start, count), w),
                              whole.narrow(0, start, count)))
            << count << " rows from " << start << " at " << threads << " threads";
      }
    }
  }
}

TEST(Sgemm, NanAndInfinityStayInTheirRowsAndColumns) {
  if (!kernel_cpu()) GTEST_SKIP() << "the kernel needs AVX2 and FMA without AVX-512";
  auto a = at::randn({13, 40}), b = at::randn({40, 33});
  a[4][7] = std::numeric_limits<float>::quiet_NaN();
  b[9][20] = std::numeric_limits<float>::infinity();
  const auto c = detail::sgemm(at::Tensor(), a, b);
  const auto bad = at::isnan(c) | at::isinf(c);
  auto expected = at::zeros({13, 33}, at::kBool);
  expected[4] = true;
  expected.select(1, 20) = true;
  EXPECT_TRUE(at::equal(bad, expected));
}

}  // namespace
}  // namespace llmscope::testing
