// Fast CPU reductions over one dim (f32). Same contracts as kernels/ref/reduce_ref.h: x is a
// contiguous [outer, D, inner] block, the reduced tensor is [outer, inner], outputs are
// overwritten (=). OpenMP + vectorised loops; there is no oneDNN variant (oneDNN's reduction
// primitive has no argmax and no gain on a memory-bound pass).
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

// out[o, i] = scale * sum_d x[o, d, i]
void sum_forward_cpu(Context& ctx, float* out, const float* x, int64_t outer, int64_t D,
                     int64_t inner, float scale);
// dx[o, d, i] = scale * dout[o, i]
void sum_backward_cpu(Context& ctx, float* dx, const float* dout, int64_t outer, int64_t D,
                      int64_t inner, float scale);
// values[o, i] = max_d x[o, d, i], indices[o, i] = its first d (NaN wins). D >= 1.
void max_forward_cpu(Context& ctx, float* values, int64_t* indices, const float* x, int64_t outer,
                     int64_t D, int64_t inner);
// dx[o, d, i] = d == indices[o, i] ? dout[o, i] : 0
void max_backward_cpu(Context& ctx, float* dx, const float* dout, const int64_t* indices,
                      int64_t outer, int64_t D, int64_t inner);

}  // namespace kdnas
