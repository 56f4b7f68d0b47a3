// GEMMs: matmul (batched, broadcasting) and linear (PyTorch's x · wᵀ + b), with a fused
// bias + GELU epilogue, and their backward passes.
//
// Layouts. Operands may be strided views (w.transpose(0, 1), k.transpose(-1, -2), a narrow):
// as long as one of the two matrix dims has stride 1 (and the other a stride that does not
// overlap rows), the kernels read them in place with no copy; anything else is copied to a
// contiguous tensor first. Batch dims may have any strides, and a batch dim of size 1 or
// stride 0 (expand) broadcasts. Outputs are new contiguous tensors, or matmul's opts.out.
//
// dtypes. f32 x f32 -> f32; bf16 x bf16 -> f32 or bf16 (out_dtype), always with f32
// accumulation; f64 x f64 -> f64 on the Ref kernels only (for gradient checks). The bias is
// f32 for f32 and bf16 operands, f64 for f64 ones.
//
// Backends. Ref: plain loops (bf16 inputs widened to f32 first). Omp: a cache-blocked,
// vectorised, OpenMP f32 GEMM (bf16 widened to f32). Onednn: oneDNN's matmul primitive (AVX-512,
// bf16 dot products or AMX where the CPU has them), created once per layout and cached.
#pragma once

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

// What the GEMM epilogue applies after the bias.
enum class Activation : unsigned char {
  None,
  Gelu,  // exact erf form: 0.5 x (1 + erf(x / sqrt 2))
};

struct MatmulOptions {
  Tensor bias;                        // [N], added to every row; undefined = no bias
  Activation act = Activation::None;  // applied after the bias
  DType out_dtype = DType::F32;       // F32 or BF16 (BF16 only with bf16 operands); f64
                                      // operands always give f64 (leave F32 or say F64)
  // Where to write the result, or undefined for a new contiguous tensor. out has the result's
  // shape [batch..., M, N], dtype and device, and is contiguous or a dim permutation of a
  // contiguous tensor: attention's heads [B, NH, T, HS] as a view of a [B, T, NH, HS] tensor,
  // so that PV lands merged with no permute pass. oneDNN writes such an out in place (same
  // speed as a contiguous one on AMX); the other backends compute a contiguous result and copy
  // it in. out must not overlap a or b. matmul_forward then returns out.
  Tensor out = Tensor();
};

// out = act(a · b + bias)
//   a [..., M, K], b [..., K, N] -> out [batch..., M, N], where batch is the numpy broadcast of
//   a's and b's batch dims (b [K, N] is shared by every batch of a).
Tensor matmul_forward(Context& ctx, const Tensor& a, const Tensor& b,
                      const MatmulOptions& opts = {});

struct MatmulGrads {
  Tensor da;  // like a: dout · bᵀ, summed over the batch dims a was broadcast along
  Tensor db;  // like b: aᵀ · dout, summed over the batch dims b was broadcast along
};
// The gradients of out = a · b (no epilogue: autograd records bias and GELU as their own
// nodes). dout [batch..., M, N] is f32 or the operands' dtype; each gradient has the dtype of
// its input (bf16 operands with an f32 dout are widened to f32 for the two GEMMs).
MatmulGrads matmul_backward(Context& ctx, const Tensor& dout, const Tensor& a, const Tensor& b);

// out = act(x · wᵀ + bias)
//   x [..., K], w [N, K] (PyTorch's layout: one row per output feature), bias [N] or
//   undefined -> out [..., N].
Tensor linear_forward(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& bias = {},
                      Activation act = Activation::None, DType out_dtype = DType::F32);

// Constant weights (inference): a linear layer's w [N, K] (f32 or bf16) with an id that names it
// in the Context's caches. linear_forward on ConstWeights computes what linear_forward on w
// does, on every backend; on oneDNN the weights are reordered once, at the first call, into the
// blocked layout the primitive prefers (format any) and that copy is kept in the Context and
// reused by every later call (any M); on Omp f32 weights are packed once into the OpenMP GEMM's
// column strips the same way (kernels/cpu/matmul_cpu.h, linear_forward_packed_cpu). At M = 128, bench_matmul's BM_matmul_linear_const measured
// it ~10 % faster in f32 and 3-20 % faster in bf16 (AMX) than oneDNN reading [N, K] in place. The copy lives as long as the Context (one per layer and
// Context, never per call); w must stay alive and unchanged while the ConstWeights is used.
// Inference only: there is no backward (train with the Tensor overload).
struct ConstWeights {
  Tensor w;         // [N, K]
  uint64_t id = 0;  // unique per const_weights call
};
ConstWeights const_weights(const Tensor& w);

Tensor linear_forward(Context& ctx, const Tensor& x, const ConstWeights& w,
                      const Tensor& bias = {}, Activation act = Activation::None,
                      DType out_dtype = DType::F32);

struct LinearGrads {
  Tensor dx;  // [..., K] = dout · w
  Tensor dw;  // [N, K]   = doutᵀ · x, summed over every row of x
  Tensor db;  // [N]      = sum of dout's rows; undefined when has_bias is false
};
LinearGrads linear_backward(Context& ctx, const Tensor& dout, const Tensor& x, const Tensor& w,
                            bool has_bias);

}  // namespace kdnas
