// Training losses: mean squared error (hidden-state distillation), cross-entropy (MLM and
// classification heads) and the temperature-scaled KL divergence of knowledge distillation.
//
// Every forward returns a 0-dim scalar tensor of its inputs' dtype (f32 on every backend, f64 on
// Ref for gradient checks); every backward takes the upstream gradient of that scalar, dloss, as
// a double, and returns new contiguous gradient tensors. Inputs may be non-contiguous views.
// Sums are accumulated in double, and the fast kernels' results do not depend on the thread
// count (kernels/cpu/loss_cpu.cpp).
//
// A row_mask (optional: an undefined Tensor means every row counts) selects which rows enter
// the mean: f32, f64 or u8, one value per row, each exactly 0 or 1 (anything else is an error,
// so a weight passed by mistake is caught). For mse the rows are all dims but the last of pred
// ([B, T] for hidden states [B, T, C]); for kl_div they are the N rows of [N, V].
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

// ---- mean squared error ----------------------------------------------------------------------
// mean over the selected rows, and all elements of those rows, of (pred - target)^2.
// pred, target: same shape [..., C] (at least 1 dim). A mask that selects no row is an error.
Tensor mse_forward(Context& ctx, const Tensor& pred, const Tensor& target,
                   const Tensor& row_mask = {});

struct MseGrads {
  Tensor dpred;    // dloss * 2 (pred - target) / (rows * C) on selected rows, 0 elsewhere
  Tensor dtarget;  // -dpred (the target may be a trained projection of the teacher)
};
MseGrads mse_backward(Context& ctx, double dloss, const Tensor& pred, const Tensor& target,
                      const Tensor& row_mask = {});

// ---- cross-entropy ---------------------------------------------------------------------------
// mean over rows n with targets[n] != ignore_index of -log softmax(logits[n])[targets[n]],
// computed as logsumexp(logits[n]) - logits[n, targets[n]] with the row maximum subtracted
// before exponentiating (no overflow for large logits).
// logits [N, V]; targets [N], i64 or i32, each in [0, V) or equal to ignore_index (otherwise an
// error naming the target, its row and V). When every row is ignored (a batch with no masked
// token) the loss is 0, not NaN, and the gradient is zero.
Tensor cross_entropy_forward(Context& ctx, const Tensor& logits, const Tensor& targets,
                             int64_t ignore_index = -100);
// dlogits [N, V] = dloss * (softmax(logits) - onehot(targets)) / count on counted rows, 0 on
// ignored rows (count = rows not ignored).
Tensor cross_entropy_backward(Context& ctx, double dloss, const Tensor& logits,
                              const Tensor& targets, int64_t ignore_index = -100);

// ---- knowledge-distillation KL divergence (Hinton et al. 2015) -------------------------------
// mean over the (selected) rows of T^2 * KL(softmax(teacher / T) || softmax(student / T)),
// T = temperature > 0. The T^2 factor keeps the gradient's scale independent of T.
// student_logits, teacher_logits [N, V], same shape; row_mask [N]; no selected row is an error.
Tensor kl_div_forward(Context& ctx, const Tensor& student_logits, const Tensor& teacher_logits,
                      double temperature, const Tensor& row_mask = {});
// dstudent [N, V] = dloss * T * (softmax(student / T) - softmax(teacher / T)) / rows on selected
// rows, 0 elsewhere. The teacher is a constant: there is no teacher gradient.
Tensor kl_div_backward(Context& ctx, double dloss, const Tensor& student_logits,
                       const Tensor& teacher_logits, double temperature,
                       const Tensor& row_mask = {});

}  // namespace kdnas
