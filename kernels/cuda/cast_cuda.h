// CUDA dtype conversions. Same contracts as kernels/ref/cast_ref.h (and the CPU's
// kernels/cpu/cast_cpu.h): bit for bit what tensor/dtype.h's scalar conversions give, NaNs
// included. All buffers hold n contiguous elements in device memory; outputs are overwritten (=).
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "tensor/dtype.h"

namespace kdnas {

void cast_f32_to_bf16_cuda(Context& ctx, bf16* out, const float* in, int64_t n);
void cast_bf16_to_f32_cuda(Context& ctx, float* out, const bf16* in, int64_t n);
void cast_f32_to_f16_cuda(Context& ctx, f16* out, const float* in, int64_t n);
void cast_f16_to_f32_cuda(Context& ctx, float* out, const f16* in, int64_t n);

// Any pair of f32, bf16 and f16 (16-bit to 16-bit goes through f32, as the reference does);
// other dtypes are an error naming them. from == to is a device copy.
void cast_cuda(Context& ctx, void* out, DType to, const void* in, DType from, int64_t n);

// The device's conversion code, compiled for the host from the same source: lets a test on a
// machine without a GPU compare it with tensor/dtype.h on every 16-bit pattern.
uint16_t cuda_f32_to_bf16_bits(float f);
uint16_t cuda_f32_to_f16_bits(float f);
float cuda_f16_bits_to_f32(uint16_t h);

}  // namespace kdnas
