#include "kernels/ref/eltwise_ref.h"

#include <cmath>

namespace kdnas {

template <typename T>
void gelu_forward_ref(T* out, const T* inp, int64_t n) {
  const T inv_sqrt2 = T(0.70710678118654752440);
  for (int64_t i = 0; i < n; ++i) out[i] = T(0.5) * inp[i] * (T(1) + std::erf(inp[i] * inv_sqrt2));
}

template <typename T>
void gelu_backward_ref(T* dinp, const T* dout, const T* inp, int64_t n) {
  const T inv_sqrt2 = T(0.70710678118654752440);
  const T inv_sqrt_2pi = T(0.39894228040143267794);
  for (int64_t i = 0; i < n; ++i) {
    T x = inp[i];
    T cdf = T(0.5) * (T(1) + std::erf(x * inv_sqrt2));
    T pdf = inv_sqrt_2pi * std::exp(T(-0.5) * x * x);
    dinp[i] = dout[i] * (cdf + x * pdf);
  }
}

template <typename T>
void tanh_forward_ref(T* out, const T* inp, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(inp[i]);
}

template <typename T>
void tanh_backward_ref(T* dinp, const T* dout, const T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dinp[i] = dout[i] * (T(1) - out[i] * out[i]);
}

template <typename T>
void relu_forward_ref(T* out, const T* inp, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = inp[i] > T(0) ? inp[i] : T(0);
}

template <typename T>
void relu_backward_ref(T* dinp, const T* dout, const T* inp, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dinp[i] = inp[i] > T(0) ? dout[i] : T(0);
}

template <typename T>
void scale_forward_ref(T* out, const T* inp, T alpha, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = alpha * inp[i];
}

#define KDNAS_INSTANTIATE(T)                                           \
  template void gelu_forward_ref<T>(T*, const T*, int64_t);            \
  template void gelu_backward_ref<T>(T*, const T*, const T*, int64_t); \
  template void tanh_forward_ref<T>(T*, const T*, int64_t);            \
  template void tanh_backward_ref<T>(T*, const T*, const T*, int64_t); \
  template void relu_forward_ref<T>(T*, const T*, int64_t);            \
  template void relu_backward_ref<T>(T*, const T*, const T*, int64_t); \
  template void scale_forward_ref<T>(T*, const T*, T, int64_t);
KDNAS_INSTANTIATE(float)
KDNAS_INSTANTIATE(double)
#undef KDNAS_INSTANTIATE

}  // namespace kdnas
