// Dropout with a counter-based RNG (tensor/rng.h).
//
// Element i (row-major over x) is kept iff rng_uniform01(seed, counter + i) >= p; kept values
// are scaled by 1 / (1 - p) so the expectation is unchanged. p = 0 is the identity (every
// element kept), p = 1 gives zeros. The mask is a pure function of (seed, counter, i): the
// reference and the fast kernels, with any thread count, produce the identical mask and output.
// The caller reserves x.numel() counters from its Rng (`counter = rng.reserve(x.numel())`), so
// consecutive dropout calls draw fresh numbers and a checkpoint restores them exactly.
//
// x: any shape and strides (non-contiguous views are copied first); f32 on every backend, f64
// on Ref (for gradient checks). p must lie in [0, 1].
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

struct DropoutOutput {
  Tensor out;   // x's shape and dtype
  Tensor mask;  // x's shape, u8: 1 = kept, 0 = dropped (what the backward needs)
};

DropoutOutput dropout_forward(Context& ctx, const Tensor& x, double p, uint64_t seed,
                              uint64_t counter);

// dx = dout * mask / (1 - p) (0 for p = 1); mask from dropout_forward with the same p.
Tensor dropout_backward(Context& ctx, const Tensor& dout, const Tensor& mask, double p);

}  // namespace kdnas
