// Float32 products by llmscope's own AVX2 kernel (sgemm.hpp).
//
// The blocking is the usual one for a register-tiled kernel (as in BLIS and OpenBLAS): a is packed
// once per product (per chunk of rows, for a tall a) into panels of MR rows for each block of KC
// along k; each thread takes columns of b in units, packs a unit's KC x width block into panels of
// NR columns, and runs the kernel over MC rows of a (kept in L2) for every NR-column panel (kept
// in L1). With MC rows or fewer,
// each panel is used once, so b is packed a slice of columns at a time, the slice staying in L2.
// Every output element is one FMA chain per k block, blocks added in order into the output, so no
// choice of rows, units, slices or threads changes a bit.
#include "base/sgemm.hpp"

#include "base/avx2_math.hpp"
#include "base/avx512_math.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>

namespace llmscope::detail {
namespace {

constexpr int kRows = 6;        // MR: rows of the kernel's tile (12 accumulators of 8 lanes)
constexpr int kColumns = 16;    // NR: columns of the tile, two vectors
constexpr int kDepth = 256;     // KC: a block along k; b's panel of it is 16 KB, in L1
constexpr int kRowBlock = 96;   // MC: a's rows per pass over a unit's panels, 96 KB in L2
constexpr int kUnitMax = 2048;  // a unit's columns at most: its packed block is 2 MB at KC
constexpr int kUnitMin = 32;    // ... and at least, where there are that many
constexpr int kShares = 2;      // a unit is 1 / (kShares x threads) of the columns left
constexpr int kSlice = 256;     // columns packed at a time for a few rows: 256 KB at KC, in L2
// Below this many multiply-adds the product stays on the calling thread.
constexpr int64_t kThreadedWork = int64_t{1} << 18;

// The tile c[0, rows) x [0, cols) (row stride ldc) from a's packed panel ([k][kRows]) and b's
// ([k][kColumns]) over kc: stored as bias + sum in the first block (bias may be null), added to c
// in the others.
LLMSCOPE_AVX2 void kernel(int kc, const float* __restrict a, const float* __restrict b,
                          float* __restrict c, int64_t ldc, bool first, const float* bias, int rows,
                          int cols) {
  if (!first) {
    for (int r = 0; r < rows; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + kColumns - 1), _MM_HINT_T0);
    }
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
         c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
  for (int k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 x = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(x, b0, c10);
    c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(x, b0, c20);
    c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(x, b0, c30);
    c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(x, b0, c40);
    c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(x, b0, c50);
    c51 = _mm256_fmadd_ps(x, b1, c51);
    a += kRows;
    b += kColumns;
  }
  __m256 sum[kRows][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (rows == kRows && cols == kColumns) {
    const __m256 bias0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 bias1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
    for (int r = 0; r < kRows; ++r) {
      float* out = c + r * ldc;
      if (!first) {
        sum[r][0] = _mm256_add_ps(_mm256_loadu_ps(out), sum[r][0]);
        sum[r][1] = _mm256_add_ps(_mm256_loadu_ps(out + 8), sum[r][1]);
      } else if (bias) {
        sum[r][0] = _mm256_add_ps(bias0, sum[r][0]);
        sum[r][1] = _mm256_add_ps(bias1, sum[r][1]);
      }
      _mm256_storeu_ps(out, sum[r][0]);
      _mm256_storeu_ps(out + 8, sum[r][1]);
    }
    return;
  }
  // An edge tile: the same sums, the same additions, element by element.
  alignas(32) float tile[kRows][kColumns];
  for (int r = 0; r < kRows; ++r) {
    _mm256_store_ps(tile[r], sum[r][0]);
    _mm256_store_ps(tile[r] + 8, sum[r][1]);
  }
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < cols; ++j) {
      float& out = c[r * ldc + j];
      out = !first ? out + tile[r][j] : bias ? bias[j] + tile[r][j] : tile[r][j];
    }
  }
}

LLMSCOPE_AVX2_INLINE void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Columns [0, width) x k [0, kc) of b (element (k, j) at b[k * sk + j * sj]) into panels of
// kColumns columns, [k][kColumns] each, the last one padded with zeros. Rows of b in memory are
// read along the row, across the panels, so that the weights stream from memory in order.
LLMSCOPE_AVX2 void pack_b(const float* b, int64_t sk, int64_t sj, int width, int kc, float* out) {
  const int full = width / kColumns * kColumns;
  int first_left = 0;  // the first column the vector paths leave to the element loop
  if (sj == 1) {       // b's rows in memory (GPT-2's Conv1D weights)
    for (int k = 0; k < kc; ++k) {
      const float* row = b + k * sk;
      for (int j = 0; j < full; j += kColumns) {
        float* panel = out + j * kc + k * kColumns;
        _mm256_store_ps(panel, _mm256_loadu_ps(row + j));
        _mm256_store_ps(panel + 8, _mm256_loadu_ps(row + j + 8));
      }
    }
    first_left = full;
  } else if (sk == 1 && kc >= 8) {  // b's columns in memory (nn.Linear's weights)
    const int vector_k = kc / 8 * 8;
    for (int j = 0; j < full; j += kColumns) {
      float* panel = out + j * kc;
      for (int k = 0; k < vector_k; k += 8) {
        for (int half = 0; half < 2; ++half) {
          __m256 r[8];
          for (int c = 0; c < 8; ++c) r[c] = _mm256_loadu_ps(b + (j + half * 8 + c) * sj + k);
          transpose8(r);
          for (int i = 0; i < 8; ++i) _mm256_store_ps(panel + (k + i) * kColumns + half * 8, r[i]);
        }
      }
      for (int k = vector_k; k < kc; ++k) {
        for (int c = 0; c < kColumns; ++c) panel[k * kColumns + c] = b[k + (j + c) * sj];
      }
    }
    first_left = full;
  }
  for (int j = first_left; j < width; j += kColumns) {
    const int cols = std::min(kColumns, width - j);
    float* panel = out + j * kc;
    for (int k = 0; k < kc; ++k) {
      for (int c = 0; c < cols; ++c) panel[k * kColumns + c] = b[k * sk + (j + c) * sj];
      for (int c = cols; c < kColumns; ++c) panel[k * kColumns + c] = 0.f;
    }
  }
}

// Rows [0, rows) x k [0, kc) of a (element (i, k) at a[i * si + k * sk]) as one panel
// [k][kRows], padded with zero rows. Rows in memory go eight k at a time through a transpose whose
// eight-float stores overlap the next k's; the last group is left to the element loop so that no
// store passes the panel's end (the next panel may be another thread's).
LLMSCOPE_AVX2 void pack_a(const float* a, int64_t si, int64_t sk, int rows, int kc, float* out) {
  int k = 0;
  if (sk == 1) {
    for (; k + 8 < kc; k += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i)
        r[i] = i < rows ? _mm256_loadu_ps(a + i * si + k) : _mm256_setzero_ps();
      transpose8(r);
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + (k + i) * kRows, r[i]);
    }
  }
  for (; k < kc; ++k) {
    for (int r = 0; r < rows; ++r) out[k * kRows + r] = a[r * si + k * sk];
    for (int r = rows; r < kRows; ++r) out[k * kRows + r] = 0.f;
  }
}

// A thread's buffer for b's packed block, 64-byte aligned, kept for the thread's next products.
float* unit_buffer(size_t floats) {
  struct Buffer {
    std::unique_ptr<float, decltype(&std::free)> data{nullptr, &std::free};
    size_t size = 0;
  };
  thread_local Buffer buffer;
  if (buffer.size < floats) {
    buffer.data.reset(static_cast<float*>(std::aligned_alloc(64, (floats * 4 + 63) / 64 * 64)));
    TORCH_CHECK(buffer.data, "sgemm: could not allocate ", floats * 4, " bytes");
    buffer.size = floats;
  }
  return buffer.data.get();
}

// fn(i) for i in [0, count): on ATen's threads, or here for small products.
template <typename Fn>
void for_each(int64_t count, bool threaded, const Fn& fn) {
  if (!threaded || count < 2) {
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) fn(i);
  });
}

// c [m, n] (rows in memory, row stride n) = bias + a b for one chunk of rows.
void multiply_rows(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b,
                   float* c_data) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  const bool threaded = m * k * n >= kThreadedWork && at::get_num_threads() > 1;

  // a, packed once: the block at depth p holds panels of kRows rows, [k][kRows] each.
  const int64_t panels = (m + kRows - 1) / kRows, padded = panels * kRows;
  at::Tensor packed_a = at::empty({padded * k}, a.options());
  float* pa = packed_a.data_ptr<float>();
  const float* a_data = a.data_ptr<float>();
  const int64_t asi = a.stride(0), ask = a.stride(1);
  for_each(panels, threaded, [&](int64_t panel) {
    const int rows = static_cast<int>(std::min<int64_t>(kRows, m - panel * kRows));
    for (int64_t p = 0; p < k; p += kDepth) {
      const int kc = static_cast<int>(std::min<int64_t>(kDepth, k - p));
      pack_a(a_data + panel * kRows * asi + p * ask, asi, ask, rows, kc,
             pa + p * padded + panel * kRows * kc);
    }
  });

  // b's columns in units of a multiple of kColumns, claimed by the threads as they become free,
  // each a share of the columns left (guided scheduling): the last units are narrow, so that no
  // thread waits long for another at the end of the product (a unit of a fixed width left one
  // thread idle for up to a unit's time, 2.7% of a forward pass's samples).
  const int64_t threads = threaded ? at::get_num_threads() : 1;
  std::atomic<int64_t> next{0};  // the first column not yet claimed
  const auto claim = [&](int64_t& begin, int64_t& width) {
    begin = next.load(std::memory_order_relaxed);
    do {
      if (begin >= n) return false;
      const int64_t share = (n - begin + threads * kShares - 1) / (threads * kShares);
      width = std::min(n - begin, std::clamp<int64_t>((share + kColumns - 1) / kColumns * kColumns,
                                                      kUnitMin, kUnitMax));
    } while (!next.compare_exchange_weak(begin, begin + width, std::memory_order_relaxed));
    return true;
  };
  const float* b_data = b.data_ptr<float>();
  const int64_t bsk = b.stride(0), bsj = b.stride(1);
  const at::Tensor bias_values = bias.defined() ? bias.contiguous() : at::Tensor();
  const float* bias_data = bias.defined() ? bias_values.data_ptr<float>() : nullptr;
  // Rows [i0, i1) by the packed panels of columns [j, j + width) at depth p.
  const auto tiles = [&](const float* pb, int64_t j, int width, int64_t i0, int64_t i1, int64_t p,
                         int kc) {
    for (int jr = 0; jr < width; jr += kColumns) {
      for (int64_t i = i0; i < i1; i += kRows) {
        kernel(kc, pa + p * padded + i * kc, pb + jr * kc, c_data + i * n + j + jr, n, p == 0,
               bias_data ? bias_data + j + jr : nullptr,
               static_cast<int>(std::min<int64_t>(kRows, m - i)), std::min(kColumns, width - jr));
      }
    }
  };
  // Columns [j0, j0 + cols) of the product.
  const auto unit = [&](int64_t j0, int cols) {
    float* pb = unit_buffer(static_cast<size_t>(cols + kColumns) * kDepth);
    for (int64_t p = 0; p < k; p += kDepth) {
      const int kc = static_cast<int>(std::min<int64_t>(kDepth, k - p));
      const float* b_block = b_data + p * bsk + j0 * bsj;
      if (m <= kRowBlock) {
        // A few rows use each panel once: pack columns a slice at a time, the slice kept in L2.
        for (int j = 0; j < cols; j += kSlice) {
          const int slice = std::min(kSlice, cols - j);
          pack_b(b_block + j * bsj, bsk, bsj, slice, kc, pb);
          tiles(pb, j0 + j, slice, 0, m, p, kc);
        }
        continue;
      }
      pack_b(b_block, bsk, bsj, cols, kc, pb);
      for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
        tiles(pb, j0, cols, i0, std::min(m, i0 + kRowBlock), p, kc);
      }
    }
  };
  for_each(threads, threaded, [&](int64_t) {
    for (int64_t j0, width; claim(j0, width);) unit(j0, static_cast<int>(width));
  });
}

}  // namespace

bool sgemm_applies(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b) {
  static const bool cpu = cpu_has_avx2_fma() && !cpu_has_avx512();
  const auto fits = [](const at::Tensor& t) {
    return t.scalar_type() == at::kFloat && t.device().is_cpu() &&
           !(t.requires_grad() && at::GradMode::is_enabled());
  };
  return cpu && a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0) && a.size(1) >= 1 &&
         b.size(1) >= kColumns && fits(a) && fits(b) &&
         (!bias.defined() || (fits(bias) && bias.dim() == 1 && bias.size(0) == b.size(1)));
}

at::Tensor sgemm(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  at::Tensor c = at::empty({m, n}, a.options());
  // Rows a chunk at a time, so that a's packed copy stays within about 16 MB however tall a is;
  // the chunks alike (in whole row blocks), so that no thin last chunk packs all of b for a few
  // rows (2048 rows at k = 2048 were 2016 rows and 32).
  const int64_t most = std::max<int64_t>(kRowBlock, (int64_t{1} << 22) / k / kRowBlock * kRowBlock);
  const int64_t chunks = std::max<int64_t>(1, (m + most - 1) / most);  // none for m = 0
  const int64_t chunk = ((m + chunks - 1) / chunks + kRowBlock - 1) / kRowBlock * kRowBlock;
  for (int64_t i = 0; i < m; i += chunk) {
    multiply_rows(bias, a.narrow(0, i, std::min(chunk, m - i)), b, c.data_ptr<float>() + i * n);
  }
  return c;
}

}  // namespace llmscope::detail
