// CUDA LayerNorm (f32). Same contracts as kernels/ref/layer_norm_ref.h: x is [rows, C],
// contiguous; mean, rstd are [rows]; gamma, beta, dgamma, dbeta are [C]; all outputs are
// overwritten (=). Device pointers; asynchronous on the Context's stream.
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

// mean and rstd may be null (an inference caller that does not keep them).
void layer_norm_forward_cuda(Context& ctx, float* out, float* mean, float* rstd, const float* inp,
                             const float* gamma, const float* beta, int64_t rows, int64_t C,
                             float eps);
void layer_norm_backward_cuda(Context& ctx, float* dinp, float* dgamma, float* dbeta,
                              const float* dout, const float* inp, const float* gamma,
                              const float* mean, const float* rstd, int64_t rows, int64_t C);

}  // namespace kdnas
