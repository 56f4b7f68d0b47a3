// Reference element-wise activations: the executable specification of gelu, tanh, relu and
// scale. Naive, single-threaded, templated on the scalar (float, or double for gradient checks).
// All buffers hold n contiguous elements; outputs are overwritten (=).
#pragma once

#include <cstdint>

namespace kdnas {

// GELU with the exact erf form (what XLM-R's "gelu" means):
//   out = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2)))
template <typename T>
void gelu_forward_ref(T* out, const T* inp, int64_t n);
// dinp = dout * d/dx[x * Phi(x)] = dout * (Phi(x) + x * phi(x)),  phi = N(0,1) density
template <typename T>
void gelu_backward_ref(T* dinp, const T* dout, const T* inp, int64_t n);

template <typename T>
void tanh_forward_ref(T* out, const T* inp, int64_t n);
// dinp = dout * (1 - out^2): written in terms of the forward output, which is what is kept.
template <typename T>
void tanh_backward_ref(T* dinp, const T* dout, const T* out, int64_t n);

template <typename T>
void relu_forward_ref(T* out, const T* inp, int64_t n);
// dinp = dout where inp > 0, else 0 (the subgradient at 0 is taken as 0).
template <typename T>
void relu_backward_ref(T* dinp, const T* dout, const T* inp, int64_t n);

// out = alpha * inp; its backward is the same op with the same alpha.
template <typename T>
void scale_forward_ref(T* out, const T* inp, T alpha, int64_t n);

}  // namespace kdnas
