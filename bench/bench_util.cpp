#include "bench/bench_util.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace kdnas::bench {

int bench_threads() {
  const char* s = std::getenv("KDNAS_BENCH_THREADS");
  return s ? std::max(1, std::atoi(s)) : 2;
}

void run_timed(benchmark::State& state, Context& ctx, const Work& work,
               const std::function<void()>& fn) {
  double total = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    auto t1 = std::chrono::steady_clock::now();
    double s = std::chrono::duration<double>(t1 - t0).count();
    state.SetIterationTime(s);
    total += s;
  }
  const double per_iter = total / double(std::max<int64_t>(state.iterations(), 1));
  if (work.bytes > 0) state.counters["GB/s"] = work.bytes / per_iter / 1e9;
  if (work.flops > 0) state.counters["GFLOP/s"] = work.flops / per_iter / 1e9;
  if (work.stream_read + work.stream_write > 0)
    state.counters["x_stream"] =
        per_iter / stream_pass_seconds(ctx, work.stream_read, work.stream_write);
}

namespace {
// The memory-bound baseline: w[i] = r[i] (+ r[i + n] ...), vectorised and cloned per ISA.
KDNAS_CPU_CLONES void stream_chunk(float* w, const float* r, int64_t n, int64_t stride, int reads) {
  if (reads == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) w[i] = r[i];
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float acc = r[i];
    for (int k = 1; k < reads; ++k) acc += r[i + k * stride];
    w[i] = acc;
  }
}
}  // namespace

double stream_pass_seconds(Context& ctx, size_t read_bytes, size_t write_bytes) {
  static std::map<std::pair<size_t, size_t>, double> cache;
  const auto key = std::make_pair(read_bytes, write_bytes);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  const int64_t nw = std::max<int64_t>(int64_t(write_bytes / 4), 1);
  const int reads = int(std::max<size_t>(1, (read_bytes / 4 + size_t(nw) - 1) / size_t(nw)));
  Tensor r = Tensor::ones({int64_t(reads) * nw}), w = Tensor::zeros({nw});
  float* wp = w.data<float>();
  const float* rp = r.data<float>();
  std::vector<double> times;
  for (int rep = 0; rep < 31; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    parallel_for(ctx, nw, 4096,
                 [&](int64_t b, int64_t e) { stream_chunk(wp + b, rp + b, e - b, nw, reads); });
    auto t1 = std::chrono::steady_clock::now();
    times.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  benchmark::DoNotOptimize(wp);
  std::sort(times.begin(), times.end());
  return cache[key] = times[times.size() / 2];
}

bool validate(benchmark::State& state, const Tensor& got, const Tensor& want, double atol,
              double rtol) {
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  if (g.size() != w.size()) {
    state.SkipWithError("validation failed: size mismatch");
    return false;
  }
  for (size_t i = 0; i < g.size(); ++i) {
    if (!(std::abs(g[i] - w[i]) <= atol + rtol * std::abs(w[i]))) {
      state.SkipWithError(("validation failed at index " + std::to_string(i) + ": got " +
                           std::to_string(g[i]) + ", want " + std::to_string(w[i]))
                              .c_str());
      return false;
    }
  }
  return true;
}

}  // namespace kdnas::bench
