// Fast CPU dropout (f32). Same contracts as kernels/ref/dropout_ref.h; the mask and the output
// are bit-for-bit the reference's.
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

// out [n] (=), mask [n] u8 (=), inp [n]
void dropout_forward_cpu(Context& ctx, float* out, uint8_t* mask, const float* inp, double p,
                         uint64_t seed, uint64_t counter, int64_t n);
// dinp [n] (=), dout [n], mask [n] u8
void dropout_backward_cpu(Context& ctx, float* dinp, const float* dout, const uint8_t* mask,
                          double p, int64_t n);

}  // namespace kdnas
