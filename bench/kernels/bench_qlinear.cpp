// The dynamically quantised int8 linear (kernels/qlinear.h) at XLM-R Base's shapes for one
// sequence of 128 tokens and for 32 sequences (4096 rows): QKV, attention output, FFN up (+GELU)
// and down. Reports GOP/s (2 M N K integer multiply-adds per call, counted as GFLOP/s) including
// the per-call work of dynamic quantisation (min/max and u8 conversion of x). Compare with
// BM_linear_f32 / BM_linear_bf16 in bench_matmul.cpp at the same shapes; validated against the
// reference before timing (skipped for the 4096-row shapes, whose reference takes seconds: the
// unit tests cover that backend at 128 rows).
#include "bench/bench_util.h"
#include "kernels/qlinear.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

void BM_qlinear(benchmark::State& state, Backend be, bool gelu) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  if (be == Backend::Onednn && !onednn_compiled()) {
    state.SkipWithError("built without oneDNN");
    return;
  }
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  Tensor x = Tensor::empty({M, K}), w = Tensor::empty({N, K}), b = Tensor::empty({N});
  rng.fill_uniform(x, -2.f, 3.f);
  rng.fill_uniform(w, -0.05f, 0.05f);
  rng.fill_uniform(b, -1.f, 1.f);
  const QuantizedLinear q = quantize_linear(ctx, w, b);
  const Activation act = gelu ? Activation::Gelu : Activation::None;
  if (M <= 128 && !validate(state, qlinear_forward(ctx, x, q, act), qlinear_forward(ref, x, q, act),
                            1e-4, 1e-4))
    return;
  const double bytes = double(M * K) * 4 + double(N * K) + double(M * N) * 4;
  run_timed(state, ctx, {bytes, 2.0 * double(M) * double(N) * double(K), 0, 0},
            [&] { benchmark::DoNotOptimize(qlinear_forward(ctx, x, q, act).raw_data()); });
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int64_t M : {128, 4096}) {
    b->Args({M, 768, 2304});  // fused QKV
    b->Args({M, 768, 768});   // attention output
    b->Args({M, 768, 3072});  // FFN up
    b->Args({M, 3072, 768});  // FFN down
  }
  b->ArgNames({"M", "K", "N"})->UseManualTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK_CAPTURE(BM_qlinear, onednn, Backend::Onednn, false)->Apply(shapes);
BENCHMARK_CAPTURE(BM_qlinear, onednn_gelu, Backend::Onednn, true)->Args({128, 768, 3072})
    ->ArgNames({"M", "K", "N"})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_qlinear, omp, Backend::Omp, false)->Args({128, 768, 3072})
    ->ArgNames({"M", "K", "N"})->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kdnas::bench
