// cast: converts a tensor between the floating dtypes.
//
// f32 -> bf16 and f32 -> f16 round to nearest, ties to even, bit for bit as tensor/dtype.h's
// f32_to_bf16 / f32_to_f16 (NaNs become quiet NaNs, overflow becomes inf, subnormals are
// kept); bf16 -> f32 and f16 -> f32 are exact. Every other pair of f32, f64, bf16 and f16
// converts through f32 the way Tensor::to does (f64 -> bf16 rounds to f32 first).
//
// x may be any view; the result is a new contiguous tensor, or x itself when it already has
// dtype `to` and is contiguous. The four f32 <-> bf16 / f16 conversions have vectorised
// OpenMP kernels on the Omp and Onednn backends; the other pairs run the reference loop.
#pragma once

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

Tensor cast(Context& ctx, const Tensor& x, DType to);

}  // namespace kdnas
