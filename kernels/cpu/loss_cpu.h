// Fast CPU losses (f32 inputs). Same contracts as kernels/ref/loss_ref.h. The scalar losses are
// deterministic: partial sums are taken over fixed blocks of rows or elements and added in a
// fixed order, so the result does not depend on the thread count.
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

// pred, target [R, C], row_mask [R] or nullptr, loss [1] (=)
void mse_forward_cpu(Context& ctx, float* loss, const float* pred, const float* target,
                     const uint8_t* row_mask, int64_t R, int64_t C);
// dpred, dtarget [R, C] (=)
void mse_backward_cpu(Context& ctx, float* dpred, float* dtarget, double dloss, const float* pred,
                      const float* target, const uint8_t* row_mask, int64_t R, int64_t C);

// logits [N, V], targets [N], loss [1] (=)
void cross_entropy_forward_cpu(Context& ctx, float* loss, const float* logits,
                               const int64_t* targets, int64_t ignore_index, int64_t N, int64_t V);
// dlogits [N, V] (=)
void cross_entropy_backward_cpu(Context& ctx, float* dlogits, double dloss, const float* logits,
                                const int64_t* targets, int64_t ignore_index, int64_t N, int64_t V);

// student, teacher [N, V], row_mask [N] or nullptr, loss [1] (=)
void kl_div_forward_cpu(Context& ctx, float* loss, const float* student, const float* teacher,
                        const uint8_t* row_mask, double tau, int64_t N, int64_t V);
// dstudent [N, V] (=)
void kl_div_backward_cpu(Context& ctx, float* dstudent, double dloss, const float* student,
                         const float* teacher, const uint8_t* row_mask, double tau, int64_t N,
                         int64_t V);

}  // namespace kdnas
