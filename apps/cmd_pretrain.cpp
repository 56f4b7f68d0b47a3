// kdnas pretrain --config FILE.json --corpus FILE --tokenizer FILE.model --steps N --out DIR
//                [--resume] [--batch B] [--batch-tokens N] [--seq T] [--lr X] [--warmup N]
//                [--seed S] [--log-every N] [--eval-every N] [--save-every N] [--threads N]
//                [--text-column N]
// Masked-language-model pretraining of a fresh encoder + MLM head (distill/pretrain.h). The
// output directory is the model directory (XLMRobertaForMaskedLM, with the tokenizer) and holds
// the checkpoint that --resume continues from.
#include <memory>
#include <string>

#include "apps/commands.h"
#include "distill/pretrain.h"

namespace kdnas::cli {

void add_pretrain(CLI::App& app) {
  auto* cmd = app.add_subcommand("pretrain", "Masked-language-model pretraining of a new encoder");
  auto o = std::make_shared<PretrainOptions>();
  cmd->add_option("--config", o->config, "config.json of the model to train");
  cmd->add_option("--corpus", o->corpus, "text file: one sentence per line (or TSV)");
  cmd->add_option("--tokenizer", o->tokenizer, "sentencepiece model (kdnas tokenizer-train)");
  cmd->add_option("--text-column", o->corpus_opt.text_column,
                  "TSV: the column holding the text, from 0 (default: the whole line)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-every-line", o->corpus_opt.eval_every,
                  "hold out every N-th sentence for evaluation (default 50; 0: none)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-first", o->corpus_opt.eval_first,
                  "hold out the first N sentences instead")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--steps", o->steps, "optimizer steps")->check(CLI::PositiveNumber);
  cmd->add_option("--batch", o->batch, "sentences per batch (default 32)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch-tokens", o->batch_tokens, "padded tokens per batch instead of --batch")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seq", o->seq, "max tokens per sentence (default 128)")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  cmd->add_option("--mask-prob", o->mask_prob, "fraction of tokens masked (default 0.15)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--lr", o->lr, "peak learning rate (default 5e-4)")->check(CLI::PositiveNumber);
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
  cmd->add_option("--seed", o->seed, "random seed (default 0)");
  cmd->add_option("--log-every", o->log_every, "a progress line every N steps (default 10)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--eval-every", o->eval_every, "evaluate every N steps (default: at the end)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--save-every", o->save_every, "checkpoint every N steps (default: at the end)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", o->threads, "threads (default: OMP_NUM_THREADS or all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--out", o->out, "output directory: the model and its checkpoint")->required();
  cmd->add_flag("--resume", o->resume,
                "continue the run in --out from its checkpoint (its recipe; --steps may change)");
  cmd->callback([o] {
    Pretrainer trainer(*o);
    trainer.run();
  });
}

}  // namespace kdnas::cli
