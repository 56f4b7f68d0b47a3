// kdnas demo --teacher DIR --corpus FILE --langid DIR --pairs DIR --out RUN_DIR
//            [--episodes E] [--candidates N] [--students K] [--distill-steps N]
//            [--finetune-epochs E] [--threads N] [--seq T] [--min-speedup X,Y,...]
//            [--budget-ms X,Y,...] [--train-max N] [--space FILE] [--resume] [--quick] ...
// KD-NAS end to end, in process (docs/demo.md): (1) the search (nas/search.h, proxy distillation
// by apps/proxy_distill.h as in `kdnas search`), (2) the top K architectures distilled on the
// corpus (distill/trainer.h), (3) the teacher and every student fine-tuned the same way on both
// tasks (distill/finetune.h), (4) the latency of all of them with the same kernels, threads,
// batch and length (nas/latency.h), plus XLM-R Base's shape with random weights, (5) one table,
// printed and written to RUN_DIR/demo.md and RUN_DIR/demo.json.
// RUN_DIR holds command.json (the settings; --resume reads them back), search/ (the search's run
// directory), students/L_H_A_F/ (each distilled student, distill.json when done),
// tasks/<task>/train.tsv (a task's training split cut to --train-max examples, when larger),
// finetune/<model>/<task>/ (each fine-tuned model, results.json when done), latency.json.
// A stage whose output exists is skipped, so a killed run continues with --resume.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "apps/proxy_distill.h"
#include "distill/finetune.h"
#include "distill/tasks.h"
#include "distill/trainer.h"
#include "nas/latency.h"
#include "nas/search.h"
#include "tensor/check.h"
#include "transformer/model_dir.h"

namespace kdnas::cli {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr const char* kCommandFile = "command.json";
constexpr const char* kDistillDone = "distill.json";

struct DemoArgs {
  std::string teacher, corpus, langid, pairs, out, space, budgets;
  std::string speedups = "5,10";  // --min-speedup: a budget of teacher latency / X for each X
  int64_t train_max = 2000;       // a task's training split is cut to this many examples
  int64_t text_column = -1;
  int64_t episodes = 3, candidates = 4, students = 2, pool = 100;
  int64_t proxy_sentences = 256, proxy_epochs = 2;
  int64_t distill_steps = 500, finetune_epochs = 4;
  int64_t batch = 32, seq = 128, threads = 2, latency_runs = 10;
  double proxy_lr = 2e-3, distill_lr = 1e-3, finetune_lr = 1e-3;
  double pairs_lr = 3e-4;  // --pairs-lr: the fine-tuning lr of the translation-pair task
  uint64_t seed = 0;
  bool xlmr_base = true;
  bool resume = false, quick = false;
};

std::string args_to_json(const DemoArgs& a) {
  ojson j;
  j["teacher"] = a.teacher, j["corpus"] = a.corpus, j["langid"] = a.langid;
  j["pairs"] = a.pairs, j["space"] = a.space, j["budgets"] = a.budgets;
  j["text_column"] = a.text_column, j["episodes"] = a.episodes, j["candidates"] = a.candidates;
  j["students"] = a.students, j["pool"] = a.pool, j["proxy_sentences"] = a.proxy_sentences;
  j["proxy_epochs"] = a.proxy_epochs, j["distill_steps"] = a.distill_steps;
  j["finetune_epochs"] = a.finetune_epochs, j["batch"] = a.batch, j["seq"] = a.seq;
  j["threads"] = a.threads, j["latency_runs"] = a.latency_runs, j["proxy_lr"] = a.proxy_lr;
  j["distill_lr"] = a.distill_lr, j["finetune_lr"] = a.finetune_lr, j["seed"] = a.seed;
  j["xlmr_base"] = a.xlmr_base, j["quick"] = a.quick;
  j["min_speedup"] = a.speedups, j["train_max"] = a.train_max, j["pairs_lr"] = a.pairs_lr;
  return j.dump(2) + "\n";
}

DemoArgs args_from_json(const std::string& text, const std::string& what) {
  DemoArgs a;
  try {
    const json j = json::parse(text);
    a.teacher = j.at("teacher"), a.corpus = j.at("corpus"), a.langid = j.at("langid");
    a.pairs = j.at("pairs"), a.space = j.at("space"), a.budgets = j.at("budgets");
    a.text_column = j.at("text_column"), a.episodes = j.at("episodes");
    a.candidates = j.at("candidates"), a.students = j.at("students"), a.pool = j.at("pool");
    a.proxy_sentences = j.at("proxy_sentences"), a.proxy_epochs = j.at("proxy_epochs");
    a.distill_steps = j.at("distill_steps"), a.finetune_epochs = j.at("finetune_epochs");
    a.batch = j.at("batch"), a.seq = j.at("seq"), a.threads = j.at("threads");
    a.latency_runs = j.at("latency_runs"), a.proxy_lr = j.at("proxy_lr");
    a.distill_lr = j.at("distill_lr"), a.finetune_lr = j.at("finetune_lr");
    a.seed = j.at("seed"), a.xlmr_base = j.at("xlmr_base"), a.quick = j.at("quick");
    a.speedups = j.at("min_speedup"), a.train_max = j.at("train_max");
    // A demo started before --pairs-lr existed fine-tuned both tasks with --finetune-lr.
    a.pairs_lr = j.value("pairs_lr", a.finetune_lr);
  } catch (const json::exception& e) {
    KDNAS_CHECK(false, "demo: ", what, " is not a kdnas demo command file: ", e.what());
  }
  return a;
}

Arch arch_of(const EncoderConfig& c) {
  return {c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size};
}

std::string fmt(const char* f, double v) {
  if (!std::isfinite(v)) return "n/a";
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// --min-speedup "X,Y": speedups of at least 1.
std::vector<double> parse_speedups(const std::string& s) {
  std::vector<double> v = parse_positive_list(s, "demo: --min-speedup", "a speedup (a number >= 1)");
  for (double x : v)
    KDNAS_CHECK(x >= 1, "demo: --min-speedup: ", x, " is not a speedup (a number >= 1)");
  return v;
}

// A task directory: train.tsv and dev.tsv (test.tsv optional), of the expected layout.
struct TaskFiles {
  std::string name, train, dev, test;
};
TaskFiles task_files(const std::string& name, const std::string& dir, bool pair) {
  KDNAS_CHECK(!dir.empty(), "demo: --", name, " is required");
  KDNAS_CHECK(fs::is_directory(dir), "demo: --", name, " ", dir, " is not a directory");
  TaskFiles t{name, (fs::path(dir) / "train.tsv").string(), (fs::path(dir) / "dev.tsv").string(),
              ""};
  for (const std::string& f : {t.train, t.dev}) {
    KDNAS_CHECK(fs::exists(f), "demo: --", name, " ", dir, " has no ",
                fs::path(f).filename().string());
    const TaskData d = read_task_tsv(f);  // errors name file and line
    KDNAS_CHECK(d.pair == pair, "demo: ", f, " must hold ",
                pair ? "label<TAB>text_a<TAB>text_b" : "label<TAB>text", " lines");
  }
  const fs::path test = fs::path(dir) / "test.tsv";
  if (fs::exists(test)) t.test = test.string();
  return t;
}

// A training split longer than --train-max is replaced by a fixed sample of that many examples
// (proxy_sample: seeded, in file order), written once to RUN_DIR/tasks/<task>/train.tsv, so that
// fine-tuning the teacher fits the demo's time budget; dev and test stay whole.
void cut_training_split(const DemoArgs& a, TaskFiles& task) {
  const fs::path cut = fs::path(a.out) / "tasks" / task.name / "train.tsv";
  if (!fs::exists(cut)) {
    if (int64_t(read_task_tsv(task.train).examples.size()) <= a.train_max) return;
    fs::create_directories(cut.parent_path());
    write_text_file(cut.string(), proxy_sample(task.train, a.train_max, a.seed), "demo");
  }
  task.train = cut.string();
}

struct Row {
  std::string name;  // "teacher" or "student N"
  std::string dir;   // model directory
  Arch arch;
  ParamCount params;
  double latency_ms = NAN, xlmr_speedup = NAN;
  std::map<std::string, double> accuracy;  // task -> accuracy (test split, else dev)
  std::map<std::string, std::string> split;
};

// The latency settings of every measurement the demo reports (stage 4) and of the teacher
// latency the --min-speedup budgets come from: the search's own (batch 1 x --seq, --threads, f32).
LatencySettings demo_latency(const DemoArgs& a) {
  LatencySettings s;
  s.batch = 1, s.seq = a.seq, s.threads = int(a.threads), s.runs = a.latency_runs;
  return s;
}

// Rounds of the interleaved timing that confirms the search's latencies, and how many of the
// search's architectures (the best rewards first) it times with the teacher.
constexpr int kConfirmRounds = 3;
constexpr size_t kConfirmMax = 32;

// The teacher and the search's distinct scored architectures (at most kConfirmMax, best reward
// first) timed again, in one interleaved measurement (nas/latency.h), into RUN_DIR/latency.json,
// unless every one of them is there already (a resumed demo reads them back, so it chooses the
// same students). Returns the candidates with latency_ms replaced by those timings; a candidate
// left out has NaN (under no budget).
std::vector<Candidate> confirm_latencies(const DemoArgs& a, const EncoderConfig& teacher,
                                         std::vector<Candidate> cands) {
  const std::string path = (fs::path(a.out) / "latency.json").string();
  const LatencySettings s = demo_latency(a);
  LatencyTable table = LatencyTable::load(path);
  std::vector<size_t> order;
  for (size_t i = 0; i < cands.size(); ++i)
    if (cands[i].status == CandidateStatus::Ok) order.push_back(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return cands[x].reward > cands[y].reward; });
  std::vector<Arch> archs = {arch_of(teacher)};
  for (size_t i : order)
    if (archs.size() <= kConfirmMax &&
        std::find(archs.begin(), archs.end(), cands[i].arch) == archs.end())
      archs.push_back(cands[i].arch);
  const bool cached = std::all_of(archs.begin(), archs.end(),
                                  [&](const Arch& x) { return table.find(x, s) != nullptr; });
  if (!cached) {
    std::printf("      timing the teacher and %zu architectures again, interleaved (%d rounds)\n",
                archs.size() - 1, kConfirmRounds);
    std::fflush(stdout);
    const std::vector<LatencyMeasurement> m =
        measure_latencies_interleaved(archs, teacher, s, kConfirmRounds);
    for (size_t i = 0; i < archs.size(); ++i) table.put(archs[i], s, m[i]);
    table.save(path);
  }
  for (Candidate& c : cands) {
    const bool timed = std::find(archs.begin(), archs.end(), c.arch) != archs.end();
    c.latency_ms = timed && c.status == CandidateStatus::Ok ? table.find(c.arch, s)->median_ms : NAN;
  }
  return cands;
}

// Stage 1: the search. Returns the chosen architectures.
std::vector<Arch> stage_search(const DemoArgs& a, const EncoderConfig& teacher) {
  const fs::path dir = fs::path(a.out) / "search";
  const fs::path state = dir / "state.json";
  bool finished = false;
  if (fs::exists(state)) {
    try {
      finished = json::parse(read_text_file(state.string(), "demo")).value("finished", false);
    } catch (const json::exception&) {
    }
  }
  std::printf("[1/5] search: %s\n", finished ? "done before, reading it back (skipped)"
                                             : (fs::exists(state) ? "resuming" : "starting"));
  std::fflush(stdout);
  fs::create_directories(dir);
  const std::string proxy_path = (dir / kProxyFile).string();
  if (!fs::exists(proxy_path))
    write_text_file(proxy_path, proxy_sample(a.corpus, a.proxy_sentences, a.seed), "demo");
  ProxySettings p;
  p.teacher = a.teacher;
  p.batch = a.batch, p.seq = a.seq, p.epochs = a.proxy_epochs, p.lr = a.proxy_lr;
  p.seed = a.seed, p.threads = int(a.threads), p.text_column = a.text_column;

  SearchOptions o;
  o.teacher = teacher;
  o.space = a.space.empty() ? SearchSpace::default_space() : SearchSpace::load(a.space);
  o.episodes = a.episodes, o.candidates = a.candidates, o.top = a.students;
  o.controller = "lstm";
  o.controller_opt.pool = a.pool, o.controller_opt.seed = a.seed;
  o.latency = demo_latency(a);
  o.budgets_ms = parse_budgets_ms(a.budgets);
  o.out = dir.string();
  o.resume = fs::exists(state);
  o.teacher_dir = a.teacher, o.corpus = a.corpus;
  o.notes = {{"proxy", std::to_string(a.proxy_sentences) + " sentences, " +
                           std::to_string(a.proxy_epochs) + " epochs, batch " +
                           std::to_string(a.batch) + " x " + std::to_string(a.seq)}};
  o.proxy = [p, proxy_path](const Arch& arch, const std::string& work) {
    return proxy_distill(p, proxy_path, arch, work);
  };
  o.progress = !finished;
  const SearchResult r = run_search(o);
  // The students: the best reward under each budget (--budget-ms, then teacher latency / X for
  // each --min-speedup X), then the best rewards overall, --students in all. Before choosing, the
  // teacher and the search's candidates are timed again, together (confirm_latencies), and the
  // choice and the table of stage 4 both read those numbers: the search times each candidate
  // once, minutes apart from the others and from the teacher (whose first timing, first thing in
  // the process, read 12.2 ms against 8.4 warm in one run), and millisecond models vary 10-20 %
  // between such one-off timings: enough to choose a student under teacher / 5 that the final
  // table then shows at 4.8x.
  const std::vector<Candidate> timed = confirm_latencies(a, teacher, r.candidates);
  const std::string lat_path = (fs::path(a.out) / "latency.json").string();
  const double teacher_ms =
      LatencyTable::load(lat_path).find(arch_of(teacher), demo_latency(a))->median_ms;
  std::vector<double> budgets = o.budgets_ms;
  for (double x : parse_speedups(a.speedups)) budgets.push_back(teacher_ms / x);
  std::vector<int64_t> picks = chosen_candidates(timed, budgets, a.students);
  if (int64_t(picks.size()) > a.students) picks.resize(size_t(a.students));
  std::vector<Arch> chosen;
  for (int64_t i : picks) chosen.push_back(timed[size_t(i)].arch);
  KDNAS_CHECK(!chosen.empty(), "demo: the search scored no candidate (see ", dir.string(),
              "/report.md)");
  std::printf("      %zu candidates; teacher %.3f ms in the search, %.3f ms timed again; budgets",
              r.candidates.size(), r.teacher_ms, teacher_ms);
  for (double b : budgets) std::printf(" %.3f ms", b);
  std::printf("; chosen:");
  for (int64_t i : picks)
    std::printf(" %s (%.3f ms in the search, %.3f ms timed again)",
                arch_to_string(timed[size_t(i)].arch).c_str(), r.candidates[size_t(i)].latency_ms,
                timed[size_t(i)].latency_ms);
  std::printf(" (report %s/report.md)\n", dir.string().c_str());
  std::fflush(stdout);
  return chosen;
}

// Stage 2: each chosen architecture distilled on the corpus.
void stage_distill(const DemoArgs& a, const std::vector<Row>& rows) {
  for (const Row& r : rows) {
    if (r.name == "teacher") continue;
    const fs::path done = fs::path(r.dir) / kDistillDone;
    if (fs::exists(done)) {
      std::printf("[2/5] distill %s: done before (skipped)\n", arch_to_string(r.arch).c_str());
      continue;
    }
    TrainOptions t;
    t.teacher = a.teacher, t.arch = arch_to_string(r.arch), t.corpus = a.corpus;
    t.corpus_opt.text_column = a.text_column;
    t.steps = a.distill_steps, t.batch = a.batch, t.seq = a.seq, t.lr = a.distill_lr;
    t.seed = a.seed, t.threads = int(a.threads);
    t.log_every = std::max<int64_t>(1, a.distill_steps / 5);
    t.save_every = std::max<int64_t>(50, a.distill_steps / 4);
    t.out = r.dir;
    t.resume = fs::exists(fs::path(r.dir) / kTrainStateFile);
    std::printf("[2/5] distill %s: %lld steps into %s%s\n", t.arch.c_str(), (long long)t.steps,
                t.out.c_str(), t.resume ? " (resuming)" : "");
    std::fflush(stdout);
    const auto t0 = std::chrono::steady_clock::now();
    Trainer trainer(t);
    trainer.run();
    ojson j;
    j["architecture"] = t.arch, j["steps"] = trainer.step();
    j["eval_loss"] = trainer.evals().empty() ? NAN : trainer.evals().back().loss;
    j["seconds"] = seconds_since(t0);
    write_text_file(done.string(), j.dump(2) + "\n", "demo");
  }
}

// Stage 3: every model fine-tuned on every task with the same recipe.
void stage_finetune(const DemoArgs& a, const std::vector<TaskFiles>& tasks,
                    std::vector<Row>& rows) {
  for (Row& r : rows) {
    for (const TaskFiles& task : tasks) {
      const std::string label = r.name == "teacher" ? "teacher" : arch_dir_name(r.arch);
      const fs::path dir = fs::path(a.out) / "finetune" / label / task.name;
      const fs::path results = dir / "results.json";
      if (fs::exists(results)) {
        std::printf("[3/5] finetune %s on %s: done before (skipped)\n", label.c_str(),
                    task.name.c_str());
      } else {
        std::printf("[3/5] finetune %s on %s\n", label.c_str(), task.name.c_str());
        std::fflush(stdout);
        FinetuneOptions f;
        f.model = r.dir, f.train = task.train, f.dev = task.dev, f.test = task.test;
        f.out = dir.string();
        f.epochs = a.finetune_epochs, f.batch = a.batch, f.seq = a.seq;
        f.lr = task.name == "pairs" ? a.pairs_lr : a.finetune_lr;
        f.seed = a.seed, f.threads = int(a.threads);
        finetune(f);
      }
      const json j = json::parse(read_text_file(results.string(), "demo"));
      const bool test = j.contains("test");
      r.accuracy[task.name] = j.at(test ? "test" : "dev").at("accuracy").get<double>();
      r.split[task.name] = test ? "test" : "dev";
    }
  }
}

// Stage 4: latency of every row (same settings), and XLM-R Base's shape.
double stage_latency(const DemoArgs& a, const EncoderConfig& teacher, std::vector<Row>& rows,
                     const LatencySettings& s) {
  const std::string path = (fs::path(a.out) / "latency.json").string();
  LatencyTable table = LatencyTable::load(path);
  std::printf("[4/5] latency: batch %lld x %lld tokens, %d threads, %s, median of %lld runs; the "
              "teacher and students as timed together after the search (%d rounds)\n",
              (long long)s.batch, (long long)s.seq, s.threads, s.dtype.c_str(), (long long)s.runs,
              kConfirmRounds);
  std::fflush(stdout);
  for (Row& r : rows) {
    r.latency_ms = table.get_or_measure(r.arch, teacher, s).median_ms;
    table.save(path);
  }
  double xlmr_ms = NAN;
  if (a.xlmr_base) {
    const EncoderConfig x = xlmr_base();
    EncoderConfig cut = x;
    cut.max_position_embeddings = std::max(x.max_position_embeddings, s.seq + x.pad_token_id + 1);
    xlmr_ms = table.get_or_measure(arch_of(x), cut, s).median_ms;
    table.save(path);
  }
  return xlmr_ms;
}

// Stage 5: the table, as markdown (printed and demo.md) and JSON (demo.json).
void stage_report(const DemoArgs& a, const std::vector<TaskFiles>& tasks,
                  const std::vector<Row>& rows, const LatencySettings& s, double xlmr_ms,
                  double seconds) {
  const Row& t = rows.front();
  auto pct = [&](const Row& r, const std::string& task) {
    const double base = t.accuracy.at(task);
    return base > 0 ? 100.0 * r.accuracy.at(task) / base : NAN;
  };
  std::ostringstream md;
  md << "| model | architecture (L,H,A,F) | parameters | without embeddings | latency ms | speedup";
  for (const TaskFiles& task : tasks)
    md << " | " << task.name << " accuracy (" << t.split.at(task.name) << ") | % of teacher";
  md << " |\n|---|---|---:|---:|---:|---:";
  for (size_t i = 0; i < tasks.size(); ++i) md << "|---:|---:";
  md << "|\n";
  ojson jrows = ojson::array();
  for (const Row& r : rows) {
    const double speedup = r.latency_ms > 0 ? t.latency_ms / r.latency_ms : NAN;
    md << "| " << r.name << " | " << arch_to_string(r.arch) << " | " << r.params.total << " | "
       << r.params.non_embedding << " | " << fmt("%.3f", r.latency_ms) << " | "
       << fmt("%.2fx", speedup);
    ojson j;
    j["model"] = r.name, j["architecture"] = arch_to_string(r.arch), j["dir"] = r.dir;
    j["parameters"] = r.params.total, j["non_embedding_parameters"] = r.params.non_embedding;
    j["latency_ms"] = r.latency_ms, j["speedup"] = speedup;
    for (const TaskFiles& task : tasks) {
      md << " | " << fmt("%.4f", r.accuracy.at(task.name)) << " | "
         << fmt("%.1f%%", pct(r, task.name));
      j[task.name + "_accuracy"] = r.accuracy.at(task.name);
      j[task.name + "_pct_of_teacher"] = pct(r, task.name);
      j[task.name + "_split"] = r.split.at(task.name);
    }
    j["speedup_vs_xlmr_base_shape"] = r.name == "teacher" ? NAN : xlmr_ms / r.latency_ms;
    md << " |\n";
    jrows.push_back(j);
  }
  const std::string settings = "latency: batch " + std::to_string(s.batch) + " x " +
                               std::to_string(s.seq) + " tokens, " + std::to_string(s.threads) +
                               " threads, " + s.dtype + ", median of " + std::to_string(s.runs) +
                               " runs (same kernels for every row; teacher and students timed "
                               "together, median of " + std::to_string(kConfirmRounds) +
                               " interleaved rounds)";
  std::ostringstream x;
  const EncoderConfig xb = xlmr_base();
  const ParamCount xp = arch_parameters(arch_of(xb), xb);
  if (std::isfinite(xlmr_ms)) {
    x << "Against XLM-R Base's shape (" << arch_to_string(arch_of(xb)) << ", " << xp.total
      << " parameters; RANDOM WEIGHTS, LATENCY ONLY, measured the same way: "
      << fmt("%.3f", xlmr_ms) << " ms), the same student shapes would be:";
    for (const Row& r : rows)
      if (r.name != "teacher")
        x << " " << arch_to_string(r.arch) << " " << fmt("%.2fx", xlmr_ms / r.latency_ms);
    x << " faster.\n";
  }
  const std::string table = md.str();
  std::printf("\n[5/5] KD-NAS demo: teacher %s vs %zu distilled student(s); %s\n\n%s\n%s",
              a.teacher.c_str(), rows.size() - 1, settings.c_str(), table.c_str(), x.str().c_str());
  std::printf("wrote %s/demo.md and %s/demo.json (%.1f s this run)\n", a.out.c_str(), a.out.c_str(),
              seconds);
  std::fflush(stdout);

  std::ostringstream doc;
  doc << "# KD-NAS demo\n\nTeacher `" << a.teacher << "`, corpus `" << a.corpus << "`, tasks `"
      << a.langid << "` and `" << a.pairs << "`. Search: " << a.episodes << " episodes x "
      << a.candidates << " candidates, " << a.students << " students; distillation "
      << a.distill_steps << " steps; fine-tuning " << a.finetune_epochs << " epochs (batch "
      << a.batch << ", " << a.seq << " tokens, lr " << a.finetune_lr << " (pairs: "
      << a.pairs_lr << "), at most "
      << a.train_max << " training examples per task) for every model; "
      << settings << ".\nAccuracy is on the test split when the task has one, else on dev.\n\n"
      << table << "\n"
      << x.str() << "\nThe search's own report: [search/report.md](search/report.md).\n";
  write_text_file((fs::path(a.out) / "demo.md").string(), doc.str(), "demo");

  ojson j;
  j["teacher"] = a.teacher, j["corpus"] = a.corpus;
  j["tasks"] = ojson::object();
  for (const TaskFiles& task : tasks) j["tasks"][task.name] = task.train;
  j["latency"] = {{"batch", s.batch}, {"seq", s.seq},   {"threads", s.threads},
                  {"dtype", s.dtype}, {"runs", s.runs}, {"key", s.key()}};
  j["rows"] = jrows;
  j["xlmr_base"] = {{"architecture", arch_to_string(arch_of(xb))},
                    {"parameters", xp.total},
                    {"non_embedding_parameters", xp.non_embedding},
                    {"latency_ms", xlmr_ms},
                    {"note", "random weights, latency only"}};
  j["seconds"] = seconds;
  write_text_file((fs::path(a.out) / "demo.json").string(), j.dump(2) + "\n", "demo");
}

void run(DemoArgs a) {
  const auto t0 = std::chrono::steady_clock::now();
  KDNAS_CHECK(!a.out.empty(), "demo: --out is required");
  const fs::path out(a.out);
  const fs::path cmd_file = out / kCommandFile;
  if (a.resume) {
    KDNAS_CHECK(fs::exists(cmd_file), "demo: --resume: ", a.out, " holds no demo (no ",
                kCommandFile, ")");
    const std::string given_out = a.out;
    a = args_from_json(read_text_file(cmd_file.string(), "demo"), cmd_file.string());
    a.out = given_out, a.resume = true;
  } else {
    KDNAS_CHECK(!fs::exists(cmd_file), "demo: ", a.out,
                " already holds a demo; pass --resume to continue it");
  }
  // Every input is checked before anything is written.
  KDNAS_CHECK(!a.teacher.empty(), "demo: --teacher is required");
  KDNAS_CHECK(fs::is_directory(a.teacher), "demo: --teacher ", a.teacher,
              " is not a directory (train one with kdnas pretrain: docs/demo.md)");
  KDNAS_CHECK(fs::exists(fs::path(a.teacher) / "sentencepiece.bpe.model"), "demo: the teacher ",
              a.teacher, " has no tokenizer (sentencepiece.bpe.model)");
  KDNAS_CHECK(!a.corpus.empty(), "demo: --corpus is required");
  std::vector<TaskFiles> tasks = {task_files("langid", a.langid, false),
                                  task_files("pairs", a.pairs, true)};
  (void)parse_speedups(a.speedups);
  const EncoderConfig teacher = read_config(a.teacher);
  (void)parse_budgets_ms(a.budgets);
  // A teacher may carry the space its students are searched in (models/teacher/space.json).
  if (a.space.empty() && fs::exists(fs::path(a.teacher) / "space.json"))
    a.space = (fs::path(a.teacher) / "space.json").string();
  const SearchSpace space =
      a.space.empty() ? SearchSpace::default_space() : SearchSpace::load(a.space);
  KDNAS_CHECK(space.size(teacher) > 0, "demo: the space ", a.space.empty() ? "(default)" : a.space,
              " holds no valid architecture for this teacher");
  KDNAS_CHECK(a.seq + teacher.pad_token_id < teacher.max_position_embeddings, "demo: --seq ", a.seq,
              " is too long for the teacher's max_position_embeddings ",
              teacher.max_position_embeddings);
  (void)proxy_sample(a.corpus, 1, a.seed);  // the corpus opens and is not empty

  fs::create_directories(out);
  write_text_file(cmd_file.string(), args_to_json(a), "demo");
  for (TaskFiles& task : tasks) cut_training_split(a, task);

  std::vector<Row> rows;
  Row t;
  t.name = "teacher", t.dir = a.teacher, t.arch = arch_of(teacher);
  t.params = arch_parameters(t.arch, teacher);
  rows.push_back(t);
  int n = 0;
  for (const Arch& arch : stage_search(a, teacher)) {
    Row r;
    r.name = "student " + std::to_string(++n);
    r.dir = (out / "students" / arch_dir_name(arch)).string();
    r.arch = arch, r.params = arch_parameters(arch, teacher);
    rows.push_back(r);
  }
  stage_distill(a, rows);
  stage_finetune(a, tasks, rows);
  const LatencySettings s = demo_latency(a);
  const double xlmr_ms = stage_latency(a, teacher, rows, s);
  stage_report(a, tasks, rows, s, xlmr_ms, seconds_since(t0));
}

}  // namespace

void add_demo(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "demo", "KD-NAS end to end: search, distil, fine-tune, time, one table (docs/demo.md)");
  auto a = std::make_shared<DemoArgs>();
  cmd->add_option("--teacher", a->teacher, "teacher model directory (with its tokenizer)");
  cmd->add_option("--corpus", a->corpus, "distillation corpus: one sentence per line (or TSV)");
  cmd->add_option("--text-column", a->text_column,
                  "TSV corpus: the column holding the text, from 0 (default: the whole line)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--langid", a->langid, "language-identification task dir ({train,dev,test}.tsv)");
  cmd->add_option("--pairs", a->pairs, "translation-pair task dir ({train,dev,test}.tsv)");
  cmd->add_option("--space", a->space,
                  "search space JSON (default: the teacher's space.json, else KDNAS.md's space)");
  std::vector<std::pair<CLI::Option*, std::function<void()>>> quick;
  auto num = [&](const char* name, int64_t& v, const char* help, int64_t quick_value) {
    auto* o = cmd->add_option(name, v, help)->check(CLI::PositiveNumber);
    quick.push_back({o, [&v, quick_value] { v = quick_value; }});
  };
  num("--episodes", a->episodes, "search episodes (default 3)", 1);
  num("--candidates", a->candidates, "candidates per episode (default 4)", 3);
  num("--students", a->students, "architectures distilled and compared (default 2)", 1);
  num("--pool", a->pool, "random architectures the controller ranks (default 100)", 100);
  num("--proxy-sentences", a->proxy_sentences, "sentences in the proxy sample (default 256)", 64);
  num("--proxy-epochs", a->proxy_epochs, "proxy passes (default 2)", 1);
  num("--distill-steps", a->distill_steps, "distillation steps per student (default 500)", 100);
  num("--finetune-epochs", a->finetune_epochs, "fine-tuning epochs per model and task (default 4)",
      1);
  num("--batch", a->batch, "batch for proxy, distillation and fine-tuning (default 32)", 32);
  num("--latency-runs", a->latency_runs, "timed runs per latency (default 10)", 3);
  cmd->add_option("--seq", a->seq, "tokens per sequence: training and latency (default 128)")
      ->check(CLI::Range(int64_t(4), int64_t(1) << 20));
  cmd->add_option("--threads", a->threads, "threads for everything (default 2)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--budget-ms", a->budgets, "latency budgets X,Y,...: best per budget too");
  cmd->add_option("--min-speedup", a->speedups,
                  "speedups X,Y,...: the best student at least X times faster than the teacher, "
                  "for each X (default 5,10; \"\": none)");
  num("--train-max", a->train_max, "training examples per task at most (default 2000)", 2000);
  cmd->add_option("--proxy-lr", a->proxy_lr, "proxy peak learning rate (default 2e-3)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--distill-lr", a->distill_lr, "distillation peak learning rate (default 1e-3)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--finetune-lr", a->finetune_lr,
                  "fine-tuning peak learning rate, language identification (default 1e-3)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--pairs-lr", a->pairs_lr,
                  "fine-tuning peak learning rate, translation pairs (default 3e-4)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->seed, "random seed (default 0)");
  cmd->add_flag(
      "--no-xlmr-base", [a](int64_t) { a->xlmr_base = false; }, "skip timing XLM-R Base's shape");
  cmd->add_flag("--quick", a->quick,
                "a small budget (1 episode x 3 candidates, 1 student, 100 distillation steps, 1 "
                "fine-tuning epoch) for options not given");
  cmd->add_option("--out", a->out, "run directory")->required();
  cmd->add_flag("--resume", a->resume, "continue the demo in --out (its settings)");
  cmd->callback([a, quick] {
    if (a->quick)
      for (const auto& [opt, set] : quick)
        if (opt->count() == 0) set();
    run(*a);
  });
}

}  // namespace kdnas::cli
