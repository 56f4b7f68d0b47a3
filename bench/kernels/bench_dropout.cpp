// Dropout forward/backward over XLM-R's hidden states for one batch, [B*T, C] = [1024, 768],
// and its FFN activations [1024, 3072], p = 0.1. The forward hashes every element (two rounds
// of 64-bit multiply-xorshift) and writes a u8 mask: reports GB/s and x_stream.
#include "bench/bench_util.h"
#include "kernels/dropout.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

void BM_dropout_forward(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  Tensor x = Tensor::empty({state.range(0), state.range(1)});
  rng.fill_uniform(x, -1.f, 1.f);
  const DropoutOutput want = dropout_forward(ref, x, 0.1, 1, 0);
  const DropoutOutput got = dropout_forward(ctx, x, 0.1, 1, 0);
  if (!validate(state, got.out, want.out, 0, 0) || !validate(state, got.mask, want.mask, 0, 0))
    return;
  const size_t bytes = x.nbytes(), mask = size_t(x.numel());
  uint64_t counter = 0;
  run_timed(state, ctx, {2.0 * double(bytes) + double(mask), 0, bytes, bytes + mask}, [&] {
    DropoutOutput d = dropout_forward(ctx, x, 0.1, 1, counter);
    counter += uint64_t(x.numel());
    benchmark::DoNotOptimize(d.out.raw_data());
  });
}

void BM_dropout_backward(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  Tensor d = Tensor::empty({state.range(0), state.range(1)});
  rng.fill_uniform(d, -1.f, 1.f);
  const Tensor mask = dropout_forward(ref, d, 0.1, 1, 0).mask;
  if (!validate(state, dropout_backward(ctx, d, mask, 0.1), dropout_backward(ref, d, mask, 0.1), 0,
                0))
    return;
  const size_t bytes = d.nbytes(), mbytes = size_t(d.numel());
  run_timed(state, ctx, {2.0 * double(bytes) + double(mbytes), 0, bytes + mbytes, bytes},
            [&] { benchmark::DoNotOptimize(dropout_backward(ctx, d, mask, 0.1).raw_data()); });
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({1024, 768})->Args({1024, 3072})->UseManualTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK_CAPTURE(BM_dropout_forward, omp, Backend::Omp)->Apply(shapes);
BENCHMARK_CAPTURE(BM_dropout_backward, omp, Backend::Omp)->Apply(shapes);

}  // namespace
}  // namespace kdnas::bench
