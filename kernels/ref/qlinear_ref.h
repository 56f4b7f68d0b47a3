// Reference dynamically quantised linear layer (int8 inference): the executable specification of
// qlinear. Naive, single-threaded, f32 in and out. Inference only: quantisation has no useful
// gradient, so there is no backward (training uses linear in f32 or bf16).
//
// Weights, quantised once: symmetric, one scale per output feature (row of w [N, K]):
//   sw[n] = max_k |w[n, k]| / 127   (1 for an all-zero row),   wq[n, k] = round(w[n, k] / sw[n])
// in [-127, 127], and rs[n] = sum_k wq[n, k] (needed to remove the activations' zero point).
// Activations, quantised on every call ("dynamic"): asymmetric u8, one scale for the tensor, as
// ONNX Runtime's dynamic quantisation does:
//   lo = min(0, min x), hi = max(0, max x)   (so that 0 is exact)
//   sx = (hi - lo) / 255   (1 when hi == lo),   zp = round(-lo / sx) in [0, 255]
//   xq = clamp(round(x * (1 / sx)) + zp, 0, 255)
// The product, with exact int32 accumulation (K <= 2^16 keeps it in range):
//   out[m, n] = act(sx * sw[n] * (sum_k xq[m, k] * wq[n, k] - zp * rs[n]) + bias[n])
// round() is round-half-to-even (std::nearbyint in the default rounding mode), which is what the
// vector conversion instructions do, so the fast kernels produce the same integers.
#pragma once

#include <cstdint>

namespace kdnas {

// One tensor's activation quantisation.
struct ActQuant {
  float scale = 1.f;   // sx
  int32_t zero_point = 0;  // zp, in [0, 255]
};

// The largest K the int32 accumulation is exact for (255 * 127 * K < 2^31).
constexpr int64_t kQlinearMaxK = 65536;

// wq [N, K] (=), scales [N] (=), row_sums [N] (=) from w [N, K] (finite).
void quantize_weight_ref(int8_t* wq, float* scales, int32_t* row_sums, const float* w, int64_t N,
                         int64_t K);

// sx and zp from the range of x [n] (n >= 1); a non-finite element gives scale NaN (the op
// reports it).
ActQuant activation_quant_ref(const float* x, int64_t n);

// sx and zp from the range [lo, hi] of a tensor (lo <= 0 <= hi): the rule above, shared by every
// kernel that computes the range.
ActQuant activation_quant_from_range(float lo, float hi);

// xq [n] (=) the u8 codes of x [n] under q.
void quantize_activation_ref(uint8_t* xq, const float* x, int64_t n, ActQuant q);

// out [M, N] (=) act(sx * sw[n] * (xq · wqᵀ - zp * rs[n]) + bias[n]); xq [M, K], wq [N, K],
// scales [N], row_sums [N], bias [N] or null; gelu: the exact erf GELU after the bias.
void qlinear_forward_ref(float* out, const uint8_t* xq, ActQuant q, const int8_t* wq,
                         const float* scales, const int32_t* row_sums, const float* bias, int64_t M,
                         int64_t N, int64_t K, bool gelu);

}  // namespace kdnas
