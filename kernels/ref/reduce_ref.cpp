#include "kernels/ref/reduce_ref.h"

#include <cmath>

namespace kdnas {

template <typename T>
void sum_forward_ref(T* out, const T* x, int64_t outer, int64_t D, int64_t inner, double scale) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double acc = 0;
      for (int64_t d = 0; d < D; ++d) acc += double(x[(o * D + d) * inner + i]);
      out[o * inner + i] = T(acc * scale);
    }
}

template <typename T>
void sum_backward_ref(T* dx, const T* dout, int64_t outer, int64_t D, int64_t inner, double scale) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t i = 0; i < inner; ++i)
        dx[(o * D + d) * inner + i] = T(scale * double(dout[o * inner + i]));
}

template <typename T>
void max_forward_ref(T* values, int64_t* indices, const T* x, int64_t outer, int64_t D,
                     int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      T best = x[o * D * inner + i];
      int64_t arg = 0;
      for (int64_t d = 1; d < D; ++d) {
        const T v = x[(o * D + d) * inner + i];
        // Strictly greater keeps the first maximum; a NaN replaces a number but not a NaN.
        if (v > best || (std::isnan(v) && !std::isnan(best))) {
          best = v;
          arg = d;
        }
      }
      values[o * inner + i] = best;
      indices[o * inner + i] = arg;
    }
}

template <typename T>
void max_backward_ref(T* dx, const T* dout, const int64_t* indices, int64_t outer, int64_t D,
                      int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t d = 0; d < D; ++d)
      for (int64_t i = 0; i < inner; ++i)
        dx[(o * D + d) * inner + i] = d == indices[o * inner + i] ? dout[o * inner + i] : T(0);
}

#define KDNAS_INSTANTIATE(T)                                                                 \
  template void sum_forward_ref<T>(T*, const T*, int64_t, int64_t, int64_t, double);         \
  template void sum_backward_ref<T>(T*, const T*, int64_t, int64_t, int64_t, double);        \
  template void max_forward_ref<T>(T*, int64_t*, const T*, int64_t, int64_t, int64_t);       \
  template void max_backward_ref<T>(T*, const T*, const int64_t*, int64_t, int64_t, int64_t);
KDNAS_INSTANTIATE(float)
KDNAS_INSTANTIATE(double)
#undef KDNAS_INSTANTIATE

}  // namespace kdnas
