// CUDA softmax / log-softmax over the last dim: one warp per row.
//
// The forward makes one pass over the row for the statistics, with the online softmax recurrence
// (cuda_common.cuh, MaxSum: running max and running sum of exp(z - max), rescaled when the max
// grows), and one pass to write: two reads of the row instead of three, the second mostly from
// L1/L2. The shift by the row max keeps every exp <= 1 (attention logits overflow f32's exp at
// 89), as in the reference. Lanes read strided (coalesced) and reduce with xor shuffles, which
// leave the same bits in every lane.
#include <vector>

#include "kernels/cuda/cuda_allocator.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/softmax_cuda.h"

namespace kdnas {
namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / kWarpSize;

// Where row r's mask starts: table[r] when there is a table, else base + (r / period) * step.
struct MaskIndex {
  const int64_t* table;
  int64_t base, period, step;
  __device__ int64_t row(int64_t r) const { return table ? table[r] : base + (r / period) * step; }
};

// out[r, :] = softmax(scale * inp[r, :] + mask row), uniform 1/N for a row of all -inf logits.
__global__ void softmax_forward_kernel(float* __restrict__ out, const float* __restrict__ inp,
                                       const float* __restrict__ mask, MaskIndex mi, float scale,
                                       int64_t rows, int64_t N) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (r >= rows) return;
  const float* x = inp + r * N;
  const float* m = mask ? mask + mi.row(r) : nullptr;
  float* o = out + r * N;
  MaxSum st{-INFINITY, 0.f};
  for (int64_t n = lane; n < N; n += kWarpSize)
    st = max_sum_add(st, scale * x[n] + (m ? m[n] : 0.f));
  st = warp_max_sum(st);
  if (st.m == -INFINITY) {  // fully masked with -inf: z - max would be NaN
    for (int64_t n = lane; n < N; n += kWarpSize) o[n] = 1.f / float(N);
    return;
  }
  for (int64_t n = lane; n < N; n += kWarpSize)
    o[n] = expf(scale * x[n] + (m ? m[n] : 0.f) - st.m) / st.s;
}

// dinp[r, :] = scale * y * (dout - sum_n dout * y)
__global__ void softmax_backward_kernel(float* __restrict__ dinp, const float* __restrict__ dout,
                                        const float* __restrict__ out, float scale, int64_t rows,
                                        int64_t N) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (r >= rows) return;
  const float* d = dout + r * N;
  const float* y = out + r * N;
  float dot = 0.f;
  for (int64_t n = lane; n < N; n += kWarpSize) dot += d[n] * y[n];
  dot = warp_sum(dot);
  for (int64_t n = lane; n < N; n += kWarpSize) dinp[r * N + n] = scale * y[n] * (d[n] - dot);
}

// out[r, :] = inp - (max + log sum exp(inp - max)); log(1/N) for a row of all -inf.
__global__ void log_softmax_forward_kernel(float* __restrict__ out, const float* __restrict__ inp,
                                           int64_t rows, int64_t N) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (r >= rows) return;
  const float* x = inp + r * N;
  float* o = out + r * N;
  MaxSum st{-INFINITY, 0.f};
  for (int64_t n = lane; n < N; n += kWarpSize) st = max_sum_add(st, x[n]);
  st = warp_max_sum(st);
  if (st.m == -INFINITY) {
    for (int64_t n = lane; n < N; n += kWarpSize) o[n] = -logf(float(N));
    return;
  }
  const float lse = st.m + logf(st.s);
  for (int64_t n = lane; n < N; n += kWarpSize) o[n] = x[n] - lse;
}

// dinp[r, :] = dout - exp(y) * sum_n dout
__global__ void log_softmax_backward_kernel(float* __restrict__ dinp,
                                            const float* __restrict__ dout,
                                            const float* __restrict__ out, int64_t rows,
                                            int64_t N) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (r >= rows) return;
  const float* d = dout + r * N;
  const float* y = out + r * N;
  float sum = 0.f;
  for (int64_t n = lane; n < N; n += kWarpSize) sum += d[n];
  sum = warp_sum(sum);
  for (int64_t n = lane; n < N; n += kWarpSize) dinp[r * N + n] = d[n] - expf(y[n]) * sum;
}

unsigned row_blocks(int64_t rows) {
  return unsigned(ceil_div(rows, kRowsPerBlock));
}

// The affine rule offsets[r] = base + (r / period) * step, if the offsets follow one.
bool affine_mask_rows(const int64_t* offsets, int64_t rows, MaskIndex& mi) {
  mi = MaskIndex{nullptr, offsets[0], 1, 0};
  int64_t p = 1;
  while (p < rows && offsets[p] == offsets[0]) ++p;
  if (p == rows) return true;  // every row shares one mask row
  mi.period = p;
  mi.step = offsets[p] - offsets[0];
  for (int64_t r = 0; r < rows; ++r)
    if (offsets[r] != mi.base + (r / p) * mi.step) return false;
  return true;
}

}  // namespace

void softmax_forward_cuda(Context& ctx, float* out, const float* inp, const float* mask,
                          const int64_t* mask_rows, float scale, int64_t rows, int64_t N) {
  if (rows == 0 || N == 0) return;
  const cudaStream_t s = stream_of(ctx);
  MaskIndex mi{nullptr, 0, 1, 0};
  CudaBuffer table;
  if (mask && !affine_mask_rows(mask_rows, rows, mi)) {
    // An irregular broadcast: copy the table (8 bytes per row, far less than the row itself).
    table = CudaBuffer(size_t(rows) * sizeof(int64_t));
    KDNAS_CUDA_CHECK(cudaMemcpyAsync(table.data(), mask_rows, size_t(rows) * sizeof(int64_t),
                                     cudaMemcpyHostToDevice, s));
    mi = MaskIndex{table.as<int64_t>(), 0, 1, 0};
  }
  softmax_forward_kernel<<<row_blocks(rows), kThreads, 0, s>>>(out, inp, mask, mi, scale, rows, N);
  KDNAS_CUDA_CHECK_LAUNCH();
}

void softmax_backward_cuda(Context& ctx, float* dinp, const float* dout, const float* out,
                           float scale, int64_t rows, int64_t N) {
  if (rows == 0 || N == 0) return;
  softmax_backward_kernel<<<row_blocks(rows), kThreads, 0, stream_of(ctx)>>>(dinp, dout, out, scale,
                                                                             rows, N);
  KDNAS_CUDA_CHECK_LAUNCH();
}

void log_softmax_forward_cuda(Context& ctx, float* out, const float* inp, int64_t rows, int64_t N) {
  if (rows == 0 || N == 0) return;
  log_softmax_forward_kernel<<<row_blocks(rows), kThreads, 0, stream_of(ctx)>>>(out, inp, rows, N);
  KDNAS_CUDA_CHECK_LAUNCH();
}

void log_softmax_backward_cuda(Context& ctx, float* dinp, const float* dout, const float* out,
                               int64_t rows, int64_t N) {
  if (rows == 0 || N == 0) return;
  log_softmax_backward_kernel<<<row_blocks(rows), kThreads, 0, stream_of(ctx)>>>(dinp, dout, out,
                                                                                 rows, N);
  KDNAS_CUDA_CHECK_LAUNCH();
}

}  // namespace kdnas
