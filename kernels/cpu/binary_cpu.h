// Fast CPU broadcasting binary ops (f32). Same contract as kernels/ref/binary_ref.h: `shape` is
// the output (broadcast) shape, inputs are read through per-output-dim strides (0 where
// broadcast), outputs are contiguous and overwritten (=). OpenMP + vectorised loops; the oneDNN
// route runs these too (a oneDNN binary primitive would move the same bytes).
#pragma once

#include "kernels/context.h"
#include "kernels/ref/binary_ref.h"
#include "tensor/tensor.h"

namespace kdnas {

// out = a op b over `shape`.
void binary_forward_cpu(Context& ctx, float* out, const float* a, const float* b, BinaryOp op,
                        const Shape& shape, const Shape& a_strides, const Shape& b_strides);

// out (out_shape, =) = scale * x (x_shape) summed over the dims where out_shape is 1 (or
// missing) and x_shape is not: the reduction of a broadcast gradient back to its input's shape.
// x is contiguous; out_shape must broadcast to x_shape.
void sum_to_shape_cpu(Context& ctx, float* out, const float* x, const Shape& x_shape,
                      const Shape& out_shape, float scale);

}  // namespace kdnas
