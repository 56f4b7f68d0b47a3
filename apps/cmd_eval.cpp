// kdnas eval --model DIR --data FILE.tsv [--batch B] [--seq T] [--threads N]
//            [--dtype f32|bf16|int8] [--device cpu|cuda[:N]]
// Scores a fine-tuned model directory (one with a classifier, from kdnas finetune) on a task TSV
// and prints one JSON object: {"accuracy", "macro_f1", "examples", "labels", ...}.
#include <cstdio>
#include <memory>
#include <string>

#include "apps/commands.h"
#include "apps/device_flag.h"
#include "distill/finetune.h"

namespace kdnas::cli {

void add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Accuracy and macro-F1 of a fine-tuned classifier");
  auto o = std::make_shared<EvalOptions>();
  cmd->add_option("--model", o->model, "fine-tuned model directory (with a classifier)")
      ->required();
  cmd->add_option("--data", o->data, "TSV: label<TAB>text[<TAB>text_b]")->required();
  cmd->add_option("--batch", o->batch, "examples per batch (default 32)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seq", o->seq, "max tokens per example (default 128)")
      ->check(CLI::Range(int64_t(4), int64_t(1) << 20));
  cmd->add_option("--threads", o->threads, "threads (default: OMP_NUM_THREADS or all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--dtype", o->dtype,
                  "run the encoder on the inference path in f32, bf16 or int8 (default: the "
                  "training path, f32)")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}));
  add_device_flag(cmd, o->device);
  cmd->callback([o] {
    resolve_device(o->device);  // first: nothing is read before it
    const EvalResult r = evaluate_classifier(*o);
    std::printf("%s\n", eval_result_json(*o, r).c_str());
  });
}

}  // namespace kdnas::cli
