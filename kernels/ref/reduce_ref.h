// Reference reductions over one dim: the executable specification of sum, mean, max and their
// backward. Naive, single-threaded, templated on the scalar (float, or double for gradient
// checks).
//
// Every kernel sees x as a contiguous [outer, D, inner] block: D is the reduced dim, outer the
// product of the dims before it and inner of the dims after it. The reduced tensor is
// [outer, inner]. Outputs are overwritten (=).
#pragma once

#include <cstdint>

namespace kdnas {

// out[o, i] = scale * sum_d x[o, d, i]; sum uses scale = 1, mean scale = 1/D. The sum is
// accumulated in double whatever T is, so the reference is the precise answer that the fast
// f32 kernels are measured against.
template <typename T>
void sum_forward_ref(T* out, const T* x, int64_t outer, int64_t D, int64_t inner, double scale);

// dx[o, d, i] = scale * dout[o, i]
template <typename T>
void sum_backward_ref(T* dx, const T* dout, int64_t outer, int64_t D, int64_t inner, double scale);

// values[o, i] = max_d x[o, d, i], indices[o, i] = the first d where it is reached. A NaN is
// larger than every number (the first NaN wins). D >= 1.
template <typename T>
void max_forward_ref(T* values, int64_t* indices, const T* x, int64_t outer, int64_t D,
                     int64_t inner);

// dx[o, d, i] = dout[o, i] if d == indices[o, i], else 0.
template <typename T>
void max_backward_ref(T* dx, const T* dout, const int64_t* indices, int64_t outer, int64_t D,
                      int64_t inner);

}  // namespace kdnas
