// Latency on the shipping kernels (ARCHITECTURE.md, "Performance protocol"), a cache of measured
// latencies, and a cheap latency model that screens candidates.
//
// A measurement builds the architecture with random weights (latency does not depend on them),
// runs the tape-free InferenceEncoder in the given dtype and thread count on B x T tokens, on the
// CPU or on a GPU (device; each timed run then ends with a synchronisation of the stream, so the
// clock sees the kernels finish): warm-up runs, then `runs` timed runs; the result is the median
// with min, max and spread. It
// defends itself against a busy machine: the other processes' CPU time during the runs is read
// from /proc/stat, and a contended measurement (busy fraction above a threshold) is repeated up
// to a few times, keeping the least contended one (the flag says when it stayed contended).
// "Contended" means the other processes took more than max_busy of the cores we time on, beyond
// the cores we leave idle: on a 2-core machine timed with 2 threads any other work counts, on a
// 16-core one a few busy cores do not.
//
// The word-embedding table is cut to kLatencyVocab rows for the measurement: a lookup gathers
// B x T rows whatever the table's size, while building a random 250k-row table per candidate
// would cost more time and memory than the timing. Every other size is the student's.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nas/space.h"
#include "transformer/config.h"

namespace kdnas {

struct LatencySettings {
  int64_t batch = 1, seq = 128;
  int threads = 2;
  std::string dtype = "f32";   // "f32" or "bf16"
  std::string device = "cpu";  // "cpu", "cuda", "cuda:N" (docs/cuda.md)
  int64_t warmup = 2, runs = 10;
  // Contention defence (not part of the key): the other processes' allowed share of our cores,
  // and how many times a contended measurement is repeated.
  double max_busy = 0.1;
  int retries = 3;
  // The cache key part: batch, seq, threads, dtype and the build (kdnas version, backend, CPU
  // model name from /proc/cpuinfo): "b1.t128.th2.f32|<build>". On a GPU the device and the
  // GPU's description join it: "b1.t128.th2.f32.cuda:0|<build>|<GPU name, sm_XY, ...>" (a CPU
  // key is unchanged, so tables measured before devices existed stay valid).
  std::string key() const;
};

// The build part of the key: version, compiled backends and the CPU model.
std::string build_id();

// Rows of the word-embedding table used when measuring (see the top of the file).
constexpr int64_t kLatencyVocab = 8192;

struct LatencyMeasurement {
  double median_ms = 0, min_ms = 0, max_ms = 0;
  double busy_fraction = 0;  // other processes' share of the machine while timing (0..1)
  bool contended = false;    // still above the threshold after the retries
};

// The contention rule: the other processes took busy_fraction of `cores` CPUs; contended when
// what they took beyond the cores our `threads` leave idle exceeds max_busy of our threads.
// cores <= 0: the machine's count.
bool latency_contended(double busy_fraction, int cores, int threads, double max_busy);

// Measures one architecture with the teacher's vocabulary and settings (see top of file).
LatencyMeasurement measure_latency(const Arch& a, const EncoderConfig& teacher,
                                   const LatencySettings& s);
// Measures the teacher itself the same way.
LatencyMeasurement measure_config_latency(const EncoderConfig& cfg, const LatencySettings& s);

// Several architectures timed against each other (ARCHITECTURE.md, "Performance protocol"):
// every model is built once, then `rounds` rounds time each of them in turn (warm-up, `runs`
// timed runs, the contention defence), the first model of a round rotating from round to round,
// so that a slow phase of the machine hits all of them alike. Each result is the median of its
// per-round medians, with the min and max over all rounds, the largest busy fraction seen, and
// contended when any round stayed contended. Results are in the order of `archs`. This is the
// measurement to compare latencies with (a speedup, a budget): one-off measurements taken minutes
// apart differ by 10-20 % at millisecond scale.
std::vector<LatencyMeasurement> measure_latencies_interleaved(const std::vector<Arch>& archs,
                                                              const EncoderConfig& teacher,
                                                              const LatencySettings& s,
                                                              int rounds = 3);

// Measured latencies keyed by (architecture, settings key), stored as JSON
// ({"<settings key>": {"L,H,A,F": {"median_ms":..,"min_ms":..,"max_ms":..}}}).
class LatencyTable {
 public:
  static LatencyTable load(const std::string& path);  // a missing file is an empty table
  void save(const std::string& path) const;           // atomically
  const LatencyMeasurement* find(const Arch& a, const LatencySettings& s) const;
  void put(const Arch& a, const LatencySettings& s, const LatencyMeasurement& m);
  // Measured if absent (then stored), else the cached value.
  LatencyMeasurement get_or_measure(const Arch& a, const EncoderConfig& teacher,
                                    const LatencySettings& s);
  // Every (arch, median_ms) under one settings key.
  std::vector<std::pair<Arch, double>> entries(const LatencySettings& s) const;

 private:
  std::map<std::string, std::map<std::string, LatencyMeasurement>> table_;
};

// A linear regression of latency on per-layer cost features, fitted by least squares on the
// measured (arch, latency) pairs at one setting:
//   lat ~ w0 + w1 * L*T*H*(4H + 2FF) + w2 * L*T*T*H + w3 * L*T*(H + FF) + w4 * L
// (GEMM flops, attention flops, element-wise bytes, per-layer overhead; B multiplies the
// token-proportional terms). With fewer points than features it falls back to the flop term.
// The fit minimises the squared relative error (each point weighted by 1 / lat^2), since the
// latencies span two orders of magnitude and MAPE is what is reported. Every weight is kept >= 0
// (each feature is a cost), so no architecture is ever predicted a negative latency.
class LatencyModel {
 public:
  static constexpr int kFeatures = 5;
  // The feature vector [kFeatures] of an architecture at the settings' B and T.
  static std::vector<double> features(const Arch& a, const LatencySettings& s);
  // The fitted weights [kFeatures] (empty before fit).
  const std::vector<double>& weights() const { return w_; }

  void fit(const std::vector<std::pair<Arch, double>>& measured, const LatencySettings& s);
  bool fitted() const { return !w_.empty(); }
  double predict_ms(const Arch& a) const;
  // Error of the fit on the measured points: mean absolute percentage error, and the same with
  // leave-one-out refits (the honest number) when there are enough points. Both in percent;
  // loo_mape is 0 with fewer than 2 points (each refit falls back as fit() does).
  struct Error {
    double mape = 0, loo_mape = 0;
    int64_t points = 0;
  };
  Error error(const std::vector<std::pair<Arch, double>>& measured) const;

 private:
  LatencySettings s_;
  std::vector<double> w_;
};

}  // namespace kdnas
