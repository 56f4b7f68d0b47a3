// Fast CPU GEMMs. Same contracts as kernels/ref/matmul_ref.h, for a whole batch of GEMMs at once.
// matmul_forward_cpu is the OpenMP + vectorised f32 GEMM (the embedded build's); *_onednn runs
// oneDNN's matmul primitive and exists only in builds with oneDNN (callers check
// onednn_compiled()).
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

// Where the matrices of a batched GEMM out = a · b live, in elements. The batch is out's batch
// dims; an operand's batch stride is 0 along a dim it broadcasts. For batch index (g1, ..., gn):
//   a(i, p)   = a[sum_d g_d * a_batch_strides[d] + i * a_rs + p * a_cs]   i < M, p < K
//   b(p, j)   = b[sum_d g_d * b_batch_strides[d] + p * b_rs + j * b_cs]   p < K, j < N
//   out(i, j) = out[g * M * N + i * N + j]  (contiguous; g the row-major batch index)
// The op API guarantees one unit stride per matrix: (a_cs == 1 and a_rs >= K) or (a_rs == 1
// and a_cs >= M), likewise for b; that is what oneDNN accepts without a copy.
struct GemmLayout {
  int64_t M = 0, K = 0, N = 0;
  Shape batch;                             // out's batch dims (empty: one GEMM)
  Shape a_batch_strides, b_batch_strides;  // one per batch dim
  int64_t a_rs = 0, a_cs = 0, b_rs = 0, b_cs = 0;

  int64_t batch_count() const { return shape_numel(batch); }
  // The element offsets of matrix g (row-major batch index) in a and in b.
  void batch_offsets(int64_t g, int64_t& a_off, int64_t& b_off) const;
};

// out (=) act(a · b + bias) for every matrix of the batch; bias [N] or null; f32.
void matmul_forward_cpu(Context& ctx, float* out, const float* a, const float* b, const float* bias,
                        const GemmLayout& l, bool gelu);

// The same with oneDNN: a and b are f32 or bf16 (both the same), out f32 or bf16, bias f32 [N]
// or null. The primitive for a layout is created once and cached in the Context. out_strides:
// out's strides, one per dim of [batch..., M, N] (any non-overlapping layout: oneDNN writes it
// in place), or empty for a contiguous out.
void matmul_forward_onednn(Context& ctx, void* out, DType out_dtype, const void* a, const void* b,
                           DType in_dtype, const float* bias, const GemmLayout& l, bool gelu,
                           const Shape& out_strides = {});

// out [M, N] (=) act(x · wᵀ + bias) with oneDNN, w [N, K] constant (ConstWeights, kernels/
// matmul.h): the weights are reordered once into the primitive's preferred layout and kept in
// the Context's cache under weights_id. x [M, K] and w contiguous, f32 or bf16 (both the same);
// out f32 or bf16; bias f32 [N] or null.
void linear_forward_onednn_packed(Context& ctx, void* out, DType out_dtype, const void* x,
                                  const void* w, DType in_dtype, const float* bias, int64_t M,
                                  int64_t K, int64_t N, bool gelu, uint64_t weights_id);

// out [M, N] (=) act(x · wᵀ + bias) with the OpenMP GEMM on f32 weights packed once: w [N, K]
// (ConstWeights, kernels/matmul.h) is packed at the first call into the GEMM's NR-column strips
// and kept in the Context under weights_id, so a call packs only its x. While the micro-kernel
// works on one strip of the weights, the next strip is prefetched into L2: a model's weights
// are far larger than the caches and each layer's come from memory, and without the prefetch
// every strip's first pass stalled on them. x [M, K] and w contiguous; bias [N] or null.
void linear_forward_packed_cpu(Context& ctx, float* out, const float* x, const float* w,
                               const float* bias, int64_t M, int64_t K, int64_t N, bool gelu,
                               uint64_t weights_id);

// dbias[N] (=) sum over the M rows of dout[M, N] (contiguous).
void bias_backward_cpu(Context& ctx, float* dbias, const float* dout, int64_t M, int64_t N);

}  // namespace kdnas
