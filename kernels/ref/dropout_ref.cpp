#include "kernels/ref/dropout_ref.h"

#include "tensor/rng.h"

namespace kdnas {

template <typename T>
void dropout_forward_ref(T* out, uint8_t* mask, const T* inp, double p, uint64_t seed,
                         uint64_t counter, int64_t n) {
  const T scale = T(dropout_scale(p));
  for (int64_t i = 0; i < n; ++i) {
    // rng_uniform01 is k / 2^24 for an integer k, exact in float; compared with p in double.
    const bool keep = double(rng_uniform01(seed, counter + uint64_t(i))) >= p;
    mask[i] = keep ? 1 : 0;
    out[i] = keep ? inp[i] * scale : T(0);
  }
}

template <typename T>
void dropout_backward_ref(T* dinp, const T* dout, const uint8_t* mask, double p, int64_t n) {
  const T scale = T(dropout_scale(p));
  for (int64_t i = 0; i < n; ++i) dinp[i] = mask[i] ? dout[i] * scale : T(0);
}

#define KDNAS_INSTANTIATE(T)                                                               \
  template void dropout_forward_ref<T>(T*, uint8_t*, const T*, double, uint64_t, uint64_t, \
                                       int64_t);                                           \
  template void dropout_backward_ref<T>(T*, const T*, const uint8_t*, double, int64_t);
KDNAS_INSTANTIATE(float)
KDNAS_INSTANTIATE(double)
#undef KDNAS_INSTANTIATE

}  // namespace kdnas
