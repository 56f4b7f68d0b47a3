// Softmax and log-softmax over the last dim.
//
// Inputs may be any shape [..., N] and any strides (non-contiguous inputs are copied first);
// outputs are new contiguous tensors of x's shape. dtype: f32 on every backend, f64 on Ref
// (for gradient checks); all tensors of one call share the dtype. Backends: Ref, Omp, and
// Onednn, which runs the Omp kernels (see softmax.cpp for why).
#pragma once

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

// y = softmax(scale * x + mask) over the last dim.
//   x: [..., N].
//   mask: additive, optional (an undefined Tensor() means none); any shape that broadcasts to
//     x's with numpy rules (trailing dims aligned, each equal or 1), any strides. The attention
//     case: scores x [B, NH, T, T], mask [B, 1, 1, T] holding 0 at real keys and a large
//     negative number (-1e9, -FLT_MAX or -inf) at padded ones.
//   scale: multiplies x only, not the mask (1/sqrt(HS) for attention).
// Masked entries get probability 0 (-inf, or finite masks that underflow exp). A row whose
// every entry is masked has no meaningful answer; it comes out uniform (1/N per entry), never
// NaN: with a -inf mask by definition, with a finite one (-1e9, -FLT_MAX) because the mask
// swamps x in f32 and all logits in the row are equal. (This matches Hugging Face's XLM-R,
// which masks with -FLT_MAX.)
Tensor softmax_forward(Context& ctx, const Tensor& x, const Tensor& mask = Tensor(),
                       double scale = 1.0);

// The same softmax of an f32 x, rounded to bf16: exactly cast(softmax_forward(x, mask, scale),
// bf16) on the same backend, fused on the CPU backends so that no f32 probabilities are
// written (the bf16 attention's PV product reads them). Inference only: no backward.
Tensor softmax_forward_bf16(Context& ctx, const Tensor& x, const Tensor& mask = Tensor(),
                            double scale = 1.0);

// Gradient w.r.t. x from the forward output y (the mask is a constant):
//   dx = scale * y * (dout - sum_n dout * y)   (sum over the last dim)
// dout, y: [..., N], same shape.
Tensor softmax_backward(Context& ctx, const Tensor& dout, const Tensor& y, double scale = 1.0);

// y = log softmax(x) = x - log sum_n exp(x) over the last dim; a row of all -inf gives
// log(1/N), as softmax gives uniform.
Tensor log_softmax_forward(Context& ctx, const Tensor& x);

// Gradient w.r.t. x from the forward output y (log-probabilities):
//   dx = dout - exp(y) * sum_n dout
Tensor log_softmax_backward(Context& ctx, const Tensor& dout, const Tensor& y);

}  // namespace kdnas
