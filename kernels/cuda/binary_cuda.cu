// CUDA broadcasting binary ops and the reduction of a broadcast gradient.
//
// Forward: one thread per output element; the inputs' offsets come from the output index and
// their strides (cuda_common.cuh, Dims), after size-1 dims are dropped and contiguous neighbours
// merged: a residual add of two contiguous tensors is one dim and needs no index division, a
// bias add [B*T, C] + [C] two.
//
// sum_to_shape: the output index picks the kept dims, and the reduced dims are walked in
// row-major order, one thread per output (or one block per output when there are few outputs
// and many terms, as for a bias gradient [B*T, C] -> [C] with small C).
#include <vector>

#include "kernels/cuda/binary_cuda.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/reduce_cuda.h"

namespace kdnas {
namespace {

constexpr int kThreads = 256;

// The op's name for errors (binary_op_name lives with the reference kernels; this file does not
// depend on them).
const char* name_of(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add:
      return "add";
    case BinaryOp::Sub:
      return "sub";
    case BinaryOp::Mul:
      return "mul";
    case BinaryOp::Div:
      return "div";
  }
  return "binary";
}

template <BinaryOp kOp>
__device__ __forceinline__ float apply(float x, float y) {
  if constexpr (kOp == BinaryOp::Add) return x + y;
  if constexpr (kOp == BinaryOp::Sub) return x - y;
  if constexpr (kOp == BinaryOp::Mul) return x * y;
  return x / y;  // IEEE division, as the CPU (no fast-math): x / 0 is inf or NaN
}

template <BinaryOp kOp>
__global__ void binary_forward_kernel(float* __restrict__ out, const float* __restrict__ a,
                                      const float* __restrict__ b, Dims d, int64_t n) {
  KDNAS_GRID_STRIDE_LOOP(i, n)
  out[i] = apply<kOp>(a[dims_offset(d, 0, i)], b[dims_offset(d, 1, i)]);
}

// kept: the output's dims with x's strides (stride[0]); red: the summed dims with x's strides.
// out[j] = scale * sum over r of x[offset(kept, j) + offset(red, r)], r in [0, R).
__global__ void sum_to_shape_kernel(float* __restrict__ out, const float* __restrict__ x, Dims kept,
                                    Dims red, int64_t outputs, int64_t R, float scale) {
  KDNAS_GRID_STRIDE_LOOP(j, outputs) {
    const float* base = x + dims_offset(kept, 0, j);
    double acc = 0;
    for (int64_t r = 0; r < R; ++r) acc += double(base[dims_offset(red, 0, r)]);
    out[j] = float(acc * double(scale));
  }
}

// The same with one block per output: threads split r; partials combined in a fixed order.
__global__ void sum_to_shape_block_kernel(float* __restrict__ out, const float* __restrict__ x,
                                          Dims kept, Dims red, int64_t outputs, int64_t R,
                                          float scale) {
  __shared__ double part[kWarpSize];
  for (int64_t j = blockIdx.x; j < outputs; j += gridDim.x) {
    const float* base = x + dims_offset(kept, 0, j);
    double acc = 0;
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x)
      acc += double(base[dims_offset(red, 0, r)]);
    acc = block_sum(acc, part);
    if (threadIdx.x == 0) out[j] = float(acc * double(scale));
  }
}

}  // namespace

void binary_forward_cuda(Context& ctx, float* out, const float* a, const float* b, BinaryOp op,
                         const Shape& shape, const Shape& a_strides, const Shape& b_strides) {
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  const Dims d =
      make_dims(name_of(op), shape.data(), int(shape.size()), a_strides.data(), b_strides.data());
  const cudaStream_t s = stream_of(ctx);
  const unsigned grid = grid_for(n, kThreads);
  switch (op) {
    case BinaryOp::Add:
      binary_forward_kernel<BinaryOp::Add><<<grid, kThreads, 0, s>>>(out, a, b, d, n);
      break;
    case BinaryOp::Sub:
      binary_forward_kernel<BinaryOp::Sub><<<grid, kThreads, 0, s>>>(out, a, b, d, n);
      break;
    case BinaryOp::Mul:
      binary_forward_kernel<BinaryOp::Mul><<<grid, kThreads, 0, s>>>(out, a, b, d, n);
      break;
    case BinaryOp::Div:
      binary_forward_kernel<BinaryOp::Div><<<grid, kThreads, 0, s>>>(out, a, b, d, n);
      break;
  }
  KDNAS_CUDA_CHECK_LAUNCH();
}

void sum_to_shape_cuda(Context& ctx, float* out, const float* x, const Shape& x_shape,
                       const Shape& out_shape, float scale) {
  const int64_t outputs = shape_numel(out_shape);
  if (outputs == 0) return;
  // out_shape aligned at the last dim of x_shape (missing leading dims count as 1).
  const size_t nd = x_shape.size(), lead = nd - out_shape.size();
  const Shape xs = contiguous_strides(x_shape);
  std::vector<int64_t> ks, kst, rs, rst;  // kept / reduced sizes and x strides
  for (size_t k = 0; k < nd; ++k) {
    const int64_t o = k < lead ? 1 : out_shape[k - lead];
    if (o == x_shape[k]) {
      ks.push_back(x_shape[k]);
      kst.push_back(xs[k]);
    } else {
      rs.push_back(x_shape[k]);
      rst.push_back(xs[k]);
    }
  }
  const Dims kept = make_dims("sum_to_shape", ks.data(), int(ks.size()), kst.data());
  const Dims red = make_dims("sum_to_shape", rs.data(), int(rs.size()), rst.data());
  int64_t R = 1;
  for (int64_t v : rs) R *= v;
  // The common layouts are a plain [outer, D, inner] reduction: x [R, outputs] (a bias
  // gradient: rows summed) or [outputs, R]; reduce_cuda.cu has the tuned kernels for those.
  if (kept.nd <= 1 && red.nd <= 1) {
    const int64_t ks = kept.nd == 1 ? kept.stride[0][0] : 1;
    const int64_t rst1 = red.nd == 1 ? red.stride[0][0] : outputs;
    if (ks == 1 && rst1 == outputs) return sum_forward_cuda(ctx, out, x, 1, R, outputs, scale);
    if (rst1 == 1 && (kept.nd == 0 || ks == R))
      return sum_forward_cuda(ctx, out, x, outputs, R, 1, scale);
  }
  CudaState& st = cuda_state(ctx);
  if (outputs < 4 * int64_t(st.sm_count) && R >= 2048) {
    sum_to_shape_block_kernel<<<unsigned(outputs), kThreads, 0, st.stream>>>(out, x, kept, red,
                                                                             outputs, R, scale);
  } else {
    sum_to_shape_kernel<<<grid_for(outputs, kThreads), kThreads, 0, st.stream>>>(out, x, kept, red,
                                                                                 outputs, R, scale);
  }
  KDNAS_CUDA_CHECK_LAUNCH();
}

}  // namespace kdnas
