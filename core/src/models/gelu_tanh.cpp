// GELU's tanh approximation in one vector pass (gelu_tanh.hpp).
#include "models/gelu_tanh.hpp"

#include <ATen/Parallel.h>

#include "base/avx2_math.hpp"
#include "base/avx512_math.hpp"

namespace llmscope::detail {
namespace {

// Elements per task: large enough that a thread's start is paid for, small enough to spread.
constexpr int64_t kGrain = int64_t{1} << 15;
// -2y = x (a + b x^2) with a = -2 sqrt(2/pi), b = 0.044715 a.
constexpr float kA = -1.5957691216057308f, kB = -0.0713548162726f;

LLMSCOPE_AVX512 void gelu_tanh_avx512(const float* x, float* out, int64_t n) {
  const __m512 a = _mm512_set1_ps(kA), b = _mm512_set1_ps(kB), one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 lanes =
        n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << static_cast<unsigned>(n - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(lanes, x + i);
    const __m512 minus_2y = _mm512_mul_ps(v, _mm512_fmadd_ps(b, _mm512_mul_ps(v, v), a));
    // exp_ps clamps to [-87, 87]: 1 + e^-2y stays finite, and x / it is x or tends to 0.
    const __m512 y = _mm512_div_ps(v, _mm512_add_ps(one, exp_ps(minus_2y)));
    _mm512_mask_storeu_ps(out + i, lanes, y);
  }
}

LLMSCOPE_AVX2_INLINE __m256 gelu_tanh_lanes(__m256 v) {
  const __m256 minus_2y = _mm256_mul_ps(
      v, _mm256_fmadd_ps(_mm256_set1_ps(kB), _mm256_mul_ps(v, v), _mm256_set1_ps(kA)));
  return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_ps(minus_2y)));
}

LLMSCOPE_AVX2 void gelu_tanh_avx2(const float* x, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, gelu_tanh_lanes(_mm256_loadu_ps(x + i)));
  if (i < n) {  // only the tail masked: masked stores are slow on AMD's cores
    const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - i)),
                                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(out + i, lanes, gelu_tanh_lanes(_mm256_maskload_ps(x + i, lanes)));
  }
}

}  // namespace

at::Tensor gelu_tanh_fast(const at::Tensor& x) {
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat ||
      (at::GradMode::is_enabled() && x.requires_grad())) {
    return {};
  }
  const bool avx512 = cpu_has_avx512();
  if (!avx512 && !cpu_has_avx2_fma()) return {};
  const at::Tensor in = x.contiguous();
  at::Tensor out = at::empty_like(in);
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, in.numel(), kGrain, [&](int64_t begin, int64_t end) {
    if (avx512) {
      gelu_tanh_avx512(src + begin, dst + begin, end - begin);
    } else {
      gelu_tanh_avx2(src + begin, dst + begin, end - begin);
    }
  });
  return out;
}

}  // namespace llmscope::detail
