// CUDA dropout (f32). Same contracts as kernels/ref/dropout_ref.h: the device evaluates the same
// counter-based hash as tensor/rng.h, so the mask and the output are bit-for-bit the CPU's for
// the same (seed, counter). Device pointers; asynchronous on the Context's stream.
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

// out [n] (=), mask [n] u8 (=), inp [n]
void dropout_forward_cuda(Context& ctx, float* out, uint8_t* mask, const float* inp, double p,
                          uint64_t seed, uint64_t counter, int64_t n);
// dinp [n] (=), dout [n], mask [n] u8
void dropout_backward_cuda(Context& ctx, float* dinp, const float* dout, const uint8_t* mask,
                           double p, int64_t n);

// The device's copy of rng_hash (tensor/rng.h), compiled as host code from the same source the
// kernel uses: lets a test on a machine without a GPU check the two agree.
uint64_t cuda_rng_hash(uint64_t seed, uint64_t counter);

}  // namespace kdnas
