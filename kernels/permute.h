// permute_copy: a dim permutation materialised as a new contiguous tensor.
//
// out.shape[k] = x.shape[order[k]], and out[i_0, ..., i_{n-1}] = x[j] with j[order[k]] = i_k
// (the same convention as Tensor::permute, whose view this op copies). The attention head split
// is permute_copy(x [B, T, NH, HS], {0, 2, 1, 3}) -> [B, NH, T, HS], and its merge is the same
// order applied back. order may use negative dims.
//
// A byte move: every dtype works (f32, bf16, f64, i64, ...), on every backend. x may be any view.
#pragma once

#include <vector>

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

Tensor permute_copy(Context& ctx, const Tensor& x, const std::vector<int64_t>& order);

// The backward of permute_copy(x, order): dout permuted with the inverse order, giving x's shape.
Tensor permute_backward(Context& ctx, const Tensor& dout, const std::vector<int64_t>& order);

// The inverse permutation: inverse[order[k]] = k. Throws if order is not a permutation.
std::vector<int64_t> inverse_permutation(const std::vector<int64_t>& order);

}  // namespace kdnas
