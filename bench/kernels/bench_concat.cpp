// Concat and split of XLM-R's q, k, v projections: 3 x [1024 x 768] along the last dim
// (many 3 KiB segments) and along the first dim (three large ones). A pure copy: reports GB/s
// and x_stream against a streaming copy of the same bytes (see bench_util.h).
#include "bench/bench_util.h"
#include "kernels/concat.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

void BM_concat(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  const int64_t dim = state.range(0);
  std::vector<Tensor> xs;
  for (int k = 0; k < 3; ++k) {
    xs.push_back(Tensor::empty({1024, 768}));
    rng.fill_uniform(xs.back(), -1.f, 1.f);
  }
  if (!validate(state, concat(ctx, xs, dim), concat(ref, xs, dim), 0, 0)) return;
  const size_t bytes = 3 * xs[0].nbytes();
  run_timed(state, ctx, {2.0 * double(bytes), 0, bytes, bytes},
            [&] { benchmark::DoNotOptimize(concat(ctx, xs, dim).raw_data()); });
}

void BM_concat_split(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  const int64_t dim = state.range(0);
  Tensor x = Tensor::empty(dim == 0 ? Shape{3 * 1024, 768} : Shape{1024, 3 * 768});
  rng.fill_uniform(x, -1.f, 1.f);
  const std::vector<int64_t> sizes(3, x.size(dim) / 3);
  if (!validate(state, split(ctx, x, dim, sizes)[2], split(ref, x, dim, sizes)[2], 0, 0)) return;
  const size_t bytes = x.nbytes();
  run_timed(state, ctx, {2.0 * double(bytes), 0, bytes, bytes},
            [&] { benchmark::DoNotOptimize(split(ctx, x, dim, sizes)[0].raw_data()); });
}

void dims(benchmark::internal::Benchmark* b) {
  b->Arg(1)->Arg(0)->ArgName("dim")->UseManualTime()->Unit(benchmark::kMicrosecond);
}

// The oneDNN route runs the same OpenMP kernels, so only omp is registered.
BENCHMARK_CAPTURE(BM_concat, omp, Backend::Omp)->Apply(dims);
BENCHMARK_CAPTURE(BM_concat_split, omp, Backend::Omp)->Apply(dims);

}  // namespace
}  // namespace kdnas::bench
