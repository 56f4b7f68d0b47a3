// Softmax is memory-bound once exp is vectorised: one read of x (+ the mask row, which a
// broadcast mask keeps in cache) and one write of out. Threads take contiguous blocks of rows;
// each row is done in three vectorised passes over out, which stays in L1 between them
// (512 B for an attention row of T = 128, 12 KiB at N = 3072):
//   1. z = scale * x + mask, stored in out, and its max;
//   2. out = exp(z - max) and its sum, fused;
//   3. out *= 1 / sum.
// So x is read from memory once and out written once. (An online softmax, which carries a
// running max and rescales its sum, saves pass 1's re-read of an L1-resident row at the cost
// of an extra multiply per element; with rows this short it is not worth its complexity.)
#include "kernels/cpu/softmax_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace kdnas {
namespace {

constexpr int64_t kGrain = 16384;  // elements; below this one thread beats waking two
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// vec::exp clamps its input at -87.3 (e^-87.3 ~ 1e-38, the smallest normal float) rather than
// returning 0; a shifted logit below this is taken as exactly 0, so masked keys get exactly
// zero probability, as they do in the reference.
constexpr float kExpFloor = -87.0f;

KDNAS_CPU_CLONES void softmax_fwd_row(float* o, const float* x, const float* m, float scale,
                                      int64_t N) {
  float mx = kNegInf;
  if (m) {
#pragma omp simd reduction(max : mx)
    for (int64_t n = 0; n < N; ++n) {
      o[n] = scale * x[n] + m[n];
      mx = o[n] > mx ? o[n] : mx;
    }
  } else {
#pragma omp simd reduction(max : mx)
    for (int64_t n = 0; n < N; ++n) {
      o[n] = scale * x[n];
      mx = o[n] > mx ? o[n] : mx;
    }
  }
  if (mx == kNegInf) {  // every logit -inf (fully masked): uniform, see softmax_ref.h
    const float u = 1.0f / float(N);
    for (int64_t n = 0; n < N; ++n) o[n] = u;
    return;
  }
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int64_t n = 0; n < N; ++n) {
    const float z = o[n] - mx;
    const float e = z < kExpFloor ? 0.f : vec::exp(z);
    o[n] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;  // sum >= 1: the max's own term is e^0
#pragma omp simd
  for (int64_t n = 0; n < N; ++n) o[n] *= inv;
}

KDNAS_CPU_CLONES void softmax_bwd_row(float* dx, const float* d, const float* y, float scale,
                                      int64_t N) {
  float dot = 0.f;
#pragma omp simd reduction(+ : dot)
  for (int64_t n = 0; n < N; ++n) dot += d[n] * y[n];
#pragma omp simd
  for (int64_t n = 0; n < N; ++n) dx[n] = scale * y[n] * (d[n] - dot);
}

// log softmax = x - (max + log sum exp(x - max)); out is written once, in the last pass.
KDNAS_CPU_CLONES void log_softmax_fwd_row(float* o, const float* x, int64_t N) {
  float mx = kNegInf;
#pragma omp simd reduction(max : mx)
  for (int64_t n = 0; n < N; ++n) mx = x[n] > mx ? x[n] : mx;
  if (mx == kNegInf) {
    const float u = -std::log(float(N));
    for (int64_t n = 0; n < N; ++n) o[n] = u;
    return;
  }
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int64_t n = 0; n < N; ++n) {
    const float z = x[n] - mx;
    sum += z < kExpFloor ? 0.f : vec::exp(z);
  }
  const float lse = mx + std::log(sum);
#pragma omp simd
  for (int64_t n = 0; n < N; ++n) o[n] = x[n] - lse;
}

KDNAS_CPU_CLONES void log_softmax_bwd_row(float* dx, const float* d, const float* y, int64_t N) {
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int64_t n = 0; n < N; ++n) sum += d[n];
#pragma omp simd
  for (int64_t n = 0; n < N; ++n) {
    // y <= 0 always (a log-probability), so exp(y) <= 1 and vec::exp's range is never an issue.
    dx[n] = d[n] - vec::exp(y[n]) * sum;
  }
}

int64_t row_grain(int64_t N) {
  return std::max<int64_t>(1, kGrain / std::max<int64_t>(N, 1));
}

}  // namespace

void softmax_forward_cpu(Context& ctx, float* out, const float* inp, const float* mask,
                         const int64_t* mask_rows, float scale, int64_t rows, int64_t N) {
  parallel_for(ctx, rows, row_grain(N), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      softmax_fwd_row(out + r * N, inp + r * N, mask ? mask + mask_rows[r] : nullptr, scale, N);
  });
}

void softmax_backward_cpu(Context& ctx, float* dinp, const float* dout, const float* out,
                          float scale, int64_t rows, int64_t N) {
  parallel_for(ctx, rows, row_grain(N), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      softmax_bwd_row(dinp + r * N, dout + r * N, out + r * N, scale, N);
  });
}

void log_softmax_forward_cpu(Context& ctx, float* out, const float* inp, int64_t rows, int64_t N) {
  parallel_for(ctx, rows, row_grain(N), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) log_softmax_fwd_row(out + r * N, inp + r * N, N);
  });
}

void log_softmax_backward_cpu(Context& ctx, float* dinp, const float* dout, const float* out,
                              int64_t rows, int64_t N) {
  parallel_for(ctx, rows, row_grain(N), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) log_softmax_bwd_row(dinp + r * N, dout + r * N, out + r * N, N);
  });
}

}  // namespace kdnas
