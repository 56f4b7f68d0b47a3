// CUDA GEMMs through cuBLASLt. Same contracts as kernels/ref/matmul_ref.h and the layout of
// kernels/cpu/matmul_cpu.h (GemmLayout: one unit stride per matrix, batch dims with strides,
// 0 where an operand broadcasts). Device pointers; asynchronous on the Context's stream.
//
// dtypes: f32 x f32 -> f32 (full f32 arithmetic unless the Context allows TF32, see
// cuda_set_allow_tf32); bf16 x bf16 -> f32 or bf16, always with f32 accumulation. The bias is
// f32 [N] or null.
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "kernels/cpu/matmul_cpu.h"  // GemmLayout (plain C++)
#include "tensor/dtype.h"

namespace kdnas {

// out (=) act(a · b + bias) for every matrix of the batch; out contiguous [batch..., M, N].
void matmul_forward_cuda(Context& ctx, void* out, DType out_dtype, const void* a, const void* b,
                         DType in_dtype, const float* bias, const GemmLayout& l, bool gelu);

// The gradients of out = a · b, f32, every buffer contiguous, both accumulated (+=):
//   da[M, K] (+=) dout[M, N] · b[K, N]ᵀ,   db[K, N] (+=) a[M, K]ᵀ · dout[M, N]
// da or db may be null when that gradient is not wanted.
void matmul_backward_cuda(Context& ctx, float* da, float* db, const float* dout, const float* a,
                          const float* b, int64_t M, int64_t K, int64_t N);

// dbias[N] (=) sum over the M rows of dout[M, N] (contiguous, f32). Deterministic.
void bias_backward_cuda(Context& ctx, float* dbias, const float* dout, int64_t M, int64_t N);

}  // namespace kdnas
