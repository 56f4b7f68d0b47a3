// Pieces the distill tests (trainer, pretrain, finetune) share: their tokenizer and an exact
// tensor comparison.
#pragma once

#include <cstring>
#include <string>

#include "tensor/tensor.h"
#include "transformer/tokenizer.h"

namespace kdnas::test {

// The tokenizer the distill tests train once per binary: 200 unigram pieces (202 ids) on
// tests/data/corpus/tiny.txt, seed 7, written to `model`.
inline void train_tiny_tokenizer(const std::string& model) {
  train_tokenizer(std::string(KDNAS_SOURCE_DIR) + "/tests/data/corpus/tiny.txt", 200, "unigram",
                  model, /*seed=*/7);
}

// The same shape, dtype and bytes.
inline bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.contiguous().raw_data(), b.contiguous().raw_data(),
                     size_t(a.numel()) * dtype_size(a.dtype())) == 0;
}

}  // namespace kdnas::test
