// Attention's scale, mask and softmax in one pass per row (masked_softmax.hpp).
#include "models/masked_softmax.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "base/avx2_math.hpp"

namespace llmscope::detail {
namespace {

// Lanes whose key is allowed: 8 bools widened to 32-bit masks.
LLMSCOPE_AVX2_INLINE __m256 allowed_lanes(const bool* keys) {
  long long bytes = 0;
  __builtin_memcpy(&bytes, keys, 8);
  const __m256i wide = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes));
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(wide, _mm256_setzero_si256()));
}

LLMSCOPE_AVX2_INLINE float horizontal_max(__m256 v) {
  __m128 half = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  half = _mm_max_ps(half, _mm_movehl_ps(half, half));
  return _mm_cvtss_f32(_mm_max_ss(half, _mm_shuffle_ps(half, half, 1)));
}

LLMSCOPE_AVX2_INLINE float horizontal_sum(__m256 v) {
  __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  half = _mm_add_ps(half, _mm_movehl_ps(half, half));
  return _mm_cvtss_f32(_mm_add_ss(half, _mm_shuffle_ps(half, half, 1)));
}

LLMSCOPE_AVX2 void softmax_row(float* row, const bool* keys, int64_t n, float divisor1,
                               float divisor2) {
  // The last n % 8 entries go through a zero-padded copy (masked loads and stores are slow on
  // AMD's cores); padding keys are masked, so they move neither the maximum nor the sum.
  const int64_t full = n / 8 * 8, rest = n - full;
  alignas(32) float tail[8] = {};
  alignas(8) bool tail_keys[8] = {};
  __builtin_memcpy(tail, row + full, static_cast<size_t>(rest) * sizeof(float));
  __builtin_memcpy(tail_keys, keys + full, static_cast<size_t>(rest));
  const auto block = [&](int64_t j) { return j < full ? row + j : tail; };
  const auto block_keys = [&](int64_t j) { return j < full ? keys + j : tail_keys; };
  const int64_t end = full + (rest > 0 ? 8 : 0);

  // Pass 1: scaled or lowest, and the row's maximum.
  const __m256 lowest = _mm256_set1_ps(std::numeric_limits<float>::lowest());
  const __m256 d1 = _mm256_set1_ps(divisor1), d2 = _mm256_set1_ps(divisor2);
  const bool two_divisors = divisor2 != 1.0f;
  __m256 max = lowest;
  int any = 0;
  for (int64_t j = 0; j < end; j += 8) {
    float* at = block(j);
    const __m256 ok = allowed_lanes(block_keys(j));
    any |= _mm256_movemask_ps(ok);
    __m256 scaled = _mm256_div_ps(_mm256_loadu_ps(at), d1);
    if (two_divisors) scaled = _mm256_div_ps(scaled, d2);
    const __m256 v = _mm256_blendv_ps(lowest, scaled, ok);
    max = _mm256_max_ps(max, v);
    _mm256_storeu_ps(at, v);
  }
  if (any == 0) {  // every entry is the lowest float: ATen's softmax gives each the same share
    const float share = 1.0f / static_cast<float>(n);
    for (int64_t j = 0; j < n; ++j) row[j] = share;
    return;
  }
  // Pass 2: e^(v - max), 0 where masked (exp_ps would give e^-87 for the lowest float).
  const __m256 top = _mm256_set1_ps(horizontal_max(max));
  __m256 sum = _mm256_setzero_ps();
  for (int64_t j = 0; j < end; j += 8) {
    float* at = block(j);
    const __m256 ok = allowed_lanes(block_keys(j));
    const __m256 e = _mm256_and_ps(exp_ps(_mm256_sub_ps(_mm256_loadu_ps(at), top)), ok);
    sum = _mm256_add_ps(sum, e);
    _mm256_storeu_ps(at, e);
  }
  // Pass 3: times 1 / sum, as ATen's softmax does.
  const __m256 scale = _mm256_set1_ps(1.0f / horizontal_sum(sum));
  for (int64_t j = 0; j < end; j += 8) {
    float* at = block(j);
    _mm256_storeu_ps(at, _mm256_mul_ps(_mm256_loadu_ps(at), scale));
  }
  __builtin_memcpy(row + full, tail, static_cast<size_t>(rest) * sizeof(float));
}

}  // namespace

bool masked_softmax_(at::Tensor& scores, const at::Tensor& allowed, float divisor1,
                     float divisor2) {
  if (!scores.device().is_cpu() || scores.scalar_type() != at::kFloat || scores.dim() < 1 ||
      !scores.is_contiguous() || (at::GradMode::is_enabled() && scores.requires_grad()) ||
      !allowed.defined() || allowed.scalar_type() != at::kBool || !allowed.device().is_cpu() ||
      !cpu_has_avx2_fma()) {
    return false;
  }
  const at::Tensor mask = allowed.expand_as(scores);  // a view: heads share their batch's mask
  const int64_t n = scores.size(-1);
  if (n == 0 || scores.numel() == 0) return true;
  if (mask.stride(-1) != 1) return false;
  const int64_t rows = scores.numel() / n, dims = scores.dim() - 1;
  const std::vector<int64_t> sizes(scores.sizes().begin(), scores.sizes().end() - 1);
  const std::vector<int64_t> strides(mask.strides().begin(), mask.strides().end() - 1);
  float* data = scores.data_ptr<float>();
  const bool* keys = mask.data_ptr<bool>();
  // About 16k entries per task: a row of 128 keys is ~0.2 us.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 14) / n);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    // The row's place by dimension (an odometer: no divisions per row) and its mask's offset.
    std::vector<int64_t> index(static_cast<size_t>(dims));
    int64_t offset = 0;
    for (int64_t d = dims - 1, rest = begin; d >= 0; --d) {
      index[d] = rest % sizes[d];
      offset += index[d] * strides[d];
      rest /= sizes[d];
    }
    for (int64_t r = begin; r < end; ++r) {
      softmax_row(data + r * n, keys + offset, n, divisor1, divisor2);
      for (int64_t d = dims - 1; d >= 0; --d) {
        offset += strides[d];
        if (++index[d] < sizes[d]) break;
        offset -= index[d] * strides[d];
        index[d] = 0;
      }
    }
  });
  return true;
}

}  // namespace llmscope::detail
