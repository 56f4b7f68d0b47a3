#include "kernels/profiler.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "kernels/cuda/cuda_context.h"
#include "tensor/check.h"

namespace kdnas {
namespace {

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Per-thread bookkeeping: how many op scopes are open on this thread (for nesting), and the
// thread's small trace id.
thread_local int t_op_depth = 0;
thread_local int t_tid = 0;
std::atomic<int> g_next_tid{1};

int this_tid() {
  if (t_tid == 0) t_tid = g_next_tid.fetch_add(1);
  return t_tid;
}

const char* route_name(Route r, DType dt) {
  if (dt == DType::F64) return "ref";
  switch (r) {
    case Route::Ref:
      return "ref";
    case Route::Omp:
      return "omp";
    case Route::Onednn:
      return "onednn";
    case Route::Cuda:
      return "cuda";
  }
  return "?";
}

// s as the body of a JSON string.
std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o += c;
    }
  }
  return o;
}

// One table of the summary; `rates` adds the GFLOP/s and GB/s columns (not for layers, whose
// FLOPs and bytes are their ops').
void table(std::string& out, const char* title, const char* what,
           const std::vector<ProfileRow>& rows, bool rates) {
  if (rows.empty()) return;
  char line[256];
  out += title;
  out += '\n';
  std::snprintf(line, sizeof line, "  %-24s %8s %11s %7s %11s", what, "calls", "total ms", "share",
                "mean us");
  out += line;
  out += rates ? "    GFLOP/s      GB/s\n" : "\n";
  for (const ProfileRow& r : rows) {
    std::snprintf(line, sizeof line, "  %-24s %8lld %11.3f %6.1f%% %11.1f", r.name.c_str(),
                  (long long)r.calls, r.total_ms, r.share, r.mean_us);
    out += line;
    if (rates) {
      char gf[32] = "-";
      if (r.flops > 0) std::snprintf(gf, sizeof gf, "%.1f", r.gflops);
      std::snprintf(line, sizeof line, " %10s %9.2f", gf, r.gbps);
      out += line;
    }
    out += '\n';
  }
}

}  // namespace

// ---- Profiler --------------------------------------------------------------------------------

Profiler::Profiler(std::string path) : path_(std::move(path)), start_ns_(steady_ns()) {
  if (!path_.empty()) {
    file_ = std::fopen(path_.c_str(), "w");
    KDNAS_CHECK(file_ != nullptr, "profile: cannot write the trace to '", path_,
                "': ", std::strerror(errno));
  }
}

Profiler::~Profiler() {
  try {
    finish();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kdnas: error: %s\n", e.what());
  }
}

std::shared_ptr<Profiler> Profiler::from_env() {
  // The one piece of process-wide state: an environment variable describes the process, so its
  // profiler is the process's. Made on the first Context, written when the process exits.
  static const std::shared_ptr<Profiler> env = []() -> std::shared_ptr<Profiler> {
    const char* p = std::getenv("KDNAS_PROFILE");
    if (p == nullptr || *p == '\0') return nullptr;
    try {
      return std::make_shared<Profiler>(p);
    } catch (const Error& e) {
      detail::fail(detail::concat("KDNAS_PROFILE: ", e.what()));
    }
  }();
  return env;
}

double Profiler::now_us() const {
  return double(steady_ns() - start_ns_) * 1e-3;
}

void Profiler::record(ProfileEvent e) {
  const Table t = std::strcmp(e.cat, "layer") == 0 ? kLayer : e.depth == 0 ? kTop : kNested;
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, fresh] = totals_[t].try_emplace(e.name);
  if (fresh) order_[t].push_back(e.name);
  if (first_us_ < 0 || e.ts_us < first_us_) first_us_ = e.ts_us;
  last_us_ = std::max(last_us_, e.ts_us + e.dur_us);
  Totals& s = it->second;
  s.calls += 1;
  s.us += e.dur_us;
  s.flops += e.flops;
  s.bytes += e.bytes;
  if (events_.size() < kMaxTraceEvents)
    events_.push_back(std::move(e));
  else
    ++dropped_;
}

std::vector<ProfileEvent> Profiler::events() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_;
}

std::vector<ProfileRow> Profiler::rows(Table t) const {
  std::lock_guard<std::mutex> lock(mu_);
  double all_us = 0;
  for (const auto& [name, s] : totals_[t]) all_us += s.us;
  std::vector<ProfileRow> out;
  for (const std::string& name : order_[t]) {
    const Totals& s = totals_[t].at(name);
    ProfileRow r;
    r.name = name;
    r.calls = s.calls;
    r.total_ms = s.us * 1e-3;
    r.share = all_us > 0 ? 100.0 * s.us / all_us : 0.0;
    r.mean_us = s.calls ? s.us / double(s.calls) : 0.0;
    r.flops = s.flops;
    r.bytes = s.bytes;
    r.gflops = s.us > 0 ? s.flops / s.us * 1e-3 : 0.0;  // FLOP/µs = MFLOP/s
    r.gbps = s.us > 0 ? s.bytes / s.us * 1e-3 : 0.0;
    out.push_back(std::move(r));
  }
  std::stable_sort(out.begin(), out.end(), [](const ProfileRow& a, const ProfileRow& b) {
    return a.total_ms > b.total_ms;
  });
  return out;
}

std::string Profiler::summary_table() const {
  const std::vector<ProfileRow> top = summary();
  double ms = 0, flops = 0;
  int64_t calls = 0;
  for (const ProfileRow& r : top) ms += r.total_ms, flops += r.flops, calls += r.calls;
  double span_ms = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    span_ms = first_us_ < 0 ? 0.0 : (last_us_ - first_us_) * 1e-3;
  }
  // The ops' share of that span shows how much time goes outside any op (views, masks, the
  // caller's own loops): the overhead a per-op view cannot see.
  char line[320];
  std::snprintf(line, sizeof line,
                "kdnas profile: %lld op calls, %.3f ms in ops (%.1f%% of the %.3f ms from the "
                "first op to the last), %.1f GFLOP/s over all ops\n",
                (long long)calls, ms, span_ms > 0 ? 100.0 * ms / span_ms : 0.0, span_ms,
                ms > 0 ? flops / ms * 1e-6 : 0.0);
  std::string out = line;
  table(out, "ops (outermost calls; shares of the time in ops):", "op", top, true);
  table(out, "ops inside other ops (already counted in their callers' rows):", "op",
        nested_summary(), true);
  table(out, "layers (each around its ops):", "layer", layer_summary(), false);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (dropped_ > 0) {
      std::snprintf(line, sizeof line,
                    "(the trace holds the first %zu events; %lld more are only in the tables)\n",
                    kMaxTraceEvents, (long long)dropped_);
      out += line;
    }
  }
  if (!path_.empty()) out += "trace: " + path_ + " (chrome://tracing or ui.perfetto.dev)\n";
  return out;
}

void Profiler::write_trace(std::FILE* f) const {
  std::lock_guard<std::mutex> lock(mu_);
  const long pid = long(getpid());
  std::fprintf(f, "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n");
  std::fprintf(f,
               "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": %ld, \"tid\": 0, "
               "\"args\": {\"name\": \"kdnas\"}}",
               pid);
  for (const ProfileEvent& e : events_) {
    std::fprintf(f,
                 ",\n{\"name\": \"%s\", \"cat\": \"%s\", \"ph\": \"X\", \"ts\": %.3f, "
                 "\"dur\": %.3f, \"pid\": %ld, \"tid\": %d, \"args\": {\"shape\": \"%s\", "
                 "\"dtype\": \"%s\", \"route\": \"%s\", \"flops\": %.0f, \"bytes\": %.0f, "
                 "\"depth\": %d%s%s%s}}",
                 json_escape(e.name).c_str(), e.cat, e.ts_us, e.dur_us, pid, e.tid,
                 json_escape(e.shape).c_str(), e.dtype, e.route, e.flops, e.bytes, e.depth,
                 e.gemm.empty() ? "" : ", \"gemm\": \"", json_escape(e.gemm).c_str(),
                 e.gemm.empty() ? "" : "\"");
  }
  std::fprintf(f, "\n]}\n");
}

void Profiler::finish() {
  if (finished_) return;
  finished_ = true;
  if (file_ != nullptr) {
    std::FILE* f = file_;
    file_ = nullptr;
    write_trace(f);
    const bool bad = std::ferror(f) != 0;
    const bool closed = std::fclose(f) == 0;
    KDNAS_CHECK(!bad && closed, "profile: writing the trace to '", path_, "' failed");
  }
  std::fputs(summary_table().c_str(), stderr);
}

// ---- ProfileScope ----------------------------------------------------------------------------

void ProfileScope::begin(Context& ctx, const char* name, const char* cat) {
  ctx_ = &ctx;
  uncaught_ = std::uncaught_exceptions();
  event_.name = name;
  event_.cat = cat;
  event_.tid = this_tid();
  if (std::strcmp(cat, "op") == 0) event_.depth = t_op_depth++;
  event_.ts_us = prof_->now_us();
}

void ProfileScope::set(Route r, DType dt, std::string shape, double flops, double bytes) {
  event_.route = route_name(r, dt);
  event_.dtype = dtype_name(dt);
  event_.shape = std::move(shape);
  event_.flops = flops;
  event_.bytes = bytes;
  sync_cuda_ = r == Route::Cuda;
}

void ProfileScope::set(Route r, std::initializer_list<const Tensor*> ins, double out_bytes,
                       double flops) {
  set(r, (*ins.begin())->dtype(), profile_shapes(ins), flops, profile_bytes(ins) + out_bytes);
}

void ProfileScope::end() {
  if (std::strcmp(event_.cat, "op") == 0) --t_op_depth;
  if (std::uncaught_exceptions() > uncaught_) return;  // the op failed: no event
  if (sync_cuda_) {
    try {
      cuda_synchronize(*ctx_);
    } catch (const std::exception&) {
      return;  // a kernel failed; the op's caller hears of it at its next synchronisation
    }
  }
  event_.dur_us = prof_->now_us() - event_.ts_us;
  prof_->record(std::move(event_));
}

std::string profile_shapes(std::initializer_list<const Tensor*> ts) {
  std::string s;
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    if (!s.empty()) s += " x ";
    s += shape_str(t->shape());
  }
  return s;
}

double profile_bytes(std::initializer_list<const Tensor*> ts) {
  double b = 0;
  for (const Tensor* t : ts)
    if (t->defined()) b += double(t->nbytes());
  return b;
}

}  // namespace kdnas
