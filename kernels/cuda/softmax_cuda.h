// CUDA softmax and log-softmax over the last dim (f32). Same contracts as
// kernels/ref/softmax_ref.h: inp, out, dout, dinp are [rows, N], contiguous, in device memory;
// outputs are overwritten (=). Asynchronous on the Context's stream.
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

// mask: device pointer or null. mask_rows: HOST array [rows] of the element offsets of each
// row's mask (as the op API computes it); ignored when mask is null. The kernel gets the offsets
// as an affine rule when they follow one (the [B, 1, 1, T] attention mask, a full mask, a
// shared row), which is checked on the host, and otherwise as a copied table.
void softmax_forward_cuda(Context& ctx, float* out, const float* inp, const float* mask,
                          const int64_t* mask_rows, float scale, int64_t rows, int64_t N);
void softmax_backward_cuda(Context& ctx, float* dinp, const float* dout, const float* out,
                           float scale, int64_t rows, int64_t N);
void log_softmax_forward_cuda(Context& ctx, float* out, const float* inp, int64_t rows, int64_t N);
void log_softmax_backward_cuda(Context& ctx, float* dinp, const float* dout, const float* out,
                               int64_t rows, int64_t N);

}  // namespace kdnas
