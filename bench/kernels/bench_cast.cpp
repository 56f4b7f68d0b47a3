// cast f32 <-> bf16 / f16 over XLM-R-sized tensors: [128 x 768] (one sequence's activations) and
// [768 x 3072] (one FFN weight). Memory-bound: reports GB/s and x_stream (see bench_util.h).
#include "bench/bench_util.h"
#include "kernels/cast.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

void BM_cast(benchmark::State& state, Backend be, DType from, DType to) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  Tensor x = Tensor::empty({state.range(0), state.range(1)}, from);
  rng.fill_uniform(x, -4.f, 4.f);
  if (!validate(state, cast(ctx, x, to), cast(ref, x, to), 0, 0)) return;
  const size_t rd = x.nbytes(), wr = size_t(x.numel()) * dtype_size(to);
  run_timed(state, ctx, {double(rd + wr), 0, rd, wr},
            [&] { benchmark::DoNotOptimize(cast(ctx, x, to).raw_data()); });
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({128, 768})->Args({768, 3072})->UseManualTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK_CAPTURE(BM_cast, f32_to_bf16, Backend::Omp, DType::F32, DType::BF16)->Apply(shapes);
BENCHMARK_CAPTURE(BM_cast, bf16_to_f32, Backend::Omp, DType::BF16, DType::F32)->Apply(shapes);
BENCHMARK_CAPTURE(BM_cast, f32_to_f16, Backend::Omp, DType::F32, DType::F16)->Apply(shapes);
BENCHMARK_CAPTURE(BM_cast, f16_to_f32, Backend::Omp, DType::F16, DType::F32)->Apply(shapes);

}  // namespace
}  // namespace kdnas::bench
