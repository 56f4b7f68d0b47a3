// Conversions are memory-bound once vectorised: each thread streams one contiguous chunk. The
// scalar conversions of tensor/dtype.h branch on NaN, overflow and subnormals, which keeps
// loops scalar; here the same rounding is written branch-free (every case computed, the
// right one selected) so that GCC turns each loop into AVX-512 / AVX2 code, cloned per ISA.
// The tests compare every kernel here bit for bit with tensor/dtype.h.
#include "kernels/cpu/cast_cpu.h"

#include <bit>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace kdnas {
namespace {

constexpr int64_t kGrain = 32768;  // below this, one thread is faster than waking two

// f32 -> bf16, round to nearest even: add 0x7fff plus the lowest kept bit, keep the top half.
// NaNs keep their top bits with the quiet bit (0x40 of the bf16) set.
KDNAS_CPU_CLONES void f32_to_bf16_chunk(uint16_t* out, const float* in, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = std::bit_cast<uint32_t>(in[i]);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t quiet_nan = (u >> 16) | 0x40u;
    out[i] = uint16_t((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
  }
}

// bf16 -> f32 is exact: the bf16 bits are the top half of the f32.
KDNAS_CPU_CLONES void bf16_to_f32_chunk(float* out, const uint16_t* in, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = std::bit_cast<float>(uint32_t(in[i]) << 16);
}

// f32 -> f16, round to nearest even (F. Giesen's float_to_half_fast3_rtne). Three cases on
// the magnitude a:
//   a >= 2^16 (and inf, NaN): inf, or the quiet NaN 0x7e00;
//   a < 2^-14 (f16 subnormal or zero): adding 0.5 (as the float 2^-1) lines the f16
//     subnormal's bits up at the bottom of the f32 mantissa, and the FPU's own round to
//     nearest even does the rounding; subtracting the magic's bits leaves the f16;
//   otherwise: rebias the exponent and round the 13 dropped bits half to even by hand
//     (values from 65520 up round into the inf encoding, as they should).
KDNAS_CPU_CLONES void f32_to_f16_chunk(uint16_t* out, const float* in, int64_t n) {
  constexpr uint32_t kInf = 255u << 23, kF16Max = (127u + 16u) << 23;
  constexpr uint32_t kDenormMagic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = std::bit_cast<uint32_t>(in[i]);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7fffffffu;
    const uint32_t big = a > kInf ? 0x7e00u : 0x7c00u;
    const uint32_t sub =
        std::bit_cast<uint32_t>(std::bit_cast<float>(a) + std::bit_cast<float>(kDenormMagic)) -
        kDenormMagic;
    const uint32_t normal = (a + ((15u - 127u) << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
    const uint32_t h = a >= kF16Max ? big : (a < (113u << 23) ? sub : normal);
    out[i] = uint16_t(h | sign);
  }
}

// f16 -> f32 is exact: rebias normal numbers; subnormals are mant * 2^-24 (an exact float
// product); inf and NaN keep their payload.
KDNAS_CPU_CLONES void f16_to_f32_chunk(float* out, const uint16_t* in, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t h = in[i];
    const uint32_t sign = (h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    const uint32_t normal = sign | ((exp + 112u) << 23) | (mant << 13);
    const uint32_t special = sign | 0x7f800000u | (mant << 13);
    const uint32_t sub = sign | std::bit_cast<uint32_t>(float(mant) * 5.9604644775390625e-8f);
    out[i] = std::bit_cast<float>(exp == 0x1fu ? special : (exp == 0 ? sub : normal));
  }
}

}  // namespace

void cast_f32_to_bf16_cpu(Context& ctx, bf16* out, const float* in, int64_t n) {
  uint16_t* o = reinterpret_cast<uint16_t*>(out);
  parallel_for(ctx, n, kGrain, [&](int64_t b, int64_t e) { f32_to_bf16_chunk(o + b, in + b, e - b); });
}
void cast_bf16_to_f32_cpu(Context& ctx, float* out, const bf16* in, int64_t n) {
  const uint16_t* i = reinterpret_cast<const uint16_t*>(in);
  parallel_for(ctx, n, kGrain, [&](int64_t b, int64_t e) { bf16_to_f32_chunk(out + b, i + b, e - b); });
}
void cast_f32_to_f16_cpu(Context& ctx, f16* out, const float* in, int64_t n) {
  uint16_t* o = reinterpret_cast<uint16_t*>(out);
  parallel_for(ctx, n, kGrain, [&](int64_t b, int64_t e) { f32_to_f16_chunk(o + b, in + b, e - b); });
}
void cast_f16_to_f32_cpu(Context& ctx, float* out, const f16* in, int64_t n) {
  const uint16_t* i = reinterpret_cast<const uint16_t*>(in);
  parallel_for(ctx, n, kGrain, [&](int64_t b, int64_t e) { f16_to_f32_chunk(out + b, i + b, e - b); });
}

}  // namespace kdnas
