// Fast CPU dtype conversions (OpenMP + vectorised). Same contracts as kernels/ref/cast_ref.h:
// bit for bit what tensor/dtype.h's scalar conversions give. All buffers hold n contiguous
// elements; outputs are overwritten (=).
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "tensor/dtype.h"

namespace kdnas {

void cast_f32_to_bf16_cpu(Context& ctx, bf16* out, const float* in, int64_t n);
// The same conversion on the calling thread, for kernels that round their own rows (the softmax
// with bf16 output).
void f32_to_bf16_serial(bf16* out, const float* in, int64_t n);
void cast_bf16_to_f32_cpu(Context& ctx, float* out, const bf16* in, int64_t n);
void cast_f32_to_f16_cpu(Context& ctx, f16* out, const float* in, int64_t n);
void cast_f16_to_f32_cpu(Context& ctx, float* out, const f16* in, int64_t n);

}  // namespace kdnas
