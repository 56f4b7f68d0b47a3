// GELU forward/backward at XLM-R's activation shapes for one sequence: [128 x 768] and
// [128 x 3072]. Memory-bound once vectorised: reports GB/s and x_stream (see bench_util.h).
#include "bench/bench_util.h"
#include "kernels/eltwise.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

void BM_gelu_forward(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  Tensor x = Tensor::empty({state.range(0), state.range(1)});
  rng.fill_uniform(x, -4.f, 4.f);
  if (!validate(state, gelu_forward(ctx, x), gelu_forward(ref, x), 1e-5, 1e-5)) return;
  const size_t bytes = x.nbytes();
  run_timed(state, ctx, {2.0 * double(bytes), 0, bytes, bytes},
            [&] { benchmark::DoNotOptimize(gelu_forward(ctx, x).raw_data()); });
}

void BM_gelu_backward(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  Tensor x = Tensor::empty({state.range(0), state.range(1)}), d = Tensor::empty(x.shape());
  rng.fill_uniform(x, -4.f, 4.f);
  rng.fill_uniform(d, -1.f, 1.f);
  if (!validate(state, gelu_backward(ctx, d, x), gelu_backward(ref, d, x), 1e-5, 1e-5)) return;
  const size_t bytes = x.nbytes();
  run_timed(state, ctx, {3.0 * double(bytes), 0, 2 * bytes, bytes},
            [&] { benchmark::DoNotOptimize(gelu_backward(ctx, d, x).raw_data()); });
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({128, 768})->Args({128, 3072})->UseManualTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK_CAPTURE(BM_gelu_forward, omp, Backend::Omp)->Apply(shapes);
BENCHMARK_CAPTURE(BM_gelu_backward, omp, Backend::Omp)->Apply(shapes);

// The oneDNN variants exist only in builds with oneDNN.
[[maybe_unused]] const bool registered = [] {
  if (!onednn_compiled()) return false;
  benchmark::RegisterBenchmark("BM_gelu_forward/onednn", BM_gelu_forward, Backend::Onednn)
      ->Apply(shapes);
  benchmark::RegisterBenchmark("BM_gelu_backward/onednn", BM_gelu_backward, Backend::Onednn)
      ->Apply(shapes);
  return true;
}();

}  // namespace
}  // namespace kdnas::bench
