// Fast CPU LayerNorm (f32). Same contracts as kernels/ref/layer_norm_ref.h: x is [rows, C],
// contiguous; mean, rstd are [rows]; gamma, beta, dgamma, dbeta are [C]; all outputs are
// overwritten (=). The *_cpu functions are OpenMP over rows + vectorised row loops; *_onednn
// use oneDNN's layer_normalization primitive and exist only in builds with oneDNN (callers
// check onednn_compiled()).
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "tensor/dtype.h"

namespace kdnas {

void layer_norm_forward_cpu(Context& ctx, float* out, float* mean, float* rstd, const float* inp,
                            const float* gamma, const float* beta, int64_t rows, int64_t C,
                            float eps);
// out = LayerNorm(inp + residual) per row, no statistics (kernels/ref/layer_norm_ref.h): each
// row's sum is written to out and normalised there while it is in L1, by the same row code as
// layer_norm_forward_cpu, so the result is bit-identical to add then layer_norm on this backend.
// out_bf16: null, or [rows, C] that also receives out rounded to bf16 (as cast_f32_to_bf16_cpu).
void add_layer_norm_forward_cpu(Context& ctx, float* out, bf16* out_bf16, const float* inp,
                                const float* residual, const float* gamma, const float* beta,
                                int64_t rows, int64_t C, float eps);
void layer_norm_backward_cpu(Context& ctx, float* dinp, float* dgamma, float* dbeta,
                             const float* dout, const float* inp, const float* gamma,
                             const float* mean, const float* rstd, int64_t rows, int64_t C);

void layer_norm_forward_onednn(Context& ctx, float* out, float* mean, float* rstd, const float* inp,
                               const float* gamma, const float* beta, int64_t rows, int64_t C,
                               float eps);
void layer_norm_backward_onednn(Context& ctx, float* dinp, float* dgamma, float* dbeta,
                                const float* dout, const float* inp, const float* gamma,
                                const float* mean, const float* rstd, int64_t rows, int64_t C);

}  // namespace kdnas
