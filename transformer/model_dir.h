// Model directories, Hugging Face style: config.json + model.safetensors (+ the tokenizer,
// sentencepiece.bpe.model). Reads the published xlm-roberta-base directory as it is and writes
// directories that XLMRobertaModel.from_pretrained loads as they are.
//
// Reading: parameter names with or without the "roberta." prefix; lm_head.* and classifier.*
// optional; the tied decoder weight (lm_head.decoder.weight), the pooler and the old
// embeddings.position_ids buffer are ignored; F32, F16 and BF16 weights are converted to f32.
// A missing or misshapen tensor is an error naming it and both shapes.
//
// Writing: f32 weights; an encoder alone is saved as XLMRobertaModel (no prefix), with an MLM
// head as XLMRobertaForMaskedLM, with a classification head as
// XLMRobertaForSequenceClassification (both with the "roberta." prefix, as Hugging Face does).
#pragma once

#include <optional>
#include <string>

#include "transformer/config.h"
#include "transformer/encoder.h"
#include "transformer/heads.h"

namespace kdnas {

struct Model {
  EncoderConfig config;
  Encoder encoder;
  std::optional<MlmHead> mlm;
  std::optional<ClassificationHead> classifier;
  std::string tokenizer_path;  // the directory's sentencepiece.bpe.model, "" when it has none
  std::string weights_dtype;   // dtype of the weights as stored in the file ("F32", "BF16", ...)
};

constexpr const char* kTokenizerFile = "sentencepiece.bpe.model";

Model load_model_dir(const std::string& dir);
// Writes config.json, model.safetensors and (when tokenizer_path names a file) a copy of the
// tokenizer into dir, creating it if needed. Each file is written atomically.
void save_model_dir(const std::string& dir, const Model& model);

}  // namespace kdnas
