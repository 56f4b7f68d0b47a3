// kdnas distill --teacher DIR (--student-config FILE.json | --arch L,H,A,F | --student DIR)
//               --corpus FILE [--steps N | --epochs E] [--batch B] [--batch-tokens N] [--seq T]
//               [--lr X] [--loss hs,attn,logits] [--map uniform+last] [--seed S]
//               [--log-every N] [--eval-every N] [--save-every N] [--threads N] --out DIR
//               [--resume]
// Distils the teacher into the student on the corpus (distill/trainer.h). The output directory
// is the student's model directory and holds the checkpoint that --resume continues from.
#include <cstdio>
#include <memory>
#include <string>

#include "apps/commands.h"
#include "distill/trainer.h"

namespace kdnas::cli {

void add_distill(CLI::App& app) {
  auto* cmd = app.add_subcommand("distill", "Distil a teacher into a smaller student");
  auto o = std::make_shared<TrainOptions>();
  cmd->add_option("--teacher", o->teacher, "teacher model directory (with its tokenizer)");
  cmd->add_option("--teacher-dtype", o->teacher_dtype,
                  "teacher inference dtype with --loss hs: f32 (default) or bf16 (AMX)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd->add_option("--student-config", o->student_config, "student config.json");
  cmd->add_option("--arch", o->arch,
                  "student as L,H,A,F: layers, hidden, heads, FFN (the rest from the teacher)");
  cmd->add_option("--student", o->student_dir, "student model directory to start from");
  cmd->add_option("--corpus", o->corpus, "text file: one sentence per line (or TSV)");
  cmd->add_option("--text-column", o->corpus_opt.text_column,
                  "TSV: the column holding the text, from 0 (default: the whole line)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-every-line", o->corpus_opt.eval_every,
                  "hold out every N-th sentence for evaluation (default 50; 0: none)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-first", o->corpus_opt.eval_first,
                  "hold out the first N sentences instead")
      ->check(CLI::NonNegativeNumber);
  auto* steps = cmd->add_option("--steps", o->steps, "optimizer steps")->check(CLI::PositiveNumber);
  cmd->add_option("--epochs", o->epochs, "passes over the corpus (default 1 without --steps)")
      ->check(CLI::PositiveNumber)
      ->excludes(steps);
  cmd->add_option("--batch", o->batch, "sentences per batch (default 32)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch-tokens", o->batch_tokens, "padded tokens per batch instead of --batch")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seq", o->seq, "max tokens per sentence (default 128)")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  cmd->add_option("--lr", o->lr, "peak learning rate (default 1e-4)")->check(CLI::PositiveNumber);
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
  cmd->add_option("--loss", o->loss, "loss terms: any of hs,attn,logits (default hs)");
  cmd->add_option("--map", o->map,
                  "layer map: uniform+last (default), uniform, last, or a list such as 3,7,11");
  cmd->add_flag("--shared-projection", o->shared_projection,
                "one projection for every student layer");
  cmd->add_option("--relation-heads", o->relation_heads,
                  "attn: relation heads (default: the largest of 12, 8, 6, 4, 2 dividing both)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature", o->temperature, "logits: temperature (default 2)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o->seed, "random seed (default 0)");
  cmd->add_option("--log-every", o->log_every, "a progress line every N steps (default 10)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--eval-every", o->eval_every, "evaluate every N steps (default: at the end)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--save-every", o->save_every, "checkpoint every N steps (default: at the end)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", o->threads, "threads (default: OMP_NUM_THREADS or all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--out", o->out, "output directory: the student and its checkpoint")->required();
  cmd->add_flag("--resume", o->resume,
                "continue the run in --out from its checkpoint (its recipe; --steps may change)");
  cmd->callback([o] {
    Trainer trainer(*o);
    trainer.run();
  });
}

}  // namespace kdnas::cli
