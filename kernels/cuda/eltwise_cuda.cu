// CUDA element-wise activations: one thread per element in a grid-stride loop. These passes
// are bound by memory bandwidth (a few flops per 8-12 bytes moved), so the kernels only need
// coalesced loads and stores; the math is written as in kernels/ref/eltwise_ref.cpp, with CUDA's
// erff/expf/tanhf (at most 2 ulp) and no fast-math, so results agree with the CPU to ~1e-7.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/eltwise_cuda.h"

namespace kdnas {
namespace {

constexpr int kThreads = 256;

// out[i] = f(inp[i])
template <typename F>
__global__ void map1_kernel(float* out, const float* inp, int64_t n, F f) {
  KDNAS_GRID_STRIDE_LOOP(i, n) out[i] = f(inp[i]);
}

// dinp[i] = f(dout[i], saved[i]): the backward of an activation from its saved input or output.
template <typename F>
__global__ void map2_kernel(float* dinp, const float* dout, const float* saved, int64_t n, F f) {
  KDNAS_GRID_STRIDE_LOOP(i, n) dinp[i] = f(dout[i], saved[i]);
}

struct GeluFwd {
  __device__ float operator()(float x) const { return gelu_erf(x); }
};
// d/dx[x * Phi(x)] = Phi(x) + x * phi(x), phi the N(0, 1) density.
struct GeluBwd {
  __device__ float operator()(float d, float x) const {
    const float cdf = 0.5f * (1.f + erff(x * 0.70710678118654752440f));
    const float pdf = 0.39894228040143267794f * expf(-0.5f * x * x);
    return d * (cdf + x * pdf);
  }
};
struct TanhFwd {
  __device__ float operator()(float x) const { return tanhf(x); }
};
// From the forward output y: d/dx tanh = 1 - y^2.
struct TanhBwd {
  __device__ float operator()(float d, float y) const { return d * (1.f - y * y); }
};
struct ReluFwd {
  __device__ float operator()(float x) const { return x > 0.f ? x : 0.f; }
};
struct ReluBwd {
  __device__ float operator()(float d, float x) const { return x > 0.f ? d : 0.f; }
};
struct Scale {
  float alpha;
  __device__ float operator()(float x) const { return alpha * x; }
};

template <typename F>
void map1(Context& ctx, float* out, const float* inp, int64_t n, F f) {
  if (n == 0) return;
  map1_kernel<<<grid_for(n, kThreads), kThreads, 0, stream_of(ctx)>>>(out, inp, n, f);
  KDNAS_CUDA_CHECK_LAUNCH();
}

template <typename F>
void map2(Context& ctx, float* dinp, const float* dout, const float* saved, int64_t n, F f) {
  if (n == 0) return;
  map2_kernel<<<grid_for(n, kThreads), kThreads, 0, stream_of(ctx)>>>(dinp, dout, saved, n, f);
  KDNAS_CUDA_CHECK_LAUNCH();
}

}  // namespace

void gelu_forward_cuda(Context& ctx, float* out, const float* inp, int64_t n) {
  map1(ctx, out, inp, n, GeluFwd{});
}
void gelu_backward_cuda(Context& ctx, float* dinp, const float* dout, const float* inp, int64_t n) {
  map2(ctx, dinp, dout, inp, n, GeluBwd{});
}
void tanh_forward_cuda(Context& ctx, float* out, const float* inp, int64_t n) {
  map1(ctx, out, inp, n, TanhFwd{});
}
void tanh_backward_cuda(Context& ctx, float* dinp, const float* dout, const float* out, int64_t n) {
  map2(ctx, dinp, dout, out, n, TanhBwd{});
}
void relu_forward_cuda(Context& ctx, float* out, const float* inp, int64_t n) {
  map1(ctx, out, inp, n, ReluFwd{});
}
void relu_backward_cuda(Context& ctx, float* dinp, const float* dout, const float* inp, int64_t n) {
  map2(ctx, dinp, dout, inp, n, ReluBwd{});
}
void scale_forward_cuda(Context& ctx, float* out, const float* inp, float alpha, int64_t n) {
  map1(ctx, out, inp, n, Scale{alpha});
}

}  // namespace kdnas
