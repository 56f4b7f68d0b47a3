// Reference optimizer updates: the executable specification of adamw_update, sgd_update and
// rmsprop_update (PyTorch's torch.optim.AdamW / SGD / RMSprop rules, one parameter tensor at a
// time). Naive, single-threaded, templated on the scalar (float, or double for checks).
//
// All buffers hold n contiguous elements. The parameter and the optimizer state are updated in
// place (read, then overwritten); the gradient is only read. The hyperparameters arrive as
// doubles and are rounded to T once, as PyTorch does with Python floats on f32 tensors.
#pragma once

#include <cstdint>

namespace kdnas {

// AdamW (Loshchilov & Hutter), step = 1 for the first update; m, v start at zero:
//   p = p * (1 - lr * wd)                          decoupled weight decay
//   m = beta1 * m + (1 - beta1) * g                first moment
//   v = beta2 * v + (1 - beta2) * g^2              second moment
//   p = p - lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps),  bc_k = 1 - beta_k^step
//   param, m, v [n] (updated), grad [n]
template <typename T>
void adamw_update_ref(T* param, T* m, T* v, const T* grad, double lr, double beta1, double beta2,
                      double eps, double weight_decay, int64_t step, int64_t n);

// SGD with momentum (torch.optim.SGD):
//   d = g + wd * p                                 L2 weight decay, folded into the gradient
//   buf = d on the first step (step == 1), else momentum * buf + (1 - dampening) * d
//   d = nesterov ? d + momentum * buf : buf        (when momentum > 0)
//   p = p - lr * d
//   param [n] (updated), buf [n] (updated; unused and may be null when momentum == 0), grad [n]
template <typename T>
void sgd_update_ref(T* param, T* buf, const T* grad, double lr, double momentum, double dampening,
                    double weight_decay, bool nesterov, int64_t step, int64_t n);

// RMSprop (torch.optim.RMSprop, not centered); square_avg and buf start at zero:
//   d = g + wd * p
//   sq = alpha * sq + (1 - alpha) * d^2
//   avg = sqrt(sq) + eps
//   momentum > 0: buf = momentum * buf + d / avg,  p = p - lr * buf
//   otherwise:    p = p - lr * d / avg
//   param, square_avg [n] (updated), buf [n] (updated; null when momentum == 0), grad [n]
template <typename T>
void rmsprop_update_ref(T* param, T* square_avg, T* buf, const T* grad, double lr, double alpha,
                        double eps, double weight_decay, double momentum, int64_t n);

}  // namespace kdnas
