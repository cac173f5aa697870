// The AVX2 math of base/avx2_math.hpp: exp_pd, the float64 exponential of the logistic fit's
// passes, against the C library's over its whole range.
#include "base/avx2_math.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace llmscope::testing {
namespace {

LLMSCOPE_AVX2 void exp_of_four(const double* v, double* out) {
  _mm256_storeu_pd(out, exp_pd(_mm256_loadu_pd(v)));
}

TEST(Avx2Math, ExpPdIsTheExponentialToAFewUlpsAndClampsAt700) {
  if (!cpu_has_avx2_fma()) GTEST_SKIP() << "needs AVX2 and FMA";
  std::vector<double> v;
  for (double x = -700; x <= 700; x += 0.37) v.push_back(x);    // every reduction's k
  for (double x = -2; x <= 2; x += 1.0 / 1024) v.push_back(x);  // near 0, and r's ends at ln 2/2
  for (double x : {0.0, -0.0, 1e-300, -1e-300, 0.34657359027997264, -0.34657359027997264})
    v.push_back(x);
  while (v.size() % 4) v.push_back(0.0);
  std::vector<double> got(v.size());
  for (size_t i = 0; i < v.size(); i += 4) exp_of_four(&v[i], &got[i]);
  double worst = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const double want = std::exp(v[i]);
    worst = std::max(worst, std::abs(got[i] - want) / want);
  }
  EXPECT_LE(worst, 4 * 2.220446049250313e-16);
  // Beyond +-700 the argument is clamped, so the result stays a normal number.
  const double far[4] = {800, -800, 700, -700};
  double out[4];
  exp_of_four(far, out);
  EXPECT_EQ(out[0], out[2]);
  EXPECT_EQ(out[1], out[3]);
  EXPECT_NEAR(out[2] / std::exp(700.0), 1.0, 1e-15);
  EXPECT_TRUE(std::isnormal(out[3]));
}

}  // namespace
}  // namespace llmscope::testing
