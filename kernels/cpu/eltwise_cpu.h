// Fast CPU element-wise activations (f32). Same contracts as kernels/ref/eltwise_ref.h.
// The *_cpu functions are OpenMP + vectorised loops; *_onednn use oneDNN eltwise primitives
// and exist only in builds with oneDNN (callers check onednn_compiled()).
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

void gelu_forward_cpu(Context& ctx, float* out, const float* inp, int64_t n);
void gelu_backward_cpu(Context& ctx, float* dinp, const float* dout, const float* inp, int64_t n);
void tanh_forward_cpu(Context& ctx, float* out, const float* inp, int64_t n);
void tanh_backward_cpu(Context& ctx, float* dinp, const float* dout, const float* out, int64_t n);
void relu_forward_cpu(Context& ctx, float* out, const float* inp, int64_t n);
void relu_backward_cpu(Context& ctx, float* dinp, const float* dout, const float* inp, int64_t n);
void scale_forward_cpu(Context& ctx, float* out, const float* inp, float alpha, int64_t n);

void gelu_forward_onednn(Context& ctx, float* out, const float* inp, int64_t n);
void gelu_backward_onednn(Context& ctx, float* dinp, const float* dout, const float* inp,
                          int64_t n);

}  // namespace kdnas
