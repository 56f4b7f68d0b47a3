// CUDA fused attention for inference: out = softmax(q · kᵀ * scale + mask) · v, per batch and
// head, without writing the [T, T] score matrix to device memory. For sequences up to
// kAttentionMaxT = 512 and head sizes up to kAttentionMaxHS = 256 (XLM-R: T <= 512, HS = 64).
// There is no backward: training runs attention as matmul + softmax + matmul, whose backward
// kernels exist; this is the inference path's one kernel.
//
// Layouts: element (b, h, t, d) of q is q[b * q.b + h * q.h + t * q.t + d] (the head dim is
// contiguous), likewise k, v and out, so both [B, NH, T, HS] tensors and the [B, T, NH, HS] view
// of a [B, T, C] projection (strides T*C, HS, C) are read in place. Device pointers.
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

constexpr int64_t kAttentionMaxT = 512;
constexpr int64_t kAttentionMaxHS = 256;

// Element strides of a [B, NH, T, HS] operand along b, h and t (the d stride is 1).
struct AttentionStrides {
  int64_t b = 0, h = 0, t = 0;
};

// The strides of a contiguous [B, NH, T, HS] tensor.
inline AttentionStrides attention_bhtd(int64_t NH, int64_t T, int64_t HS) {
  return {NH * T * HS, T * HS, HS};
}

// out (=) softmax(scale * q kᵀ + mask) v
//   q, k, v, out: [B, NH, T, HS] at their strides; mask: [B, T] additive key mask (0 for real
//   tokens, a large negative number or -inf for padding), contiguous, or null. A query row whose
//   keys are all masked with -inf attends uniformly, as softmax_forward does.
// Throws (naming the sizes) for T > kAttentionMaxT or HS > kAttentionMaxHS.
void attention_forward_cuda(Context& ctx, float* out, AttentionStrides out_s, const float* q,
                            AttentionStrides q_s, const float* k, AttentionStrides k_s,
                            const float* v, AttentionStrides v_s, const float* mask, int64_t B,
                            int64_t NH, int64_t T, int64_t HS, float scale);

}  // namespace kdnas
