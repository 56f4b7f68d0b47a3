// Latency measurement on the shipping inference path, the latency cache and the latency model.
#include "nas/latency.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "kernels/context.h"
#include "kernels/cuda/cuda_context.h"
#include "tensor/check.h"
#include "transformer/inference.h"
#include "transformer/safetensors.h"

namespace kdnas {

using json = nlohmann::json;

namespace {

// Keep in step with project(kdnas VERSION ...) in the top-level CMakeLists.txt: a new version
// starts a new cache key, so latencies measured on old kernels are not reused.
constexpr const char* kVersion = "0.1.0";

// ---- contention: /proc/stat ------------------------------------------------------------------

// CPU time in clock ticks: the whole machine's busy and total time, and this process's own.
struct CpuTimes {
  double machine_busy = 0, machine_total = 0, self = 0;
  int cores = 0;  // the "cpuN" lines: the CPUs the totals are summed over
  bool ok = false;
};

CpuTimes read_cpu_times() {
  CpuTimes t;
  std::ifstream stat("/proc/stat");
  std::string cpu;
  // user nice system idle iowait irq softirq steal (guest time is already inside user).
  double v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (!(stat >> cpu) || cpu != "cpu") return t;
  for (double& x : v)
    if (!(stat >> x)) return t;
  t.machine_total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
  // Steal (the hypervisor running someone else on our cores) counts as busy: it takes our time.
  t.machine_busy = t.machine_total - v[3] - v[4];
  for (std::string line; std::getline(stat, line);)
    t.cores +=
        line.size() > 3 && line.compare(0, 3, "cpu") == 0 && line[3] >= '0' && line[3] <= '9';
  // /proc/self/stat: fields 14 and 15 (utime, stime) after the ")" that ends the command name.
  std::ifstream self("/proc/self/stat");
  std::string line;
  std::getline(self, line);
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return t;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::atof(field.c_str());
    if (i == 15) stime = std::atof(field.c_str());
  }
  t.self = utime + stime;
  t.ok = true;
  return t;
}

// Other processes' share of the machine between two readings (0..1).
double others_busy_fraction(const CpuTimes& a, const CpuTimes& b) {
  if (!a.ok || !b.ok) return 0;
  const double total = b.machine_total - a.machine_total;
  if (total <= 0) return 0;
  const double others = (b.machine_busy - a.machine_busy) - (b.self - a.self);
  return std::clamp(others / total, 0.0, 1.0);
}

// ---- one measurement -------------------------------------------------------------------------

// Random input like real text: <s> tokens </s>, no padding.
Tensor random_ids(const EncoderConfig& cfg, int64_t B, int64_t T) {
  Tensor ids = Tensor::empty({B, T}, DType::I64);
  int64_t* p = ids.data<int64_t>();
  Rng rng(0);
  for (int64_t i = 0; i < B * T; ++i)
    p[i] = 3 + int64_t(rng.below(uint64_t(std::max<int64_t>(cfg.vocab_size - 4, 1))));
  for (int64_t b = 0; b < B; ++b) {
    p[b * T] = cfg.bos_token_id;
    if (T > 1) p[b * T + T - 1] = cfg.eos_token_id;
  }
  return ids;
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

LatencyMeasurement time_runs(InferenceEncoder& inf, Context& ctx, const Tensor& ids,
                             const Tensor& mask, const LatencySettings& s) {
  // One finished forward pass: on a GPU the kernels are asynchronous, so the run ends with a
  // synchronisation of the stream before the clock is read.
  auto run_once = [&] {
    inf.forward(ctx, ids, mask, false);
    if (!inf.device().is_cpu()) cuda_synchronize(ctx);
  };
  for (int64_t i = 0; i < s.warmup; ++i) run_once();
  std::vector<double> ms;
  ms.reserve(size_t(s.runs));
  const CpuTimes before = read_cpu_times();
  for (int64_t i = 0; i < s.runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run_once();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  const CpuTimes after = read_cpu_times();
  LatencyMeasurement m;
  m.median_ms = median_of(ms);
  m.min_ms = *std::min_element(ms.begin(), ms.end());
  m.max_ms = *std::max_element(ms.begin(), ms.end());
  m.busy_fraction = others_busy_fraction(before, after);
  m.contended = latency_contended(m.busy_fraction, after.cores, ctx.threads(), s.max_busy);
  return m;
}

void check_settings(const LatencySettings& s, const EncoderConfig& cfg) {
  KDNAS_CHECK(s.batch > 0 && s.seq > 0, "latency: batch ", s.batch, " and seq ", s.seq,
              " must be positive");
  KDNAS_CHECK(s.threads >= 0, "latency: threads is ", s.threads, "; it must be >= 0");
  KDNAS_CHECK(s.dtype == "f32" || s.dtype == "bf16", "latency: dtype '", s.dtype,
              "' is not f32 or bf16");
  KDNAS_CHECK(s.warmup >= 0 && s.runs > 0, "latency: warmup ", s.warmup, " and runs ", s.runs,
              " must be >= 0 and > 0");
  KDNAS_CHECK(s.retries >= 0, "latency: retries is ", s.retries, "; it must be >= 0");
  parse_device(s.device);  // a bad name is an error here, before anything is built
  KDNAS_CHECK(s.seq + cfg.pad_token_id < cfg.max_position_embeddings, "latency: seq ", s.seq,
              " is too long for max_position_embeddings ", cfg.max_position_embeddings);
}

// time_runs with the contention defence: a contended measurement is repeated up to s.retries
// times, keeping the least contended one.
LatencyMeasurement time_runs_defended(InferenceEncoder& inf, Context& ctx, const Tensor& ids,
                                      const Tensor& mask, const LatencySettings& s) {
  LatencyMeasurement best = time_runs(inf, ctx, ids, mask, s);
  for (int attempt = 1; attempt <= s.retries && best.contended; ++attempt) {
    // Let a burst of other work pass before trying again.
    std::this_thread::sleep_for(std::chrono::milliseconds(100 * attempt));
    const LatencyMeasurement m = time_runs(inf, ctx, ids, mask, s);
    if (m.busy_fraction < best.busy_fraction) best = m;
  }
  return best;
}

// A Context with a thread count sets the process's OpenMP thread count (which oneDNN reads at
// every primitive) and leaves it set; this puts it back afterwards so that timing at 2 threads
// does not leave the caller's distillation running on 2. Context(Ref, 0) reads it unchanged.
struct RestoreThreads {
  int n = Context(Backend::Ref, 0).threads();
  ~RestoreThreads() { Context(Backend::Ref, n); }
};

// The configuration a measurement builds: the word table cut to kLatencyVocab rows (a lookup
// gathers B x T rows whatever the table's size, while filling and copying a random 250k-row
// table would cost more time and memory than the timing itself).
EncoderConfig latency_config(const EncoderConfig& config, const LatencySettings& s) {
  check_settings(s, config);
  EncoderConfig cfg = config;
  cfg.vocab_size = std::min(cfg.vocab_size, kLatencyVocab);
  cfg.validate();
  return cfg;
}

}  // namespace

// ---- settings and build ----------------------------------------------------------------------

std::string build_id() {
  // Read once: key() is called on every cache lookup, and none of this changes while we run.
  static const std::string id = [] {
    std::string cpu = "unknown CPU";
    std::ifstream f("/proc/cpuinfo");
    for (std::string line; std::getline(f, line);) {
      if (line.rfind("model name", 0) != 0) continue;
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        cpu = line.substr(colon + 1);
        cpu.erase(0, cpu.find_first_not_of(" \t"));
      }
      break;
    }
    return detail::concat("kdnas ", kVersion, " ", backend_name(best_cpu_backend()), " ", cpu);
  }();
  return id;
}

bool latency_contended(double busy_fraction, int cores, int threads, double max_busy) {
  const double n =
      double(cores > 0 ? cores : int(std::max(1u, std::thread::hardware_concurrency())));
  const double t = double(std::max(1, threads));
  // Other processes' cores beyond the ones we leave idle spill onto ours.
  const double spill = busy_fraction * n - std::max(0.0, n - t);
  return spill > max_busy * t;
}

std::string LatencySettings::key() const {
  const Device d = parse_device(device);
  if (d.is_cpu())
    return detail::concat("b", batch, ".t", seq, ".th", threads, ".", dtype, "|", build_id());
  return detail::concat("b", batch, ".t", seq, ".th", threads, ".", dtype, ".", d.str(), "|",
                        build_id(), "|", cuda_device_description(d.index));
}

// ---- measurement -----------------------------------------------------------------------------

LatencyMeasurement measure_config_latency(const EncoderConfig& config, const LatencySettings& s) {
  const EncoderConfig cfg = latency_config(config, s);
  const Encoder enc = Encoder::init_random(cfg, 0);
  InferenceEncoder inf(enc, dtype_from_name(s.dtype), parse_device(s.device));
  RestoreThreads restore;
  Context ctx(best_cpu_backend(), s.threads);
  const Tensor ids = random_ids(cfg, s.batch, s.seq);
  const Tensor mask = Tensor::ones({s.batch, s.seq}, DType::I64);
  return time_runs_defended(inf, ctx, ids, mask, s);
}

LatencyMeasurement measure_latency(const Arch& a, const EncoderConfig& teacher,
                                   const LatencySettings& s) {
  return measure_config_latency(arch_config(a, teacher), s);
}

std::vector<LatencyMeasurement> measure_latencies_interleaved(const std::vector<Arch>& archs,
                                                              const EncoderConfig& teacher,
                                                              const LatencySettings& s,
                                                              int rounds) {
  KDNAS_CHECK(rounds >= 1, "latency: rounds is ", rounds, "; it must be >= 1");
  struct Model {
    EncoderConfig cfg;
    std::unique_ptr<InferenceEncoder> inf;
    Tensor ids;
  };
  std::vector<Model> models;
  models.reserve(archs.size());
  for (const Arch& a : archs) {
    Model m;
    m.cfg = latency_config(arch_config(a, teacher), s);
    m.inf = std::make_unique<InferenceEncoder>(Encoder::init_random(m.cfg, 0),
                                               dtype_from_name(s.dtype), parse_device(s.device));
    m.ids = random_ids(m.cfg, s.batch, s.seq);
    models.push_back(std::move(m));
  }
  RestoreThreads restore;
  Context ctx(best_cpu_backend(), s.threads);
  const Tensor mask = Tensor::ones({s.batch, s.seq}, DType::I64);
  const size_t n = models.size();
  std::vector<std::vector<LatencyMeasurement>> per(n);  // per model, one per round
  for (int r = 0; r < rounds; ++r) {
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (k + size_t(r)) % n;
      Model& m = models[i];
      per[i].push_back(time_runs_defended(*m.inf, ctx, m.ids, mask, s));
    }
  }
  std::vector<LatencyMeasurement> out(n);
  for (size_t i = 0; i < n; ++i) {
    std::vector<double> medians;
    LatencyMeasurement& o = out[i];
    o.min_ms = per[i].front().min_ms, o.max_ms = per[i].front().max_ms;
    for (const LatencyMeasurement& m : per[i]) {
      medians.push_back(m.median_ms);
      o.min_ms = std::min(o.min_ms, m.min_ms);
      o.max_ms = std::max(o.max_ms, m.max_ms);
      o.busy_fraction = std::max(o.busy_fraction, m.busy_fraction);
      o.contended = o.contended || m.contended;
    }
    o.median_ms = median_of(medians);
  }
  return out;
}

// ---- the table -------------------------------------------------------------------------------

LatencyTable LatencyTable::load(const std::string& path) {
  LatencyTable t;
  std::ifstream f(path, std::ios::binary);
  if (!f.good()) return t;
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string prefix = "latency table '" + path + "': ";
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::exception& e) {
    detail::fail(detail::concat(prefix, "not valid JSON (", e.what(), ")"));
  }
  KDNAS_CHECK(j.is_object(), prefix, "must hold a JSON object, got ", j.type_name());
  for (const auto& [key, archs] : j.items()) {
    KDNAS_CHECK(archs.is_object(), prefix, "'", key, "' must hold an object, got ",
                archs.type_name());
    for (const auto& [arch, v] : archs.items()) {
      const std::string where = prefix + "'" + key + "' / '" + arch + "': ";
      const Arch a = arch_from_string(arch);  // errors name the string
      KDNAS_CHECK(v.is_object(), where, "must hold an object, got ", v.type_name());
      auto num = [&](const char* k, bool required) {
        if (!v.contains(k)) {
          KDNAS_CHECK(!required, where, "missing '", k, "'");
          return 0.0;
        }
        KDNAS_CHECK(
            v[k].is_number() && std::isfinite(v[k].get<double>()) && v[k].get<double>() >= 0, where,
            "'", k, "' must be a non-negative number, got ", v[k].dump());
        return v[k].get<double>();
      };
      LatencyMeasurement m;
      m.median_ms = num("median_ms", true);
      KDNAS_CHECK(m.median_ms > 0, where, "median_ms must be positive");
      m.min_ms = v.contains("min_ms") ? num("min_ms", false) : m.median_ms;
      m.max_ms = v.contains("max_ms") ? num("max_ms", false) : m.median_ms;
      m.busy_fraction = num("busy_fraction", false);
      if (v.contains("contended")) {
        KDNAS_CHECK(v["contended"].is_boolean(), where, "'contended' must be true or false");
        m.contended = v["contended"].get<bool>();
      }
      t.table_[key][arch_to_string(a)] = m;
    }
  }
  return t;
}

void LatencyTable::save(const std::string& path) const {
  json j = json::object();
  for (const auto& [key, archs] : table_) {
    json& o = j[key];
    o = json::object();
    for (const auto& [arch, m] : archs)
      o[arch] = {{"median_ms", m.median_ms},
                 {"min_ms", m.min_ms},
                 {"max_ms", m.max_ms},
                 {"busy_fraction", m.busy_fraction},
                 {"contended", m.contended}};
  }
  const std::string text = j.dump(2) + "\n";
  write_file_atomically(path, {{text.data(), text.size()}}, "latency table");
}

const LatencyMeasurement* LatencyTable::find(const Arch& a, const LatencySettings& s) const {
  auto k = table_.find(s.key());
  if (k == table_.end()) return nullptr;
  auto it = k->second.find(arch_to_string(a));
  return it == k->second.end() ? nullptr : &it->second;
}

void LatencyTable::put(const Arch& a, const LatencySettings& s, const LatencyMeasurement& m) {
  KDNAS_CHECK(std::isfinite(m.median_ms) && m.median_ms > 0, "latency table: median ", m.median_ms,
              " ms for ", arch_to_string(a), " is not a positive number");
  table_[s.key()][arch_to_string(a)] = m;
}

LatencyMeasurement LatencyTable::get_or_measure(const Arch& a, const EncoderConfig& teacher,
                                                const LatencySettings& s) {
  if (const LatencyMeasurement* m = find(a, s)) return *m;
  const LatencyMeasurement m = measure_latency(a, teacher, s);
  put(a, s, m);
  return m;
}

std::vector<std::pair<Arch, double>> LatencyTable::entries(const LatencySettings& s) const {
  std::vector<std::pair<Arch, double>> out;
  auto k = table_.find(s.key());
  if (k == table_.end()) return out;
  for (const auto& [arch, m] : k->second) out.emplace_back(arch_from_string(arch), m.median_ms);
  return out;
}

// ---- the latency model -----------------------------------------------------------------------

std::vector<double> LatencyModel::features(const Arch& a, const LatencySettings& s) {
  const double L = double(a.layers), H = double(a.hidden), FF = double(a.ffn);
  const double BT = double(s.batch) * double(s.seq), T = double(s.seq);
  return {1.0,                            // fixed cost (embeddings, dispatch)
          L * BT * H * (4 * H + 2 * FF),  // GEMM multiply-adds: QKV + output, FFN
          L * BT * T * H,                 // attention products: QK^T and PV
          L * BT * (H + FF),              // element-wise traffic: LayerNorm, softmax, GELU
          L};                             // per-layer overhead
}

namespace {

// Weighted least squares: minimises sum_i ((x_i . w - y_i) / y_i)^2, i.e. relative error (the
// latencies span two orders of magnitude, and MAPE is what we report). Columns are scaled to a
// unit maximum so that the normal equations stay well conditioned in double; a tiny ridge term
// keeps them solvable when the points do not pin every feature (say, all one depth).
std::vector<double> least_squares(const std::vector<std::vector<double>>& X,
                                  const std::vector<double>& y) {
  const size_t n = X.size(), k = X[0].size();
  std::vector<double> scale(k, 0.0);
  for (const auto& row : X)
    for (size_t j = 0; j < k; ++j) scale[j] = std::max(scale[j], std::abs(row[j]));
  for (double& c : scale) c = c > 0 ? c : 1.0;
  // A = Xs^T W Xs + ridge I, b = Xs^T W y with W = diag(1 / y^2).
  std::vector<double> A(k * k, 0.0), b(k, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const double wi = 1.0 / (y[i] * y[i]);
    for (size_t p = 0; p < k; ++p) {
      const double xp = X[i][p] / scale[p];
      b[p] += wi * xp * y[i];
      for (size_t q = 0; q < k; ++q) A[p * k + q] += wi * xp * X[i][q] / scale[q];
    }
  }
  double trace = 0;
  for (size_t p = 0; p < k; ++p) trace += A[p * k + p];
  const double ridge = 1e-12 * std::max(trace, 1e-300) / double(k);
  for (size_t p = 0; p < k; ++p) A[p * k + p] += ridge;
  // Gaussian elimination with partial pivoting (A is symmetric positive definite, but pivoting
  // costs nothing at k = 5 and forgives a nearly singular system).
  for (size_t c = 0; c < k; ++c) {
    size_t piv = c;
    for (size_t r = c + 1; r < k; ++r)
      if (std::abs(A[r * k + c]) > std::abs(A[piv * k + c])) piv = r;
    for (size_t q = 0; q < k; ++q) std::swap(A[c * k + q], A[piv * k + q]);
    std::swap(b[c], b[piv]);
    const double d = A[c * k + c];
    KDNAS_ASSERT(d != 0);
    for (size_t r = c + 1; r < k; ++r) {
      const double f = A[r * k + c] / d;
      for (size_t q = c; q < k; ++q) A[r * k + q] -= f * A[c * k + q];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> w(k, 0.0);
  for (size_t c = k; c-- > 0;) {
    double acc = b[c];
    for (size_t q = c + 1; q < k; ++q) acc -= A[c * k + q] * w[q];
    w[c] = acc / A[c * k + c];
  }
  for (size_t j = 0; j < k; ++j) w[j] /= scale[j];
  return w;
}

// The same with every weight >= 0: each feature is a cost, so a negative weight is an artefact of
// noise that makes predictions go negative for small architectures. Active-set by elimination:
// solve, drop the most negative feature, solve again on the rest, until no weight is negative
// (exact when the unconstrained solution is already non-negative, which is the usual case).
std::vector<double> nonnegative_least_squares(const std::vector<std::vector<double>>& X,
                                              const std::vector<double>& y) {
  const size_t k = X[0].size();
  std::vector<size_t> active(k);
  for (size_t j = 0; j < k; ++j) active[j] = j;
  while (true) {
    std::vector<std::vector<double>> sub(X.size(), std::vector<double>(active.size()));
    for (size_t i = 0; i < X.size(); ++i)
      for (size_t j = 0; j < active.size(); ++j) sub[i][j] = X[i][active[j]];
    const std::vector<double> ws = least_squares(sub, y);
    size_t worst = 0;
    for (size_t j = 1; j < ws.size(); ++j)
      if (ws[j] < ws[worst]) worst = j;
    if (ws[worst] >= 0 || active.size() == 1) {
      std::vector<double> w(k, 0.0);
      for (size_t j = 0; j < active.size(); ++j) w[active[j]] = std::max(ws[j], 0.0);
      return w;
    }
    active.erase(active.begin() + std::ptrdiff_t(worst));
  }
}

}  // namespace

void LatencyModel::fit(const std::vector<std::pair<Arch, double>>& measured,
                       const LatencySettings& s) {
  KDNAS_CHECK(!measured.empty(), "latency model: no measured points to fit");
  std::vector<std::vector<double>> X;
  std::vector<double> y;
  for (const auto& [a, ms] : measured) {
    KDNAS_CHECK(std::isfinite(ms) && ms > 0, "latency model: latency ", ms, " ms of ",
                arch_to_string(a), " is not a positive number");
    X.push_back(features(a, s));
    y.push_back(ms);
  }
  s_ = s;
  if (measured.size() >= size_t(kFeatures)) {
    w_ = nonnegative_least_squares(X, y);
    return;
  }
  // Too few points to pin five weights: latency proportional to the GEMM work, the same
  // relative-error least squares with one feature (w1 = sum(x / y) / sum(x^2 / y^2)).
  double num = 0, den = 0;
  for (size_t i = 0; i < X.size(); ++i) {
    const double r = X[i][1] / y[i];
    num += r;
    den += r * r;
  }
  w_.assign(size_t(kFeatures), 0.0);
  w_[1] = den > 0 ? num / den : 0.0;
}

double LatencyModel::predict_ms(const Arch& a) const {
  KDNAS_CHECK(fitted(), "latency model: predict_ms before fit");
  const std::vector<double> x = features(a, s_);
  double p = 0;
  for (size_t j = 0; j < x.size(); ++j) p += w_[j] * x[j];
  return p;
}

LatencyModel::Error LatencyModel::error(
    const std::vector<std::pair<Arch, double>>& measured) const {
  Error e;
  e.points = int64_t(measured.size());
  if (measured.empty()) return e;
  double sum = 0, loo = 0;
  for (size_t i = 0; i < measured.size(); ++i) {
    const auto& [a, ms] = measured[i];
    sum += std::abs(predict_ms(a) - ms) / ms;
    if (measured.size() < 2) continue;
    std::vector<std::pair<Arch, double>> rest = measured;
    rest.erase(rest.begin() + std::ptrdiff_t(i));
    LatencyModel m;
    m.fit(rest, s_);
    loo += std::abs(m.predict_ms(a) - ms) / ms;
  }
  e.mape = 100.0 * sum / double(measured.size());
  e.loo_mape = measured.size() < 2 ? 0.0 : 100.0 * loo / double(measured.size());
  return e;
}

}  // namespace kdnas
