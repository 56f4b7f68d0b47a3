// Reductions over one dim: sum, mean, max (with the index of the maximum), and their backward.
//
// `dim` may be any dim of x, negative counting from the end. The result drops that dim, or keeps
// it with size 1 when keepdim is true: x [B, T, C] over dim 1 gives [B, C], or [B, 1, C].
// Inputs may be any views (non-contiguous ones are copied first); outputs are new contiguous
// tensors. dtype: f32 on every backend, f64 on Ref (for gradient checks).
//
// Accuracy: the reference accumulates in double, so it is the precise answer. The fast f32
// kernels add in f32 within short blocks (at most 256 terms, in SIMD lanes) and add the block
// totals in double: the error no longer grows with the reduced length (a 250k-logit vocabulary
// row sums as accurately as a 768-wide one), and it costs nothing, since the loops are bound by
// memory, not by adds. See kernels/cpu/reduce_cpu.cpp.
#pragma once

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

// Sum over dim. An empty dim (size 0) sums to 0.
Tensor sum(Context& ctx, const Tensor& x, int64_t dim, bool keepdim = false);
// Mean over dim (sum / size; an empty dim gives NaN, as 0/0 does).
Tensor mean(Context& ctx, const Tensor& x, int64_t dim, bool keepdim = false);

struct MaxOutput {
  Tensor values;   // x's dtype, the reduced shape
  Tensor indices;  // i64, the reduced shape: position along dim of the first maximal element
};
// Max over dim. Ties go to the first maximal element; a NaN counts as larger than any number
// (the first NaN wins, so NaN propagates as in PyTorch). The dim must not be empty.
MaxOutput max(Context& ctx, const Tensor& x, int64_t dim, bool keepdim = false);

// Backward of sum: dx (x_shape) = dout broadcast along dim. dout has the reduced shape (with or
// without the kept dim, as the forward call's keepdim says).
Tensor sum_backward(Context& ctx, const Tensor& dout, const Shape& x_shape, int64_t dim,
                    bool keepdim = false);
// Backward of mean: dx = dout / x_shape[dim], broadcast along dim.
Tensor mean_backward(Context& ctx, const Tensor& dout, const Shape& x_shape, int64_t dim,
                     bool keepdim = false);
// Backward of max: dx is zero except at the forward's indices, where it is dout (the whole
// gradient goes to the first maximal element, as the forward picked it).
Tensor max_backward(Context& ctx, const Tensor& dout, const Tensor& indices, const Shape& x_shape,
                    int64_t dim, bool keepdim = false);

}  // namespace kdnas
