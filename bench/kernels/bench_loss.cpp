// Losses at training sizes: cross-entropy forward + backward over [1024 x 8000] logits (an MLM
// head over a reduced vocabulary; XLM-R's is 250002), kl_div forward + backward over the same,
// and mse over hidden states [8 x 128 x 768]. The softmax-based losses read the logits in two or
// three passes that stay in cache per row: reports GB/s of the unavoidable traffic (read the
// logits, write the gradient) and x_stream against a streaming pass over those bytes.
#include "bench/bench_util.h"
#include "kernels/loss.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

Tensor bench_targets(int64_t N, int64_t V, Rng& rng) {
  Tensor t = Tensor::empty({N}, DType::I64);
  for (int64_t n = 0; n < N; ++n) t.data<int64_t>()[n] = int64_t(rng.below(uint64_t(V)));
  return t;
}

void BM_cross_entropy_fwd_bwd(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  const int64_t N = state.range(0), V = state.range(1);
  Rng rng(0);
  Tensor logits = Tensor::empty({N, V});
  rng.fill_uniform(logits, -8.f, 8.f);
  Tensor targets = bench_targets(N, V, rng);
  if (!validate(state, cross_entropy_forward(ctx, logits, targets),
                cross_entropy_forward(ref, logits, targets), 1e-6, 1e-5) ||
      !validate(state, cross_entropy_backward(ctx, double(N), logits, targets),
                cross_entropy_backward(ref, double(N), logits, targets), 1e-6, 1e-5))
    return;
  const size_t bytes = logits.nbytes();
  // Forward reads the logits; backward reads them and writes the gradient.
  run_timed(state, ctx, {3.0 * double(bytes), 0, 2 * bytes, bytes}, [&] {
    benchmark::DoNotOptimize(cross_entropy_forward(ctx, logits, targets).raw_data());
    benchmark::DoNotOptimize(cross_entropy_backward(ctx, 1.0, logits, targets).raw_data());
  });
}

void BM_kl_div_fwd_bwd(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  const int64_t N = state.range(0), V = state.range(1);
  Rng rng(0);
  Tensor s = Tensor::empty({N, V}), t = Tensor::empty({N, V});
  rng.fill_uniform(s, -6.f, 6.f);
  rng.fill_uniform(t, -6.f, 6.f);
  if (!validate(state, kl_div_forward(ctx, s, t, 2.0), kl_div_forward(ref, s, t, 2.0), 1e-6,
                1e-5) ||
      !validate(state, kl_div_backward(ctx, double(N), s, t, 2.0),
                kl_div_backward(ref, double(N), s, t, 2.0), 1e-6, 1e-5))
    return;
  const size_t bytes = s.nbytes();
  // Forward reads both; backward reads both and writes the student gradient.
  run_timed(state, ctx, {5.0 * double(bytes), 0, 4 * bytes, bytes}, [&] {
    benchmark::DoNotOptimize(kl_div_forward(ctx, s, t, 2.0).raw_data());
    benchmark::DoNotOptimize(kl_div_backward(ctx, 1.0, s, t, 2.0).raw_data());
  });
}

void BM_mse_fwd_bwd(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  Tensor p = Tensor::empty({state.range(0), state.range(1), state.range(2)});
  Tensor t = Tensor::empty(p.shape());
  rng.fill_uniform(p, -1.f, 1.f);
  rng.fill_uniform(t, -1.f, 1.f);
  if (!validate(state, mse_forward(ctx, p, t), mse_forward(ref, p, t), 1e-6, 1e-5)) return;
  const size_t bytes = p.nbytes();
  // Forward reads both; backward reads both and writes two gradients.
  run_timed(state, ctx, {6.0 * double(bytes), 0, 4 * bytes, 2 * bytes}, [&] {
    benchmark::DoNotOptimize(mse_forward(ctx, p, t).raw_data());
    benchmark::DoNotOptimize(mse_backward(ctx, 1.0, p, t).dpred.raw_data());
  });
}

BENCHMARK_CAPTURE(BM_cross_entropy_fwd_bwd, omp, Backend::Omp)
    ->Args({1024, 8000})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_kl_div_fwd_bwd, omp, Backend::Omp)
    ->Args({1024, 8000})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_mse_fwd_bwd, omp, Backend::Omp)
    ->Args({8, 128, 768})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kdnas::bench
