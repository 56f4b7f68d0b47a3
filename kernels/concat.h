// Concatenation and splitting along one dim; each is the other's backward.
//
// These are byte moves, so every dtype is supported, on every backend. Inputs may be any
// views (non-contiguous ones are copied first); results are new contiguous tensors.
// `dim` may be negative (counted from the end).
#pragma once

#include <vector>

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

// xs[0..K) all have the same rank, dtype and device, and the same sizes in every dim but `dim`;
// the result's size in `dim` is the sum of theirs: [B, T, C1] ++ [B, T, C2] -> [B, T, C1 + C2].
Tensor concat(Context& ctx, const std::vector<Tensor>& xs, int64_t dim);

// Cuts x along `dim` into pieces of the given sizes (each >= 0, summing to x.size(dim)); returns
// contiguous copies, not views. The backward of split is concat(dxs, dim).
std::vector<Tensor> split(Context& ctx, const Tensor& x, int64_t dim,
                          const std::vector<int64_t>& sizes);

// The backward of concat: dout split into the inputs' sizes along dim (= split).
std::vector<Tensor> concat_backward(Context& ctx, const Tensor& dout,
                                    const std::vector<int64_t>& sizes, int64_t dim);

}  // namespace kdnas
