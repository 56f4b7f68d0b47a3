// CUDA reductions over one dim of a contiguous [outer, D, inner] block.
//
// Launch shapes, picked by the layout (all deterministic: fixed orders, no atomics):
//   inner == 1          one warp per output: lanes read the row's D values strided (coalesced)
//                       and combine with xor shuffles.
//   inner > 1           one thread per output (o, i), walking d: neighbouring threads read
//                       neighbouring i, so every step is a coalesced load. With few outputs
//                       (a bias gradient: 768 columns of 1024 rows) D is split into chunks
//                       reduced in parallel and merged in chunk order by a second kernel.
//   few outputs, big D  one block per output, so a [1, D] or [2, D, 3] reduction still uses the
//                       whole GPU; the block combines its threads' partials in shared memory.
// The reduction itself is a policy (SumOp, MaxOp) with an accumulator, a step, and a merge that
// gives the same result in either argument order (so every lane of a butterfly agrees).
#include <algorithm>

#include "kernels/cuda/cuda_allocator.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/reduce_cuda.h"

namespace kdnas {
namespace {

constexpr int kThreads = 256;

// Sum in double: the error then does not grow with D (a 250k-wide row sums as well as a short
// one); the memory-bound loop does not notice the slower adds.
struct SumOp {
  using Acc = double;
  float* out;
  double scale;
  __device__ static Acc init() { return 0.0; }
  __device__ static Acc step(Acc a, float x, int64_t) { return a + double(x); }
  __device__ static Acc merge(Acc a, Acc b) { return a + b; }
  __device__ static Acc shfl(Acc a, int o) { return __shfl_xor_sync(kFullMask, a, o); }
  __device__ void store(int64_t j, Acc a) const { out[j] = float(a * scale); }
};

// Max with the index of its first occurrence; a NaN beats every number and the first NaN wins,
// as in the reference. kNone marks an empty accumulator (a lane that saw no element).
struct ArgMax {
  float v;
  long long i;
};
struct MaxOp {
  using Acc = ArgMax;
  static constexpr long long kNone = 0x7fffffffffffffffll;
  float* values;
  int64_t* indices;
  __device__ static Acc init() { return {-INFINITY, kNone}; }
  // Elements arrive in increasing d within one accumulator: only a strictly larger value (or a
  // first NaN) replaces the current one.
  __device__ static Acc step(Acc a, float x, int64_t d) {
    if (a.i == kNone || x > a.v || (isnan(x) && !isnan(a.v))) return {x, (long long)d};
    return a;
  }
  __device__ static Acc merge(Acc a, Acc b) {
    if (a.i == kNone) return b;
    if (b.i == kNone) return a;
    const bool an = isnan(a.v), bn = isnan(b.v);
    if (an != bn) return an ? a : b;
    if (!an && a.v != b.v) return a.v > b.v ? a : b;
    return a.i < b.i ? a : b;  // equal values (or two NaNs): the first one
  }
  __device__ static Acc shfl(Acc a, int o) {
    return {__shfl_xor_sync(kFullMask, a.v, o), __shfl_xor_sync(kFullMask, a.i, o)};
  }
  __device__ void store(int64_t j, Acc a) const {
    values[j] = a.v;
    indices[j] = a.i;
  }
};

template <typename Op>
__device__ typename Op::Acc warp_reduce(typename Op::Acc a) {
  for (int o = kWarpSize / 2; o > 0; o >>= 1) a = Op::merge(a, Op::shfl(a, o));
  return a;
}

// inner == 1: warp w of the grid reduces row w of x [outer, D].
template <typename Op>
__global__ void reduce_rows_kernel(Op op, const float* __restrict__ x, int64_t outer, int64_t D) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t o = int64_t(blockIdx.x) * (blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
  if (o >= outer) return;
  typename Op::Acc a = Op::init();
  for (int64_t d = lane; d < D; d += kWarpSize) a = Op::step(a, x[o * D + d], d);
  a = warp_reduce<Op>(a);
  if (lane == 0) op.store(o, a);
}

// inner > 1: thread j = o * inner + i walks d.
template <typename Op>
__global__ void reduce_columns_kernel(Op op, const float* __restrict__ x, int64_t outer, int64_t D,
                                      int64_t inner) {
  KDNAS_GRID_STRIDE_LOOP(j, outer * inner) {
    const int64_t o = j / inner, i = j % inner;
    const float* p = x + o * D * inner + i;
    typename Op::Acc a = Op::init();
    for (int64_t d = 0; d < D; ++d) a = Op::step(a, p[d * inner], d);
    op.store(j, a);
  }
}

// inner > 1 with too few outputs to fill the GPU (a bias gradient [M, N] -> [N]): chunk
// blockIdx.y of d (d in [k * per, (k + 1) * per)) goes to part[k * outputs + j]; the chunks are
// then merged in order by reduce_merge_kernel.
template <typename Op>
__global__ void reduce_columns_split_kernel(typename Op::Acc* __restrict__ part,
                                            const float* __restrict__ x, int64_t outer, int64_t D,
                                            int64_t inner, int64_t per) {
  const int64_t outputs = outer * inner, k = blockIdx.y;
  const int64_t d0 = k * per, d1 = min(D, d0 + per);
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < outputs;
       j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = j / inner, i = j % inner;
    const float* p = x + o * D * inner + i;
    typename Op::Acc a = Op::init();
    for (int64_t d = d0; d < d1; ++d) a = Op::step(a, p[d * inner], d);
    part[k * outputs + j] = a;
  }
}

template <typename Op>
__global__ void reduce_merge_kernel(Op op, const typename Op::Acc* __restrict__ part,
                                    int64_t outputs, int64_t chunks) {
  KDNAS_GRID_STRIDE_LOOP(j, outputs) {
    typename Op::Acc a = part[j];
    for (int64_t k = 1; k < chunks; ++k) a = Op::merge(a, part[k * outputs + j]);
    op.store(j, a);
  }
}

// Few outputs: block b reduces outputs b, b + gridDim.x, ...; its threads split d.
template <typename Op>
__global__ void reduce_block_kernel(Op op, const float* __restrict__ x, int64_t outer, int64_t D,
                                    int64_t inner) {
  __shared__ typename Op::Acc part[kWarpSize];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  for (int64_t j = blockIdx.x; j < outer * inner; j += gridDim.x) {
    const int64_t o = j / inner, i = j % inner;
    const float* p = x + o * D * inner + i;
    typename Op::Acc a = Op::init();
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) a = Op::step(a, p[d * inner], d);
    a = warp_reduce<Op>(a);
    __syncthreads();  // part may still be read for the previous output
    if (lane == 0) part[warp] = a;
    __syncthreads();
    if (warp == 0) {
      a = lane < int(blockDim.x / kWarpSize) ? part[lane] : Op::init();
      a = warp_reduce<Op>(a);
      if (lane == 0) op.store(j, a);
    }
  }
}

template <typename Op>
void reduce(Context& ctx, Op op, const float* x, int64_t outer, int64_t D, int64_t inner) {
  const int64_t outputs = outer * inner;
  if (outputs == 0) return;
  CudaState& st = cuda_state(ctx);
  // A block per output when there are too few outputs to fill the GPU otherwise.
  if (outputs < 4 * int64_t(st.sm_count) && D >= 2048) {
    reduce_block_kernel<<<unsigned(outputs), kThreads, 0, st.stream>>>(op, x, outer, D, inner);
  } else if (inner == 1) {
    reduce_rows_kernel<<<unsigned(ceil_div(outer, kThreads / kWarpSize)), kThreads, 0, st.stream>>>(
        op, x, outer, D);
  } else {
    // One thread per output walks all of D; with fewer outputs than ~2048 threads per SM, D is
    // split into chunks (of >= 32) whose partial results are merged in a second pass.
    const int64_t want = 2048 * int64_t(st.sm_count);
    const int64_t chunks =
        outputs >= want ? 1 : std::min<int64_t>({ceil_div(want, outputs), ceil_div(D, 32), 65535});
    if (chunks <= 1) {
      reduce_columns_kernel<<<grid_for(outputs, kThreads), kThreads, 0, st.stream>>>(op, x, outer,
                                                                                     D, inner);
    } else {
      const int64_t per = ceil_div(D, chunks);
      CudaBuffer part(size_t(chunks * outputs) * sizeof(typename Op::Acc));
      auto* pp = part.as<typename Op::Acc>();
      reduce_columns_split_kernel<Op>
          <<<dim3(unsigned(ceil_div(outputs, kThreads)), unsigned(chunks)), kThreads, 0,
             st.stream>>>(pp, x, outer, D, inner, per);
      KDNAS_CUDA_CHECK_LAUNCH();
      reduce_merge_kernel<<<grid_for(outputs, kThreads), kThreads, 0, st.stream>>>(op, pp, outputs,
                                                                                   chunks);
    }
  }
  KDNAS_CUDA_CHECK_LAUNCH();
}

// dx[o, d, i] = scale * dout[o, i]
__global__ void sum_backward_kernel(float* __restrict__ dx, const float* __restrict__ dout,
                                    int64_t outer, int64_t D, int64_t inner, double scale) {
  KDNAS_GRID_STRIDE_LOOP(e, outer * D * inner) {
    const int64_t i = e % inner, o = e / (D * inner);
    dx[e] = float(scale * double(dout[o * inner + i]));
  }
}

// dx[o, d, i] = d == indices[o, i] ? dout[o, i] : 0
__global__ void max_backward_kernel(float* __restrict__ dx, const float* __restrict__ dout,
                                    const int64_t* __restrict__ indices, int64_t outer, int64_t D,
                                    int64_t inner) {
  KDNAS_GRID_STRIDE_LOOP(e, outer * D * inner) {
    const int64_t i = e % inner, d = (e / inner) % D, o = e / (D * inner);
    const int64_t j = o * inner + i;
    dx[e] = d == indices[j] ? dout[j] : 0.f;
  }
}

}  // namespace

void sum_forward_cuda(Context& ctx, float* out, const float* x, int64_t outer, int64_t D,
                      int64_t inner, double scale) {
  reduce(ctx, SumOp{out, scale}, x, outer, D, inner);
}

void max_forward_cuda(Context& ctx, float* values, int64_t* indices, const float* x, int64_t outer,
                      int64_t D, int64_t inner) {
  reduce(ctx, MaxOp{values, indices}, x, outer, D, inner);
}

void sum_backward_cuda(Context& ctx, float* dx, const float* dout, int64_t outer, int64_t D,
                       int64_t inner, double scale) {
  const int64_t n = outer * D * inner;
  if (n == 0) return;
  sum_backward_kernel<<<grid_for(n, kThreads), kThreads, 0, stream_of(ctx)>>>(dx, dout, outer, D,
                                                                              inner, scale);
  KDNAS_CUDA_CHECK_LAUNCH();
}

void max_backward_cuda(Context& ctx, float* dx, const float* dout, const int64_t* indices,
                       int64_t outer, int64_t D, int64_t inner) {
  const int64_t n = outer * D * inner;
  if (n == 0) return;
  max_backward_kernel<<<grid_for(n, kThreads), kThreads, 0, stream_of(ctx)>>>(dx, dout, indices,
                                                                              outer, D, inner);
  KDNAS_CUDA_CHECK_LAUNCH();
}

}  // namespace kdnas
