#include "nas/search.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "nas/pareto.h"
#include "tensor/check.h"
#include "tensor/rng.h"
#include "transformer/safetensors.h"

namespace kdnas {
namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

constexpr const char* kFormat = "kdnas-search-state-1";
constexpr const char* kStateFile = "state.json";
constexpr const char* kControllerFile = "controller.safetensors";
constexpr const char* kCandidatesFile = "candidates.jsonl";
constexpr const char* kLatencyFile = "latency.json";

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void write_text(const std::string& path, const std::string& text) {
  write_file_atomically(path, {{text.data(), text.size()}}, "search");
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  KDNAS_CHECK(f.good(), "search: cannot open ", path);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

Arch arch_of(const EncoderConfig& t) {
  return {t.num_hidden_layers, t.hidden_size, t.num_attention_heads, t.intermediate_size};
}

// A context architecture: "" for Arch{} (no best yet).
std::string ctx_to_string(const Arch& a) {
  return a == Arch{} ? "" : arch_to_string(a);
}
Arch ctx_from_string(const std::string& s) {
  return s.empty() ? Arch{} : arch_from_string(s);
}

ojson num_or_null(double v) {
  return std::isfinite(v) ? ojson(v) : ojson(nullptr);
}

double num_or_nan(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return NAN;
  return it->get<double>();
}

// Everything that changes which candidates a search measures or what they score: a resume
// must match it. The episode count may grow (a search can be extended); the report-only
// settings (top, budgets) may change freely.
ojson settings_json(const SearchOptions& o) {
  const ControllerOptions& c = o.controller_opt;
  const LatencySettings& l = o.latency;
  ojson j;
  j["teacher"] = arch_to_string(arch_of(o.teacher));
  j["vocab_size"] = o.teacher.vocab_size;
  j["space"] = ojson::parse(o.space.to_json());
  j["candidates"] = o.candidates;
  j["controller"] = o.controller;
  j["controller_options"] = {
      {"embed_dim", c.embed_dim},       {"hidden", c.hidden},       {"lr", c.lr},
      {"train_epochs", c.train_epochs}, {"eps_start", c.eps_start}, {"eps_step", c.eps_step},
      {"eps_min", c.eps_min},           {"pool", c.pool},           {"seed", c.seed}};
  j["latency"] = {{"key", l.key()}, {"warmup", l.warmup}, {"runs", l.runs}};
  j["reward"] = {
      {"alpha", o.reward.alpha}, {"beta", o.reward.beta}, {"budget_ms", o.reward.budget_ms}};
  j["screen_margin"] = o.screen_margin;
  j["screen_min_points"] = o.screen_min_points;
  j["fake_latency"] = bool(o.latency_fn);
  for (const auto& [k, v] : o.notes) j["notes"][k] = v;
  return j;
}

struct EpisodeState {
  Arch prev_best, best_so_far;
  std::vector<Arch> proposals;
};

struct State {
  std::vector<EpisodeState> episodes;  // every episode proposed so far
  int64_t updates = 0;                 // controller updates applied (from its file)
  bool finished = false;
};

std::string state_json(const SearchOptions& o, const State& st, int64_t done, double teacher_ms) {
  ojson j;
  j["format"] = kFormat;
  j["settings"] = settings_json(o);
  j["episodes_total"] = o.episodes;
  j["episode"] = int64_t(st.episodes.size()) - 1;
  j["candidates_done"] = done;
  j["controller_file"] = kControllerFile;
  j["controller_updates"] = st.updates;
  j["teacher_latency_ms"] = teacher_ms;
  j["finished"] = st.finished;
  ojson eps = ojson::array();
  for (const EpisodeState& e : st.episodes) {
    ojson p = ojson::array();
    for (const Arch& a : e.proposals) p.push_back(arch_to_string(a));
    eps.push_back({{"prev_best", ctx_to_string(e.prev_best)},
                   {"best_so_far", ctx_to_string(e.best_so_far)},
                   {"proposals", p}});
  }
  j["episodes"] = eps;
  return j.dump(2) + "\n";
}

// The first setting that differs, as "key=stored, not now", or "" when they match.
std::string settings_difference(const json& stored, const json& now, const std::string& prefix) {
  for (auto it = now.begin(); it != now.end(); ++it) {
    const std::string key = prefix + it.key();
    auto s = stored.find(it.key());
    if (s == stored.end()) return key + " is new";
    if (s->is_object() && it->is_object()) {
      std::string d = settings_difference(*s, *it, key + ".");
      if (!d.empty()) return d;
    } else if (*s != *it) {
      return key + "=" + s->dump() + ", not " + it->dump();
    }
  }
  for (auto it = stored.begin(); it != stored.end(); ++it)
    if (!now.contains(it.key())) return prefix + it.key() + " is missing";
  return "";
}

State load_state(const SearchOptions& o, const std::string& path) {
  json j;
  try {
    j = json::parse(read_text(path));
  } catch (const json::exception& e) {
    KDNAS_CHECK(false, "search: ", path, " is not valid JSON: ", e.what());
  }
  KDNAS_CHECK(j.is_object() && j.value("format", "") == kFormat, "search: ", path,
              " is not a kdnas search state (format ", kFormat, ")");
  // Round-trip the current settings through JSON text so numbers compare as stored.
  const json now = json::parse(settings_json(o).dump());
  const std::string diff = settings_difference(j.at("settings"), now, "");
  KDNAS_CHECK(diff.empty(), "search: --resume: the run in ", o.out,
              " was made with other settings (", diff, ")");
  State st;
  for (const json& e : j.at("episodes")) {
    EpisodeState es;
    es.prev_best = ctx_from_string(e.at("prev_best").get<std::string>());
    es.best_so_far = ctx_from_string(e.at("best_so_far").get<std::string>());
    for (const json& p : e.at("proposals")) es.proposals.push_back(arch_from_string(p));
    st.episodes.push_back(es);
  }
  return st;
}

std::vector<Candidate> load_candidates(const std::string& path) {
  std::vector<Candidate> out;
  if (!fs::exists(path)) return out;
  std::istringstream in(read_text(path));
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    out.push_back(candidate_from_json(line, path + ":" + std::to_string(n)));
  }
  return out;
}

void write_candidates(const std::string& path, const std::vector<Candidate>& cands) {
  std::string text;
  for (const Candidate& c : cands) text += candidate_to_json(c) + "\n";
  write_text(path, text);
}

void save_controller(const std::string& path, const Controller& ctl, int64_t updates) {
  write_safetensors(path, ctl.state(),
                    {{"updates", std::to_string(updates)}, {"controller", ctl.name()}});
}

// The best-reward Ok candidate among cands[0, end) (first on ties), or -1.
int64_t best_index(const std::vector<Candidate>& cands, int64_t episode_lo, int64_t episode_hi) {
  int64_t best = -1;
  for (size_t i = 0; i < cands.size(); ++i) {
    const Candidate& c = cands[i];
    if (c.status != CandidateStatus::Ok || c.episode < episode_lo || c.episode >= episode_hi)
      continue;
    if (best < 0 || c.reward > cands[best].reward) best = int64_t(i);
  }
  return best;
}

// Unique measured (arch, latency) pairs among the rows, plus the teacher.
std::vector<std::pair<Arch, double>> measured_points(const std::vector<Candidate>& cands,
                                                     const Arch& teacher, double teacher_ms) {
  std::map<Arch, double> m{{teacher, teacher_ms}};
  for (const Candidate& c : cands)
    if (c.status != CandidateStatus::Screened && std::isfinite(c.latency_ms))
      m.emplace(c.arch, c.latency_ms);
  return {m.begin(), m.end()};
}

// One ParetoPoint per distinct distilled architecture (its first row).
std::vector<ParetoPoint> pareto_points(const std::vector<Candidate>& cands) {
  std::vector<ParetoPoint> pts;
  std::set<Arch> seen;
  for (const Candidate& c : cands) {
    if (c.status != CandidateStatus::Ok || !seen.insert(c.arch).second) continue;
    pts.push_back(
        {arch_to_string(c.arch), c.latency_ms, c.kd_loss, c.reward, c.parameters, c.non_embedding});
  }
  return pts;
}

std::string row_md(const Candidate& c, double teacher_ms) {
  return "| `" + arch_to_string(c.arch) + "` | " + fmt("%.3f", c.latency_ms) + " | " +
         fmt("%.2fx", teacher_ms / c.latency_ms) + " | " + fmt("%.4f", c.kd_loss) + " | " +
         fmt("%.4f", c.reward) + " | " + std::to_string(c.parameters) + " | " +
         std::to_string(c.non_embedding) + " |\n";
}
constexpr const char* kRowHeader =
    "| architecture | latency (ms) | speed-up | proxy KD loss | reward | parameters | "
    "non-embedding |\n|---|---|---|---|---|---|---|\n";

std::string report_md(const SearchOptions& o, const SearchResult& r, const State& st) {
  const auto& cands = r.candidates;
  std::ostringstream s;
  const LatencySettings& l = o.latency;
  s << "# KD-NAS search: " << o.out << "\n\n";
  s << (r.finished ? "Finished" : "In progress") << ": " << st.episodes.size() << " of "
    << o.episodes << " episodes proposed, " << cands.size() << " candidates recorded.\n\n";
  s << "## Settings\n\n| setting | value |\n|---|---|\n";
  s << "| teacher | " << (o.teacher_dir.empty() ? "-" : o.teacher_dir) << " (`"
    << arch_to_string(r.teacher_arch) << "`) |\n";
  s << "| corpus | " << (o.corpus.empty() ? "-" : o.corpus) << " |\n";
  s << "| controller | " << o.controller << " (pool " << o.controller_opt.pool << ", seed "
    << o.controller_opt.seed << ") |\n";
  s << "| episodes x candidates | " << o.episodes << " x " << o.candidates << " |\n";
  s << "| latency | batch " << l.batch << " x " << l.seq << " tokens, " << l.threads << " threads, "
    << l.dtype << ", median of " << l.runs << " after " << l.warmup << " warm-up runs"
    << (o.latency_fn ? " (**fake latency: a deterministic formula**)" : "") << " |\n";
  s << "| build | " << build_id() << " |\n";
  s << "| reward | (1 - L_KD) * (lat / (" << o.reward.beta << " * lat_teacher))^" << o.reward.alpha
    << (o.reward.budget_ms > 0 ? ", hard budget " + fmt("%g", o.reward.budget_ms) + " ms" : "")
    << " |\n";
  for (const auto& [k, v] : o.notes) s << "| " << k << " | " << v << " |\n";
  s << "\n## Teacher\n\n`" << arch_to_string(r.teacher_arch) << "`: " << fmt("%.3f", r.teacher_ms)
    << " ms.\n\n";

  int64_t ok = 0, cached = 0, screened = 0, rejected = 0;
  for (const Candidate& c : cands) {
    ok += c.status == CandidateStatus::Ok;
    cached += c.cached;
    screened += c.status == CandidateStatus::Screened;
    rejected += c.status == CandidateStatus::Rejected;
  }
  s << "## Candidates\n\n"
    << ok << " scored (" << cached << " reused an earlier result), " << screened
    << " screened out by the latency model, " << rejected
    << " rejected as slower than the space's max_latency_ms. Best reward after each episode:\n\n"
    << "| episode | best reward |\n|---|---|\n";
  const std::vector<double> curve = best_reward_curve(cands, int64_t(st.episodes.size()));
  for (size_t e = 0; e < curve.size(); ++e)
    s << "| " << e << " | " << fmt("%.4f", curve[e]) << " |\n";

  if (!o.budgets_ms.empty()) {
    s << "\n## Best architecture per budget\n\nThe highest reward among candidates measured "
         "within each budget.\n\n| budget (ms) "
      << "| architecture | latency (ms) | speed-up | proxy KD loss | reward | parameters | "
         "non-embedding |\n|---|---|---|---|---|---|---|---|\n";
    const std::vector<int64_t> best = best_per_budget(cands, o.budgets_ms);
    for (size_t b = 0; b < best.size(); ++b) {
      if (best[b] < 0) {
        s << "| " << fmt("%g", o.budgets_ms[b]) << " | none under this budget | | | | | | |\n";
        continue;
      }
      s << "| " << fmt("%g", o.budgets_ms[b]) << " " << row_md(cands[best[b]], r.teacher_ms);
    }
  }
  // Top K distinct architectures by reward.
  std::vector<int64_t> order;
  for (size_t i = 0; i < cands.size(); ++i)
    if (cands[i].status == CandidateStatus::Ok) order.push_back(int64_t(i));
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return cands[a].reward > cands[b].reward; });
  s << "\n## Top " << o.top << " by reward\n\n" << kRowHeader;
  std::set<Arch> seen;
  int64_t shown = 0;
  for (int64_t i : order) {
    if (shown == o.top) break;
    if (!seen.insert(cands[i].arch).second) continue;
    s << row_md(cands[i], r.teacher_ms);
    ++shown;
  }

  const std::vector<ParetoPoint> pts = pareto_points(cands);
  const std::vector<size_t> front = pareto_front(pts);
  s << "\n## Pareto front (latency x proxy loss)\n\n"
    << "| architecture | latency (ms) | proxy KD loss | reward |\n|---|---|---|---|\n";
  for (size_t i : front)
    s << "| `" << pts[i].name << "` | " << fmt("%.3f", pts[i].latency_ms) << " | "
      << fmt("%.4f", pts[i].loss) << " | " << fmt("%.4f", pts[i].reward) << " |\n";
  s << "\nPlot: [pareto.svg](pareto.svg); data: pareto.csv, pareto.json, candidates.jsonl.\n";

  const auto points = measured_points(cands, r.teacher_arch, r.teacher_ms);
  s << "\n## Latency model\n\n";
  if (points.size() >= 2) {
    LatencyModel model;
    model.fit(points, l);
    const LatencyModel::Error err = model.error(points);
    s << "Fitted on " << err.points << " measured architectures (the teacher included): "
      << "mean absolute percentage error " << fmt("%.1f%%", err.mape) << " on the fitted points, "
      << fmt("%.1f%%", err.loo_mape) << " leave-one-out.\n";
  } else {
    s << "Not fitted (fewer than two measured architectures).\n";
  }

  s << "\n## Distil the chosen students\n\nThe best per budget and the top " << o.top
    << ", on the full corpus:\n\n```sh\n";
  for (int64_t i : chosen_candidates(cands, o.budgets_ms, o.top))
    s << "kdnas distill --teacher " << (o.teacher_dir.empty() ? "TEACHER" : o.teacher_dir)
      << " --arch " << arch_to_string(cands[i].arch) << " --corpus "
      << (o.corpus.empty() ? "CORPUS" : o.corpus) << " --out students/"
      << arch_dir_name(cands[i].arch) << "\n";
  s << "```\n";
  return s.str();
}

void write_outputs(const SearchOptions& o, const SearchResult& r, const State& st) {
  const std::vector<ParetoPoint> pts = pareto_points(r.candidates);
  const std::vector<size_t> front = pareto_front(pts);
  const fs::path out(o.out);
  write_text(out / "pareto.csv", pareto_csv(pts, front));
  write_text(out / "pareto.json", pareto_json(pts, front));
  ParetoPlot plot;
  plot.title = "KD-NAS " + o.controller + ": " + std::to_string(pts.size()) +
               " architectures, teacher " + arch_to_string(r.teacher_arch);
  plot.teacher_ms = r.teacher_ms;
  plot.budgets_ms = o.budgets_ms;
  write_text(out / "pareto.svg", pareto_svg(pts, front, plot));
  write_text(out / "report.md", report_md(o, r, st));
}

void check_options(const SearchOptions& o) {
  KDNAS_CHECK(!o.out.empty(), "search: no output directory");
  KDNAS_CHECK(bool(o.proxy), "search: no proxy distillation callback");
  KDNAS_CHECK(o.episodes >= 1, "search: episodes must be >= 1, not ", o.episodes);
  KDNAS_CHECK(o.candidates >= 1, "search: candidates must be >= 1, not ", o.candidates);
  KDNAS_CHECK(o.top >= 1, "search: top must be >= 1, not ", o.top);
  KDNAS_CHECK(o.controller_opt.pool >= 1, "search: pool must be >= 1, not ", o.controller_opt.pool);
  KDNAS_CHECK(o.screen_margin > 0, "search: screen margin must be > 0, not ", o.screen_margin);
  for (double b : o.budgets_ms)
    KDNAS_CHECK(std::isfinite(b) && b > 0, "search: a budget must be > 0 ms, not ", b);
}

}  // namespace

const char* candidate_status_name(CandidateStatus s) {
  switch (s) {
    case CandidateStatus::Ok:
      return "ok";
    case CandidateStatus::Screened:
      return "screened";
    case CandidateStatus::Rejected:
      return "rejected";
  }
  return "?";
}

std::string arch_dir_name(const Arch& a) {
  return std::to_string(a.layers) + "_" + std::to_string(a.hidden) + "_" + std::to_string(a.heads) +
         "_" + std::to_string(a.ffn);
}

std::string candidate_to_json(const Candidate& c) {
  ojson j;
  j["episode"] = c.episode;
  j["index"] = c.index;
  j["architecture"] = arch_to_string(c.arch);
  j["layers"] = c.arch.layers;
  j["hidden"] = c.arch.hidden;
  j["heads"] = c.arch.heads;
  j["ffn"] = c.arch.ffn;
  j["status"] = candidate_status_name(c.status);
  j["parameters"] = c.parameters;
  j["non_embedding_parameters"] = c.non_embedding;
  j["latency_ms"] = num_or_null(c.latency_ms);
  j["latency_min_ms"] = num_or_null(c.latency_min_ms);
  j["latency_max_ms"] = num_or_null(c.latency_max_ms);
  j["latency_contended"] = c.contended;
  j["predicted_latency_ms"] = num_or_null(c.predicted_ms);
  j["predicted_reward"] = num_or_null(c.predicted_reward);
  j["kd_loss"] = num_or_null(c.kd_loss);
  j["reward"] = num_or_null(c.reward);
  j["cached"] = c.cached;
  j["proxy_seconds"] = c.proxy_seconds;
  j["wall_seconds"] = c.wall_seconds;
  j["context"] = {ctx_to_string(c.prev_best), ctx_to_string(c.best_so_far)};
  return j.dump();
}

Candidate candidate_from_json(const std::string& line, const std::string& what) {
  try {
    const json j = json::parse(line);
    Candidate c;
    c.episode = j.at("episode").get<int64_t>();
    c.index = j.at("index").get<int64_t>();
    c.arch = arch_from_string(j.at("architecture").get<std::string>());
    const std::string st = j.at("status").get<std::string>();
    if (st == "ok") {
      c.status = CandidateStatus::Ok;
    } else if (st == "screened") {
      c.status = CandidateStatus::Screened;
    } else {
      KDNAS_CHECK(st == "rejected", "search: ", what, ": unknown status '", st, "'");
      c.status = CandidateStatus::Rejected;
    }
    c.parameters = j.at("parameters").get<int64_t>();
    c.non_embedding = j.at("non_embedding_parameters").get<int64_t>();
    c.latency_ms = num_or_nan(j, "latency_ms");
    c.latency_min_ms = num_or_nan(j, "latency_min_ms");
    c.latency_max_ms = num_or_nan(j, "latency_max_ms");
    c.contended = j.value("latency_contended", false);
    c.predicted_ms = num_or_nan(j, "predicted_latency_ms");
    c.predicted_reward = num_or_nan(j, "predicted_reward");
    c.kd_loss = num_or_nan(j, "kd_loss");
    c.reward = num_or_nan(j, "reward");
    c.cached = j.value("cached", false);
    c.proxy_seconds = j.value("proxy_seconds", 0.0);
    c.wall_seconds = j.value("wall_seconds", 0.0);
    c.prev_best = ctx_from_string(j.at("context").at(0).get<std::string>());
    c.best_so_far = ctx_from_string(j.at("context").at(1).get<std::string>());
    KDNAS_CHECK(
        c.status != CandidateStatus::Ok || (std::isfinite(c.kd_loss) && std::isfinite(c.reward)),
        "search: ", what, ": a scored candidate without kd_loss or reward");
    return c;
  } catch (const json::exception& e) {
    KDNAS_CHECK(false, "search: ", what, " is not a candidate row: ", e.what());
  }
  return {};
}

std::vector<int64_t> best_per_budget(const std::vector<Candidate>& cands,
                                     const std::vector<double>& budgets_ms) {
  std::vector<int64_t> out;
  for (double b : budgets_ms) {
    int64_t best = -1;
    for (size_t i = 0; i < cands.size(); ++i) {
      const Candidate& c = cands[i];
      if (c.status != CandidateStatus::Ok || !(c.latency_ms <= b)) continue;
      if (best < 0 || c.reward > cands[best].reward) best = int64_t(i);
    }
    out.push_back(best);
  }
  return out;
}

std::vector<int64_t> chosen_candidates(const std::vector<Candidate>& cands,
                                       const std::vector<double>& budgets_ms, int64_t top) {
  std::vector<int64_t> chosen;
  auto choose = [&](int64_t i) {
    for (int64_t j : chosen)
      if (cands[size_t(j)].arch == cands[size_t(i)].arch) return false;
    chosen.push_back(i);
    return true;
  };
  for (int64_t i : best_per_budget(cands, budgets_ms))
    if (i >= 0) choose(i);
  std::vector<int64_t> order;
  for (size_t i = 0; i < cands.size(); ++i)
    if (cands[i].status == CandidateStatus::Ok) order.push_back(int64_t(i));
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return cands[size_t(a)].reward > cands[size_t(b)].reward;
  });
  std::set<Arch> seen;
  int64_t taken = 0;
  for (int64_t i : order) {
    if (taken == top) break;
    if (!seen.insert(cands[size_t(i)].arch).second) continue;
    choose(i);
    ++taken;
  }
  return chosen;
}

std::vector<double> best_reward_curve(const std::vector<Candidate>& cands, int64_t episodes) {
  std::vector<double> curve(size_t(std::max<int64_t>(episodes, 0)), NAN);
  double best = NAN;
  for (int64_t e = 0; e < episodes; ++e) {
    for (const Candidate& c : cands)
      if (c.episode == e && c.status == CandidateStatus::Ok && !(c.reward <= best)) best = c.reward;
    curve[size_t(e)] = best;
  }
  return curve;
}

SearchResult run_search(const SearchOptions& opt_in) {
  check_options(opt_in);
  SearchOptions o = opt_in;
  const auto t_start = Clock::now();
  const fs::path out(o.out);
  if (o.candidates_dir.empty()) o.candidates_dir = (out / "candidates").string();
  if (o.latency_path.empty()) o.latency_path = (out / kLatencyFile).string();
  const std::string state_path = (out / kStateFile).string();
  const std::string cands_path = (out / kCandidatesFile).string();
  const std::string ctl_path = (out / kControllerFile).string();
  if (o.resume) {
    KDNAS_CHECK(fs::exists(state_path), "search: --resume: ", o.out,
                " holds no search (no state.json)");
  } else {
    KDNAS_CHECK(!fs::exists(state_path), "search: ", o.out,
                " already holds a search (state.json); pass --resume to continue it");
  }
  std::error_code ec;
  fs::create_directories(out, ec);
  KDNAS_CHECK(!ec && fs::is_directory(out), "search: cannot create ", o.out, ": ", ec.message());

  SearchResult r;
  r.teacher_arch = arch_of(o.teacher);
  State st;
  if (o.resume) {
    st = load_state(o, state_path);
    r.candidates = load_candidates(cands_path);
  }
  auto log = [&](const std::string& line) {
    if (o.progress) std::fprintf(stderr, "%s\n", line.c_str());
  };

  // Latency, cached across calls and resumes.
  LatencyTable table = LatencyTable::load(o.latency_path);
  auto measure = [&](const Arch& a) {
    if (const LatencyMeasurement* m = table.find(a, o.latency)) return *m;
    const LatencyMeasurement m =
        o.latency_fn ? o.latency_fn(a) : measure_latency(a, o.teacher, o.latency);
    table.put(a, o.latency, m);
    table.save(o.latency_path);
    return m;
  };
  r.teacher_ms = measure(r.teacher_arch).median_ms;
  log("search " + o.out + ": teacher " + arch_to_string(r.teacher_arch) + " " +
      fmt("%.3f", r.teacher_ms) + " ms (" + o.latency.key() + ")");

  std::unique_ptr<Controller> ctl =
      make_controller(o.controller, o.space, o.teacher, o.controller_opt);
  if (o.resume && fs::exists(ctl_path)) {
    const SafetensorsFile f = SafetensorsFile::open(ctl_path);
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const std::string& n : f.names()) tensors.emplace_back(n, f.get(n).clone());
    ctl->load_state(tensors);
    auto it = f.metadata().find("updates");
    KDNAS_CHECK(it != f.metadata().end(), "search: ", ctl_path, " has no 'updates' metadata");
    st.updates = std::stoll(it->second);
  }
  const int64_t space_size = o.space.size(o.teacher);
  const int64_t n = std::min(o.candidates, space_size);
  auto write_state = [&] {
    write_text(state_path, state_json(o, st, int64_t(r.candidates.size()), r.teacher_ms));
  };
  write_state();

  // Rows by (episode, index), for resume.
  auto find_row = [&](int64_t e, int64_t i) -> const Candidate* {
    for (const Candidate& c : r.candidates)
      if (c.episode == e && c.index == i) return &c;
    return nullptr;
  };
  const double limit_ms =
      o.space.max_latency_ms > 0
          ? o.space.max_latency_ms
          : (o.budgets_ms.empty() ? 0
                                  : *std::max_element(o.budgets_ms.begin(), o.budgets_ms.end()));

  for (int64_t e = 0; e < o.episodes; ++e) {
    const auto t_episode = Clock::now();
    if (int64_t(st.episodes.size()) <= e) {
      // Context: the previous episode's best and the best so far; Arch{} (the controller's
      // "none") before there is one.
      EpisodeState es;
      const int64_t prev = best_index(r.candidates, e - 1, e);
      const int64_t all = best_index(r.candidates, 0, e);
      if (prev >= 0) es.prev_best = r.candidates[size_t(prev)].arch;
      if (all >= 0) es.best_so_far = r.candidates[size_t(all)].arch;
      es.proposals = ctl->propose(e, n, es.prev_best, es.best_so_far);
      KDNAS_CHECK(!es.proposals.empty(), "search: the ", ctl->name(),
                  " controller proposed no candidate for episode ", e);
      st.episodes.push_back(es);
      write_state();
    }
    const EpisodeState& es = st.episodes[size_t(e)];
    const int64_t count = int64_t(es.proposals.size());

    // The latency model, fitted on the rows of earlier episodes only, so that a resumed run
    // sees exactly the points the uninterrupted run saw.
    LatencyModel model;
    int64_t model_points = 0;
    {
      std::vector<Candidate> earlier;
      for (const Candidate& c : r.candidates)
        if (c.episode < e) earlier.push_back(c);
      const auto pts = measured_points(earlier, r.teacher_arch, r.teacher_ms);
      model_points = int64_t(pts.size());
      if (pts.size() >= 2) model.fit(pts, o.latency);
    }
    const bool screening = model.fitted() && limit_ms > 0 && model_points >= o.screen_min_points;
    log("episode " + std::to_string(e + 1) + "/" + std::to_string(o.episodes) + ": " +
        std::to_string(count) + " candidates, exploration " +
        fmt("%.2f", exploration(o.controller_opt, e)) + (screening ? ", screening" : ""));

    for (int64_t i = 0; i < count; ++i) {
      if (find_row(e, i)) continue;
      const auto t0 = Clock::now();
      Candidate c;
      c.episode = e, c.index = i;
      c.arch = es.proposals[size_t(i)];
      c.prev_best = es.prev_best, c.best_so_far = es.best_so_far;
      const ParamCount pc = arch_parameters(c.arch, o.teacher);
      c.parameters = pc.total, c.non_embedding = pc.non_embedding;
      c.predicted_reward = ctl->predict(c.prev_best, c.best_so_far, c.arch);
      if (model.fitted()) c.predicted_ms = model.predict_ms(c.arch);
      if (screening && c.predicted_ms > o.screen_margin * limit_ms) {
        c.status = CandidateStatus::Screened;
      } else {
        const LatencyMeasurement m = measure(c.arch);
        c.latency_ms = m.median_ms, c.latency_min_ms = m.min_ms, c.latency_max_ms = m.max_ms;
        c.contended = m.contended;
        if (o.space.max_latency_ms > 0 && c.latency_ms > o.space.max_latency_ms) {
          c.status = CandidateStatus::Rejected;
        } else {
          const Candidate* before = nullptr;
          for (const Candidate& p : r.candidates)
            if (p.arch == c.arch && p.status == CandidateStatus::Ok) {
              before = &p;
              break;
            }
          if (before) {
            c.kd_loss = before->kd_loss;
            c.cached = true;
          } else {
            const ProxyResult pr =
                o.proxy(c.arch, (fs::path(o.candidates_dir) / arch_dir_name(c.arch)).string());
            ++r.proxy_calls;
            c.kd_loss = pr.kd_loss;
            c.proxy_seconds = pr.seconds;
          }
          c.reward = reward(c.kd_loss, c.latency_ms, r.teacher_ms, o.reward);
        }
      }
      c.wall_seconds = since(t0);
      r.candidates.push_back(c);
      ++r.new_candidates;
      // The row first (the record a resume reads), then the informational progress.
      write_candidates(cands_path, r.candidates);
      write_state();
      std::string line = "  [" + std::to_string(e + 1) + "." + std::to_string(i + 1) + "/" +
                         std::to_string(count) + "] " + arch_to_string(c.arch) + "  ";
      if (c.status == CandidateStatus::Screened) {
        line += "screened: predicted " + fmt("%.3f", c.predicted_ms) + " ms";
      } else {
        line += fmt("%.3f ms", c.latency_ms);
        if (std::isfinite(c.predicted_ms)) line += fmt(" (predicted %.3f)", c.predicted_ms);
        if (c.status == CandidateStatus::Rejected)
          line += "  rejected: over " + fmt("%g", o.space.max_latency_ms) + " ms";
        else
          line += "  loss " + fmt("%.4f", c.kd_loss) + "  reward " + fmt("%.4f", c.reward) +
                  (c.cached ? "  (cached)" : "") + fmt("  %.1f s", c.wall_seconds);
      }
      log(line);
      if (o.stop_after >= 0 && r.new_candidates >= o.stop_after) {
        r.seconds = since(t_start);
        write_outputs(o, r, st);
        return r;
      }
    }

    // Learn from every observation so far, exactly once per episode.
    if (st.updates == e) {
      std::vector<Observation> obs;
      for (const Candidate& c : r.candidates)
        if (c.status == CandidateStatus::Ok)
          obs.push_back({c.prev_best, c.best_so_far, c.arch, c.reward});
      ctl->update(obs);
      st.updates = e + 1;
      save_controller(ctl_path, *ctl, st.updates);
      write_state();
    }
    const int64_t best = best_index(r.candidates, 0, e + 1);
    log("episode " + std::to_string(e + 1) + " done in " + fmt("%.1f s", since(t_episode)) +
        (best >= 0 ? "; best so far " + arch_to_string(r.candidates[best].arch) + " reward " +
                         fmt("%.4f", r.candidates[best].reward)
                   : ""));
    write_outputs(o, r, st);
  }
  st.finished = true;
  r.finished = true;
  write_state();
  r.seconds = since(t_start);
  write_outputs(o, r, st);
  return r;
}

std::string compare_report(const std::string& name_a, const SearchResult& a,
                           const std::string& name_b, const SearchResult& b,
                           const std::vector<double>& budgets_ms, int64_t episodes) {
  std::ostringstream s;
  s << "# KD-NAS: " << name_a << " vs " << name_b << " controller, same budget\n\n"
    << "Both searches propose the same number of candidates per episode and score them the "
       "same way; the proxy results and latencies of an architecture both measured are shared.\n\n"
    << "## Best reward after each episode\n\n| episode | " << name_a << " | " << name_b
    << " |\n|---|---|---|\n";
  const auto ca = best_reward_curve(a.candidates, episodes);
  const auto cb = best_reward_curve(b.candidates, episodes);
  for (int64_t e = 0; e < episodes; ++e)
    s << "| " << e << " | " << fmt("%.4f", ca[size_t(e)]) << " | " << fmt("%.4f", cb[size_t(e)])
      << " |\n";
  auto summary = [&](const SearchResult& r) {
    std::set<Arch> uniq;
    double sum = 0;
    int64_t ok = 0;
    for (const Candidate& c : r.candidates)
      if (c.status == CandidateStatus::Ok) {
        uniq.insert(c.arch);
        sum += c.reward;
        ++ok;
      }
    return std::to_string(uniq.size()) + " | " + fmt("%.4f", ok ? sum / double(ok) : NAN);
  };
  s << "\n## Candidates\n\n| controller | distinct architectures | mean reward |\n|---|---|---|\n"
    << "| " << name_a << " | " << summary(a) << " |\n| " << name_b << " | " << summary(b) << " |\n";
  if (!budgets_ms.empty()) {
    s << "\n## Best per budget\n\n| budget (ms) | " << name_a << " | " << name_b
      << " |\n|---|---|---|\n";
    const auto ba = best_per_budget(a.candidates, budgets_ms);
    const auto bb = best_per_budget(b.candidates, budgets_ms);
    auto cell = [](const SearchResult& r, int64_t i) {
      if (i < 0) return std::string("none");
      const Candidate& c = r.candidates[size_t(i)];
      return "`" + arch_to_string(c.arch) + "` " + fmt("%.4f", c.reward);
    };
    for (size_t k = 0; k < budgets_ms.size(); ++k)
      s << "| " << fmt("%g", budgets_ms[k]) << " | " << cell(a, ba[k]) << " | " << cell(b, bb[k])
        << " |\n";
  }
  return s.str();
}

}  // namespace kdnas
