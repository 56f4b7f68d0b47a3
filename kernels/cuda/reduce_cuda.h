// CUDA reductions over one dim (f32). Same contracts as kernels/ref/reduce_ref.h: x is a
// contiguous [outer, D, inner] block in device memory, the reduced tensor is [outer, inner],
// outputs are overwritten (=). Sums accumulate in double (as the reference does), in a fixed
// order: the same bits on every run. Asynchronous on the Context's stream.
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

// out[o, i] = scale * sum_d x[o, d, i]  (sum: scale 1; mean: 1 / D)
void sum_forward_cuda(Context& ctx, float* out, const float* x, int64_t outer, int64_t D,
                      int64_t inner, double scale);
// dx[o, d, i] = scale * dout[o, i]
void sum_backward_cuda(Context& ctx, float* dx, const float* dout, int64_t outer, int64_t D,
                       int64_t inner, double scale);
// values[o, i] = max_d x[o, d, i], indices[o, i] = its first d (a NaN wins). D >= 1.
void max_forward_cuda(Context& ctx, float* values, int64_t* indices, const float* x, int64_t outer,
                      int64_t D, int64_t inner);
// dx[o, d, i] = d == indices[o, i] ? dout[o, i] : 0; indices in device memory.
void max_backward_cuda(Context& ctx, float* dx, const float* dout, const int64_t* indices,
                       int64_t outer, int64_t D, int64_t inner);

}  // namespace kdnas
