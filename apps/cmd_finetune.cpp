// kdnas finetune --model DIR --train FILE.tsv --dev FILE.tsv [--test FILE.tsv] --out DIR
//                [--epochs E] [--batch B] [--seq T] [--lr X] [--patience P] [--seed S]
//                [--threads N] [--precision f32|bf16] [--device cpu|cuda[:N]]
// Fine-tunes the model directory with a fresh classification head on a label<TAB>text or
// label<TAB>text_a<TAB>text_b task (distill/finetune.h), prints a line per epoch and at the end
// one JSON object with the dev (and test) accuracy and macro-F1, also written to
// DIR/results.json. The best epoch's model is in --out.
#include <cstdio>
#include <memory>
#include <string>

#include "apps/commands.h"
#include "apps/device_flag.h"
#include "apps/train_flags.h"
#include "distill/finetune.h"

namespace kdnas::cli {

void add_finetune(CLI::App& app) {
  auto* cmd = app.add_subcommand("finetune", "Fine-tune a model for classification");
  auto o = std::make_shared<FinetuneOptions>();
  cmd->add_option("--model", o->model, "model directory (with its tokenizer)")->required();
  cmd->add_option("--train", o->train, "training TSV: label<TAB>text[<TAB>text_b]")->required();
  cmd->add_option("--dev", o->dev, "dev TSV: early stopping and model selection")->required();
  cmd->add_option("--test", o->test, "test TSV: scored once with the best model");
  cmd->add_option("--out", o->out, "output directory: the fine-tuned model, results.json")
      ->required();
  cmd->add_option("--epochs", o->epochs, "at most this many epochs (default 3)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch", o->batch, "examples per batch (default 32)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seq", o->seq, "max tokens per example (default 128)")
      ->check(CLI::Range(int64_t(4), int64_t(1) << 20));
  cmd->add_option("--lr", o->lr, "peak learning rate (default 5e-5)")->check(CLI::PositiveNumber);
  cmd->add_option("--patience", o->patience,
                  "stop after P epochs without a better dev accuracy (default 2; 0: never)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->seed, "random seed (default 0)");
  cmd->add_option("--threads", o->threads, "threads (default: OMP_NUM_THREADS or all cores)")
      ->check(CLI::NonNegativeNumber);
  add_precision_flag(cmd, o->precision);
  add_device_flag(cmd, o->device);
  cmd->callback([o] {
    resolve_device(o->device);  // first: nothing is read or written before it
    check_precision_flag(o->precision);
    const FinetuneResult r = finetune(*o);
    std::printf("%s\n", finetune_result_json(*o, r).c_str());
  });
}

}  // namespace kdnas::cli
