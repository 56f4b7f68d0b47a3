// Reference dropout: the executable specification of dropout_forward/backward. Naive,
// single-threaded, templated on the scalar (float, or double for gradient checks). All buffers
// hold n contiguous elements; outputs are overwritten (=).
//
// Randomness is counter-based (tensor/rng.h): element i is kept iff
// rng_uniform01(seed, counter + i) >= p, so the mask depends only on (seed, counter, i), never
// on the kernel or the thread count. The caller reserves n counters from its Rng.
#pragma once

#include <cstdint>

namespace kdnas {

// The factor kept values are multiplied by so that E[out] = inp ("inverted" dropout):
// 1 / (1 - p), and 0 for p = 1 (everything dropped; avoids inf * 0 = NaN).
inline double dropout_scale(double p) {
  return p >= 1.0 ? 0.0 : 1.0 / (1.0 - p);
}

// mask[i] = rng_uniform01(seed, counter + i) >= p ? 1 : 0
// out[i]  = mask[i] ? inp[i] * T(dropout_scale(p)) : 0
//   out [n] (=), mask [n] u8 (=), inp [n]
template <typename T>
void dropout_forward_ref(T* out, uint8_t* mask, const T* inp, double p, uint64_t seed,
                         uint64_t counter, int64_t n);

// dinp[i] = mask[i] ? dout[i] * T(dropout_scale(p)) : 0
//   dinp [n] (=), dout [n], mask [n] u8 from the forward
template <typename T>
void dropout_backward_ref(T* dinp, const T* dout, const uint8_t* mask, double p, int64_t n);

}  // namespace kdnas
