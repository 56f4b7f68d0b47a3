// Differentiable functions on Variables: each is the op's forward kernel plus a recorded backward
// that calls the op's explicit backward kernel (kernels/*.h). Every derivative rule lives in
// functions.cpp, one short function per op, readable as a table.
//
// Shapes, dtypes and errors are the kernels' (see each kernels/<op>.h); an undefined Variable
// argument is an error naming the function and the argument. Arguments passed as Tensor (ids,
// targets, masks, a teacher's logits) are constants: no gradient flows to them.
//
// Context: the one passed in runs the forward now and the backward later; it must outlive
// backward() (see autograd/variable.h). Under NoGradGuard nothing is recorded.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/variable.h"
#include "kernels/context.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace kdnas {

// ---- element-wise ---------------------------------------------------------------------------
Variable gelu(Context& ctx, const Variable& x);  // erf form
Variable tanh(Context& ctx, const Variable& x);
Variable relu(Context& ctx, const Variable& x);
Variable scale(Context& ctx, const Variable& x, double alpha);  // alpha * x

// ---- binary, numpy broadcasting (each gradient summed back to its input's shape) -------------
Variable add(Context& ctx, const Variable& a, const Variable& b);
Variable sub(Context& ctx, const Variable& a, const Variable& b);
Variable mul(Context& ctx, const Variable& a, const Variable& b);
Variable div(Context& ctx, const Variable& a, const Variable& b);

// ---- GEMMs ----------------------------------------------------------------------------------
// a [..., M, K] · b [..., K, N] (or b [K, N] shared by every batch) -> [..., M, N].
Variable matmul(Context& ctx, const Variable& a, const Variable& b);
// x [..., K] · w [N, K]ᵀ + bias [N] -> [..., N] (PyTorch layout); bias may be undefined.
Variable linear(Context& ctx, const Variable& x, const Variable& w, const Variable& bias);

// ---- normalisation --------------------------------------------------------------------------
// Over the last dim: x [..., C], gamma and beta [C].
Variable layer_norm(Context& ctx, const Variable& x, const Variable& gamma, const Variable& beta,
                    double eps);
// softmax(scale * x + mask) over the last dim; mask is additive, constant, broadcast to x, and
// may be undefined (the attention case: x [B, NH, T, T], mask [B, 1, 1, T]).
Variable softmax(Context& ctx, const Variable& x, const Tensor& mask = {}, double scale = 1.0);
Variable log_softmax(Context& ctx, const Variable& x);  // over the last dim

// ---- lookups and noise ----------------------------------------------------------------------
// table [V, C] rows gathered by ids (i64 or i32, any shape) -> [..., C]. The padding_idx row
// (-1: none) gets no gradient.
Variable embedding(Context& ctx, const Tensor& ids, const Variable& table,
                   int64_t padding_idx = -1);
// Inverted dropout: in training, zeroes each element with probability p and scales the rest by
// 1 / (1 - p), drawing x.numel() counters from rng; with train = false or p = 0 it returns x
// itself and draws nothing.
Variable dropout(Context& ctx, const Variable& x, double p, Rng& rng, bool train);

// ---- reductions over one dim ----------------------------------------------------------------
Variable sum(Context& ctx, const Variable& x, int64_t dim, bool keepdim = false);
Variable mean(Context& ctx, const Variable& x, int64_t dim, bool keepdim = false);
// The maximum values; the gradient goes to the first maximal element.
Variable max(Context& ctx, const Variable& x, int64_t dim, bool keepdim = false);
// Sum / mean of every element: a 0-dim scalar (a loss).
Variable sum_all(Context& ctx, const Variable& x);
Variable mean_all(Context& ctx, const Variable& x);

// ---- shape ----------------------------------------------------------------------------------
Variable concat(Context& ctx, const std::vector<Variable>& xs, int64_t dim);
// Pieces of the given sizes along dim (contiguous copies). The gradient of one piece reaches x
// zero-padded to x's shape, so k pieces cost k x-sized gradients: fine for the few-way splits
// this is for, not for splitting a sequence into tokens.
std::vector<Variable> split(Context& ctx, const Variable& x, int64_t dim,
                            const std::vector<int64_t>& sizes);
// x[..., start : start + length, ...] along dim, as a view (the <s> token: narrow(x, 1, 0, 1)).
Variable narrow(Context& ctx, const Variable& x, int64_t dim, int64_t start, int64_t length);
// A contiguous copy with the dims permuted (the attention head split {0, 2, 1, 3}).
Variable permute(Context& ctx, const Variable& x, const std::vector<int64_t>& order);
// Views: the value shares x's storage (reshape copies only when no view is possible); the
// backward reshapes / transposes the gradient back.
Variable reshape(Context& ctx, const Variable& x, const Shape& shape);
Variable view(Context& ctx, const Variable& x, const Shape& shape);
Variable transpose(Context& ctx, const Variable& x, int64_t d0, int64_t d1);

// ---- losses: 0-dim scalars -------------------------------------------------------------------
// Mean of (pred - target)^2 over the selected rows (row_mask [rows] 0/1 over all dims but the
// last, undefined = all rows). target may require a gradient too.
Variable mse(Context& ctx, const Variable& pred, const Variable& target,
             const Tensor& row_mask = {});
// Mean over rows whose target is not ignore_index of -log softmax(logits)[target];
// logits [N, V], targets i64 [N].
Variable cross_entropy(Context& ctx, const Variable& logits, const Tensor& targets,
                       int64_t ignore_index = -100);
// Mean over rows of T^2 KL(softmax(teacher / T) || softmax(student / T)); logits [N, V]; the
// teacher is a constant.
Variable kl_div(Context& ctx, const Variable& student_logits, const Tensor& teacher_logits,
                double temperature, const Tensor& row_mask = {});

}  // namespace kdnas
