// CUDA LayerNorm, after llm.c's layernorm kernels.
//
// Forward and the input gradient: one warp per row. The 32 lanes read the row's C values in
// strided order (lane l takes c = l, l + 32, ...: each step is one coalesced 128-byte load),
// reduce with shuffles, and re-read the row for the next pass from L1/L2 (a 768-float row is
// 3 KB), so DRAM sees each row about once. Two passes for the variance, as in the reference:
// E[x^2] - E[x]^2 cancels when |mean| >> std.
//
// dgamma and dbeta are sums over all rows, i.e. column sums. Atomics would make them depend on
// the order blocks finish; instead a [chunks, C] grid of partial column sums (each thread walks
// its column over a fixed set of rows, in double) is written to scratch and a second kernel adds
// the chunks in order. Same bits every run.
#include <algorithm>

#include "kernels/cuda/cuda_allocator.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/layer_norm_cuda.h"

namespace kdnas {
namespace {

constexpr int kRowThreads = 256;  // 8 warps = 8 rows per block
constexpr int kRowsPerBlock = kRowThreads / kWarpSize;

// inp, out: [rows, C]; gamma, beta: [C]; mean, rstd: [rows] or null.
__global__ void layer_norm_forward_kernel(float* __restrict__ out, float* __restrict__ mean,
                                          float* __restrict__ rstd, const float* __restrict__ inp,
                                          const float* __restrict__ gamma,
                                          const float* __restrict__ beta, int64_t rows, int64_t C,
                                          float eps) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (r >= rows) return;  // the whole warp leaves together, so the shuffles below stay full
  const float* x = inp + r * C;
  float* o = out + r * C;

  float sum = 0.f;
  for (int64_t c = lane; c < C; c += kWarpSize) sum += x[c];
  const float m = warp_sum(sum) / float(C);
  float sq = 0.f;
  for (int64_t c = lane; c < C; c += kWarpSize) {
    const float d = x[c] - m;
    sq += d * d;
  }
  // 1 / sqrtf rather than rsqrtf: both IEEE-rounded, as the reference's 1 / sqrt.
  const float s = 1.f / sqrtf(warp_sum(sq) / float(C) + eps);
  for (int64_t c = lane; c < C; c += kWarpSize) o[c] = (x[c] - m) * s * gamma[c] + beta[c];
  if (lane == 0) {
    if (mean) mean[r] = m;
    if (rstd) rstd[r] = s;
  }
}

// dinp[r, c] = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)),  g = dout * gamma.
__global__ void layer_norm_dinp_kernel(float* __restrict__ dinp, const float* __restrict__ dout,
                                       const float* __restrict__ inp,
                                       const float* __restrict__ gamma,
                                       const float* __restrict__ mean,
                                       const float* __restrict__ rstd, int64_t rows, int64_t C) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (r >= rows) return;
  const float* x = inp + r * C;
  const float* d = dout + r * C;
  const float m = mean[r], s = rstd[r];
  float g_sum = 0.f, gx_sum = 0.f;
  for (int64_t c = lane; c < C; c += kWarpSize) {
    const float g = d[c] * gamma[c];
    g_sum += g;
    gx_sum += g * ((x[c] - m) * s);
  }
  const float g_mean = warp_sum(g_sum) / float(C), gx_mean = warp_sum(gx_sum) / float(C);
  for (int64_t c = lane; c < C; c += kWarpSize) {
    const float xhat = (x[c] - m) * s;
    dinp[r * C + c] = s * (d[c] * gamma[c] - g_mean - xhat * gx_mean);
  }
}

// Partial column sums. Block (32, 8): threadIdx.x picks the column within a 32-wide tile
// (neighbouring threads read neighbouring floats), threadIdx.y and the chunk pick the rows:
// chunk k covers rows [k * rows_per_chunk, (k + 1) * rows_per_chunk).
//   part_g[k, c] = sum over the chunk's rows of dout * xhat,  part_b[k, c] = sum of dout
constexpr int kColTile = 32, kColRows = 8;
__global__ void layer_norm_param_partial_kernel(
    double* __restrict__ part_g, double* __restrict__ part_b, const float* __restrict__ dout,
    const float* __restrict__ inp, const float* __restrict__ mean, const float* __restrict__ rstd,
    int64_t rows, int64_t C, int64_t rows_per_chunk) {
  __shared__ double sg[kColRows][kColTile], sb[kColRows][kColTile];
  const int64_t c = int64_t(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t k = blockIdx.y;
  const int64_t r0 = k * rows_per_chunk, r1 = min(rows, r0 + rows_per_chunk);
  double acc_g = 0, acc_b = 0;
  if (c < C) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColRows) {
      const float d = dout[r * C + c];
      acc_g += double(d) * double((inp[r * C + c] - mean[r]) * rstd[r]);
      acc_b += double(d);
    }
  }
  sg[threadIdx.y][threadIdx.x] = acc_g;
  sb[threadIdx.y][threadIdx.x] = acc_b;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int y = 1; y < kColRows; ++y) {  // fixed order: deterministic
      acc_g += sg[y][threadIdx.x];
      acc_b += sb[y][threadIdx.x];
    }
    part_g[k * C + c] = acc_g;
    part_b[k * C + c] = acc_b;
  }
}

// dgamma[c] = sum_k part_g[k, c], dbeta[c] = sum_k part_b[k, c], k in increasing order.
__global__ void layer_norm_param_final_kernel(float* __restrict__ dgamma, float* __restrict__ dbeta,
                                              const double* __restrict__ part_g,
                                              const double* __restrict__ part_b, int64_t chunks,
                                              int64_t C) {
  KDNAS_GRID_STRIDE_LOOP(c, C) {
    double g = 0, b = 0;
    for (int64_t k = 0; k < chunks; ++k) {
      g += part_g[k * C + c];
      b += part_b[k * C + c];
    }
    dgamma[c] = float(g);
    dbeta[c] = float(b);
  }
}

}  // namespace

void layer_norm_forward_cuda(Context& ctx, float* out, float* mean, float* rstd, const float* inp,
                             const float* gamma, const float* beta, int64_t rows, int64_t C,
                             float eps) {
  if (rows == 0 || C == 0) return;
  const unsigned blocks = unsigned(ceil_div(rows, kRowsPerBlock));
  layer_norm_forward_kernel<<<blocks, kRowThreads, 0, stream_of(ctx)>>>(out, mean, rstd, inp, gamma,
                                                                        beta, rows, C, eps);
  KDNAS_CUDA_CHECK_LAUNCH();
}

void layer_norm_backward_cuda(Context& ctx, float* dinp, float* dgamma, float* dbeta,
                              const float* dout, const float* inp, const float* gamma,
                              const float* mean, const float* rstd, int64_t rows, int64_t C) {
  if (C == 0) return;
  CudaState& st = cuda_state(ctx);
  if (rows == 0) {  // no rows: zero parameter gradients, as the reference's empty sums
    KDNAS_CUDA_CHECK(cudaMemsetAsync(dgamma, 0, size_t(C) * sizeof(float), st.stream));
    KDNAS_CUDA_CHECK(cudaMemsetAsync(dbeta, 0, size_t(C) * sizeof(float), st.stream));
    return;
  }
  const unsigned row_blocks = unsigned(ceil_div(rows, kRowsPerBlock));
  layer_norm_dinp_kernel<<<row_blocks, kRowThreads, 0, st.stream>>>(dinp, dout, inp, gamma, mean,
                                                                    rstd, rows, C);
  KDNAS_CUDA_CHECK_LAUNCH();

  // Enough row chunks that the column-sum grid has ~2 blocks per SM, each chunk >= 64 rows.
  const int64_t col_tiles = ceil_div(C, kColTile);
  const int64_t want = std::max<int64_t>(1, 2 * int64_t(st.sm_count) / col_tiles);
  const int64_t chunks = std::min<int64_t>({want, ceil_div(rows, 64), 65535});
  const int64_t rows_per_chunk = ceil_div(rows, chunks);
  CudaBuffer part(size_t(2 * chunks * C) * sizeof(double));
  double* part_g = part.as<double>();
  double* part_b = part_g + chunks * C;
  layer_norm_param_partial_kernel<<<dim3(unsigned(col_tiles), unsigned(chunks)),
                                    dim3(kColTile, kColRows), 0, st.stream>>>(
      part_g, part_b, dout, inp, mean, rstd, rows, C, rows_per_chunk);
  KDNAS_CUDA_CHECK_LAUNCH();
  layer_norm_param_final_kernel<<<grid_for(C, 256), 256, 0, st.stream>>>(dgamma, dbeta, part_g,
                                                                         part_b, chunks, C);
  KDNAS_CUDA_CHECK_LAUNCH();
}

}  // namespace kdnas
