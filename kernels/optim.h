// In-place optimizer updates, one parameter tensor per call: the arithmetic of the optimizers in
// autograd/optim.h. The rules are PyTorch's (torch.optim.AdamW, SGD, RMSprop); see
// kernels/ref/optim_ref.h for them written out.
//
// param, grad and the state tensors: f32 on every backend (f64 on Ref, for checks), all the same
// shape and dtype. param and the state are updated in place, so they must be contiguous (the
// Tensor handles are const; their values are not); grad may be any view. State tensors start
// as zeros, created by the caller. The fast path is one fused vectorised OpenMP pass per update.
// Bad shapes, dtypes, layouts and hyperparameters are errors naming the op and the shapes.
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

struct AdamWHyper {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;  // each in [0, 1)
  double eps = 1e-8;                  // >= 0
  double weight_decay = 1e-2;         // decoupled: p *= 1 - lr * weight_decay
};
// step: the number of this update, 1 for the first (it sets the bias corrections 1 - beta^step).
// m, v: the first and second moments (PyTorch's exp_avg, exp_avg_sq).
void adamw_update(Context& ctx, const Tensor& param, const Tensor& grad, const Tensor& m,
                  const Tensor& v, const AdamWHyper& h, int64_t step);

struct SgdHyper {
  double lr = 1e-3;
  double momentum = 0;      // >= 0; 0 = plain SGD
  double weight_decay = 0;  // L2: added to the gradient as weight_decay * p
  bool nesterov = false;    // needs momentum > 0 and dampening == 0 (as PyTorch)
  double dampening = 0;     // in [0, 1]
};
// momentum_buf: required when h.momentum > 0 (set to the first gradient on step 1, as PyTorch
// initialises it), otherwise ignored and may be undefined. step >= 1.
void sgd_update(Context& ctx, const Tensor& param, const Tensor& grad, const Tensor& momentum_buf,
                const SgdHyper& h, int64_t step);

struct RmspropHyper {
  double lr = 1e-2;
  double alpha = 0.99;      // in [0, 1)
  double eps = 1e-8;        // >= 0; added after the square root
  double weight_decay = 0;  // L2, added to the gradient
  double momentum = 0;      // >= 0
};
// square_avg: the running mean of squared gradients. momentum_buf: required when h.momentum > 0,
// otherwise ignored and may be undefined. The centered variant is not provided.
void rmsprop_update(Context& ctx, const Tensor& param, const Tensor& grad, const Tensor& square_avg,
                    const Tensor& momentum_buf, const RmspropHyper& h);

}  // namespace kdnas
