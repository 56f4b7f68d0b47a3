// Masked-language-model pretraining of a fresh XLM-R encoder with its MLM head (the teacher's
// recipe: RoBERTa's dynamic masking, no next-sentence task).
//
// One step:
//   batch   = the next batch of the corpus (distill/corpus.h)
//   masking = mask_tokens(batch, Rng(rng_hash(seed ^ kMaskStream, step))): 15% of the real tokens
//             (never <s>, </s>, <pad>) are selected; of those 80% become <mask>, 10% a random
//             token, 10% stay as they are
//   loss    = cross-entropy of the MLM head's logits at the selected positions only (the head
//             runs on the gathered rows, so its [N, V] logits are for N selected tokens, not B*T)
//   update  = backward, clip, AdamW with warmup + decay (distill/train_loop.h)
// Held-out evaluation masks each held-out batch with a fixed seed (the same tokens every time, so
// evaluations are comparable) and reports the MLM loss and top-1 accuracy on the selected tokens.
//
// The output directory is a model directory (XLMRobertaForMaskedLM: config.json,
// model.safetensors with roberta.* and lm_head.*, the tokenizer) plus the checkpoint files of
// distill/train_loop.h. Every source of randomness is a function of (seed, step) or of
// (seed, epoch), so a resumed run repeats the uninterrupted one bit for bit (same machine, same
// thread count).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "distill/corpus.h"
#include "distill/train_loop.h"
#include "tensor/rng.h"
#include "transformer/config.h"

namespace kdnas {

struct PretrainOptions {
  std::string config;     // config.json of the model to train
  std::string tokenizer;  // sentencepiece model (XLM-R ids); its vocabulary must fit the config's
  std::string corpus;
  CorpusOptions corpus_opt;
  int64_t batch = 32, batch_tokens = 0, seq = 128;
  int64_t steps = 0;
  double mask_prob = 0.15;
  double lr = 5e-4;
  int64_t warmup = -1;  // steps; -1: 10% of the run
  std::string decay = "linear";
  double weight_decay = 0.01;
  double clip = 1.0;
  bool dropout = true;
  // The training GEMMs' precision (autograd/precision.h): "f32", or "bf16" (bf16 operands,
  // f32 accumulation; weights, optimizer state and gradients stay f32). Evaluation is f32.
  std::string precision = "f32";
  uint64_t seed = 0;
  int64_t log_every = 10, eval_every = 0, save_every = 0;  // 0: eval / save only at the end
  int threads = 0;
  // Where the model, the batches and the optimizer state live: "cpu", "cuda", "cuda:N"
  // (docs/cuda.md). Not part of the recipe: a resumed run takes the one it is given.
  std::string device = "cpu";
  std::string out;
  bool resume = false;
  bool quiet = false;
};

std::string pretrain_options_to_json(const PretrainOptions& opt);
PretrainOptions pretrain_options_from_json(const std::string& json);

// A masked batch: inputs i64 [B, T] (the ids after masking) and labels i64 [B, T] (the original
// id at selected positions, kIgnoreLabel elsewhere).
struct MaskedBatch {
  Tensor inputs, labels;
  int64_t selected = 0;  // positions with a label
  int64_t real = 0;      // maskable tokens (not <s>, </s>, <pad>, not padding)
};
constexpr int64_t kIgnoreLabel = -100;

// BERT/RoBERTa masking of ids [B, T] with attention mask [B, T]. Each position draws three
// counters of rng (select, kind, random id), so the result is a pure function of the rng's seed
// and the batch. Random replacements are ordinary pieces [4, mask_id). When no token is selected
// but some are maskable, one of them is (every batch has a loss).
MaskedBatch mask_tokens(const Tensor& ids, const Tensor& attention_mask, int64_t mask_id,
                        double prob, Rng& rng);

struct PretrainStepRecord {
  int64_t step = 0;  // updates done, this one included
  int64_t epoch = 0;
  double loss = 0;  // MLM cross-entropy on the selected tokens, before this step's update
  double lr = 0, grad_norm = 0;
  int64_t tokens = 0, masked = 0;
  double seconds = 0;
};

struct PretrainEvalRecord {
  int64_t step = 0;
  double loss = 0;      // mean cross-entropy over every selected held-out token
  double accuracy = 0;  // top-1 over the same tokens
  int64_t sentences = 0, masked = 0;
};

class Pretrainer {
 public:
  // Reads the config, tokenizer and corpus and initialises the model as `kdnas init --mlm-head`
  // does (encoder from seed, head from seed + 1); with opt.resume, restores everything from
  // opt.out's checkpoint (its recipe; steps, the intervals, threads and quiet may change).
  explicit Pretrainer(const PretrainOptions& opt);
  ~Pretrainer();
  Pretrainer(const Pretrainer&) = delete;
  Pretrainer& operator=(const Pretrainer&) = delete;

  // Trains to total_steps() (or stops at stop_at, writing nothing there: a simulated kill).
  void run(int64_t stop_at = -1);
  PretrainStepRecord train_step();
  PretrainEvalRecord evaluate();
  void save_checkpoint();

  int64_t step() const;
  int64_t total_steps() const;
  const EncoderConfig& config() const;
  const std::vector<PretrainStepRecord>& history() const;
  const std::vector<PretrainEvalRecord>& evals() const;
  std::vector<std::pair<std::string, Tensor>> named_weights() const;

  // For tests: called on the loss of each step before the non-finite check.
  std::function<void(int64_t step, double& loss)> loss_hook;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kdnas
