// The distillation trainer: a frozen teacher, a student on the autograd tape, DistillLoss, AdamW
// with a warmup + decay schedule, held-out evaluation, atomic checkpoints and exact resume.
//
// One step (KDNAS.md, "Proxy distillation"):
//   batch    = the next batch of the corpus (distill/corpus.h)
//   teacher  = under NoGradGuard: InferenceEncoder (all hidden states) when only "hs" is in use;
//              Encoder::forward with return_attention when "attn" needs one layer's q, k, v;
//              the teacher's MLM head on its last state when "logits" is in use
//   student  = Encoder::forward(train, dropout from Rng(rng_hash(seed ^ kDropoutStream, step)))
//   loss     = DistillLoss::compute; backward; clip_grad_norm; lr = schedule(step); AdamW step
// Every source of randomness is a function of (seed, step) or of (seed, epoch), or is in the
// checkpoint, so a run resumed from a checkpoint repeats the uninterrupted run bit for bit (same
// machine, same thread count).
//
// The output directory holds
//   config.json, model.safetensors, sentencepiece.bpe.model   the student (a model directory)
//   train_state.safetensors   everything a resume needs: the student's and the projections'
//                             weights ("student.*", "distill.*"), the optimizer state ("optim.*"),
//                             and in __metadata__ the step, data position, options and student
//                             config; written atomically, so a crash leaves the previous one
//   train_state.json          the same metadata, readable (informational; resume reads the above)
//   log.jsonl                 one JSON object per logged step and per evaluation
// A non-finite loss or gradient norm stops the run with an error before anything is written, so
// the last checkpoint stays the last good one. The checkpoint, log and update machinery is
// distill/train_loop.h, shared with the MLM pretrainer (distill/pretrain.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "distill/corpus.h"
#include "distill/losses.h"
#include "distill/train_loop.h"
#include "transformer/config.h"

namespace kdnas {

struct TrainOptions {
  // Models. The student is one of: student_dir (weights to start from), student_config (a
  // config.json), arch "L,H,A,F" (layers, hidden, heads, FFN; the rest from the teacher).
  std::string teacher;
  // The teacher's inference path when only "hs" is in use: "f32", or "bf16" (AMX GEMMs with f32
  // accumulation: targets within bf16 rounding of the f32 ones, several times faster).
  std::string teacher_dtype = "f32";
  std::string student_dir, student_config, arch;
  // Data.
  std::string corpus;
  CorpusOptions corpus_opt;
  int64_t batch = 32, batch_tokens = 0, seq = 128;
  // Length: steps, or else epochs passes over the training sentences (1 when both are 0).
  int64_t steps = 0, epochs = 0;
  // Optimisation.
  double lr = 1e-4;
  int64_t warmup = -1;  // steps; -1: 10% of the run
  std::string decay = "linear";
  double weight_decay = 0.01;
  double clip = 1.0;    // max global gradient norm (0: no clipping)
  bool dropout = true;  // the student's dropout (the config's probabilities) while training
  // The student's training GEMMs (autograd/precision.h): "f32", or "bf16" (bf16 operands, f32
  // accumulation; weights, optimizer state and gradients stay f32). The teacher's path is
  // teacher_dtype's; evaluation is f32.
  std::string precision = "f32";
  // Loss.
  std::string loss = "hs";
  std::string map = "uniform+last";
  bool shared_projection = false;
  int64_t relation_heads = 0;  // 0: the largest of 12, 8, 6, 4, 2, 1 dividing both widths
  double temperature = 2.0;
  uint64_t seed = 0;
  // Bookkeeping.
  int64_t log_every = 10, eval_every = 0, save_every = 0;  // 0: eval / save only at the end
  int threads = 0;
  // Where the model, the batches and the optimizer state live: "cpu", "cuda", "cuda:N"
  // (docs/cuda.md). Not part of the recipe: a resumed run takes the one it is given.
  std::string device = "cpu";
  std::string out;
  bool resume = false;
  bool quiet = false;  // no progress lines (tests)
};

// The options as JSON (stored in checkpoints) and back; a missing key keeps its default.
std::string train_options_to_json(const TrainOptions& opt);
TrainOptions train_options_from_json(const std::string& json);

// "L,H,A,F" -> the teacher's config with those four sizes; errors name the bad part.
EncoderConfig student_config_from_arch(const std::string& arch, const EncoderConfig& teacher);

struct StepRecord {
  int64_t step = 0;  // updates done, this one included (1-based)
  int64_t epoch = 0;
  double loss = 0;                               // the total, before this step's update
  double hidden = 0, attention = 0, logits = 0;  // the terms in use (0 otherwise)
  double lr = 0, grad_norm = 0;
  int64_t tokens = 0;  // real tokens in the batch
  double seconds = 0;  // wall time of the step
};

struct EvalRecord {
  int64_t step = 0;
  double loss = 0, hidden = 0, attention = 0, logits = 0;  // token-weighted means over batches
  int64_t sentences = 0, tokens = 0;
};

class Trainer {
 public:
  // Loads the teacher, tokenizer and corpus and builds the student, loss and optimizer; with
  // opt.resume, restores all of it from opt.out's train_state.safetensors (the checkpoint's
  // options are used; steps, epochs, the log/eval/save intervals, threads and quiet may be
  // changed by opt). Without resume, an out directory that already holds a training state is
  // an error.
  explicit Trainer(const TrainOptions& opt);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains until total_steps(), or until step() == stop_at when stop_at >= 0 (an interruption,
  // for tests: nothing is saved at that point). Checkpoints every save_every steps and at the
  // end; evaluates every eval_every steps and at the end.
  void run(int64_t stop_at = -1);

  // One update; returns its record (also appended to history()).
  StepRecord train_step();
  EvalRecord evaluate();
  void save_checkpoint();

  int64_t step() const;
  int64_t total_steps() const;
  DataPosition position() const;
  const TrainOptions& options() const;
  const EncoderConfig& student_config() const;
  const std::vector<StepRecord>& history() const;
  const std::vector<EvalRecord>& evals() const;
  // Every trained parameter (student, MLM head, projections) with its checkpoint name.
  std::vector<std::pair<std::string, Tensor>> named_weights() const;
  // The optimizer's state tensors (live).
  std::vector<std::pair<std::string, Tensor>> optimizer_state() const;

  // For tests: called on the loss of each step before the non-finite check.
  std::function<void(int64_t step, double& loss)> loss_hook;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kdnas
