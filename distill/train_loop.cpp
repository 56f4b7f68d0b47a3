#include "distill/train_loop.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tensor/check.h"

namespace kdnas {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
void write_text_atomically(const std::string& path, const std::string& text,
                           const std::string& who) {
  write_file_atomically(path, {{text.data(), text.size()}}, who);
}
}  // namespace

std::optional<SafetensorsFile> open_train_state(const std::string& out, bool resume,
                                                const std::string& format, const std::string& kind,
                                                const std::string& who) {
  KDNAS_CHECK(!out.empty(), who, ": --out is required");
  const fs::path state_path = fs::path(out) / kTrainStateFile;
  if (!resume) {
    KDNAS_CHECK(!fs::exists(state_path), who, ": ", out, " already holds a training run (",
                kTrainStateFile, "); pass --resume to continue it or choose another --out");
    return std::nullopt;
  }
  KDNAS_CHECK(fs::exists(state_path), who, ": --resume: there is no ", state_path.string());
  SafetensorsFile state = SafetensorsFile::open(state_path.string());
  const auto& meta = state.metadata();
  KDNAS_CHECK(meta.count("format") && meta.at("format") == format && meta.count("options"), who,
              ": ", state_path.string(), " is not a kdnas ", kind, " state");
  return state;
}

int64_t train_state_int(const SafetensorsFile& state, const std::string& key,
                        const std::string& who) {
  const auto& meta = state.metadata();
  KDNAS_CHECK(meta.count(key), who, ": ", state.path(), " has no '", key, "' metadata");
  try {
    return std::stoll(meta.at(key));
  } catch (const std::exception&) {
    KDNAS_CHECK(false, who, ": ", state.path(), ": '", key, "' is not an integer");
  }
  return 0;
}

void restore_parameters(const SafetensorsFile& state,
                        const std::vector<std::pair<std::string, Variable>>& params,
                        const std::string& who) {
  for (const auto& [name, v] : params) {
    const std::string key = "param." + name;
    KDNAS_CHECK(state.contains(key), who, ": ", state.path(), " has no ", key,
                " (was it written for another model or loss?)");
    Tensor t = state.get(key);
    KDNAS_CHECK(t.shape() == v.shape() && t.dtype() == v.dtype(), who, ": ", state.path(), ": ",
                key, " has shape ", t.shape(), " but the model needs ", v.shape());
    const Device dev = v.value().device();
    Variable(v).set_value(dev.is_cpu() ? t.clone() : t.to(dev));
  }
}

void restore_optimizer(const SafetensorsFile& state, AdamW& optim, Device device) {
  NamedTensors ostate;
  for (const auto& name : state.names()) {
    if (name.rfind("optim.", 0) != 0) continue;
    Tensor t = state.get(name);
    // The slots follow the parameters; "<param>.step" is an i64 scalar read on the host.
    const bool is_step = name.size() >= 5 && name.compare(name.size() - 5, 5, ".step") == 0;
    if (!device.is_cpu() && !is_step) t = t.to(device);
    ostate.emplace_back(name.substr(6), t);
  }
  optim.load_state(ostate);
}

void write_train_state(const std::string& out,
                       const std::vector<std::pair<std::string, Variable>>& params,
                       const AdamW& optim, const std::map<std::string, std::string>& metadata,
                       const std::string& readable, const std::string& who) {
  fs::create_directories(out);
  NamedTensors tensors;
  for (const auto& [name, v] : params) tensors.emplace_back("param." + name, v.value());
  for (const auto& [key, t] : optim.state()) tensors.emplace_back("optim." + key, t);
  write_safetensors((fs::path(out) / kTrainStateFile).string(), tensors, metadata);
  write_text_atomically((fs::path(out) / kTrainStateJson).string(), readable, who);
}

std::unique_ptr<AdamW> make_adamw(const std::vector<Variable>& params, double lr,
                                  double weight_decay) {
  AdamWOptions aopt;
  aopt.lr = lr;
  return std::make_unique<AdamW>(split_decay_groups(params, weight_decay), aopt);
}

LrSchedule make_schedule(double lr, int64_t warmup, int64_t total, const std::string& decay) {
  const int64_t w = warmup >= 0 ? std::min(warmup, total) : total / 10;
  return LrSchedule(lr, w, total, decay_from_name(decay));
}

std::string checkpoint_note(int64_t last_saved, const std::string& out) {
  return last_saved >= 0
             ? "the last good checkpoint (step " + std::to_string(last_saved) + ") is in " + out
             : "no checkpoint was written yet";
}

void check_finite_loss(double loss, int64_t step, const std::string& note, const std::string& who) {
  KDNAS_CHECK(std::isfinite(loss), who, ": step ", step, ": the loss is ", loss,
              " (not finite); stopping (lower --lr?); ", note);
}

UpdateStats apply_update(Context& ctx, const Variable& loss, const std::vector<Variable>& params,
                         AdamW& optim, const LrSchedule& schedule, int64_t step, double clip,
                         const std::string& note, const std::string& who) {
  UpdateStats s;
  optim.zero_grad();
  loss.backward();
  s.grad_norm = clip > 0 ? clip_grad_norm(ctx, params, clip) : grad_norm(ctx, params);
  KDNAS_CHECK(std::isfinite(s.grad_norm), who, ": step ", step + 1, ": the gradient norm is ",
              s.grad_norm, " (not finite); stopping (lower --lr?); ", note);
  s.lr = schedule.lr_at(step);
  optim.set_lr(s.lr);
  optim.step(ctx);
  return s;
}

std::string format_hms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
  const long s = long(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

// ---- TrainLog -------------------------------------------------------------------------------

TrainLog::~TrainLog() {
  if (log_) std::fclose(log_);
}

void TrainLog::open(const std::string& out, bool resumed, int64_t step, bool quiet,
                    const std::string& who) {
  quiet_ = quiet;
  tty_ = !quiet && isatty(fileno(stdout));
  fs::create_directories(out);
  const std::string p = (fs::path(out) / kTrainLogFile).string();
  if (resumed && fs::exists(p)) {
    // Keep the rows up to the checkpoint; the resumed run writes the later ones again. A row
    // cut short by a kill does not parse and is dropped.
    std::ifstream in(p);
    std::string line, kept;
    while (std::getline(in, line)) {
      json row = json::parse(line, nullptr, false);
      if (row.is_object() && row.contains("step") && row["step"].is_number_integer() &&
          row["step"].get<int64_t>() <= step)
        kept += line + "\n";
    }
    write_text_atomically(p, kept, who);
  } else {
    write_text_atomically(p, "", who);
  }
  if (log_) std::fclose(log_);
  log_ = std::fopen(p.c_str(), "a");
  KDNAS_CHECK(log_, who, ": cannot open ", p, " for appending");
}

void TrainLog::row(const std::string& json_object) {
  const std::string s = json_object + "\n";
  std::fwrite(s.data(), 1, s.size(), log_);
  std::fflush(log_);
}

void TrainLog::count_step(double seconds, int64_t tokens) {
  window_seconds_ += seconds;
  window_tokens_ += tokens;
  run_seconds_ += seconds;
  run_steps_ += 1;
}

double TrainLog::tokens_per_s() const {
  return window_seconds_ > 0 ? window_tokens_ / window_seconds_ : 0;
}

double TrainLog::eta_s(int64_t done, int64_t total) const {
  return run_steps_ > 0 ? run_seconds_ / run_steps_ * double(total - done) : 0;
}

void TrainLog::reset_window() {
  window_seconds_ = 0;
  window_tokens_ = 0;
}

void TrainLog::progress(const std::string& text) {
  if (quiet_) return;
  std::printf("%s%s%s", tty_ ? "\r" : "", text.c_str(), tty_ ? "\033[K" : "\n");
  line_open_ = tty_;
  std::fflush(stdout);
}

void TrainLog::print(const std::string& line) {
  if (quiet_) return;
  end_line();
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

void TrainLog::end_line() {
  if (line_open_) std::fputc('\n', stdout);
  line_open_ = false;
}

}  // namespace kdnas
