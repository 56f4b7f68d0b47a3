// Sum over the last dim (one row per token: [128 x 768], [1024 x 768], and a vocabulary-sized
// row [8 x 250002]) and over the first dim (the bias gradient, [1024 x 768] -> [768]), and max
// over the last dim. Memory-bound: reports GB/s and x_stream (see bench_util.h).
//
// x_stream's baseline here is a pass that reads x and writes 1/16 of its size (16 sequential
// read streams per output stream), i.e. about one read of x. The helper's pass for the true,
// D times smaller output would be a column walk with a page-sized stride, far below memory
// speed, which would flatter every reduction.
#include "bench/bench_util.h"
#include "kernels/reduce.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

void BM_reduce_sum(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  Tensor x = Tensor::empty({state.range(0), state.range(1)});
  rng.fill_uniform(x, -1.f, 1.f);
  const int64_t dim = state.range(2);
  if (!validate(state, sum(ctx, x, dim), sum(ref, x, dim), 1e-4, 1e-5)) return;
  const size_t bytes = x.nbytes(), out = bytes / size_t(x.size(dim));
  run_timed(state, ctx, {double(bytes + out), 0, bytes, bytes / 16},
            [&] { benchmark::DoNotOptimize(sum(ctx, x, dim).raw_data()); });
}

void BM_reduce_max(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  Tensor x = Tensor::empty({state.range(0), state.range(1)});
  rng.fill_uniform(x, -1.f, 1.f);
  if (!validate(state, max(ctx, x, 1).indices, max(ref, x, 1).indices, 0, 0)) return;
  const size_t bytes = x.nbytes(), out = size_t(x.size(0)) * 12;  // f32 value + i64 index
  run_timed(state, ctx, {double(bytes + out), 0, bytes, bytes / 16},
            [&] { benchmark::DoNotOptimize(max(ctx, x, 1).values.raw_data()); });
}

void sum_shapes(benchmark::internal::Benchmark* b) {
  b->Args({128, 768, 1})->Args({1024, 768, 1})->Args({8, 250002, 1})->Args({1024, 768, 0});
  b->ArgNames({"M", "N", "dim"})->UseManualTime()->Unit(benchmark::kMicrosecond);
}
void max_shapes(benchmark::internal::Benchmark* b) {
  b->Args({1024, 768})->Args({8, 250002})->UseManualTime()->Unit(benchmark::kMicrosecond);
}

// The oneDNN route runs the same OpenMP kernels, so only omp is registered.
BENCHMARK_CAPTURE(BM_reduce_sum, omp, Backend::Omp)->Apply(sum_shapes);
BENCHMARK_CAPTURE(BM_reduce_max, omp, Backend::Omp)->Apply(max_shapes);

}  // namespace
}  // namespace kdnas::bench
