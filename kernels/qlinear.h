// The dynamically quantised linear layer (int8 inference): out = act(x · wᵀ + bias) computed as
// a u8 x s8 GEMM with int32 accumulation. The weights are quantised once (quantize_linear:
// symmetric, one scale per output feature); the activations on every call (asymmetric u8, one
// scale and zero point for the whole x, from its min and max) — what ONNX Runtime's dynamic
// quantisation does. The exact arithmetic is in kernels/ref/qlinear_ref.h.
//
// Inference only (no backward), CPU only, f32 or bf16 in and out. Error against the f32 linear: each
// product carries at most half a quantisation step of x (sx / 2) and of w (sw[n] / 2);
// tests/kernels/test_qlinear.cpp bounds it and docs/perf.md reports the encoder-level cost.
//
// Backends. Ref: plain loops. Omp: vectorised dot products over blocks of 16 features (the
// embedded build). Onednn: oneDNN's int8 matmul (AMX int8 or AVX-512 VNNI), the zero point and
// scales folded into per-column scales and a bias post-op.
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "kernels/matmul.h"
#include "tensor/tensor.h"

namespace kdnas {

struct QuantizedLinear {
  Tensor wq;        // i8 [N, K]
  Tensor scales;    // f32 [N]: sw
  Tensor row_sums;  // i32 [N]: sum over k of wq[n, k]
  Tensor bias;      // f32 [N], or undefined
  uint64_t id = 0;  // unique per quantize_linear call: names these weights in primitive caches
  int64_t in_features() const { return wq.size(1); }
  int64_t out_features() const { return wq.size(0); }
};

// w f32 [N, K] (finite), bias f32 [N] or undefined, on the CPU. K <= kQlinearMaxK.
QuantizedLinear quantize_linear(Context& ctx, const Tensor& w, const Tensor& bias = {});

// x f32 or bf16 [..., K] (finite; bf16 is quantised from its exact f32 value) -> out [..., N],
// f32 or bf16 (out_dtype): bf16 is the f32 result
// rounded to nearest even, written by oneDNN's epilogue (half the bytes; what the attention's
// bf16 products read), cast after the f32 result on the other backends.
Tensor qlinear_forward(Context& ctx, const Tensor& x, const QuantizedLinear& q,
                       Activation act = Activation::None, DType out_dtype = DType::F32);

}  // namespace kdnas
