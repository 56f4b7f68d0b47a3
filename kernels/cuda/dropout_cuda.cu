// CUDA dropout: one thread per element, each drawing its own counter-based random number, so
// no generator state is shared between threads and the mask does not depend on the launch
// configuration.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/dropout_cuda.h"
#include "kernels/ref/dropout_ref.h"

namespace kdnas {
namespace {

constexpr int kThreads = 256;

// tensor/rng.h's rng_hash, line for line (that one is host-only inline code). Two rounds of the
// splitmix64 finaliser over seed and counter.
__host__ __device__ inline uint64_t hash(uint64_t seed, uint64_t counter) {
  uint64_t z =
      seed * 0x9e3779b97f4a7c15ull + counter * 0xbf58476d1ce4e5b9ull + 0x94d049bb133111ebull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z = z ^ (z >> 31);
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// keep iff uniform01 >= p, uniform01 = (hash >> 40) / 2^24: exact in float, compared in double,
// as the reference does.
__global__ void dropout_forward_kernel(float* __restrict__ out, uint8_t* __restrict__ mask,
                                       const float* __restrict__ inp, double p, float scale,
                                       uint64_t seed, uint64_t counter, int64_t n) {
  KDNAS_GRID_STRIDE_LOOP(i, n) {
    const float u = float(hash(seed, counter + uint64_t(i)) >> 40) * (1.0f / 16777216.0f);
    const bool keep = double(u) >= p;
    mask[i] = keep ? 1 : 0;
    out[i] = keep ? inp[i] * scale : 0.f;
  }
}

__global__ void dropout_backward_kernel(float* __restrict__ dinp, const float* __restrict__ dout,
                                        const uint8_t* __restrict__ mask, float scale, int64_t n) {
  KDNAS_GRID_STRIDE_LOOP(i, n) dinp[i] = mask[i] ? dout[i] * scale : 0.f;
}

}  // namespace

uint64_t cuda_rng_hash(uint64_t seed, uint64_t counter) {
  return hash(seed, counter);
}

void dropout_forward_cuda(Context& ctx, float* out, uint8_t* mask, const float* inp, double p,
                          uint64_t seed, uint64_t counter, int64_t n) {
  if (n == 0) return;
  dropout_forward_kernel<<<grid_for(n, kThreads), kThreads, 0, stream_of(ctx)>>>(
      out, mask, inp, p, float(dropout_scale(p)), seed, counter, n);
  KDNAS_CUDA_CHECK_LAUNCH();
}

void dropout_backward_cuda(Context& ctx, float* dinp, const float* dout, const uint8_t* mask,
                           double p, int64_t n) {
  if (n == 0) return;
  dropout_backward_kernel<<<grid_for(n, kThreads), kThreads, 0, stream_of(ctx)>>>(
      dinp, dout, mask, float(dropout_scale(p)), n);
  KDNAS_CUDA_CHECK_LAUNCH();
}

}  // namespace kdnas
