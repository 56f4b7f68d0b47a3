// What every CUDA source of the backend shares: the error-checking macros, the Context's CUDA
// state (stream, cuBLAS and cuBLASLt handles), launch arithmetic and warp/block reductions.
//
// Included only by kernels/cuda/*.cu: this is the one header that includes CUDA headers, and it
// is never included from a .cpp or a .h (see cuda_context.h).
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

#include "kernels/context.h"
#include "kernels/cuda/cuda_context.h"

// Throws a kdnas::Error naming the call, where it was made and CUDA's name and text for the
// error: "CUDA error: cudaMalloc(&p, n) failed at kernels/cuda/cuda_allocator.cu:91:
// cudaErrorMemoryAllocation: out of memory".
#define KDNAS_CUDA_CHECK(call)                                                    \
  do {                                                                            \
    const cudaError_t kdnas_err_ = (call);                                        \
    if (kdnas_err_ != cudaSuccess)                                                \
      ::kdnas::cuda_fail(#call, __FILE__, __LINE__, cudaGetErrorName(kdnas_err_), \
                         cudaGetErrorString(kdnas_err_));                         \
  } while (0)

// The same for cuBLAS and cuBLASLt calls (both return cublasStatus_t).
#define KDNAS_CUBLAS_CHECK(call)                                                    \
  do {                                                                              \
    const cublasStatus_t kdnas_st_ = (call);                                        \
    if (kdnas_st_ != CUBLAS_STATUS_SUCCESS)                                         \
      ::kdnas::cuda_fail(#call, __FILE__, __LINE__, cublasGetStatusName(kdnas_st_), \
                         cublasGetStatusString(kdnas_st_));                         \
  } while (0)

// After a <<<...>>> launch: a bad launch configuration is reported here, at the launch site.
// Errors inside the kernel surface at the next synchronising call (cuda_synchronize, a copy to
// the host), like any asynchronous CUDA error.
#define KDNAS_CUDA_CHECK_LAUNCH() KDNAS_CUDA_CHECK(cudaGetLastError())

namespace kdnas {

// A cached cuBLASLt GEMM plan: descriptors and the algorithm the heuristic chose for one layout
// (matmul_cuda.cu fills it; the cache lives in CudaState so a hot loop plans once).
struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  // cuBLASLt's operands A, B and D (= C), column-major: see matmul_cuda.cu for how they map to
  // our row-major a, b and out.
  cublasLtMatrixLayout_t layout_a = nullptr, layout_b = nullptr, layout_d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~LtPlan();
};

// One Context's CUDA objects, in its kCudaSlot. Created by cuda_state() on the Context's first
// CUDA op; destroyed with the Context (after waiting for its stream).
struct CudaState : BackendState {
  CudaState();
  ~CudaState() override;
  CudaState(const CudaState&) = delete;
  CudaState& operator=(const CudaState&) = delete;

  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cublasLtHandle_t cublaslt = nullptr;
  // cuBLASLt's workspace: larger lets it pick split-K and stream-K kernels; 32 MiB is what
  // NVIDIA recommends for Hopper. Allocated once per Context with cudaMalloc.
  void* lt_workspace = nullptr;
  size_t lt_workspace_bytes = size_t(32) << 20;
  bool allow_tf32 = false;
  std::unordered_map<std::string, std::unique_ptr<LtPlan>> lt_plans;
  int sm_count = 0;  // multiprocessors, for sizing grid-stride launches

 private:
  void release() noexcept;  // frees whatever was created (the destructor, or a failed constructor)
};

// The Context's CUDA state, created if needed, and made the current stream of this thread (the
// stream new device allocations are tagged with; see cuda_allocator.h).
CudaState& cuda_state(Context& ctx);
inline cudaStream_t stream_of(Context& ctx) {
  return cuda_state(ctx).stream;
}

// The stream current on this thread (nullptr = the legacy default stream) and the switch to
// another one, which first synchronises the old one (why: cuda_allocator.h, "Streams").
cudaStream_t cuda_current_stream();
void cuda_make_current(cudaStream_t s);

// The allocator's registry of live streams (CudaState registers its stream on creation and
// retires it on destruction; cached blocks of a retired stream move to the default stream).
void cuda_allocator_add_stream(cudaStream_t s);
void cuda_allocator_retire_stream(cudaStream_t s);
bool cuda_allocator_stream_live(cudaStream_t s);

// ---- launch arithmetic ---------------------------------------------------------------------

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;

inline int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Blocks for a grid-stride loop over n items with `threads` per block: enough to fill the GPU
// several times over, never more than the items need (and within gridDim.x's limit).
inline unsigned grid_for(int64_t n, int threads) {
  const int64_t want = ceil_div(n, threads);
  const int64_t cap = int64_t(1) << 20;
  return unsigned(want < 1 ? 1 : (want > cap ? cap : want));
}

// Grid-stride loop over [0, n): each thread takes every (gridDim.x * blockDim.x)-th index, so
// any grid size covers any n, and neighbouring threads touch neighbouring elements (coalesced).
#define KDNAS_GRID_STRIDE_LOOP(i, n)                                        \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += int64_t(gridDim.x) * blockDim.x)

// ---- strided index arithmetic -------------------------------------------------------------
// Kernels that walk an arbitrary view (broadcast binary ops, permute, sum-to-shape) get its
// shape and strides by value, in a fixed-size struct. Dims of size 1 are dropped and neighbours
// that are contiguous in every operand merged first, so [B, T, C] + [C] is 2 dims and a
// contiguous tensor 1; more than kMaxDims dims left after that is an error.

constexpr int kMaxDims = 8;

// A row-major index space `size` and, for each of up to two operands, its strides (elements).
struct Dims {
  int nd = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[2][kMaxDims] = {};
};

// Offset of linear index i (row-major over d.size) in operand k. The outermost dim needs no
// division: what is left of i after the inner dims is its index.
__device__ __forceinline__ int64_t dims_offset(const Dims& d, int k, int64_t i) {
  int64_t off = 0;
  for (int j = d.nd - 1; j > 0; --j) {
    off += (i % d.size[j]) * d.stride[k][j];
    i /= d.size[j];
  }
  return d.nd > 0 ? off + i * d.stride[k][0] : 0;
}

// Builds Dims from a shape and 1 or 2 stride vectors (one entry per dim), dropping size-1 dims
// and merging neighbours; `what` names the op for the error when more than kMaxDims remain.
Dims make_dims(const char* what, const int64_t* shape, int nd, const int64_t* s0,
               const int64_t* s1 = nullptr);

// ---- scalar math shared by several kernels -------------------------------------------------

// GELU, exact erf form (what XLM-R's "gelu" means): x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
// Written as in kernels/ref/eltwise_ref.cpp so the two round alike.
__device__ __forceinline__ float gelu_erf(float x) {
  return 0.5f * x * (1.f + erff(x * 0.70710678118654752440f));
}

// f32 -> bf16 bits, rounding to nearest even, NaN kept quiet: tensor/dtype.h's f32_to_bf16 bit
// for bit (CUDA's __float2bfloat16_rn differs on NaN payloads). Host and device.
__host__ __device__ __forceinline__ uint16_t f32_to_bf16_bits(float f) {
#ifdef __CUDA_ARCH__
  uint32_t u = __float_as_uint(f);
#else
  uint32_t u;
  memcpy(&u, &f, 4);
#endif
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
__host__ __device__ __forceinline__ float bf16_bits_to_f32(uint16_t h) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(uint32_t(h) << 16);
#else
  const uint32_t u = uint32_t(h) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
#endif
}

// ---- reductions ----------------------------------------------------------------------------
// Butterfly (xor) shuffles: every lane ends with the result, in a fixed order of additions, so a
// reduction is deterministic run to run.

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = kWarpSize / 2; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int o = kWarpSize / 2; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = kWarpSize / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// Sum over a whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the
// result. `shared` holds >= 32 values of T. Calls __syncthreads, so every thread must reach it.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* shared) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  v = warp_sum(v);
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : T(0);
  return warp_sum(v);
}

// Max over a whole block, as block_sum (every thread gets the result).
__device__ __forceinline__ float block_max(float v, float* shared) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : -INFINITY;
  return warp_max(v);
}

// Online softmax statistics of a set of logits: the running max m and sum s of exp(z - m).
// Combining two partial results rescales the smaller-max sum, so one pass over a row gives both
// (Milakov & Gimelshein, "Online normalizer calculation for softmax"). m = -inf, s = 0 is the
// empty set; -inf logits contribute nothing and never produce NaN.
struct MaxSum {
  float m, s;
};
__device__ __forceinline__ MaxSum max_sum_add(MaxSum a, float z) {
  if (z == -INFINITY) return a;
  if (z > a.m) return {z, a.s * expf(a.m - z) + 1.f};
  return {a.m, a.s + expf(z - a.m)};
}
__device__ __forceinline__ MaxSum max_sum_merge(MaxSum a, MaxSum b) {
  if (a.m == -INFINITY) return b;
  if (b.m == -INFINITY) return a;
  return a.m >= b.m ? MaxSum{a.m, a.s + b.s * expf(b.m - a.m)}
                    : MaxSum{b.m, b.s + a.s * expf(a.m - b.m)};
}
__device__ __forceinline__ MaxSum warp_max_sum(MaxSum v) {
  for (int o = kWarpSize / 2; o > 0; o >>= 1) {
    MaxSum w{__shfl_xor_sync(kFullMask, v.m, o), __shfl_xor_sync(kFullMask, v.s, o)};
    v = max_sum_merge(v, w);
  }
  return v;
}

}  // namespace kdnas
