// Softmax moves one read of x (+ the mask row, which a broadcast mask keeps in cache) and one
// write of out. Threads take contiguous blocks of rows; each row is done in three vectorised
// passes over out, which stays in L1 between them (512 B for an attention row of T = 128,
// 12 KiB at N = 3072):
//   1. z = scale * x + mask, stored in out, and its max;
//   2. out = exp(z - max) and its sum, fused;
//   3. out *= 1 / sum.
// So x is read from memory once and out written once. An online softmax (a running max that
// rescales the running sum) would fold pass 1 into pass 2, but pass 1 is cheap next to the
// exp; when the data is cache-resident the exp is what costs (see exp_nonpos below).
#include "kernels/cpu/softmax_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/cast_cpu.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace kdnas {
namespace {

constexpr int64_t kGrain = 16384;  // elements; below this one thread beats waking two
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Shifted logits below this get exactly probability 0 (e^-87 ~ 1.6e-38, the bottom of the
// normal floats): masked keys (-inf, -1e9, -FLT_MAX) come out exactly 0, as in the reference.
constexpr float kExpFloor = -87.0f;

// e^z for z <= 0: the only arguments the forward kernels need (logits minus their max). It is
// where softmax spends its time, and it is leaner than vec::exp, which serves all of
// [-87, 88]: no upper clamp, 2^n with n in [-126, 0] needs no overflow fix-up, and a degree-5
// polynomial for e^r on |r| <= ln2/2 (fitted near-minimax, relative error 1.0e-7) instead of
// degree 7. Together ~16 vector operations instead of ~24. z < kExpFloor (and -inf) gives 0.
__attribute__((always_inline)) inline float exp_nonpos(float z) {
  const float zc = z < kExpFloor ? kExpFloor : z;
  // n = round(z / ln2) by adding and subtracting 1.5 * 2^23; r = z - n ln2 with ln2 split into
  // a part exact in f32 and a correction, as in vec::exp.
  const float n = (zc * 1.44269504088896341f + 12582912.f) - 12582912.f;
  float r = zc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 8.369148490856347e-3f;
  p = p * r + 4.191750724961526e-2f;
  p = p * r + 1.6666505260408124e-1f;
  p = p * r + 4.9998869378303396e-1f;
  p = p * r + 1.00000001077157f;
  p = p * r + 1.0000000754548972f;
  const float two_n = vec::bits_to_float(uint32_t(int32_t(n) + 127) << 23);
  return z < kExpFloor ? 0.f : p * two_n;
}

__attribute__((always_inline)) inline void softmax_fwd_row(float* o, const float* x, const float* m,
                                                           float scale, int64_t N) {
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
    const float e = exp_nonpos(o[n] - mx);
    o[n] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;  // sum >= 1: the max's own term is e^0
#pragma omp simd
  for (int64_t n = 0; n < N; ++n) o[n] *= inv;
}

__attribute__((always_inline)) inline void softmax_bwd_row(float* dx, const float* d,
                                                           const float* y, float scale, int64_t N) {
  float dot = 0.f;
#pragma omp simd reduction(+ : dot)
  for (int64_t n = 0; n < N; ++n) dot += d[n] * y[n];
#pragma omp simd
  for (int64_t n = 0; n < N; ++n) dx[n] = scale * y[n] * (d[n] - dot);
}

// log softmax = x - (max + log sum exp(x - max)); out is written once, in the last pass.
__attribute__((always_inline)) inline void log_softmax_fwd_row(float* o, const float* x,
                                                               int64_t N) {
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
  for (int64_t n = 0; n < N; ++n) sum += exp_nonpos(x[n] - mx);
  const float lse = mx + std::log(sum);
#pragma omp simd
  for (int64_t n = 0; n < N; ++n) o[n] = x[n] - lse;
}

__attribute__((always_inline)) inline void log_softmax_bwd_row(float* dx, const float* d,
                                                               const float* y, int64_t N) {
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int64_t n = 0; n < N; ++n) sum += d[n];
#pragma omp simd
  for (int64_t n = 0; n < N; ++n) {
    // vec::exp, not exp_nonpos: y comes from the caller, and need not be <= 0.
    dx[n] = d[n] - vec::exp(y[n]) * sum;
  }
}

// Rows [r0, r1): the row loop sits inside the ISA-cloned function, so that short rows (T = 128
// for attention) do not each pay an indirect call through the clone dispatcher.
KDNAS_CPU_CLONES void softmax_fwd_rows(float* out, const float* inp, const float* mask,
                                       const int64_t* mask_rows, float scale, int64_t r0,
                                       int64_t r1, int64_t N) {
  for (int64_t r = r0; r < r1; ++r)
    softmax_fwd_row(out + r * N, inp + r * N, mask ? mask + mask_rows[r] : nullptr, scale, N);
}
KDNAS_CPU_CLONES void softmax_fwd_rows_bf16(bf16* out, float* row, const float* inp,
                                            const float* mask, const int64_t* mask_rows,
                                            float scale, int64_t r0, int64_t r1, int64_t N) {
  for (int64_t r = r0; r < r1; ++r) {
    softmax_fwd_row(row, inp + r * N, mask ? mask + mask_rows[r] : nullptr, scale, N);
    f32_to_bf16_serial(out + r * N, row, N);
  }
}
KDNAS_CPU_CLONES void softmax_bwd_rows(float* dinp, const float* dout, const float* out,
                                       float scale, int64_t r0, int64_t r1, int64_t N) {
  for (int64_t r = r0; r < r1; ++r)
    softmax_bwd_row(dinp + r * N, dout + r * N, out + r * N, scale, N);
}
KDNAS_CPU_CLONES void log_softmax_fwd_rows(float* out, const float* inp, int64_t r0, int64_t r1,
                                           int64_t N) {
  for (int64_t r = r0; r < r1; ++r) log_softmax_fwd_row(out + r * N, inp + r * N, N);
}
KDNAS_CPU_CLONES void log_softmax_bwd_rows(float* dinp, const float* dout, const float* out,
                                           int64_t r0, int64_t r1, int64_t N) {
  for (int64_t r = r0; r < r1; ++r) log_softmax_bwd_row(dinp + r * N, dout + r * N, out + r * N, N);
}

int64_t row_grain(int64_t N) {
  return std::max<int64_t>(1, kGrain / std::max<int64_t>(N, 1));
}

}  // namespace

void softmax_forward_cpu(Context& ctx, float* out, const float* inp, const float* mask,
                         const int64_t* mask_rows, float scale, int64_t rows, int64_t N) {
  parallel_for(ctx, rows, row_grain(N), [&](int64_t b, int64_t e) {
    softmax_fwd_rows(out, inp, mask, mask_rows, scale, b, e, N);
  });
}

void softmax_forward_bf16_cpu(Context& ctx, bf16* out, const float* inp, const float* mask,
                              const int64_t* mask_rows, float scale, int64_t rows, int64_t N) {
  parallel_for(ctx, rows, row_grain(N), [&](int64_t b, int64_t e) {
    // Each row in f32 in a buffer that stays in L1, then rounded into out: out is written once,
    // in half the bytes of the f32 softmax, and no f32 tensor is made.
    std::vector<float> row(static_cast<size_t>(N));
    softmax_fwd_rows_bf16(out, row.data(), inp, mask, mask_rows, scale, b, e, N);
  });
}

void softmax_backward_cpu(Context& ctx, float* dinp, const float* dout, const float* out,
                          float scale, int64_t rows, int64_t N) {
  parallel_for(ctx, rows, row_grain(N),
               [&](int64_t b, int64_t e) { softmax_bwd_rows(dinp, dout, out, scale, b, e, N); });
}

void log_softmax_forward_cpu(Context& ctx, float* out, const float* inp, int64_t rows, int64_t N) {
  parallel_for(ctx, rows, row_grain(N),
               [&](int64_t b, int64_t e) { log_softmax_fwd_rows(out, inp, b, e, N); });
}

void log_softmax_backward_cpu(Context& ctx, float* dinp, const float* dout, const float* out,
                              int64_t rows, int64_t N) {
  parallel_for(ctx, rows, row_grain(N),
               [&](int64_t b, int64_t e) { log_softmax_bwd_rows(dinp, dout, out, b, e, N); });
}

}  // namespace kdnas
