// Reference broadcasting binary ops: the executable specification of add, sub, mul, div and
// their gradients. Naive, single-threaded, templated on the scalar (float, or double for
// gradient checks).
//
// Broadcasting is expressed with strides: `shape` is the output (broadcast) shape, and an input
// is read at offset sum_k i_k * x_strides[k] for the output index (i_0, ..., i_{n-1}); a stride
// of 0 repeats the input along that dim. x_strides has one entry per output dim. The output is
// contiguous row-major over `shape`.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace kdnas {

// The ops; declared with their specification (kernels/binary.h is the op API over them).
enum class BinaryOp : unsigned char { Add, Sub, Mul, Div };

// "add", "sub", "mul", "div".
const char* binary_op_name(BinaryOp op);

// out = a op b over `shape` (overwritten, =).
template <typename T>
void binary_forward_ref(T* out, const T* a, const T* b, BinaryOp op, const Shape& shape,
                        const Shape& a_strides, const Shape& b_strides);

// Gradients of out = a op b, accumulated (+=) into da and db; the caller zeroes them.
//   dout: contiguous over `shape`; a, b, da, db: read/written through a_strides / b_strides
//   (0 on broadcast dims, so the += sums each gradient back to its input's shape). da or db may
//   be null when that gradient is not wanted.
//   add: da += dout      sub: da += dout       mul: da += dout * b    div: da += dout / b
//        db += dout           db -= dout            db += dout * a         db -= dout * a / b^2
template <typename T>
void binary_backward_ref(T* da, T* db, const T* dout, const T* a, const T* b, BinaryOp op,
                         const Shape& shape, const Shape& a_strides, const Shape& b_strides);

}  // namespace kdnas
