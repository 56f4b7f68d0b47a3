// The machinery every kdnas trainer shares (distillation in distill/trainer.h, MLM pretraining
// in distill/pretrain.h): the output directory's checkpoint files, exact restore, the update
// (backward, clipping, non-finite stop, scheduled AdamW step), log.jsonl and progress lines.
//
// A trainer's output directory holds
//   train_state.safetensors   what a resume needs: the trained weights ("param.<name>"), the
//                             optimizer state ("optim.<key>"), and in __metadata__ the format,
//                             step, data position and recipe; written atomically, so a crash
//                             leaves the previous one
//   train_state.json          the same metadata, readable (informational; resume reads the above)
//   log.jsonl                 one JSON object per logged step and per evaluation
// `who` ("distill", "pretrain") prefixes every error message.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/optim.h"
#include "autograd/schedule.h"
#include "autograd/variable.h"
#include "kernels/context.h"
#include "transformer/safetensors.h"

namespace kdnas {

// The checkpoint file names inside the output directory.
constexpr const char* kTrainStateFile = "train_state.safetensors";
constexpr const char* kTrainStateJson = "train_state.json";
constexpr const char* kTrainLogFile = "log.jsonl";

// A fresh run (resume false): out must not hold a training state yet; returns nothing. A resume:
// out must hold one whose metadata "format" is `format` and which has "options"; returns it
// opened. `kind` names the run in errors ("distillation", "pretraining").
std::optional<SafetensorsFile> open_train_state(const std::string& out, bool resume,
                                                const std::string& format, const std::string& kind,
                                                const std::string& who);

// An integer from the state's metadata; a missing or non-integer entry is an error.
int64_t train_state_int(const SafetensorsFile& state, const std::string& key,
                        const std::string& who);

// Sets every parameter from "param.<name>" (shape and dtype checked; the value goes to the device
// the parameter is on), then the optimizer's slots from "optim.<key>" (to `device`, where the
// parameters are; the step counts stay on the host). Restore the weights before the
// optimizer's first step.
void restore_parameters(const SafetensorsFile& state,
                        const std::vector<std::pair<std::string, Variable>>& params,
                        const std::string& who);
void restore_optimizer(const SafetensorsFile& state, AdamW& optim, Device device = cpu_device());

// Writes train_state.safetensors (params, optimizer state, metadata) and train_state.json
// (`readable`, the metadata as JSON text), each atomically. Tensors on a GPU are written from
// host copies (write_safetensors makes them).
void write_train_state(const std::string& out,
                       const std::vector<std::pair<std::string, Variable>>& params,
                       const AdamW& optim, const std::map<std::string, std::string>& metadata,
                       const std::string& readable, const std::string& who);

// AdamW over the params (no decay on biases and LayerNorm weights) and the warmup + decay
// schedule (warmup < 0: 10% of the run).
std::unique_ptr<AdamW> make_adamw(const std::vector<Variable>& params, double lr,
                                  double weight_decay);
LrSchedule make_schedule(double lr, int64_t warmup, int64_t total, const std::string& decay);

// What a non-finite stop says about the checkpoint on disk.
std::string checkpoint_note(int64_t last_saved, const std::string& out);
// Errors "<who>: step N: the loss is nan (not finite); stopping (lower --lr?); <note>".
void check_finite_loss(double loss, int64_t step, const std::string& note, const std::string& who);

struct UpdateStats {
  double grad_norm = 0;  // before clipping
  double lr = 0;
};
// One optimizer update from a loss: zero_grad, backward, clip to `clip` (0: measure only),
// stop on a non-finite norm (nothing updated), lr = schedule(step), AdamW step. `step` is the
// number of updates done before this one.
UpdateStats apply_update(Context& ctx, const Variable& loss, const std::vector<Variable>& params,
                         AdamW& optim, const LrSchedule& schedule, int64_t step, double clip,
                         const std::string& note, const std::string& who);

// "H:MM:SS".
std::string format_hms(double seconds);

// log.jsonl and the console: progress lines (one overwritten line on a terminal, one line per
// call otherwise), tokens/s over the steps since the last progress line, and the ETA.
class TrainLog {
 public:
  TrainLog() = default;
  ~TrainLog();
  TrainLog(const TrainLog&) = delete;
  TrainLog& operator=(const TrainLog&) = delete;

  // Opens out/log.jsonl. resumed: keeps the rows whose "step" is <= step (a resumed run writes
  // the later ones again; a row cut short by a kill is dropped); otherwise starts it empty.
  void open(const std::string& out, bool resumed, int64_t step, bool quiet, const std::string& who);
  void row(const std::string& json_object);  // one line, flushed

  void count_step(double seconds, int64_t tokens);  // after every step
  double tokens_per_s() const;                      // over the window since the last progress
  double eta_s(int64_t done, int64_t total) const;  // from this run's mean step time
  void reset_window();

  bool quiet() const { return quiet_; }
  void progress(const std::string& text);  // no-op when quiet
  void print(const std::string& line);     // a whole line (ends an open progress line first)
  void end_line();

 private:
  std::FILE* log_ = nullptr;
  bool quiet_ = false, tty_ = false, line_open_ = false;
  double window_seconds_ = 0, run_seconds_ = 0;
  int64_t window_tokens_ = 0, run_steps_ = 0;
};

// The step loop of a trainer's run() after its banner: steps until `total` (or stop_at, when >= 0)
// with a progress line every log_every steps (and at the first and last), an evaluation every
// eval_every and a checkpoint every save_every; then, unless stopped early (tests: nothing more
// is written), a final evaluation, the checkpoint and the "wrote" line. T is the trainer (its
// train_step, evaluate, save_checkpoint), M its implementation (step, total, eval_batches, tlog,
// progress), O its options.
template <class T, class M, class O>
void run_train_loop(T& trainer, M& m, const O& o, int64_t stop_at) {
  while (m.step < m.total && (stop_at < 0 || m.step < stop_at)) {
    const auto r = trainer.train_step();
    if (r.step % o.log_every == 0 || r.step == 1 || r.step == m.total) m.progress(r);
    if (r.step == m.total) break;
    if (o.eval_every > 0 && r.step % o.eval_every == 0 && !m.eval_batches.empty())
      trainer.evaluate();
    if (o.save_every > 0 && r.step % o.save_every == 0) trainer.save_checkpoint();
  }
  if (m.step < m.total) {  // interrupted on purpose (tests): nothing more is written
    m.tlog.end_line();
    return;
  }
  if (!m.eval_batches.empty()) trainer.evaluate();
  trainer.save_checkpoint();
  m.tlog.print("wrote " + o.out + " (step " + std::to_string(m.step) + ")");
}

}  // namespace kdnas
