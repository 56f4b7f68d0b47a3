// Reference GEMMs: the executable specification of matmul and linear. Naive, single-threaded,
// templated on the scalar (float, or double for gradient checks); bf16 operands are widened to
// f32 by the op API before they get here.
//
// Strided operands: element (i, p) of a is a[i * a_rs + p * a_cs] and element (p, j) of b is
// b[p * b_rs + j * b_cs], so a transposed view is just swapped strides. Outputs are contiguous
// row-major.
#pragma once

#include <cstdint>

namespace kdnas {

// out[M, N] (=) act(a[M, K] · b[K, N] + bias[N]); bias may be null, act is GELU (erf form)
// when gelu is set. Products are accumulated in double whatever T is, so the reference is
// closer to the exact result than any kernel it judges.
template <typename T>
void matmul_forward_ref(T* out, const T* a, const T* b, const T* bias, int64_t M, int64_t K,
                        int64_t N, int64_t a_rs, int64_t a_cs, int64_t b_rs, int64_t b_cs,
                        bool gelu);

// The gradients of out = a · b, all buffers contiguous, both accumulated (+=) so that the
// batches of a broadcast operand sum into its one gradient:
//   da[M, K] (+=) dout[M, N] · b[K, N]ᵀ
//   db[K, N] (+=) a[M, K]ᵀ · dout[M, N]
template <typename T>
void matmul_backward_ref(T* da, T* db, const T* dout, const T* a, const T* b, int64_t M, int64_t K,
                         int64_t N);

// The bias gradient of out = x · wᵀ + bias: dbias[N] (=) sum over the M rows of dout[M, N].
template <typename T>
void bias_backward_ref(T* dbias, const T* dout, int64_t M, int64_t N);

}  // namespace kdnas
