// Element-wise binary ops with numpy broadcasting: add, sub, mul, div.
//
// Broadcasting (numpy rules): the shapes are aligned at their last dim; each pair of sizes must
// be equal or one of them 1, and a missing leading dim counts as 1. The output has the
// broadcast shape and is a new contiguous tensor; [B*T, C] + [C] (a bias) and [3, 1, 5] *
// [1, 4, 1] -> [3, 4, 5] are both legal. Incompatible shapes throw a kdnas::Error naming the
// op and both shapes.
//
// Inputs may be any views (strided, transposed, expanded); they are read through their strides
// without a copy. dtype: f32 on every backend, f64 on Ref (for gradient checks); a and b must
// have the same dtype and device.
//
// Backward: each gradient is reduced (summed) over the dims its input was broadcast along, so
// da has a's shape and db has b's shape (the bias gradient of [B*T, C] + [C] is the column sum
// of dout). Both are new tensors, never aliases of dout.
#pragma once

#include "kernels/context.h"
#include "kernels/ref/binary_ref.h"  // BinaryOp
#include "tensor/tensor.h"

namespace kdnas {

// out = a op b, broadcast. `op` names the op in error messages ("add", "div", ...).
Tensor binary_forward(Context& ctx, BinaryOp op, const Tensor& a, const Tensor& b);

Tensor add(Context& ctx, const Tensor& a, const Tensor& b);  // a + b
Tensor sub(Context& ctx, const Tensor& a, const Tensor& b);  // a - b
Tensor mul(Context& ctx, const Tensor& a, const Tensor& b);  // a * b
Tensor div(Context& ctx, const Tensor& a, const Tensor& b);  // a / b (IEEE: x / 0 is inf or NaN)

struct BinaryGrads {
  Tensor da;  // a's shape
  Tensor db;  // b's shape
};

// Gradients of out = a op b given dout (the broadcast shape):
//   add: da = dout,      db = dout
//   sub: da = dout,      db = -dout
//   mul: da = dout * b,  db = dout * a
//   div: da = dout / b,  db = -dout * a / b^2
// each then summed back to its input's shape. Add and sub read only the shapes of a and b.
BinaryGrads binary_backward(Context& ctx, BinaryOp op, const Tensor& dout, const Tensor& a,
                            const Tensor& b);

// The broadcast of two shapes; throws "<op>: cannot broadcast a [..] with b [..]".
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

}  // namespace kdnas
