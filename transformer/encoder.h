// The XLM-R encoder on the autograd tape: the training path.
//
// Hugging Face's XLMRobertaModel, written out (DATA.md has the checkpoint layout):
//   pos      = cumsum(ids != pad) * (ids != pad) + pad         RoBERTa position ids
//   x        = LN(word[ids] + position[pos] + token_type[0])   embeddings, then dropout
//   per layer (post-LN):
//     q, k, v = x Wq^T + bq, ...                               [B, T, C] -> [B, NH, T, HS]
//     p       = softmax(q k^T / sqrt(HS) + mask)               mask: 0 or -inf-ish at padding keys
//     h1      = LN(x + dropout(merge(p v) Wo^T + bo))
//     x       = LN(h1 + dropout(gelu(h1 W1^T + b1) W2^T + b2))
// forward() returns the hidden state after the embeddings and after every layer (L + 1 of
// them), and on request each layer's q, k, v and attention probabilities, which the
// distillation losses read.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "autograd/variable.h"
#include "kernels/context.h"
#include "tensor/device.h"
#include "tensor/rng.h"
#include "transformer/config.h"

namespace kdnas {

// One encoder layer's parameters, named as in Hugging Face (encoder.layer.{i}.<name>).
struct EncoderLayer {
  Variable query_w, query_b, key_w, key_b, value_w, value_b;  // [C, C], [C]
  Variable attn_out_w, attn_out_b;                            // [C, C], [C]
  Variable attn_ln_w, attn_ln_b;                              // [C]
  Variable inter_w, inter_b;                                  // [FF, C], [FF]
  Variable out_w, out_b;                                      // [C, FF], [C]
  Variable out_ln_w, out_ln_b;                                // [C]
};

// One layer's attention internals, [B, NH, T, HS] (probs [B, NH, T, T]).
struct LayerAttention {
  Variable q, k, v, probs;
};

struct EncoderOutput {
  std::vector<Variable> hidden;           // L + 1 states, each [B, T, C]
  std::vector<LayerAttention> attention;  // L entries when requested, else empty
  Tensor attention_mask;                  // i64 [B, T], as given
};

struct ForwardOptions {
  bool train = false;             // dropout on (with the config's probabilities) when true
  bool return_attention = false;  // fill EncoderOutput::attention
  Rng* rng = nullptr;             // dropout's randomness; required when train is true
};

class Encoder {
 public:
  Encoder() = default;
  // Random weights as Hugging Face initialises XLM-R: N(0, initializer_range) for embeddings
  // and linear weights, zero biases, LayerNorm weight 1 and bias 0.
  static Encoder init_random(const EncoderConfig& cfg, uint64_t seed);
  // Parameters taken from a name -> tensor map with Hugging Face names (no "roberta." prefix);
  // a missing or misshapen tensor is an error naming it and both shapes.
  static Encoder from_tensors(const EncoderConfig& cfg,
                              const std::vector<std::pair<std::string, Tensor>>& tensors);

  const EncoderConfig& config() const { return cfg_; }

  // ids: i64 [B, T]; attention_mask: i64 [B, T] (1 = token, 0 = padding) or undefined (all 1).
  EncoderOutput forward(Context& ctx, const Tensor& ids, const Tensor& attention_mask,
                        const ForwardOptions& opt = {}) const;

  // Every parameter with its Hugging Face name (XLMRobertaModel naming, no prefix), in a fixed
  // order: embeddings, then layers.
  std::vector<std::pair<std::string, Variable>> named_parameters() const;
  int64_t parameter_count(bool include_embeddings = true) const;

  // Moves every parameter to `device` in place (move_parameters below); forward() then runs
  // there and takes its ids and mask on either device. Saving needs no move back:
  // write_safetensors copies device tensors to the host.
  void to(Device device);
  Device device() const { return word_embeddings.value().device(); }

  Variable word_embeddings, position_embeddings, token_type_embeddings;  // [V, C], [P, C], [TV, C]
  Variable emb_ln_w, emb_ln_b;                                           // [C]
  std::vector<EncoderLayer> layers;

 private:
  EncoderConfig cfg_;
};

// Replaces each parameter's value by a copy on `device` (Variable::set_value: the handles stay,
// so every copy of the module, and an optimizer built afterwards, sees the moved values). A
// no-op for values already there. Use it for any module's named_parameters() (heads, losses).
void move_parameters(const std::vector<std::pair<std::string, Variable>>& params, Device device);

// RoBERTa position ids for i64 ids [B, T]: pad + running count of non-pad tokens, pad at pads.
Tensor roberta_position_ids(const Tensor& ids, int64_t pad_id);
// The additive attention mask [B, 1, 1, T] (f32): 0 at tokens, a large negative at padding.
Tensor additive_attention_mask(const Tensor& attention_mask);
// The value the additive mask uses at padded keys (finite, so 0 * mask stays 0).
constexpr float kMaskedScore = -1e30f;

}  // namespace kdnas
