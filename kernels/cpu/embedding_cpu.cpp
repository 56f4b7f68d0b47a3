// The lookup is a gather of N rows of C floats: memory-bound, split over rows.
//
// The dense gradient is dominated by writing the [V, C] table (92 MB for V = 30000, C = 768;
// 768 MB for XLM-R's 250002 rows) against only N*C floats of scatter. It runs in two passes
// (the accumulating variant is the second alone):
//   1. zero the table, split into contiguous ranges (a streaming write);
//   2. scatter-add, split over columns in blocks of one cache line. Each thread owns a column
//      block of every row, so no two threads write the same element (no atomics), and each
//      thread walks n in increasing order: every element is the same chain of additions as in
//      the reference, hence the same bits for any thread count.
#include "kernels/cpu/embedding_cpu.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace kdnas {
namespace {

constexpr int64_t kGrain = 16384;  // elements below which one thread is faster than two
constexpr int64_t kColBlock = 16;  // floats per cache line

KDNAS_CPU_CLONES void add_row(float* dst, const float* src, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace

void embedding_forward_cpu(Context& ctx, float* out, const int64_t* ids, const float* table,
                           int64_t N, int64_t C) {
  const int64_t row_grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(C, 1));
  parallel_for(ctx, N, row_grain, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n)
      std::memcpy(out + n * C, table + ids[n] * C, size_t(C) * sizeof(float));
  });
}

void embedding_backward_cpu(Context& ctx, float* dtable, const float* dout, const int64_t* ids,
                            int64_t N, int64_t V, int64_t C, int64_t padding_idx) {
  parallel_for(ctx, V * C, kGrain, [&](int64_t b, int64_t e) {
    std::memset(dtable + b, 0, size_t(e - b) * sizeof(float));
  });
  embedding_backward_accumulate_cpu(ctx, dtable, dout, ids, N, C, padding_idx);
}

void embedding_backward_accumulate_cpu(Context& ctx, float* dtable, const float* dout,
                                       const int64_t* ids, int64_t N, int64_t C,
                                       int64_t padding_idx) {
  const int64_t blocks = (C + kColBlock - 1) / kColBlock;
  const int64_t block_grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(N * kColBlock, 1));
  parallel_for(ctx, blocks, block_grain, [&](int64_t b, int64_t e) {
    const int64_t c0 = b * kColBlock, c1 = std::min(C, e * kColBlock);
    for (int64_t n = 0; n < N; ++n) {
      if (ids[n] == padding_idx) continue;
      add_row(dtable + ids[n] * C + c0, dout + n * C + c0, c1 - c0);
    }
  });
}

}  // namespace kdnas
