// Fine-tuning a model directory for classification, and evaluating the result.
//
// The recipe (Hugging Face's run_glue defaults where they apply):
//   model    = the directory's encoder + a fresh classification head (heads.h, N(0, init_range)
//              weights, zero biases), dropout from the config (classifier_dropout, else
//              hidden_dropout_prob) in the encoder and the head while training
//   loss     = cross-entropy of the head's logits against the label ids (distill/tasks.h)
//   optimizer= AdamW, weight decay 0.01 except on biases and LayerNorm; gradients clipped at 1;
//              lr: linear warmup over the first 10% of the updates, then linear decay to 0
//   data     = each epoch visits the training examples in an order shuffled by (seed, epoch), in
//              batches of `batch`, each sequence cut to `seq` tokens (pairs longest-first)
//   epochs   = up to `epochs`; after each, accuracy on dev. The best epoch (highest dev accuracy,
//              the earlier on a tie) is written to `out`; `patience` epochs in a row without a
//              better dev accuracy stop the run (0: never stop early)
// Every random draw is a function of (seed, epoch) or (seed, step), so the same options on the
// same machine and thread count give the same model bit for bit.
//
// The output directory is a model directory (config.json with id2label / label2id,
// model.safetensors as XLMRobertaForSequenceClassification, the tokenizer), each file written
// atomically whenever the dev accuracy improves, plus log.jsonl (one row per epoch) and, at
// the end, results.json (the object finetune_result_json returns).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "distill/tasks.h"
#include "kernels/context.h"
#include "transformer/model_dir.h"
#include "transformer/tokenizer.h"

namespace kdnas {

struct FinetuneOptions {
  std::string model;             // model directory with its tokenizer
  std::string train, dev, test;  // task TSVs; test optional
  std::string out;
  int64_t epochs = 3, batch = 32, seq = 128;
  double lr = 5e-5;
  int64_t patience = 2;
  double weight_decay = 0.01;
  double warmup_ratio = 0.1;
  double clip = 1.0;
  // The training GEMMs (autograd/precision.h): "f32", or "bf16" (bf16 operands, f32
  // accumulation; weights, optimizer state and gradients stay f32). Evaluation is f32.
  std::string precision = "f32";
  uint64_t seed = 0;
  int threads = 0;
  std::string device = "cpu";  // the model, batches and optimizer state: cpu, cuda, cuda:N
  bool quiet = false;          // no progress lines (tests)
};

struct EpochResult {
  int64_t epoch = 0;      // 1-based
  double train_loss = 0;  // mean over the epoch's batches
  ClassificationMetrics dev;
  bool best = false;  // the dev accuracy improved: this epoch's model was written
  double seconds = 0;
};

struct FinetuneResult {
  std::vector<EpochResult> epochs;
  int64_t best_epoch = 0;
  bool stopped_early = false;
  ClassificationMetrics dev;                  // of the best epoch
  std::optional<ClassificationMetrics> test;  // of the saved (best) model
  std::vector<std::string> labels;
  int64_t train_examples = 0;
  double seconds = 0;
};

FinetuneResult finetune(const FinetuneOptions& opt);
// {"dev": {"accuracy", "macro_f1", "examples"}, "test": {...}, "best_epoch", ...} on one line.
std::string finetune_result_json(const FinetuneOptions& opt, const FinetuneResult& r);

// Predicted label ids for every example (inference: no dropout, no gradients), in batches of
// `batch` with sequences cut to `seq` tokens, on the device the model's parameters are on. The
// model must have a classifier. With `inference`, the encoder part runs on that tape-free
// inference encoder (made from model.encoder, e.g. in bf16 or int8) instead of the training path.
class InferenceEncoder;
std::vector<int64_t> predict_labels(Context& ctx, const Model& model, const Tokenizer& tok,
                                    const TaskData& data, int64_t batch, int64_t seq,
                                    InferenceEncoder* inference = nullptr);

struct EvalOptions {
  std::string model, data;
  int64_t batch = 32, seq = 128;
  int threads = 0;
  std::string device = "cpu";  // where the model runs: cpu, cuda, cuda:N
  // "": the training path's forward (f32, what finetune measures); "f32", "bf16", "int8": the
  // inference path (transformer/inference.h) under the same classifier head.
  std::string dtype;
};
struct EvalResult {
  ClassificationMetrics metrics;
  int64_t labels = 0;
  double seconds = 0;
};
// Loads a fine-tuned model directory and scores it on a task file. A model without a
// classifier, or a label in the file the model does not know, is an error.
EvalResult evaluate_classifier(const EvalOptions& opt);
// {"accuracy", "macro_f1", "examples", "labels", "seconds", "model", "data"} on one line.
std::string eval_result_json(const EvalOptions& opt, const EvalResult& r);

}  // namespace kdnas
