// LayerNorm over the last dim, with learned scale gamma and shift beta:
//   out = (x - mean) / sqrt(var + eps) * gamma + beta,  var biased (divides by C)
// as in PyTorch's nn.LayerNorm and XLM-R (eps = 1e-5 there).
//
// x may be any shape [..., C] and any strides (non-contiguous inputs are copied first); every
// leading dim is a row, rows = numel / C. dtype: f32 on every backend, f64 on Ref (for
// gradient checks); all tensors of one call share the dtype. Backends: Ref, Omp (OpenMP +
// vectorised rows), Onednn (see layer_norm.cpp for which kernel it runs, and why).
#pragma once

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

struct LayerNormOutput {
  Tensor out;   // [..., C], x's shape
  Tensor mean;  // [rows] per-row mean, saved for the backward
  Tensor rstd;  // [rows] per-row 1 / sqrt(var + eps), saved for the backward
};

// x: [..., C]; gamma, beta: [C]; eps >= 0. An inference caller ignores mean and rstd.
LayerNormOutput layer_norm_forward(Context& ctx, const Tensor& x, const Tensor& gamma,
                                   const Tensor& beta, double eps);

// out = LayerNorm(x + residual): the post-LN transformer's "add & norm" in one pass over the
// rows (the unfused pair reads x, residual, writes the sum, reads it back and writes out). The
// sum is rounded to x's dtype first, so the result is layer_norm_forward(add(x, residual)).out,
// bit for bit on the Ref and Omp/Onednn CPU kernels. x, residual: [..., C], the same shape (no
// broadcasting), any strides; gamma, beta: [C]. dtype and backends as layer_norm_forward; on
// CUDA it runs as those two ops. Inference only: no statistics, no backward (the training path
// records add and layer_norm as two tape nodes).
// out_bf16 (f32 x only): when not null, it is set to a new tensor holding the result rounded to
// bf16, exactly cast(result, bf16) on every backend: the operand of a bf16 GEMM that follows
// (the next layer's QKV, the FFN's first linear). The CPU kernels round each row while it is
// in L1, which saves the cast's pass over the f32 result; the others cast after.
Tensor add_layer_norm_forward(Context& ctx, const Tensor& x, const Tensor& residual,
                              const Tensor& gamma, const Tensor& beta, double eps,
                              Tensor* out_bf16 = nullptr);

struct LayerNormGrads {
  Tensor dx;      // [..., C], x's shape
  Tensor dgamma;  // [C], summed over all rows
  Tensor dbeta;   // [C], summed over all rows
};

// dout, x: [..., C] (same shape); gamma: [C]; mean, rstd: [rows] from layer_norm_forward on
// this x. eps is not needed: rstd already holds it.
LayerNormGrads layer_norm_backward(Context& ctx, const Tensor& dout, const Tensor& x,
                                   const Tensor& gamma, const Tensor& mean, const Tensor& rstd);

}  // namespace kdnas
