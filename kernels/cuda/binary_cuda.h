// CUDA broadcasting binary ops (f32). Same contract as kernels/ref/binary_ref.h: `shape` is the
// output (broadcast) shape, a and b are read through per-output-dim strides (0 where broadcast),
// the output is contiguous and overwritten (=). Device pointers; host shapes and strides.
#pragma once

#include "kernels/context.h"
#include "kernels/ref/binary_ref.h"
#include "tensor/tensor.h"

namespace kdnas {

// out = a op b over `shape`.
void binary_forward_cuda(Context& ctx, float* out, const float* a, const float* b, BinaryOp op,
                         const Shape& shape, const Shape& a_strides, const Shape& b_strides);

// out (out_shape, =) = scale * x (x_shape, contiguous) summed over the dims where out_shape is 1
// (or missing) and x_shape is not: a broadcast gradient reduced to its input's shape.
// Deterministic (double accumulation in a fixed order).
void sum_to_shape_cuda(Context& ctx, float* out, const float* x, const Shape& x_shape,
                       const Shape& out_shape, float scale);

}  // namespace kdnas
