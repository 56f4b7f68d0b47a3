// The command-line flags that the training commands (distill, pretrain) share, registered on a
// subcommand in blocks so that each command keeps its own flags, and their order, around them.
// O is the command's options struct (TrainOptions, PretrainOptions): the same field names.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "autograd/precision.h"

namespace kdnas::cli {

// --text-column, --eval-every-line, --eval-first: how the corpus is read and split.
template <class O>
void add_corpus_flags(CLI::App* cmd, const std::shared_ptr<O>& o) {
  cmd->add_option("--text-column", o->corpus_opt.text_column,
                  "TSV: the column holding the text, from 0 (default: the whole line)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-every-line", o->corpus_opt.eval_every,
                  "hold out every N-th sentence for evaluation (default 50; 0: none)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-first", o->corpus_opt.eval_first,
                  "hold out the first N sentences instead")
      ->check(CLI::NonNegativeNumber);
}

// --batch, --batch-tokens, --seq.
template <class O>
void add_batch_flags(CLI::App* cmd, const std::shared_ptr<O>& o) {
  cmd->add_option("--batch", o->batch, "sentences per batch (default 32)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch-tokens", o->batch_tokens, "padded tokens per batch instead of --batch")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seq", o->seq, "max tokens per sentence (default 128)")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 20));
}

// --lr (its help, with the command's default, given), --warmup, --decay, --weight-decay, --clip,
// --no-dropout.
template <class O>
void add_optim_flags(CLI::App* cmd, const std::shared_ptr<O>& o, const char* lr_help) {
  cmd->add_option("--lr", o->lr, lr_help)->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", o->warmup, "warmup steps (default 10% of the run)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--decay", o->decay, "lr decay after warmup: linear, cosine, constant")
      ->check(CLI::IsMember({"linear", "cosine", "constant"}));
  cmd->add_option("--weight-decay", o->weight_decay, "AdamW weight decay (default 0.01)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--clip", o->clip, "max gradient norm (default 1; 0: off)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag(
      "--no-dropout", [o](int64_t) { o->dropout = false; }, "train without dropout");
}

// --seed, --log-every, --eval-every, --save-every, --threads, --out (required; its help given),
// --resume.
template <class O>
void add_run_flags(CLI::App* cmd, const std::shared_ptr<O>& o, const char* out_help) {
  cmd->add_option("--seed", o->seed, "random seed (default 0)");
  cmd->add_option("--log-every", o->log_every, "a progress line every N steps (default 10)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--eval-every", o->eval_every, "evaluate every N steps (default: at the end)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--save-every", o->save_every, "checkpoint every N steps (default: at the end)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", o->threads, "threads (default: OMP_NUM_THREADS or all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--out", o->out, out_help)->required();
  cmd->add_flag("--resume", o->resume,
                "continue the run in --out from its checkpoint (its recipe; --steps may change)");
}

// --precision f32|bf16: the training GEMMs (autograd/precision.h), for distill, pretrain and
// finetune. The value is checked by check_precision_flag at the start of the command's callback,
// not by CLI11, so that a bad one is a single error line and exit 1 like the other bad input
// (CLI11's parse errors exit 2).
inline CLI::Option* add_precision_flag(CLI::App* cmd, std::string& precision) {
  return cmd->add_option("--precision", precision,
                         "training GEMMs: f32 (default) or bf16 (bf16 operands, f32 "
                         "accumulation and master weights; AMX where the CPU has it)");
}
inline void check_precision_flag(const std::string& precision) {
  parse_gemm_precision(precision, "--precision");
}

}  // namespace kdnas::cli
