// kdnas distill --teacher DIR (--student-config FILE.json | --arch L,H,A,F | --student DIR)
//               --corpus FILE [--steps N | --epochs E] [--batch B] [--batch-tokens N] [--seq T]
//               [--lr X] [--loss hs,attn,logits] [--map uniform+last] [--seed S]
//               [--log-every N] [--eval-every N] [--save-every N] [--threads N] --out DIR
//               [--resume] [--precision f32|bf16] [--device cpu|cuda[:N]]
// Distils the teacher into the student on the corpus (distill/trainer.h). The output directory
// is the student's model directory and holds the checkpoint that --resume continues from.
#include <cstdio>
#include <memory>
#include <string>

#include "apps/commands.h"
#include "apps/device_flag.h"
#include "apps/train_flags.h"
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
  add_corpus_flags(cmd, o);
  auto* steps = cmd->add_option("--steps", o->steps, "optimizer steps")->check(CLI::PositiveNumber);
  cmd->add_option("--epochs", o->epochs, "passes over the corpus (default 1 without --steps)")
      ->check(CLI::PositiveNumber)
      ->excludes(steps);
  add_batch_flags(cmd, o);
  add_optim_flags(cmd, o, "peak learning rate (default 1e-4)");
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
  add_run_flags(cmd, o, "output directory: the student and its checkpoint");
  add_precision_flag(cmd, o->precision);
  add_device_flag(cmd, o->device);
  cmd->callback([o] {
    resolve_device(o->device);  // first: nothing is read or written before it
    check_precision_flag(o->precision);
    Trainer trainer(*o);
    trainer.run();
  });
}

}  // namespace kdnas::cli
