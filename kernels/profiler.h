// The per-op profiler (docs/profiling.md): every op API call's wall time, FLOPs and bytes, written
// as a Chrome trace (chrome://tracing, ui.perfetto.dev) and summed into a per-op table.
//
// A Profiler hangs off a Context (Context::set_profiler); the op API files (kernels/*.cpp) open a
// ProfileScope around their work. With no profiler the scope is one null-pointer test on entry
// and one on exit, so profiling costs nothing when it is off. KDNAS_PROFILE=FILE.json in the
// environment gives every Context one shared Profiler (read once per process, written at exit);
// the CLI's --profile FILE.json attaches its own to the command's Context.
//
// Nesting. Ops call ops (linear -> matmul's kernels, matmul's bf16 widening -> cast, the GEMMs of
// matmul_backward). Every scope becomes a trace event, so the trace shows the nesting; the summary
// counts only outermost op scopes, so its times never overlap, its shares sum to 100% and its
// FLOPs are those of the op that was called. Ops inside ops get their own table.
#pragma once

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/context.h"
#include "kernels/dispatch.h"
#include "tensor/tensor.h"

namespace kdnas {

// One complete ("ph":"X") trace event.
struct ProfileEvent {
  std::string name;        // "matmul", "layer_norm_backward", "layer 3"
  const char* cat = "op";  // "op" or "layer"
  double ts_us = 0;        // start, µs since the profiler was made
  double dur_us = 0;
  int tid = 0;             // 1, 2, ... in the order threads first recorded
  int depth = 0;           // op scopes open around this one on its thread (0 = outermost)
  double flops = 0;        // floating-point operations (GEMMs: 2·M·N·K per matrix)
  double bytes = 0;        // compulsory traffic: every input read once, every output written once
  std::string shape;       // "[128, 768] x [768, 3072]"
  const char* dtype = "";  // the operands' dtype
  const char* route = "";  // ref, omp, onednn, cuda
  std::string gemm;        // GEMMs: the problem as ONEDNN_VERBOSE prints it, "128x768:768x2304"
};

// One line of the summary: every event of one name, at one nesting level.
struct ProfileRow {
  std::string name;
  int64_t calls = 0;
  double total_ms = 0;
  double share = 0;  // of the table's total time, in %
  double mean_us = 0;
  double gflops = 0;  // FLOP / total time, in GFLOP/s (0 when the op has no FLOP count)
  double gbps = 0;    // bytes / total time, in GB/s
  double flops = 0, bytes = 0;
};

class Profiler {
 public:
  // Opens `path` for writing now, so that a bad path fails before any work is done ("profile:
  // cannot write ..."). An empty path keeps everything in memory (tests).
  explicit Profiler(std::string path);
  // finish() if it has not run; an error there is printed, not thrown.
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  // The Profiler that KDNAS_PROFILE asks for, shared by every Context; null when the variable is
  // unset or empty. The variable is read once per process; the trace is written at exit.
  static std::shared_ptr<Profiler> from_env();

  const std::string& path() const { return path_; }
  double now_us() const;  // µs since the profiler was made
  void record(ProfileEvent e);

  // The recorded events (at most kMaxTraceEvents; the summary counts every event).
  std::vector<ProfileEvent> events() const;
  // Outermost op scopes (depth 0), by total time, largest first; shares sum to 100.
  std::vector<ProfileRow> summary() const { return rows(kTop); }
  // Op scopes inside other ops (already counted by their callers), and "layer" scopes.
  std::vector<ProfileRow> nested_summary() const { return rows(kNested); }
  std::vector<ProfileRow> layer_summary() const { return rows(kLayer); }
  // The tables summary(), nested_summary() and layer_summary() as text.
  std::string summary_table() const;
  // {"traceEvents": [...]} to f.
  void write_trace(std::FILE* f) const;

  // Writes the trace to path() and prints summary_table() to stderr; once (later calls do
  // nothing). Throws when the trace cannot be written.
  void finish();

  static constexpr size_t kMaxTraceEvents = 2'000'000;  // about 300 MB of events in memory

 private:
  enum Table { kTop, kNested, kLayer, kTables };
  struct Totals {
    int64_t calls = 0;
    double us = 0, flops = 0, bytes = 0;
  };
  std::vector<ProfileRow> rows(Table t) const;

  std::string path_;
  std::FILE* file_ = nullptr;
  int64_t start_ns_ = 0;
  bool finished_ = false;
  mutable std::mutex mu_;  // ops may run on several threads' Contexts sharing one Profiler
  std::vector<ProfileEvent> events_;
  int64_t dropped_ = 0;
  double first_us_ = -1, last_us_ = 0;  // the span from the first event's start to the last's end
  std::unordered_map<std::string, Totals> totals_[kTables];
  std::vector<std::string> order_[kTables];  // first-seen order, for stable ties
};

// Times the enclosing block as one op (or "layer") event of ctx's profiler, if it has one.
//   ProfileScope prof(ctx, "layer_norm");
//   if (prof) prof.set(r, x.dtype(), profile_shapes({&x, &gamma}), 0, bytes);
// Only the constructor and destructor run when profiling is off: one pointer test each. An op
// that throws records nothing. On the CUDA route the scope waits for the stream before it stops
// the clock, so that the time is the kernels' and not the launch's.
class ProfileScope {
 public:
  ProfileScope(Context& ctx, const char* name, const char* cat = "op") : prof_(ctx.profiler()) {
    if (prof_) begin(ctx, name, cat);
  }
  ~ProfileScope() {
    if (prof_) end();
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

  explicit operator bool() const { return prof_ != nullptr; }
  // What the op is; call only when the scope is active. f64 reports route "ref" (every f64 op
  // runs the reference kernels).
  void set(Route r, DType dt, std::string shape, double flops, double bytes);
  // The usual case: dtype and shapes from the inputs `ins` (the first one's dtype), bytes = the
  // inputs read once + out_bytes written.
  void set(Route r, std::initializer_list<const Tensor*> ins, double out_bytes, double flops = 0);
  void set_name(std::string name) { event_.name = std::move(name); }
  void set_gemm(std::string problem) { event_.gemm = std::move(problem); }

 private:
  void begin(Context& ctx, const char* name, const char* cat);
  void end();

  Profiler* prof_;
  Context* ctx_ = nullptr;
  bool sync_cuda_ = false;
  int uncaught_ = 0;
  ProfileEvent event_;
};

// "[128, 768] x [768, 3072]": the shapes of ts, joined by " x ".
std::string profile_shapes(std::initializer_list<const Tensor*> ts);
// The sum of ts' sizes in bytes (undefined tensors count 0).
double profile_bytes(std::initializer_list<const Tensor*> ts);

}  // namespace kdnas
