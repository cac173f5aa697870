// AVX2 + FMA building blocks for the hand-vectorised kernels' 256-bit versions
// (stats/logit_avx2.cpp, models/gelu_tanh.cpp), the counterparts of avx512_math.hpp on CPUs without
// AVX-512: the target attributes, the run-time check, and the exponentials in vector lanes.
// Functions using these carry LLMSCOPE_AVX2 and run only where cpu_has_avx2_fma() holds.
#pragma once

#include <immintrin.h>

#include <initializer_list>

#define LLMSCOPE_AVX2 __attribute__((target("avx2,fma")))
#define LLMSCOPE_AVX2_INLINE LLMSCOPE_AVX2 __attribute__((always_inline)) inline

namespace llmscope {

// True where the CPU has AVX2 and FMA, the instructions of LLMSCOPE_AVX2 functions.
inline bool cpu_has_avx2_fma() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// e^v in float32 lanes as avx512_math.hpp's exp_ps: v = k ln2 + r, e^r to r^7, and 2^k built in
// the exponent field (k is within [-126, 126] for v in [-87, 87], a normal number).
LLMSCOPE_AVX2_INLINE __m256 exp_ps(__m256 v) {
  v = _mm256_max_ps(_mm256_min_ps(v, _mm256_set1_ps(87.0f)), _mm256_set1_ps(-87.0f));
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145751953125f), v);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.428606765330187e-06f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  for (const float c : {1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f})
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
  const __m256i two_k =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(two_k));
}

// 1 / n! in every lane, for exp_pd's polynomial (n <= 12).
LLMSCOPE_AVX2_INLINE __m256d inverse_factorial(int n) {
  static constexpr double kInverse[13] = {1.0,
                                          1.0,
                                          1.0 / 2,
                                          1.0 / 6,
                                          1.0 / 24,
                                          1.0 / 120,
                                          1.0 / 720,
                                          1.0 / 5040,
                                          1.0 / 40320,
                                          1.0 / 362880,
                                          1.0 / 3628800,
                                          1.0 / 39916800,
                                          1.0 / 479001600};
  return _mm256_set1_pd(kInverse[n]);
}

// e^v in float64 lanes as avx512_math.hpp's exp_pd (Taylor to r^12, summed in another order);
// v clamped to [-700, 700], so k is within [-1010, 1010] and 2^k a normal number.
LLMSCOPE_AVX2_INLINE __m256d exp_pd(__m256d v) {
  v = _mm256_max_pd(_mm256_min_pd(v, _mm256_set1_pd(700.0)), _mm256_set1_pd(-700.0));
  const __m256d k = _mm256_round_pd(_mm256_mul_pd(v, _mm256_set1_pd(1.4426950408889634)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(6.93147180369123816490e-01), v);
  r = _mm256_fnmadd_pd(k, _mm256_set1_pd(1.90821492927058770002e-10), r);
  // The Taylor polynomial by Estrin's scheme (pairs, then powers r^2, r^4, r^8): four dependent
  // FMAs instead of Horner's twelve, so that the logistic fit's pass is not held up by one
  // sample's exponential.
  const __m256d r2 = _mm256_mul_pd(r, r), r4 = _mm256_mul_pd(r2, r2), r8 = _mm256_mul_pd(r4, r4);
  const __m256d q0 = _mm256_fmadd_pd(inverse_factorial(1), r, inverse_factorial(0)),
                q1 = _mm256_fmadd_pd(inverse_factorial(3), r, inverse_factorial(2));
  const __m256d q2 = _mm256_fmadd_pd(inverse_factorial(5), r, inverse_factorial(4)),
                q3 = _mm256_fmadd_pd(inverse_factorial(7), r, inverse_factorial(6));
  const __m256d q4 = _mm256_fmadd_pd(inverse_factorial(9), r, inverse_factorial(8)),
                q5 = _mm256_fmadd_pd(inverse_factorial(11), r, inverse_factorial(10));
  const __m256d s0 = _mm256_fmadd_pd(q1, r2, q0), s1 = _mm256_fmadd_pd(q3, r2, q2);
  const __m256d s2 = _mm256_fmadd_pd(q5, r2, q4);
  const __m256d t0 = _mm256_fmadd_pd(s1, r4, s0),
                t1 = _mm256_fmadd_pd(inverse_factorial(12), r4, s2);
  const __m256d p = _mm256_fmadd_pd(t1, r8, t0);
  const __m256i biased =
      _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k)), _mm256_set1_epi64x(1023));
  return _mm256_mul_pd(p, _mm256_castsi256_pd(_mm256_slli_epi64(biased, 52)));
}

}  // namespace llmscope
