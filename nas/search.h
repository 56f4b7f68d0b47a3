// The KD-NAS episode loop (KDNAS.md, "Controller", "Reward") and its run directory.
//
// One search:
//   teacher latency   measured once (cached in the latency table like every other measurement)
//   for each episode e:
//     propose         controller->propose(e, N, prev_best, best_so_far); the controller does
//                     its own eps-greedy choice from a pool (nas/controller.h)
//     screen          once the latency model has enough points, a candidate predicted slower
//                     than screen_margin x the limit (the space's max_latency_ms, else the
//                     largest budget) is dropped before it costs a measurement
//     measure         latency on the shipping kernels (cached per architecture and settings);
//                     slower than the space's max_latency_ms: rejected, not distilled
//     distil          proxy distillation through the ProxyFn callback (nas/ never links
//                     distill/); an architecture measured before reuses its result
//     reward          nas/reward.h, optionally in hard-budget mode
//     record          the candidate's row is written before the next candidate starts
//   controller->update(every observation so far); its state is saved
// prev_best is the best-reward architecture of the previous episode, best_so_far the best over
// all earlier episodes; Arch{} (the controller's "none") until there is one.
//
// The run directory (every file written atomically: temporary file + rename):
//   state.json               settings, the current episode and its proposals, progress
//   controller.safetensors   the controller's weights and optimizer state; its metadata
//                            "updates" counts the episodes it has learnt from
//   candidates.jsonl         one row per candidate (the record a resume restarts from)
//   latency.json             the latency table (nas/latency.h)
//   pareto.csv, pareto.json  the candidates not dominated in (latency, proxy loss)
//   pareto.svg               every candidate, the front, the teacher's latency, the budgets
//   report.md                settings, teacher latency, best per budget, top K, the latency
//                            model's error, the `kdnas distill` commands for the chosen students
// A run killed at any moment resumes (resume = true) without redoing a finished candidate and
// reaches the same result as an uninterrupted run, given deterministic callbacks: proposals are
// saved before the first candidate of an episode, a controller update is applied exactly once
// (the "updates" count), and the results are read back from candidates.jsonl.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nas/controller.h"
#include "nas/latency.h"
#include "nas/reward.h"
#include "nas/space.h"
#include "transformer/config.h"

namespace kdnas {

// The result of one proxy distillation.
struct ProxyResult {
  double kd_loss = 0;  // mean loss over the last proxy epoch
  double seconds = 0;  // wall time of the distillation
};
// Distils one candidate on the proxy set; work_dir is the candidate's own directory (may
// already hold a previous, interrupted attempt). Must be deterministic for exact resume.
using ProxyFn = std::function<ProxyResult(const Arch& arch, const std::string& work_dir)>;
// Measures one architecture's latency (the teacher is passed as its own L,H,A,F). When unset,
// the search calls measure_latency with the teacher's config and the latency settings.
using LatencyFn = std::function<LatencyMeasurement(const Arch& arch)>;

struct SearchOptions {
  EncoderConfig teacher;
  SearchSpace space = SearchSpace::default_space();
  int64_t episodes = 15, candidates = 20, top = 3;
  std::string controller = "lstm";   // "lstm" or "random"
  ControllerOptions controller_opt;  // pool, seed, lr, ...
  LatencySettings latency;
  RewardOptions reward;
  std::vector<double> budgets_ms;  // best architecture per budget in the report
  double screen_margin = 1.2;      // screening drops predictions above margin x limit
  int64_t screen_min_points = 8;   // measured points before the latency model screens
  std::string out;                 // the run directory
  bool resume = false;
  // Where candidates' work directories live (default: out/candidates) and where the latency
  // table is kept (default: out/latency.json); two runs may share both.
  std::string candidates_dir, latency_path;
  ProxyFn proxy;
  LatencyFn latency_fn;  // tests and --fake-latency: deterministic latencies
  // Shown in the report and used for its `kdnas distill` commands.
  std::string teacher_dir, corpus;
  std::vector<std::pair<std::string, std::string>> notes;  // extra settings for the report
  bool progress = true;     // one line per episode and per candidate on stderr
  int64_t stop_after = -1;  // >= 0: return after this many new candidates (tests)
};

enum class CandidateStatus { Ok, Screened, Rejected };
const char* candidate_status_name(CandidateStatus s);

struct Candidate {
  int64_t episode = 0, index = 0;  // index within the episode
  Arch arch, prev_best, best_so_far;
  CandidateStatus status = CandidateStatus::Ok;
  int64_t parameters = 0, non_embedding = 0;
  double latency_ms = NAN, latency_min_ms = NAN, latency_max_ms = NAN;  // NaN when screened
  bool contended = false;
  double predicted_ms = NAN;           // the latency model's prediction (NaN before it is fitted)
  double predicted_reward = NAN;       // the controller's prediction (NaN for random)
  double kd_loss = NAN, reward = NAN;  // NaN unless status is Ok
  double proxy_seconds = 0, wall_seconds = 0;
  bool cached = false;  // the proxy result of an earlier candidate was reused
};

// A candidate as one JSON line (no newline) and back; errors name the line.
std::string candidate_to_json(const Candidate& c);
Candidate candidate_from_json(const std::string& line, const std::string& what = "candidate");

struct SearchResult {
  std::vector<Candidate> candidates;
  double teacher_ms = 0;
  Arch teacher_arch;
  bool finished = false;       // false when stop_after ended the call early
  int64_t new_candidates = 0;  // candidates computed by this call (not read back)
  int64_t proxy_calls = 0;     // ProxyFn calls made by this call
  double seconds = 0;          // wall time of this call
};

// Runs (or resumes) the search in opt.out. Errors: an out directory holding a run without
// resume, a resume whose settings differ from the stored ones, no ProxyFn, bad options.
SearchResult run_search(const SearchOptions& opt);

// Best-reward candidate (status Ok) per budget: index into cands, or -1 when none is under it.
std::vector<int64_t> best_per_budget(const std::vector<Candidate>& cands,
                                     const std::vector<double>& budgets_ms);
// The architectures worth a full distillation: the best per budget, then the top K distinct
// architectures by reward (no repeats), as indices into cands.
std::vector<int64_t> chosen_candidates(const std::vector<Candidate>& cands,
                                       const std::vector<double>& budgets_ms, int64_t top);
// Best reward after each episode (running maximum over status-Ok candidates; NaN before any).
std::vector<double> best_reward_curve(const std::vector<Candidate>& cands, int64_t episodes);

// The directory name of an architecture: "L_H_A_F".
std::string arch_dir_name(const Arch& a);

// Writes the comparison of two finished runs (e.g. lstm vs random at the same budget) as
// markdown: best reward per episode, best per budget, unique architectures measured.
std::string compare_report(const std::string& name_a, const SearchResult& a,
                           const std::string& name_b, const SearchResult& b,
                           const std::vector<double>& budgets_ms, int64_t episodes);

}  // namespace kdnas
