// Optimizer steps at embedding-table sizes: AdamW over 96M parameters (the word-embedding table
// 250002 x 384 of a 384-wide student; XLM-R Base's own table, 250002 x 768, is 192M) and over
// 10M, plus SGD with momentum and RMSprop over 10M. Pure streaming: reports GB/s of the bytes
// each update must move and x_inplace against a trivial in-place pass over the same arrays.
#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "bench/bench_util.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/optim.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

// Checks the fast kernel against Ref on the first 1M elements (a full copy of 96M parameters
// through the reference would take seconds and gigabytes), two steps.
bool validate_prefix(benchmark::State& state, Context& ctx, const Tensor& p0, const Tensor& g,
                     int slots,
                     const std::function<void(Context&, const Tensor&, const Tensor&,
                                              const std::vector<Tensor>&, int64_t)>& update) {
  Context ref(Backend::Ref);
  const int64_t n = std::min<int64_t>(p0.numel(), 1 << 20);
  Tensor pa = p0.narrow(0, 0, n).clone(), pb = pa.clone(), gs = g.narrow(0, 0, n).clone();
  std::vector<Tensor> sa, sb;
  for (int i = 0; i < slots; ++i) {
    sa.push_back(Tensor::zeros({n}));
    sb.push_back(Tensor::zeros({n}));
  }
  for (int64_t step = 1; step <= 2; ++step) {
    update(ctx, pa, gs, sa, step);
    update(ref, pb, gs, sb, step);
  }
  return validate(state, pa, pb, 1e-6, 1e-5);
}

// The memory-speed baseline for an in-place update: the same arrays, the same access pattern
// (read param, grad and every slot; write param and every slot back in place) and trivial
// arithmetic. bench_util's x_stream baseline writes a separate output array instead, which costs
// a read-for-ownership per written line that an in-place update does not pay, so it is not the
// right yardstick here (it reads ~0.35 for AdamW: "faster than memory").
KDNAS_CPU_CLONES void inplace_chunk(float* p, float* s0, float* s1, const float* g, int64_t n) {
  if (s1) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float x = g[i] + s0[i] + s1[i];
      s0[i] = x;
      s1[i] = x;
      p[i] += x;
    }
  } else if (s0) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float x = g[i] + s0[i];
      s0[i] = x;
      p[i] += x;
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) p[i] += g[i];
  }
}

double inplace_pass_seconds(Context& ctx, const Tensor& p, const Tensor& g,
                            const std::vector<Tensor>& st) {
  float* pp = p.data<float>();
  const float* gp = g.data<float>();
  float* s0 = st.size() > 0 ? st[0].data<float>() : nullptr;
  float* s1 = st.size() > 1 ? st[1].data<float>() : nullptr;
  std::vector<double> t;
  for (int rep = 0; rep < 7; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(ctx, p.numel(), 1 << 15, [&](int64_t b, int64_t e) {
      inplace_chunk(pp + b, s0 ? s0 + b : nullptr, s1 ? s1 + b : nullptr, gp + b, e - b);
    });
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void run_update(benchmark::State& state, Backend be, int slots,
                const std::function<void(Context&, const Tensor&, const Tensor&,
                                         const std::vector<Tensor>&, int64_t)>& update) {
  Context ctx(be, bench_threads());
  const int64_t n = state.range(0);
  Rng rng(0);
  Tensor p = Tensor::empty({n}), g = Tensor::empty({n});
  // Cheap fill (the Rng's per-element fill of 96M values takes seconds): a repeating pattern.
  Tensor tile = Tensor::empty({4096});
  rng.fill_uniform(tile, -1.f, 1.f);
  for (int64_t i = 0; i < n; ++i) {
    p.data<float>()[i] = tile.data<float>()[i % 4096];
    g.data<float>()[i] = 0.5f * tile.data<float>()[(i * 7) % 4096];
  }
  if (!validate_prefix(state, ctx, p, g, slots, update)) return;
  std::vector<Tensor> st;
  for (int i = 0; i < slots; ++i) st.push_back(Tensor::zeros({n}));
  // Per parameter: read param, grad and each slot; write param and each slot.
  const size_t rd = size_t(n) * 4 * size_t(2 + slots), wr = size_t(n) * 4 * size_t(1 + slots);
  const double base = inplace_pass_seconds(ctx, p, g, st);
  int64_t step = 0;
  double total = 0;
  run_timed(state, ctx, {double(rd + wr), 0, 0, 0}, [&] {
    const auto t0 = std::chrono::steady_clock::now();
    update(ctx, p, g, st, ++step);
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  });
  // Time per update / time of the in-place streaming pass: 1.0 = memory speed.
  state.counters["x_inplace"] = total / double(std::max<int64_t>(state.iterations(), 1)) / base;
}

void BM_adamw_update(benchmark::State& state, Backend be) {
  run_update(state, be, 2,
             [](Context& c, const Tensor& p, const Tensor& g, const std::vector<Tensor>& s,
                int64_t t) { adamw_update(c, p, g, s[0], s[1], AdamWHyper{}, t); });
}

void BM_sgd_momentum_update(benchmark::State& state, Backend be) {
  run_update(
      state, be, 1,
      [](Context& c, const Tensor& p, const Tensor& g, const std::vector<Tensor>& s, int64_t t) {
        sgd_update(c, p, g, s[0], SgdHyper{1e-3, 0.9, 1e-4}, t);
      });
}

void BM_rmsprop_update(benchmark::State& state, Backend be) {
  run_update(state, be, 1,
             [](Context& c, const Tensor& p, const Tensor& g, const std::vector<Tensor>& s,
                int64_t) { rmsprop_update(c, p, g, s[0], Tensor(), RmspropHyper{}); });
}

BENCHMARK_CAPTURE(BM_adamw_update, omp, Backend::Omp)
    ->Arg(96'000'000)
    ->Arg(10'000'000)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_sgd_momentum_update, omp, Backend::Omp)
    ->Arg(10'000'000)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_rmsprop_update, omp, Backend::Omp)
    ->Arg(10'000'000)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace kdnas::bench
