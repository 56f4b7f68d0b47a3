// CUDA losses (f32 inputs). Same contracts as kernels/ref/loss_ref.h, with the per-row integer
// data on the HOST: targets and row_mask are host arrays (the op API validates them there), and
// the kernels copy what they need. logits / pred / target / gradients are device memory; each
// forward writes its scalar to loss[0], a device float (=).
//
// Every sum is accumulated in double in a fixed order (per-row or per-block partials added by a
// single block), so the loss is the same bits on every run, like the CPU's.
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

// pred, target [R, C], row_mask_host [R] or nullptr, loss [1] (=)
void mse_forward_cuda(Context& ctx, float* loss, const float* pred, const float* target,
                      const uint8_t* row_mask_host, int64_t R, int64_t C);
// dpred, dtarget [R, C] (=)
void mse_backward_cuda(Context& ctx, float* dpred, float* dtarget, double dloss, const float* pred,
                       const float* target, const uint8_t* row_mask_host, int64_t R, int64_t C);

// logits [N, V], targets_host [N], loss [1] (=)
void cross_entropy_forward_cuda(Context& ctx, float* loss, const float* logits,
                                const int64_t* targets_host, int64_t ignore_index, int64_t N,
                                int64_t V);
// dlogits [N, V] (=)
void cross_entropy_backward_cuda(Context& ctx, float* dlogits, double dloss, const float* logits,
                                 const int64_t* targets_host, int64_t ignore_index, int64_t N,
                                 int64_t V);

// student, teacher [N, V], row_mask_host [N] or nullptr, loss [1] (=)
void kl_div_forward_cuda(Context& ctx, float* loss, const float* student, const float* teacher,
                         const uint8_t* row_mask_host, double tau, int64_t N, int64_t V);
// dstudent [N, V] (=)
void kl_div_backward_cuda(Context& ctx, float* dstudent, double dloss, const float* student,
                          const float* teacher, const uint8_t* row_mask_host, double tau, int64_t N,
                          int64_t V);

}  // namespace kdnas
