// Fast CPU softmax and log-softmax over the last dim (f32). Same contracts as
// kernels/ref/softmax_ref.h: inp, out, dout, dinp are [rows, N], contiguous; mask (or nullptr)
// with its per-row offsets mask_rows [rows]; outputs are overwritten (=). OpenMP over rows,
// vectorised row loops.
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "tensor/dtype.h"

namespace kdnas {

void softmax_forward_cpu(Context& ctx, float* out, const float* inp, const float* mask,
                         const int64_t* mask_rows, float scale, int64_t rows, int64_t N);
// The same softmax rounded to bf16 as each row is done (what cast(softmax_forward_cpu(...))
// gives, bit for bit, without the f32 tensor in between): the attention probabilities that go
// straight into a bf16 PV product.
void softmax_forward_bf16_cpu(Context& ctx, bf16* out, const float* inp, const float* mask,
                              const int64_t* mask_rows, float scale, int64_t rows, int64_t N);
void softmax_backward_cpu(Context& ctx, float* dinp, const float* dout, const float* out,
                          float scale, int64_t rows, int64_t N);
void log_softmax_forward_cpu(Context& ctx, float* out, const float* inp, int64_t rows, int64_t N);
void log_softmax_backward_cpu(Context& ctx, float* dinp, const float* dout, const float* out,
                              int64_t rows, int64_t N);

}  // namespace kdnas
