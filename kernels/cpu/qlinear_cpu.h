// Fast CPU kernels of the dynamically quantised linear layer. Same contracts as
// kernels/ref/qlinear_ref.h. activation_quant_cpu / quantize_activation_cpu and
// qlinear_forward_cpu are OpenMP + vectorised loops (the embedded build's path); the integers
// they produce are the reference's exactly. qlinear_forward_onednn runs oneDNN's u8 x s8 matmul
// (AMX or AVX-512 VNNI where the CPU has them) and exists only in builds with oneDNN.
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "kernels/ref/qlinear_ref.h"
#include "tensor/dtype.h"

namespace kdnas {

// x is f32 or bf16 (bf16 read as its exact f32 value: the same codes as the f32 of it).
template <typename T>
ActQuant activation_quant_cpu(Context& ctx, const T* x, int64_t n);
template <typename T>
void quantize_activation_cpu(Context& ctx, uint8_t* xq, const T* x, int64_t n, ActQuant q);

void qlinear_forward_cpu(Context& ctx, float* out, const uint8_t* xq, ActQuant q, const int8_t* wq,
                         const float* scales, const int32_t* row_sums, const float* bias,
                         int64_t M, int64_t N, int64_t K, bool gelu);

// The zero point is folded into a per-feature bias (bias[n] - sx * sw[n] * zp * rs[n]); oneDNN
// runs a plain u8 x s8 GEMM with the weight scales as its output scales, then sx, the bias and
// GELU as post-ops. The primitive, with the weights reordered into its preferred (AMX-blocked)
// layout, is made once per quantised layer and M and cached in the Context: weights_id names the
// layer (QuantizedLinear::id) and must differ for different weights. out is f32, or bf16 when
// out_bf16 (the epilogue's f32 value rounded to nearest even as oneDNN writes it).
void qlinear_forward_onednn(Context& ctx, void* out, bool out_bf16, const uint8_t* xq, ActQuant q,
                            const int8_t* wq, const float* scales, const int32_t* row_sums,
                            const float* bias, int64_t M, int64_t N, int64_t K, bool gelu,
                            uint64_t weights_id);

}  // namespace kdnas
