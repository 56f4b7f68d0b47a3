// Fast CPU optimizer updates (f32): one fused, vectorised, multi-threaded pass per update over
// the parameter, its gradient and its state. Same contracts as kernels/ref/optim_ref.h.
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

// param, m, v [n] (updated), grad [n]
void adamw_update_cpu(Context& ctx, float* param, float* m, float* v, const float* grad, double lr,
                      double beta1, double beta2, double eps, double weight_decay, int64_t step,
                      int64_t n);
// param [n] (updated), buf [n] (updated; null when momentum == 0), grad [n]
void sgd_update_cpu(Context& ctx, float* param, float* buf, const float* grad, double lr,
                    double momentum, double dampening, double weight_decay, bool nesterov,
                    int64_t step, int64_t n);
// param, square_avg [n] (updated), buf [n] (updated; null when momentum == 0), grad [n]
void rmsprop_update_cpu(Context& ctx, float* param, float* square_avg, float* buf,
                        const float* grad, double lr, double alpha, double eps, double weight_decay,
                        double momentum, int64_t n);

}  // namespace kdnas
