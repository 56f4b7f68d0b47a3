// CUDA dtype conversions: one thread per element, with the bit manipulations of
// tensor/dtype.h rather than CUDA's __float2bfloat16_rn / __float2half_rn intrinsics, which
// round the same way but return a canonical NaN instead of keeping the payload's top bits. The
// passes are memory-bound, so the few integer ops per element cost nothing.
#include "kernels/cuda/cast_cuda.h"
#include "kernels/cuda/cuda_common.cuh"
#include "tensor/check.h"

namespace kdnas {
namespace {

constexpr int kThreads = 256;

__host__ __device__ inline uint32_t bits_of(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
#endif
}
__host__ __device__ inline float float_of(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, 4);
  return f;
#endif
}

// tensor/dtype.h's f32_to_f16, line for line: IEEE half, round to nearest even, subnormals,
// overflow to inf, NaN kept quiet.
__host__ __device__ inline uint16_t f32_to_f16_bits(float f) {
  const uint32_t u = bits_of(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) return uint16_t(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u));
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds past 65504: inf
  if (a < 0x38800000u) {
    // Subnormal (or zero) in f16: shift the full mantissa into place, round half to even.
    if (a < 0x33000000u) return uint16_t(sign);
    const uint32_t exp = a >> 23;
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;
    uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return uint16_t(sign | q);
  }
  // Normal: rebias the exponent (127 -> 15), round the 13 dropped mantissa bits half to even.
  uint32_t r = a - 0x38000000u;
  r += 0xfffu + ((r >> 13) & 1u);
  return uint16_t(sign | (r >> 13));
}

// tensor/dtype.h's f16_to_f32 (exact: every f16 is an f32).
__host__ __device__ inline float f16_bits_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return float_of(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    if (mant == 0) return float_of(sign);
    const float v = float(mant) * 5.9604644775390625e-8f;  // mant * 2^-24
    return sign ? -v : v;
  }
  return float_of(sign | ((exp + 112u) << 23) | (mant << 13));
}

// One element: load as f32 (exact for every source), store rounded to the destination.
template <typename To, typename From>
__global__ void cast_kernel(To* __restrict__ out, const From* __restrict__ in, int64_t n) {
  KDNAS_GRID_STRIDE_LOOP(i, n) {
    float x;
    if constexpr (sizeof(From) == 4)
      x = in[i];
    else if constexpr (From::kBf16)
      x = bf16_bits_to_f32(in[i].bits);
    else
      x = f16_bits_to_f32(in[i].bits);
    if constexpr (sizeof(To) == 4)
      out[i] = x;
    else if constexpr (To::kBf16)
      out[i].bits = f32_to_bf16_bits(x);
    else
      out[i].bits = f32_to_f16_bits(x);
  }
}

// Device-side stand-ins for bf16 / f16 (tensor/dtype.h's structs have no __device__ members).
struct Bf16 {
  static constexpr bool kBf16 = true;
  uint16_t bits;
};
struct F16 {
  static constexpr bool kBf16 = false;
  uint16_t bits;
};

template <typename To, typename From>
void launch(Context& ctx, void* out, const void* in, int64_t n) {
  if (n == 0) return;
  cast_kernel<To, From><<<grid_for(n, kThreads), kThreads, 0, stream_of(ctx)>>>(
      static_cast<To*>(out), static_cast<const From*>(in), n);
  KDNAS_CUDA_CHECK_LAUNCH();
}

template <typename To>
void launch_from(Context& ctx, void* out, const void* in, DType from, int64_t n) {
  switch (from) {
    case DType::F32:
      return launch<To, float>(ctx, out, in, n);
    case DType::BF16:
      return launch<To, Bf16>(ctx, out, in, n);
    case DType::F16:
      return launch<To, F16>(ctx, out, in, n);
    default:
      break;
  }
  detail::fail(
      detail::concat("cast: no CUDA kernel from ", dtype_name(from), " (f32, bf16 and f16 only)"));
}

}  // namespace

uint16_t cuda_f32_to_bf16_bits(float f) {
  return f32_to_bf16_bits(f);
}
uint16_t cuda_f32_to_f16_bits(float f) {
  return f32_to_f16_bits(f);
}
float cuda_f16_bits_to_f32(uint16_t h) {
  return f16_bits_to_f32(h);
}

void cast_f32_to_bf16_cuda(Context& ctx, bf16* out, const float* in, int64_t n) {
  launch<Bf16, float>(ctx, out, in, n);
}
void cast_bf16_to_f32_cuda(Context& ctx, float* out, const bf16* in, int64_t n) {
  launch<float, Bf16>(ctx, out, in, n);
}
void cast_f32_to_f16_cuda(Context& ctx, f16* out, const float* in, int64_t n) {
  launch<F16, float>(ctx, out, in, n);
}
void cast_f16_to_f32_cuda(Context& ctx, float* out, const f16* in, int64_t n) {
  launch<float, F16>(ctx, out, in, n);
}

void cast_cuda(Context& ctx, void* out, DType to, const void* in, DType from, int64_t n) {
  if (to == from) {
    if (n > 0)
      KDNAS_CUDA_CHECK(cudaMemcpyAsync(out, in, size_t(n) * dtype_size(to),
                                       cudaMemcpyDeviceToDevice, stream_of(ctx)));
    return;
  }
  switch (to) {
    case DType::F32:
      return launch_from<float>(ctx, out, in, from, n);
    case DType::BF16:
      return launch_from<Bf16>(ctx, out, in, from, n);
    case DType::F16:
      return launch_from<F16>(ctx, out, in, from, n);
    default:
      break;
  }
  detail::fail(
      detail::concat("cast: no CUDA kernel to ", dtype_name(to), " (f32, bf16 and f16 only)"));
}

}  // namespace kdnas
