// Embedding lookup: token, position and token-type embeddings (gather rows of a table) and the
// scatter-add that is its gradient.
//
// ids: i64 or i32, any shape [...] and any strides; every id must lie in [0, V), otherwise the
// error names the id, its position in ids and V. table: [V, C], f32 on every backend, f64 on
// Ref (for gradient checks). Outputs are new contiguous tensors.
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

// out[..., :] = table[ids[...], :]: returns [..., C] (ids' shape + [C]), table's dtype.
Tensor embedding_forward(Context& ctx, const Tensor& ids, const Tensor& table);

// The gradient with respect to the table: dout [..., C] (ids' shape + [C]) -> dtable [V, C],
// dtable[v] = sum of dout over the positions whose id is v (zero for ids that do not occur).
// Deterministic: repeated ids are summed in the order of their positions on every backend and
// for any thread count, so the result is bit-for-bit the reference's.
// padding_idx (optional, -1 = none): that row gets no gradient, as torch.nn.Embedding's
// padding_idx (XLM-R's word and position embeddings use pad id 1).
// The result is dense: for XLM-R's V = 250002 this allocates and writes 768 MB per call (and
// a fresh allocation that size is page-faulted in by the OS, which costs more than the writes).
Tensor embedding_backward(Context& ctx, const Tensor& dout, const Tensor& ids, int64_t V,
                          int64_t padding_idx = -1);

// dtable += the same gradient, for a caller that keeps the table's gradient buffer (a
// parameter's .grad): dtable is an existing contiguous [V, C] tensor of dout's dtype, updated in
// place (the Tensor handle is const, its values are not). Only the rows whose id occurs are
// touched, so the cost is O(N*C) rather than O(V*C): the path for XLM-R's 250002-row table.
// Same summation order, so accumulating into zeros gives embedding_backward's bits.
void embedding_backward_accumulate(Context& ctx, const Tensor& dtable, const Tensor& dout,
                                   const Tensor& ids, int64_t padding_idx = -1);

}  // namespace kdnas
