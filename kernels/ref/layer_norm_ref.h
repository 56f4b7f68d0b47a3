// Reference LayerNorm: the executable specification. Naive, single-threaded, templated on the
// scalar (float, or double for gradient checks). x is viewed as [rows, C] (rows = B*T for a
// transformer's [B, T, C] activations); every buffer is contiguous.
#pragma once

#include <cstdint>

namespace kdnas {

// Per row r (C values x[r, :]):
//   mean[r] = sum_c x[r, c] / C
//   var     = sum_c (x[r, c] - mean[r])^2 / C          (biased, as PyTorch and HF use)
//   rstd[r] = 1 / sqrt(var + eps)
//   out[r, c] = (x[r, c] - mean[r]) * rstd[r] * gamma[c] + beta[c]
// out: [rows, C] (=); mean, rstd: [rows] (=, what backward needs); inp: [rows, C];
// gamma, beta: [C].
template <typename T>
void layer_norm_forward_ref(T* out, T* mean, T* rstd, const T* inp, const T* gamma, const T* beta,
                            int64_t rows, int64_t C, T eps);

// The post-LN transformer's "add & norm", for inference: per row, s = x + residual (rounded to
// T), then out = the LayerNorm above of s; no statistics. out: [rows, C] (=); inp, residual:
// [rows, C]; gamma, beta: [C]. Exactly layer_norm_forward_ref of the rounded sum.
template <typename T>
void add_layer_norm_forward_ref(T* out, const T* inp, const T* residual, const T* gamma,
                                const T* beta, int64_t rows, int64_t C, T eps);

// With xhat = (x - mean) * rstd and g = dout * gamma (the gradient w.r.t. xhat):
//   dinp[r, c] = rstd[r] * (g[c] - mean_c(g) - xhat[c] * mean_c(g * xhat))
//   dgamma[c]  = sum_r dout[r, c] * xhat[r, c]
//   dbeta[c]   = sum_r dout[r, c]
// dinp: [rows, C] (=); dgamma, dbeta: [C] (=, overwritten, not accumulated);
// dout, inp: [rows, C]; gamma: [C]; mean, rstd: [rows] from the forward.
template <typename T>
void layer_norm_backward_ref(T* dinp, T* dgamma, T* dbeta, const T* dout, const T* inp,
                             const T* gamma, const T* mean, const T* rstd, int64_t rows, int64_t C);

}  // namespace kdnas
