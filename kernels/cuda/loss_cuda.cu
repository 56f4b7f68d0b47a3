// CUDA losses.
//
// Shapes of the work: mse is an element-wise pass with a sum; cross-entropy and KL are per-row
// log-sum-exps over a vocabulary (V = 8k .. 250k), so one block of 256 threads takes a row, its
// threads striding over V (coalesced), with block reductions for the max and the sums.
//
// Determinism: a scalar loss is a sum of millions of terms. Each thread adds a fixed set of
// terms, each block combines its threads in a fixed tree (block_sum), the per-block (or per-row)
// partials go to a scratch array, and one block adds that array in a fixed order. No atomics, so
// the loss is the same bits on every run. Partial sums are doubles, as in the reference.
//
// Numerics: exponentials are f32 expf of (logit - row max) <= 0, accumulated in double; the
// log-sum-exp and the per-row loss are formed in double. That matches the all-double reference
// to ~1e-7 relative, well inside the f32 tolerance, at f32 exp speed.
#include <algorithm>

#include "kernels/cuda/cuda_allocator.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/loss_cuda.h"

namespace kdnas {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxPartials = 1024;  // blocks of the element-wise sum (fixed per size)

// ---- the final sum -------------------------------------------------------------------------

// loss[0] = float(sum(part[0 .. n)) * mult / div), 0 when div == 0 (every row ignored).
__global__ void finish_kernel(float* loss, const double* __restrict__ part, int64_t n, double mult,
                              double div) {
  __shared__ double sh[kWarpSize];
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += part[i];
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) loss[0] = div == 0 ? 0.f : float(acc * mult / div);
}

void finish(cudaStream_t s, float* loss, const double* part, int64_t n, double mult, double div) {
  finish_kernel<<<1, kThreads, 0, s>>>(loss, part, n, mult, div);
  KDNAS_CUDA_CHECK_LAUNCH();
}

// Host bytes to the device (a scratch buffer that lives until the caller's scope ends).
template <typename T>
CudaBuffer upload(cudaStream_t s, const T* host, int64_t n) {
  CudaBuffer b(size_t(n) * sizeof(T));
  KDNAS_CUDA_CHECK(
      cudaMemcpyAsync(b.data(), host, size_t(n) * sizeof(T), cudaMemcpyHostToDevice, s));
  return b;
}

int64_t selected(const uint8_t* mask, int64_t R) {
  if (!mask) return R;
  int64_t n = 0;
  for (int64_t r = 0; r < R; ++r) n += mask[r] ? 1 : 0;
  return n;
}

// ---- mse -----------------------------------------------------------------------------------

// part[block] = sum over this block's elements of selected rows of (pred - target)^2.
__global__ void mse_partial_kernel(double* __restrict__ part, const float* __restrict__ pred,
                                   const float* __restrict__ target,
                                   const uint8_t* __restrict__ mask, int64_t R, int64_t C) {
  __shared__ double sh[kWarpSize];
  double acc = 0;
  KDNAS_GRID_STRIDE_LOOP(i, R * C) {
    if (mask && !mask[i / C]) continue;
    const double d = double(pred[i]) - double(target[i]);
    acc += d * d;
  }
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

// dpred = k (pred - target) on selected rows, else 0; dtarget = -dpred.
__global__ void mse_backward_kernel(float* __restrict__ dpred, float* __restrict__ dtarget,
                                    const float* __restrict__ pred,
                                    const float* __restrict__ target,
                                    const uint8_t* __restrict__ mask, float k, int64_t R,
                                    int64_t C) {
  KDNAS_GRID_STRIDE_LOOP(i, R * C) {
    const float d = (!mask || mask[i / C]) ? k * (pred[i] - target[i]) : 0.f;
    dpred[i] = d;
    dtarget[i] = -d;
  }
}

// ---- per-row log-sum-exp -------------------------------------------------------------------

// The row's max and log sum exp(x - max) of x [V] (times `scale`, > 0): every thread gets
// both. z = x * scale in double; scale > 0 commutes with max, so the max is taken on x.
struct Lse {
  double max, lse;
};
__device__ Lse row_lse(const float* __restrict__ x, int64_t V, double scale, float* shf,
                       double* shd) {
  float m = -INFINITY;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) m = fmaxf(m, x[v]);
  const double mx = double(block_max(m, shf)) * scale;
  double s = 0;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x)
    s += double(expf(float(double(x[v]) * scale - mx)));
  s = block_sum(s, shd);
  return {mx, mx + log(s)};
}

// row_loss[n] = lse(logits[n]) - logits[n, t], 0 for an ignored row. One block per row.
__global__ void cross_entropy_rows_kernel(double* __restrict__ row_loss,
                                          const float* __restrict__ logits,
                                          const int64_t* __restrict__ targets, int64_t ignore_index,
                                          int64_t N, int64_t V) {
  __shared__ float shf[kWarpSize];
  __shared__ double shd[kWarpSize];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const int64_t t = targets[n];
    if (t == ignore_index) {  // the same for the whole block: no thread skips a barrier alone
      if (threadIdx.x == 0) row_loss[n] = 0;
      continue;
    }
    const float* x = logits + n * V;
    const Lse l = row_lse(x, V, 1.0, shf, shd);
    if (threadIdx.x == 0) row_loss[n] = l.lse - double(x[t]);
  }
}

// dlogits[n, v] = k (softmax - onehot) on counted rows, 0 on ignored ones.
__global__ void cross_entropy_backward_kernel(float* __restrict__ dlogits,
                                              const float* __restrict__ logits,
                                              const int64_t* __restrict__ targets,
                                              int64_t ignore_index, double k, int64_t N,
                                              int64_t V) {
  __shared__ float shf[kWarpSize];
  __shared__ double shd[kWarpSize];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const int64_t t = targets[n];
    float* dx = dlogits + n * V;
    if (t == ignore_index) {
      for (int64_t v = threadIdx.x; v < V; v += blockDim.x) dx[v] = 0.f;
      continue;
    }
    const float* x = logits + n * V;
    const Lse l = row_lse(x, V, 1.0, shf, shd);
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
      const double p = double(expf(float(double(x[v]) - l.lse)));
      dx[v] = float(k * (p - (v == t ? 1.0 : 0.0)));
    }
  }
}

// row_loss[n] = KL(softmax(teacher / tau) || softmax(student / tau)), 0 for unselected rows.
__global__ void kl_div_rows_kernel(double* __restrict__ row_loss, const float* __restrict__ student,
                                   const float* __restrict__ teacher,
                                   const uint8_t* __restrict__ mask, double inv_tau, int64_t N,
                                   int64_t V) {
  __shared__ float shf[kWarpSize];
  __shared__ double shd[kWarpSize];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    if (mask && !mask[n]) {
      if (threadIdx.x == 0) row_loss[n] = 0;
      continue;
    }
    const float* xs = student + n * V;
    const float* xt = teacher + n * V;
    const Lse ls = row_lse(xs, V, inv_tau, shf, shd), lt = row_lse(xt, V, inv_tau, shf, shd);
    double acc = 0;
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
      const double log_p = double(xt[v]) * inv_tau - lt.lse;
      const double log_q = double(xs[v]) * inv_tau - ls.lse;
      // p log p -> 0 as p -> 0: an underflowed teacher probability contributes nothing.
      acc += double(expf(float(log_p))) * (log_p - log_q);
    }
    acc = block_sum(acc, shd);
    if (threadIdx.x == 0) row_loss[n] = acc;
  }
}

// dstudent = k (q - p) on selected rows, 0 elsewhere.
__global__ void kl_div_backward_kernel(float* __restrict__ dstudent,
                                       const float* __restrict__ student,
                                       const float* __restrict__ teacher,
                                       const uint8_t* __restrict__ mask, double inv_tau, double k,
                                       int64_t N, int64_t V) {
  __shared__ float shf[kWarpSize];
  __shared__ double shd[kWarpSize];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    float* ds = dstudent + n * V;
    if (mask && !mask[n]) {
      for (int64_t v = threadIdx.x; v < V; v += blockDim.x) ds[v] = 0.f;
      continue;
    }
    const float* xs = student + n * V;
    const float* xt = teacher + n * V;
    const Lse ls = row_lse(xs, V, inv_tau, shf, shd), lt = row_lse(xt, V, inv_tau, shf, shd);
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
      const double q = double(expf(float(double(xs[v]) * inv_tau - ls.lse)));
      const double p = double(expf(float(double(xt[v]) * inv_tau - lt.lse)));
      ds[v] = float(k * (q - p));
    }
  }
}

unsigned row_grid(int64_t N) {
  return unsigned(std::min<int64_t>(N, 65535));
}

}  // namespace

void mse_forward_cuda(Context& ctx, float* loss, const float* pred, const float* target,
                      const uint8_t* row_mask_host, int64_t R, int64_t C) {
  const cudaStream_t s = stream_of(ctx);
  CudaBuffer mask;
  if (row_mask_host && R > 0) mask = upload(s, row_mask_host, R);
  const int64_t parts =
      std::min<int64_t>(kMaxPartials, std::max<int64_t>(1, ceil_div(R * C, kThreads)));
  CudaBuffer part(size_t(parts) * sizeof(double));
  mse_partial_kernel<<<unsigned(parts), kThreads, 0, s>>>(part.as<double>(), pred, target,
                                                          mask.as<uint8_t>(), R, C);
  KDNAS_CUDA_CHECK_LAUNCH();
  // rows * C > 0 is the op API's precondition (a mask that selects no row is an error there).
  finish(s, loss, part.as<double>(), parts, 1.0, double(selected(row_mask_host, R)) * double(C));
}

void mse_backward_cuda(Context& ctx, float* dpred, float* dtarget, double dloss, const float* pred,
                       const float* target, const uint8_t* row_mask_host, int64_t R, int64_t C) {
  if (R * C == 0) return;
  const cudaStream_t s = stream_of(ctx);
  CudaBuffer mask;
  if (row_mask_host) mask = upload(s, row_mask_host, R);
  const float k = float(2.0 * dloss / (double(selected(row_mask_host, R)) * double(C)));
  mse_backward_kernel<<<grid_for(R * C, kThreads), kThreads, 0, s>>>(dpred, dtarget, pred, target,
                                                                     mask.as<uint8_t>(), k, R, C);
  KDNAS_CUDA_CHECK_LAUNCH();
}

void cross_entropy_forward_cuda(Context& ctx, float* loss, const float* logits,
                                const int64_t* targets_host, int64_t ignore_index, int64_t N,
                                int64_t V) {
  const cudaStream_t s = stream_of(ctx);
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) count += targets_host[n] != ignore_index ? 1 : 0;
  if (count == 0) {  // every row ignored (or none): the loss is 0, not 0/0
    KDNAS_CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(float), s));
    return;
  }
  CudaBuffer targets = upload(s, targets_host, N);
  CudaBuffer rows(size_t(N) * sizeof(double));
  cross_entropy_rows_kernel<<<row_grid(N), kThreads, 0, s>>>(
      rows.as<double>(), logits, targets.as<int64_t>(), ignore_index, N, V);
  KDNAS_CUDA_CHECK_LAUNCH();
  finish(s, loss, rows.as<double>(), N, 1.0, double(count));
}

void cross_entropy_backward_cuda(Context& ctx, float* dlogits, double dloss, const float* logits,
                                 const int64_t* targets_host, int64_t ignore_index, int64_t N,
                                 int64_t V) {
  if (N == 0 || V == 0) return;
  const cudaStream_t s = stream_of(ctx);
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) count += targets_host[n] != ignore_index ? 1 : 0;
  const double k = count ? dloss / double(count) : 0.0;
  CudaBuffer targets = upload(s, targets_host, N);
  cross_entropy_backward_kernel<<<row_grid(N), kThreads, 0, s>>>(
      dlogits, logits, targets.as<int64_t>(), ignore_index, k, N, V);
  KDNAS_CUDA_CHECK_LAUNCH();
}

void kl_div_forward_cuda(Context& ctx, float* loss, const float* student, const float* teacher,
                         const uint8_t* row_mask_host, double tau, int64_t N, int64_t V) {
  const cudaStream_t s = stream_of(ctx);
  if (N == 0) {
    KDNAS_CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(float), s));
    return;
  }
  CudaBuffer mask;
  if (row_mask_host) mask = upload(s, row_mask_host, N);
  CudaBuffer rows(size_t(N) * sizeof(double));
  kl_div_rows_kernel<<<row_grid(N), kThreads, 0, s>>>(rows.as<double>(), student, teacher,
                                                      mask.as<uint8_t>(), 1.0 / tau, N, V);
  KDNAS_CUDA_CHECK_LAUNCH();
  finish(s, loss, rows.as<double>(), N, tau * tau, double(selected(row_mask_host, N)));
}

void kl_div_backward_cuda(Context& ctx, float* dstudent, double dloss, const float* student,
                          const float* teacher, const uint8_t* row_mask_host, double tau, int64_t N,
                          int64_t V) {
  if (N == 0 || V == 0) return;
  const cudaStream_t s = stream_of(ctx);
  CudaBuffer mask;
  if (row_mask_host) mask = upload(s, row_mask_host, N);
  const double k = dloss * tau / double(selected(row_mask_host, N));
  kl_div_backward_kernel<<<row_grid(N), kThreads, 0, s>>>(dstudent, student, teacher,
                                                          mask.as<uint8_t>(), 1.0 / tau, k, N, V);
  KDNAS_CUDA_CHECK_LAUNCH();
}

}  // namespace kdnas
