// Element-wise activations: gelu (erf form), tanh, relu, scale.
//
// Inputs may be any shape and any strides (non-contiguous views are copied first); outputs
// are new contiguous tensors of the same shape. dtype: f32 on every backend, f64 on Ref (for
// gradient checks). Backward functions return the gradient with respect to the input.
#pragma once

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

Tensor gelu_forward(Context& ctx, const Tensor& x);
Tensor gelu_backward(Context& ctx, const Tensor& dout, const Tensor& x);

Tensor tanh_forward(Context& ctx, const Tensor& x);
// Takes the forward output y = tanh(x): dx = dout * (1 - y^2).
Tensor tanh_backward(Context& ctx, const Tensor& dout, const Tensor& y);

Tensor relu_forward(Context& ctx, const Tensor& x);
Tensor relu_backward(Context& ctx, const Tensor& dout, const Tensor& x);

// y = alpha * x; the backward is scale_forward(dout, alpha).
Tensor scale_forward(Context& ctx, const Tensor& x, double alpha);

}  // namespace kdnas
