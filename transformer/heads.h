// The two heads Hugging Face puts on XLM-R, with its parameter names.
//
//   MLM head (lm_head.*):      logits = LN(gelu(x Wd^T + bd)) E^T + b    E = word embeddings (tied)
//   classification (classifier.*): logits = tanh(x[:, 0] Wd^T + bd) Wo^T + bo   (first token, <s>)
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "autograd/variable.h"
#include "kernels/context.h"
#include "tensor/rng.h"

namespace kdnas {

struct MlmHead {
  Variable dense_w, dense_b;  // [C, C], [C]
  Variable ln_w, ln_b;        // [C]
  Variable bias;              // [V]
  double ln_eps = 1e-5;

  static MlmHead init_random(int64_t C, int64_t V, double init_range, double ln_eps, Rng& rng);
  // x [B, T, C] -> logits [B, T, V]; the decoder weight is the encoder's word embeddings.
  Variable forward(Context& ctx, const Variable& x, const Variable& word_embeddings) const;
  // lm_head.dense.weight, ..., lm_head.bias
  std::vector<std::pair<std::string, Variable>> named_parameters() const;
};

struct ClassificationHead {
  Variable dense_w, dense_b;  // [C, C], [C]
  Variable out_w, out_b;      // [num_labels, C], [num_labels]

  static ClassificationHead init_random(int64_t C, int64_t num_labels, double init_range, Rng& rng);
  int64_t num_labels() const { return out_w.value().size(0); }
  // x [B, T, C] -> logits [B, num_labels]. Dropout p before each dense, as Hugging Face.
  Variable forward(Context& ctx, const Variable& x, double dropout_p, Rng* rng, bool train) const;
  // classifier.dense.weight, ..., classifier.out_proj.bias
  std::vector<std::pair<std::string, Variable>> named_parameters() const;
};

}  // namespace kdnas
