// kdnas search --teacher DIR --corpus FILE --out RUN_DIR [--space FILE.json] [--episodes E]
//              [--candidates N] [--pool P] [--top K] [--budget-ms X,Y,...] [--batch B] [--seq T]
//              [--threads N] [--dtype f32|bf16] [--controller lstm|random | --compare]
//              [--proxy-sentences S] [--proxy-epochs E] [--proxy-batch B] [--proxy-seq T]
//              [--proxy-lr X] [--hard-budget-ms X] [--seed S] [--distill-steps N] [--resume]
//              [--device cpu|cuda[:N]]
// The KD-NAS search (nas/search.h) with proxy distillation by the distill trainer. The run
// directory holds command.json (these settings: --resume reads them back), proxy.txt (the
// fixed proxy sample of the corpus), candidates/<L_H_A_F>/ (each proxy run), and the search's
// own files; with --compare, the lstm and random searches run with the same budget into
// RUN_DIR/lstm and RUN_DIR/random (sharing the latency table and the proxy results) and
// RUN_DIR/report.md compares them. --device: where latency is measured (part of the latency
// table's key), the proxy distillations and --distill-steps run; a search's setting, kept in
// command.json (absent there: cpu).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "apps/commands.h"
#include "apps/device_flag.h"
#include "apps/proxy_distill.h"
#include "distill/trainer.h"
#include "nas/search.h"
#include "tensor/check.h"

namespace kdnas::cli {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr const char* kCommandFile = "command.json";

struct SearchArgs {
  std::string teacher, corpus, space, out, budgets, controller = "lstm", dtype = "f32";
  std::string device = "cpu";
  int64_t episodes = 15, candidates = 20, pool = 100, top = 3;
  int64_t batch = 1, seq = 128, threads = 2, latency_runs = 10, latency_warmup = 2;
  int64_t proxy_sentences = 2000, proxy_epochs = 4, proxy_batch = 32, proxy_seq = 128;
  double proxy_lr = 1e-4, hard_budget_ms = 0;
  uint64_t seed = 0;
  int64_t distill_steps = 0;
  bool compare = false, resume = false, fake_latency = false, keep_proxy_models = false;
};

std::string read_text(const std::string& path) {
  return read_text_file(path, "search");
}
void write_text(const std::string& path, const std::string& text) {
  write_text_file(path, text, "search");
}

// Everything --resume needs to rebuild the same search.
std::string args_to_json(const SearchArgs& a) {
  ojson j;
  j["teacher"] = a.teacher, j["corpus"] = a.corpus, j["space"] = a.space;
  j["budgets"] = a.budgets, j["controller"] = a.controller, j["dtype"] = a.dtype;
  j["episodes"] = a.episodes, j["candidates"] = a.candidates, j["pool"] = a.pool;
  j["top"] = a.top, j["batch"] = a.batch, j["seq"] = a.seq, j["threads"] = a.threads;
  j["latency_runs"] = a.latency_runs, j["latency_warmup"] = a.latency_warmup;
  j["proxy_sentences"] = a.proxy_sentences, j["proxy_epochs"] = a.proxy_epochs;
  j["proxy_batch"] = a.proxy_batch, j["proxy_seq"] = a.proxy_seq, j["proxy_lr"] = a.proxy_lr;
  j["hard_budget_ms"] = a.hard_budget_ms, j["seed"] = a.seed;
  j["compare"] = a.compare, j["fake_latency"] = a.fake_latency;
  j["keep_proxy_models"] = a.keep_proxy_models;
  j["device"] = a.device;
  return j.dump(2) + "\n";
}

SearchArgs args_from_json(const std::string& text, const std::string& what) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    KDNAS_CHECK(false, "search: ", what, " is not valid JSON: ", e.what());
  }
  SearchArgs a;
  try {
    a.teacher = j.at("teacher"), a.corpus = j.at("corpus"), a.space = j.at("space");
    a.budgets = j.at("budgets"), a.controller = j.at("controller"), a.dtype = j.at("dtype");
    a.episodes = j.at("episodes"), a.candidates = j.at("candidates"), a.pool = j.at("pool");
    a.top = j.at("top"), a.batch = j.at("batch"), a.seq = j.at("seq"), a.threads = j.at("threads");
    a.latency_runs = j.at("latency_runs"), a.latency_warmup = j.at("latency_warmup");
    a.proxy_sentences = j.at("proxy_sentences"), a.proxy_epochs = j.at("proxy_epochs");
    a.proxy_batch = j.at("proxy_batch"), a.proxy_seq = j.at("proxy_seq");
    a.proxy_lr = j.at("proxy_lr"), a.hard_budget_ms = j.at("hard_budget_ms");
    a.seed = j.at("seed"), a.compare = j.at("compare"), a.fake_latency = j.at("fake_latency");
    a.keep_proxy_models = j.at("keep_proxy_models");
    a.device = j.value("device", std::string("cpu"));  // written before --device existed: cpu
  } catch (const json::exception& e) {
    KDNAS_CHECK(false, "search: ", what, " is not a kdnas search command file: ", e.what());
  }
  return a;
}

// --fake-latency: a deterministic latency from the architecture's arithmetic (GEMM and
// attention flops at 1 GFLOP/ms plus a fixed per-layer cost), for tests that must compare runs.
LatencyMeasurement fake_latency(const Arch& a, const LatencySettings& s) {
  const double bt = double(s.batch * s.seq);
  const double flops = 2.0 * double(a.layers) *
                       (bt * double(a.hidden) * double(4 * a.hidden + 2 * a.ffn) +
                        2.0 * bt * double(s.seq) * double(a.hidden));
  LatencyMeasurement m;
  m.median_ms = m.min_ms = m.max_ms = 0.05 + 0.01 * double(a.layers) + flops * 1e-9;
  return m;
}

// The proxy recipe of a search's settings (apps/proxy_distill.h).
ProxySettings proxy_settings(const SearchArgs& a) {
  ProxySettings p;
  p.teacher = a.teacher;
  p.batch = a.proxy_batch, p.seq = a.proxy_seq, p.epochs = a.proxy_epochs;
  p.lr = a.proxy_lr, p.seed = a.seed, p.threads = int(a.threads);
  p.keep_models = a.keep_proxy_models;
  p.device = a.device;
  return p;
}

SearchOptions search_options(const SearchArgs& a, const EncoderConfig& teacher,
                             const std::string& out, const std::string& controller) {
  SearchOptions o;
  o.teacher = teacher;
  o.space = a.space.empty() ? SearchSpace::default_space() : SearchSpace::load(a.space);
  KDNAS_CHECK(o.space.size(teacher) > 0, "search: the space ",
              a.space.empty() ? "(default)" : a.space,
              " holds no valid architecture for this teacher");
  o.episodes = a.episodes, o.candidates = a.candidates, o.top = a.top;
  o.controller = controller;
  o.controller_opt.pool = a.pool;
  o.controller_opt.seed = a.seed;
  o.latency.batch = a.batch, o.latency.seq = a.seq, o.latency.threads = int(a.threads);
  o.latency.dtype = a.dtype, o.latency.runs = a.latency_runs, o.latency.warmup = a.latency_warmup;
  o.latency.device = a.device;
  o.reward.budget_ms = a.hard_budget_ms;
  o.budgets_ms = parse_budgets_ms(a.budgets);
  o.out = out;
  o.teacher_dir = a.teacher, o.corpus = a.corpus;
  o.notes = {{"proxy", std::to_string(a.proxy_sentences) + " sentences, " +
                           std::to_string(a.proxy_epochs) + " epochs, batch " +
                           std::to_string(a.proxy_batch) + " x " + std::to_string(a.proxy_seq) +
                           ", lr " + std::to_string(a.proxy_lr)}};
  if (a.fake_latency) {
    const LatencySettings s = o.latency;
    o.latency_fn = [s](const Arch& arch) { return fake_latency(arch, s); };
  }
  return o;
}

void distill_chosen(const SearchArgs& a, const SearchResult& r, const std::vector<double>& budgets,
                    const std::string& run_dir) {
  for (int64_t i : chosen_candidates(r.candidates, budgets, a.top)) {
    const Arch& arch = r.candidates[size_t(i)].arch;
    TrainOptions t;
    t.teacher = a.teacher, t.arch = arch_to_string(arch), t.corpus = a.corpus;
    t.steps = a.distill_steps, t.batch = a.proxy_batch, t.seq = a.proxy_seq;
    t.seed = a.seed, t.threads = int(a.threads), t.device = a.device;
    t.out = (fs::path(run_dir) / "students" / arch_dir_name(arch)).string();
    t.resume = fs::exists(fs::path(t.out) / kTrainStateFile);
    std::fprintf(stderr, "distilling %s for %lld steps into %s\n", t.arch.c_str(),
                 (long long)t.steps, t.out.c_str());
    Trainer trainer(t);
    trainer.run();
  }
}

void run(SearchArgs a, bool episodes_given) {
  KDNAS_CHECK(!a.out.empty(), "search: --out is required");
  const fs::path out(a.out);
  const fs::path cmd_file = out / kCommandFile;
  if (a.resume) {
    KDNAS_CHECK(fs::exists(cmd_file), "search: --resume: ", a.out, " holds no search (no ",
                kCommandFile, ")");
    const SearchArgs given = a;
    a = args_from_json(read_text(cmd_file.string()), cmd_file.string());
    a.resume = true;
    a.out = given.out;
    if (episodes_given) a.episodes = given.episodes;  // a search may be extended
    a.distill_steps = given.distill_steps;
    resolve_device(a.device);  // the search's own device, checked before anything is written
  } else {
    KDNAS_CHECK(!a.teacher.empty(), "search: --teacher is required");
    KDNAS_CHECK(!a.corpus.empty(), "search: --corpus is required");
    KDNAS_CHECK(!fs::exists(cmd_file), "search: ", a.out,
                " already holds a search; pass --resume to continue it");
    KDNAS_CHECK(a.controller == "lstm" || a.controller == "random",
                "search: --controller must be lstm or random, not '", a.controller, "'");
  }
  KDNAS_CHECK(fs::is_directory(a.teacher), "search: --teacher ", a.teacher, " is not a directory");
  const EncoderConfig teacher = read_config(a.teacher);
  const std::vector<double> budgets = parse_budgets_ms(a.budgets);
  // Build every option before anything is written, so bad input leaves no run directory.
  (void)search_options(a, teacher, a.out, a.controller);
  const std::string sample = proxy_sample(a.corpus, a.proxy_sentences, a.seed);

  fs::create_directories(out);
  const std::string proxy_path = (out / kProxyFile).string();
  if (!fs::exists(proxy_path)) write_text(proxy_path, sample);
  write_text(cmd_file.string(), args_to_json(a));
  const std::string candidates_dir = (out / "candidates").string();
  const ProxyFn proxy = [p = proxy_settings(a), proxy_path](const Arch& arch,
                                                            const std::string& dir) {
    return proxy_distill(p, proxy_path, arch, dir);
  };

  auto one = [&](const std::string& controller, const std::string& dir) {
    SearchOptions o = search_options(a, teacher, dir, controller);
    o.resume = a.resume && fs::exists(fs::path(dir) / "state.json");
    o.proxy = proxy;
    o.candidates_dir = candidates_dir;
    o.latency_path = (out / "latency.json").string();
    const SearchResult r = run_search(o);
    std::printf("%s search: %zu candidates (%lld proxy runs) in %.1f s; report %s/report.md\n",
                controller.c_str(), r.candidates.size(), (long long)r.proxy_calls, r.seconds,
                dir.c_str());
    std::fflush(stdout);
    return r;
  };
  if (!a.compare) {
    const SearchResult r = one(a.controller, a.out);
    if (a.distill_steps > 0) distill_chosen(a, r, budgets, a.out);
    return;
  }
  const SearchResult lstm = one("lstm", (out / "lstm").string());
  const SearchResult rnd = one("random", (out / "random").string());
  write_text((out / "report.md").string(),
             compare_report("lstm", lstm, "random", rnd, budgets, a.episodes) +
                 "\nEach search's own report: [lstm/report.md](lstm/report.md), "
                 "[random/report.md](random/report.md).\n");
  std::printf("wrote %s/report.md (lstm vs random)\n", a.out.c_str());
  if (a.distill_steps > 0) distill_chosen(a, lstm, budgets, a.out);
}

}  // namespace

void add_search(CLI::App& app) {
  auto* cmd = app.add_subcommand("search", "KD-NAS: search student architectures for a teacher");
  auto a = std::make_shared<SearchArgs>();
  cmd->add_option("--teacher", a->teacher, "teacher model directory (with its tokenizer)");
  cmd->add_option("--corpus", a->corpus, "text file, one sentence per line (proxy sample source)");
  cmd->add_option("--space", a->space, "search space JSON (default: KDNAS.md's space)");
  auto* episodes = cmd->add_option("--episodes", a->episodes, "episodes (default 15)")
                       ->check(CLI::PositiveNumber);
  cmd->add_option("--candidates", a->candidates, "candidates per episode (default 20)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--pool", a->pool, "random architectures the controller ranks (default 100)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--top", a->top, "architectures reported by reward (default 3)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--budget-ms", a->budgets, "latency budgets X,Y,...: best per budget");
  cmd->add_option("--hard-budget-ms", a->hard_budget_ms,
                  "reward 0 for candidates slower than this (hard budget mode)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", a->batch, "latency: batch (default 1)")->check(CLI::PositiveNumber);
  cmd->add_option("--seq", a->seq, "latency: tokens per sequence (default 128)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--threads", a->threads, "threads for timing and proxy training (default 2)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--dtype", a->dtype, "latency: f32 or bf16")
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd->add_option("--latency-runs", a->latency_runs, "latency: timed runs (default 10)")
      ->check(CLI::PositiveNumber);
  auto* controller = cmd->add_option("--controller", a->controller, "lstm (default) or random")
                         ->check(CLI::IsMember({"lstm", "random"}));
  cmd->add_flag("--compare", a->compare,
                "run the lstm and random controllers with the same budget and compare them")
      ->excludes(controller);
  cmd->add_option("--proxy-sentences", a->proxy_sentences,
                  "sentences in the proxy sample (default 2000)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--proxy-epochs", a->proxy_epochs, "proxy passes (default 4)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--proxy-batch", a->proxy_batch, "proxy batch (default 32)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--proxy-seq", a->proxy_seq, "proxy tokens per sentence (default 128)")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  cmd->add_option("--proxy-lr", a->proxy_lr, "proxy peak learning rate (default 1e-4)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--keep-proxy-models", a->keep_proxy_models,
                "keep each candidate's proxy weights and optimizer state");
  cmd->add_option("--seed", a->seed, "random seed (default 0)");
  cmd->add_option("--distill-steps", a->distill_steps,
                  "then distil the chosen students for N steps on the corpus")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--out", a->out, "run directory")->required();
  cmd->add_flag("--resume", a->resume, "continue the search in --out (its settings)");
  add_device_flag(cmd, a->device);
  // Hidden: a deterministic latency formula instead of timing, so tests can compare runs.
  cmd->add_flag("--fake-latency", a->fake_latency)->group("");
  cmd->callback([a, episodes] {
    resolve_device(a->device);  // first: nothing is read or written before it
    run(*a, episodes->count() > 0);
  });
}

}  // namespace kdnas::cli
