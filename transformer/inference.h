// The tape-free inference path: the encoder's forward pass on plain tensors, in f32 or in bf16
// (AMX), with weights prepared once.
//
// What differs from Encoder::forward (the training path) — and why it is faster:
//   - no autograd graph, no dropout;
//   - Q, K and V come from one GEMM against the concatenated [3C, C] weight;
//   - attention reads Q, K, V from one copy that makes every head contiguous (bf16 and int8:
//     in bf16, where AMX runs those GEMMs ~2x faster; f32: while the copy stays in cache), or
//     as strided views of that GEMM's output (f32, larger); in bf16 and int8 the softmax writes
//     its probabilities in bf16 (softmax_forward_bf16);
//   - PV writes the heads straight into the merged [B, T, C] layout (matmul's opts.out);
//   - the residual add and the LayerNorm after it are one op (add_layer_norm_forward), which
//     in bf16 also writes the bf16 copy the next GEMM reads (no separate cast);
//   - the FFN's GELU and every bias run as GEMM epilogues;
//   - dtype bf16: weights are converted to bf16 once, activations right before each GEMM, and
//     accumulation stays f32 (LayerNorm and softmax run in f32).
//   - dtype i8 ("int8"): the four linear layers of every block are dynamically quantised
//     (kernels/qlinear.h: weights s8 per output feature once, activations u8 per call, int32
//     accumulation, oneDNN on AMX); the attention products run in bf16 as above; softmax,
//     LayerNorm and the embeddings stay f32. CPU only.
// The two paths must agree: tests/transformer/test_inference.cpp checks them against each other
// and against the golden PyTorch fixtures.
#pragma once

#include <vector>

#include <string>

#include "kernels/context.h"
#include "kernels/qlinear.h"
#include "tensor/tensor.h"
#include "transformer/encoder.h"

namespace kdnas {

class InferenceEncoder {
 public:
  // Copies (and, for bf16, converts) the encoder's weights, once, to `device` (the encoder's
  // own may live anywhere). dtype: F32, BF16 or I8 (I8 on the CPU only).
  InferenceEncoder(const Encoder& encoder, DType dtype, Device device = cpu_device());

  const EncoderConfig& config() const { return cfg_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  // ids, attention_mask: i64 [B, T] (mask undefined = all tokens), on the host or on device();
  // the position ids and the additive mask are made on the host and copied over. Returns the
  // hidden states after the embeddings and every layer, f32 [L + 1, B, T, C], or only the last
  // one ([B, T, C]) when all_hidden is false, on device() (.to(cpu_device()) brings them back).
  Tensor forward(Context& ctx, const Tensor& ids, const Tensor& attention_mask,
                 bool all_hidden = true);

  // Floating-point operations of one forward pass over B sequences of T tokens (GEMMs and
  // attention products; the element-wise work is not counted).
  double flops(int64_t B, int64_t T) const;

 private:
  struct Layer {
    // f32 / bf16: the weights below; i8: the quantised qkv, o, ffn1, ffn2 instead. The GEMM
    // weights are ConstWeights (kernels/matmul.h): on oneDNN each is reordered once, at its first
    // use in a Context, into the layout the primitive prefers, and kept there.
    QuantizedLinear qqkv, qo, q1, q2;
    ConstWeights wqkv;    // [3C, C] (f32 or bf16)
    Tensor bqkv;          // [3C] f32
    ConstWeights wo;      // [C, C]
    Tensor bo;            // [C]
    Tensor ln1_w, ln1_b;  // [C]
    ConstWeights w1;      // [FF, C]
    Tensor b1;            // [FF]
    ConstWeights w2;      // [C, FF]
    Tensor b2;            // [C]
    Tensor ln2_w, ln2_b;  // [C]
  };
  // Attention for a chunk of sequences (inference.cpp): qkv [n, T, 3C] in, merged [n, T, C] out.
  void attend_chunk(Context& ctx, Tensor qkv, const Tensor& add_mask, const Tensor& merged,
                    double score_scale) const;

  EncoderConfig cfg_;
  DType dtype_;
  Device device_;
  Tensor word_, pos_, type0_, emb_ln_w_, emb_ln_b_;  // f32
  std::vector<Layer> layers_;
};

// The command-line names of the inference dtypes: "f32", "bf16", "int8" (DType::I8); anything
// else is an error naming the choices.
DType inference_dtype(const std::string& name);
const char* inference_dtype_name(DType dt);

}  // namespace kdnas
