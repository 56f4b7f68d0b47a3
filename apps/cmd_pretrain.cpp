// kdnas pretrain --config FILE.json --corpus FILE --tokenizer FILE.model --steps N --out DIR
//                [--resume] [--batch B] [--batch-tokens N] [--seq T] [--lr X] [--warmup N]
//                [--seed S] [--log-every N] [--eval-every N] [--save-every N] [--threads N]
//                [--text-column N] [--precision f32|bf16] [--device cpu|cuda[:N]]
// Masked-language-model pretraining of a fresh encoder + MLM head (distill/pretrain.h). The
// output directory is the model directory (XLMRobertaForMaskedLM, with the tokenizer) and holds
// the checkpoint that --resume continues from.
#include <memory>
#include <string>

#include "apps/commands.h"
#include "apps/device_flag.h"
#include "apps/train_flags.h"
#include "distill/pretrain.h"

namespace kdnas::cli {

void add_pretrain(CLI::App& app) {
  auto* cmd = app.add_subcommand("pretrain", "Masked-language-model pretraining of a new encoder");
  auto o = std::make_shared<PretrainOptions>();
  cmd->add_option("--config", o->config, "config.json of the model to train");
  cmd->add_option("--corpus", o->corpus, "text file: one sentence per line (or TSV)");
  cmd->add_option("--tokenizer", o->tokenizer, "sentencepiece model (kdnas tokenizer-train)");
  add_corpus_flags(cmd, o);
  cmd->add_option("--steps", o->steps, "optimizer steps")->check(CLI::PositiveNumber);
  add_batch_flags(cmd, o);
  cmd->add_option("--mask-prob", o->mask_prob, "fraction of tokens masked (default 0.15)")
      ->check(CLI::Range(0.0, 1.0));
  add_optim_flags(cmd, o, "peak learning rate (default 5e-4)");
  add_run_flags(cmd, o, "output directory: the model and its checkpoint");
  add_precision_flag(cmd, o->precision);
  add_device_flag(cmd, o->device);
  cmd->callback([o] {
    resolve_device(o->device);  // first: nothing is read or written before it
    check_precision_flag(o->precision);
    Pretrainer trainer(*o);
    trainer.run();
  });
}

}  // namespace kdnas::cli
