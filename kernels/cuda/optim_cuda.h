// CUDA optimizer updates (f32): one fused pass per update over the parameter, its gradient and
// its state. Same contracts as kernels/ref/optim_ref.h (PyTorch's AdamW / SGD / RMSprop rules):
// param and state updated in place, grad read; n contiguous floats each, in device memory. The
// hyperparameters are rounded to f32 once on the host, as the reference does.
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

// param, m, v [n] (updated), grad [n]
void adamw_update_cuda(Context& ctx, float* param, float* m, float* v, const float* grad, double lr,
                       double beta1, double beta2, double eps, double weight_decay, int64_t step,
                       int64_t n);
// param [n] (updated), buf [n] (updated; null when momentum == 0), grad [n]
void sgd_update_cuda(Context& ctx, float* param, float* buf, const float* grad, double lr,
                     double momentum, double dampening, double weight_decay, bool nesterov,
                     int64_t step, int64_t n);
// param, square_avg [n] (updated), buf [n] (updated; null when momentum == 0), grad [n]
void rmsprop_update_cuda(Context& ctx, float* param, float* square_avg, float* buf,
                         const float* grad, double lr, double alpha, double eps,
                         double weight_decay, double momentum, int64_t n);

}  // namespace kdnas
