// AVX-512 building blocks shared by the hand-vectorised kernels (stats/logit_avx512.cpp,
// models/gelu_tanh.cpp): the target attributes, the run-time check for the instructions
// they use, and the exponential and reciprocal in vector lanes. Functions using these carry
// LLMSCOPE_AVX512 and run only where cpu_has_avx512() holds; their translation units need no
// -mavx512 flags.
#pragma once

// GCC 12 warns inside its own AVX-512 headers (their _mm512_undefined_* starting values) where
// they are inlined into the including translation unit.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <initializer_list>

#define LLMSCOPE_AVX512 __attribute__((target("avx512f,avx512dq")))
#define LLMSCOPE_AVX512_INLINE LLMSCOPE_AVX512 __attribute__((always_inline)) inline

namespace llmscope {

// True where the CPU has AVX-512 F and DQ, the instructions of LLMSCOPE_AVX512 functions.
inline bool cpu_has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}

// e^v in float32 lanes: v = k ln2 + r with |r| <= ln2 / 2, e^r by its Taylor polynomial to r^7
// (error below 1e-8, under float32's rounding), 2^k by vscalefps. v is clamped to [-87, 87], where
// 1 + e^v and its reciprocal stay normal numbers.
LLMSCOPE_AVX512_INLINE __m512 exp_ps(__m512 v) {
  v = _mm512_max_ps(_mm512_min_ps(v, _mm512_set1_ps(87.0f)), _mm512_set1_ps(-87.0f));
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145751953125f), v);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  for (const float c : {1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f})
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, k);
}

// e^v in float64 lanes, the same way with the Taylor polynomial to r^12 (error below 2e-16).
// v is clamped to [-700, 700].
LLMSCOPE_AVX512_INLINE __m512d exp_pd(__m512d v) {
  v = _mm512_max_pd(_mm512_min_pd(v, _mm512_set1_pd(700.0)), _mm512_set1_pd(-700.0));
  const __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(v, _mm512_set1_pd(1.4426950408889634)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(6.93147180369123816490e-01), v);
  r = _mm512_fnmadd_pd(k, _mm512_set1_pd(1.90821492927058770002e-10), r);
  double factorial = 479001600.0;  // 12!
  __m512d p = _mm512_set1_pd(1.0 / factorial);
  for (int n = 11; n >= 0; --n) {
    factorial /= (n + 1);
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / factorial));
  }
  return _mm512_scalef_pd(p, k);
}

// 1 / d for normal positive d: rcp14 (14 bits), then two Newton-Raphson corrections (about 56
// bits, within an ulp or two); cheaper than vdivpd, which is the slowest instruction of a pass.
LLMSCOPE_AVX512_INLINE __m512d reciprocal_pd(__m512d d) {
  const __m512d one = _mm512_set1_pd(1.0);
  __m512d y = _mm512_rcp14_pd(d);
  y = _mm512_fmadd_pd(y, _mm512_fnmadd_pd(d, y, one), y);
  return _mm512_fmadd_pd(y, _mm512_fnmadd_pd(d, y, one), y);
}

}  // namespace llmscope
