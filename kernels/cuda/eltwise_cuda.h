// CUDA element-wise activations (f32). Same contracts as kernels/ref/eltwise_ref.h: every buffer
// is n contiguous floats in device memory, outputs are overwritten (=). Asynchronous on the
// Context's stream.
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

void gelu_forward_cuda(Context& ctx, float* out, const float* inp, int64_t n);
void gelu_backward_cuda(Context& ctx, float* dinp, const float* dout, const float* inp, int64_t n);
void tanh_forward_cuda(Context& ctx, float* out, const float* inp, int64_t n);
void tanh_backward_cuda(Context& ctx, float* dinp, const float* dout, const float* out, int64_t n);
void relu_forward_cuda(Context& ctx, float* out, const float* inp, int64_t n);
void relu_backward_cuda(Context& ctx, float* dinp, const float* dout, const float* inp, int64_t n);
void scale_forward_cuda(Context& ctx, float* out, const float* inp, float alpha, int64_t n);

}  // namespace kdnas
