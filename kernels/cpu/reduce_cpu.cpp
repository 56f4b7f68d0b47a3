// Reductions are memory-bound: one read of x and a write of the (D times smaller) result. Two
// layouts, by where the reduced dim sits:
//   inner == 1 (the last dim): each output is the reduction of one contiguous row of D floats;
//     threads take whole rows, a row is reduced in SIMD lanes.
//   inner > 1: out[o, i-tile] reduces D rows of `inner` floats lying `inner` apart; the loop runs
//     down those rows for a tile of kTile columns, vectorised across the columns. A tile's f32
//     partials (1 KiB) and double totals (2 KiB) stay in L1 while x streams through once.
//
// Accuracy of the sums: f32 partial sums over short blocks (kRowBlock elements of a row, split
// further across SIMD lanes; kColBlock rows down a column), block totals added in double. A
// plain f32 running sum's error grows with the number of terms: summing 2^20 copies of 0.1f is
// 1% off sequentially and 0.06% off in 16 SIMD lanes. With blocks the error is bounded by the
// block length (~1e-6 relative for 64 terms) whatever D is, and the double adds happen once per
// block, so they cost nothing in these memory-bound loops. Full double accumulation would halve
// the SIMD width on data that is already in cache (bias gradients, attention rows); pairwise
// summation gives a similar bound with more bookkeeping.
#include "kernels/cpu/reduce_cpu.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace kdnas {
namespace {

constexpr int64_t kGrain = 16384;  // elements of x per thread below which one thread runs
constexpr int64_t kRowBlock = 256;  // row elements per f32 partial sum (16 per AVX-512 lane)
constexpr int64_t kColBlock = 64;   // column terms per f32 partial sum
constexpr int64_t kTile = 256;     // columns per tile in the inner > 1 layout

// scale * sum of x[0, D).
KDNAS_CPU_CLONES float row_sum(const float* x, int64_t D, float scale) {
  double total = 0;
  for (int64_t b = 0; b < D; b += kRowBlock) {
    const int64_t n = std::min(kRowBlock, D - b);
    const float* p = x + b;
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += p[i];
    total += double(s);
  }
  return float(total * double(scale));
}

// out[i] = scale * sum_d x[d * inner + i] for i < n <= kTile.
KDNAS_CPU_CLONES void column_sum(float* out, const float* x, int64_t D, int64_t inner, int64_t n,
                                 float scale) {
  double total[kTile];
  float part[kTile];
  for (int64_t i = 0; i < n; ++i) total[i] = 0;
  for (int64_t b = 0; b < D; b += kColBlock) {
    const int64_t e = std::min(D, b + kColBlock);
    for (int64_t i = 0; i < n; ++i) part[i] = 0.f;
    for (int64_t d = b; d < e; ++d) {
      const float* row = x + d * inner;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) part[i] += row[i];
    }
    for (int64_t i = 0; i < n; ++i) total[i] += double(part[i]);
  }
  for (int64_t i = 0; i < n; ++i) out[i] = float(total[i] * double(scale));
}

// The first index of the maximum of x[0, D), D >= 1 (NaN wins). A vectorised max pass, then a
// search for the first element equal to it, 16 elements per vector compare (with a scalar
// search, max over random [1024 x 768] rows took 3.3x longer: 283 us instead of 87 us on one
// thread). NaNs are detected in the max pass, so that the max itself can be a plain SIMD max
// reduction.
KDNAS_CPU_CLONES int64_t row_argmax(const float* x, int64_t D) {
  float m = x[0];
  int nan = 0;
#pragma omp simd reduction(max : m) reduction(| : nan)
  for (int64_t i = 0; i < D; ++i) {
    m = x[i] > m ? x[i] : m;
    nan |= x[i] != x[i];
  }
  if (nan) {
    for (int64_t i = 0; i < D; ++i)
      if (x[i] != x[i]) return i;
  }
  constexpr int64_t kChunk = 16;
  int64_t b = 0;
  for (; b + kChunk <= D; b += kChunk) {
    int hit = 0;
#pragma omp simd reduction(| : hit)
    for (int64_t i = b; i < b + kChunk; ++i) hit |= x[i] == m;
    if (hit) break;
  }
  for (int64_t i = b; i < D; ++i)
    if (x[i] == m) return i;
  return 0;
}

// values[i], indices[i] = max and first argmax over d of x[d * inner + i], for i < n <= kTile.
KDNAS_CPU_CLONES void column_argmax(float* values, int64_t* indices, const float* x, int64_t D,
                                    int64_t inner, int64_t n) {
  float best[kTile];
  int64_t arg[kTile];
  for (int64_t i = 0; i < n; ++i) {
    best[i] = x[i];
    arg[i] = 0;
  }
  for (int64_t d = 1; d < D; ++d) {
    const float* row = x + d * inner;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float v = row[i];
      // Strictly greater keeps the first maximum; a NaN replaces a number but not a NaN.
      const bool take = v > best[i] || (v != v && best[i] == best[i]);
      best[i] = take ? v : best[i];
      arg[i] = take ? d : arg[i];
    }
  }
  std::memcpy(values, best, size_t(n) * sizeof(float));
  std::memcpy(indices, arg, size_t(n) * sizeof(int64_t));
}

KDNAS_CPU_CLONES void fill(float* out, float v, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = v;
}

KDNAS_CPU_CLONES void copy_scaled(float* out, const float* x, float scale, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = scale * x[i];
}

// Output elements per thread chunk: enough that a chunk reads about kGrain elements of x.
int64_t output_grain(int64_t D) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(D, 1)); }

// Splits the [outer, inner] outputs into contiguous per-thread chunks and walks each chunk as
// (o, first column, column count <= kTile) tiles.
template <typename F>
void for_column_tiles(Context& ctx, int64_t outer, int64_t D, int64_t inner, F&& f) {
  parallel_for(ctx, outer * inner, output_grain(D), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e;) {
      const int64_t o = p / inner, i = p % inner;
      const int64_t n = std::min({inner - i, e - p, kTile});
      f(o, i, n);
      p += n;
    }
  });
}

}  // namespace

void sum_forward_cpu(Context& ctx, float* out, const float* x, int64_t outer, int64_t D,
                     int64_t inner, float scale) {
  if (inner == 1) {
    parallel_for(ctx, outer, output_grain(D), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) out[o] = row_sum(x + o * D, D, scale);
    });
    return;
  }
  for_column_tiles(ctx, outer, D, inner, [&](int64_t o, int64_t i, int64_t n) {
    column_sum(out + o * inner + i, x + o * D * inner + i, D, inner, n, scale);
  });
}

void sum_backward_cpu(Context& ctx, float* dx, const float* dout, int64_t outer, int64_t D,
                      int64_t inner, float scale) {
  // Each chunk of dx is walked in runs that share one source: a run of a row of D equal values
  // when inner == 1, otherwise a (part of a) row of inner values copied from dout.
  parallel_for(ctx, outer * D * inner, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e;) {
      int64_t n;
      if (inner == 1) {
        n = std::min(D - p % D, e - p);
        fill(dx + p, scale * dout[p / D], n);
      } else {
        const int64_t row = p / inner, i = p % inner;
        n = std::min(inner - i, e - p);
        copy_scaled(dx + p, dout + (row / D) * inner + i, scale, n);
      }
      p += n;
    }
  });
}

void max_forward_cpu(Context& ctx, float* values, int64_t* indices, const float* x, int64_t outer,
                     int64_t D, int64_t inner) {
  if (inner == 1) {
    parallel_for(ctx, outer, output_grain(D), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const int64_t k = row_argmax(x + o * D, D);
        indices[o] = k;
        values[o] = x[o * D + k];
      }
    });
    return;
  }
  for_column_tiles(ctx, outer, D, inner, [&](int64_t o, int64_t i, int64_t n) {
    column_argmax(values + o * inner + i, indices + o * inner + i, x + o * D * inner + i, D, inner,
                  n);
  });
}

void max_backward_cpu(Context& ctx, float* dx, const float* dout, const int64_t* indices,
                      int64_t outer, int64_t D, int64_t inner) {
  // Zero everything, then scatter each gradient to its argmax: two streaming passes, and the
  // scatter touches only outer * inner elements.
  parallel_for(ctx, outer * D * inner, kGrain, [&](int64_t b, int64_t e) {
    std::memset(dx + b, 0, size_t(e - b) * sizeof(float));
  });
  parallel_for(ctx, outer * inner, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const int64_t o = p / inner, i = p % inner;
      dx[(o * D + indices[p]) * inner + i] = dout[p];
    }
  });
}

}  // namespace kdnas
