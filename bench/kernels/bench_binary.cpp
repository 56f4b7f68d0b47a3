// Broadcasting add at XLM-R's activation shapes for one and for eight sequences of 128 tokens:
// [128 x 768] and [1024 x 768], same shape (the residual add) and row-broadcast (the bias add,
// [M, N] + [N]), plus the bias add's backward (da = dout, db = column sum of dout).
// Memory-bound: reports GB/s and x_stream (see bench_util.h).
#include "bench/bench_util.h"
#include "kernels/binary.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

void BM_binary_add_same(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  const Shape s{state.range(0), state.range(1)};
  Tensor a = Tensor::empty(s), b = Tensor::empty(s);
  rng.fill_uniform(a, -1.f, 1.f);
  rng.fill_uniform(b, -1.f, 1.f);
  if (!validate(state, add(ctx, a, b), add(ref, a, b), 1e-6, 1e-6)) return;
  const size_t bytes = a.nbytes();
  run_timed(state, ctx, {3.0 * double(bytes), 0, 2 * bytes, bytes},
            [&] { benchmark::DoNotOptimize(add(ctx, a, b).raw_data()); });
}

void BM_binary_add_bias(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  Tensor a = Tensor::empty({state.range(0), state.range(1)}), b = Tensor::empty({state.range(1)});
  rng.fill_uniform(a, -1.f, 1.f);
  rng.fill_uniform(b, -1.f, 1.f);
  if (!validate(state, add(ctx, a, b), add(ref, a, b), 1e-6, 1e-6)) return;
  const size_t bytes = a.nbytes();
  run_timed(state, ctx, {2.0 * double(bytes) + double(b.nbytes()), 0, bytes, bytes},
            [&] { benchmark::DoNotOptimize(add(ctx, a, b).raw_data()); });
}

void BM_binary_add_bias_backward(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  Tensor a = Tensor::empty({state.range(0), state.range(1)}), b = Tensor::empty({state.range(1)});
  Tensor d = Tensor::empty(a.shape());
  rng.fill_uniform(d, -1.f, 1.f);
  BinaryGrads g = binary_backward(ctx, BinaryOp::Add, d, a, b);
  BinaryGrads g_ref = binary_backward(ref, BinaryOp::Add, d, a, b);
  if (!validate(state, g.da, g_ref.da, 1e-6, 1e-6)) return;
  if (!validate(state, g.db, g_ref.db, 1e-4, 1e-5)) return;
  // da is a copy of dout (read + write), db a column sum (one more read of dout).
  const size_t bytes = d.nbytes();
  run_timed(state, ctx, {3.0 * double(bytes), 0, 2 * bytes, bytes}, [&] {
    BinaryGrads r = binary_backward(ctx, BinaryOp::Add, d, a, b);
    benchmark::DoNotOptimize(r.db.raw_data());
  });
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({128, 768})->Args({1024, 768})->UseManualTime()->Unit(benchmark::kMicrosecond);
}

// The oneDNN route runs the same OpenMP kernels, so only omp is registered.
BENCHMARK_CAPTURE(BM_binary_add_same, omp, Backend::Omp)->Apply(shapes);
BENCHMARK_CAPTURE(BM_binary_add_bias, omp, Backend::Omp)->Apply(shapes);
BENCHMARK_CAPTURE(BM_binary_add_bias_backward, omp, Backend::Omp)->Apply(shapes);

}  // namespace
}  // namespace kdnas::bench
