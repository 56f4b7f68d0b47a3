#include "kernels/ref/softmax_ref.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kdnas {

// Softmax is invariant to adding a constant to a row, so every row is shifted by its max
// before exp: the largest exponent is then 0, nothing overflows (exp(89) is already inf in
// f32, and attention logits reach that), and the sum is >= 1, so it cannot underflow to 0.

template <typename T>
void softmax_forward_ref(T* out, const T* inp, const T* mask, const int64_t* mask_rows, T scale,
                         int64_t rows, int64_t N) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = inp + r * N;
    T* o = out + r * N;
    // Pass 1: the logits z (kept in out) and their max.
    T mx = neg_inf;
    for (int64_t n = 0; n < N; ++n) {
      o[n] = scale * x[n] + (mask ? mask[mask_rows[r] + n] : T(0));
      mx = std::max(mx, o[n]);
    }
    if (mx == neg_inf) {  // fully masked with -inf: z - mx would be NaN
      for (int64_t n = 0; n < N; ++n) o[n] = T(1) / T(N);
      continue;
    }
    // Pass 2: exponentials and their sum; pass 3: normalise.
    T sum = 0;
    for (int64_t n = 0; n < N; ++n) {
      o[n] = std::exp(o[n] - mx);
      sum += o[n];
    }
    for (int64_t n = 0; n < N; ++n) o[n] /= sum;
  }
}

template <typename T>
void softmax_backward_ref(T* dinp, const T* dout, const T* out, T scale, int64_t rows, int64_t N) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* d = dout + r * N;
    const T* y = out + r * N;
    T dot = 0;
    for (int64_t n = 0; n < N; ++n) dot += d[n] * y[n];
    for (int64_t n = 0; n < N; ++n) dinp[r * N + n] = scale * y[n] * (d[n] - dot);
  }
}

template <typename T>
void log_softmax_forward_ref(T* out, const T* inp, int64_t rows, int64_t N) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = inp + r * N;
    T* o = out + r * N;
    T mx = neg_inf;
    for (int64_t n = 0; n < N; ++n) mx = std::max(mx, x[n]);
    if (mx == neg_inf) {
      for (int64_t n = 0; n < N; ++n) o[n] = -std::log(T(N));
      continue;
    }
    // The same shift as softmax; log(sum) >= 0 is then computed from a sum in [1, N].
    T sum = 0;
    for (int64_t n = 0; n < N; ++n) sum += std::exp(x[n] - mx);
    const T lse = mx + std::log(sum);
    for (int64_t n = 0; n < N; ++n) o[n] = x[n] - lse;
  }
}

template <typename T>
void log_softmax_backward_ref(T* dinp, const T* dout, const T* out, int64_t rows, int64_t N) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* d = dout + r * N;
    const T* y = out + r * N;
    T sum = 0;
    for (int64_t n = 0; n < N; ++n) sum += d[n];
    for (int64_t n = 0; n < N; ++n) dinp[r * N + n] = d[n] - std::exp(y[n]) * sum;
  }
}

#define KDNAS_INSTANTIATE(T)                                                               \
  template void softmax_forward_ref<T>(T*, const T*, const T*, const int64_t*, T, int64_t, \
                                       int64_t);                                           \
  template void softmax_backward_ref<T>(T*, const T*, const T*, T, int64_t, int64_t);      \
  template void log_softmax_forward_ref<T>(T*, const T*, int64_t, int64_t);                \
  template void log_softmax_backward_ref<T>(T*, const T*, const T*, int64_t, int64_t);
KDNAS_INSTANTIATE(float)
KDNAS_INSTANTIATE(double)
#undef KDNAS_INSTANTIATE

}  // namespace kdnas
