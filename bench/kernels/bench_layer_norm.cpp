// LayerNorm forward/backward at XLM-R's shapes for one sequence: [128 x 768] (every layer's
// two norms) and [128 x 3072]. Memory-bound: reports GB/s and x_stream (see bench_util.h),
// counting x read + out written + the parameters and statistics.
//
// Variants: omp and onednn are the op on those backends (Route::Onednn runs whichever kernel
// kernels/layer_norm.cpp chose); onednn_primitive calls oneDNN's layer_normalization kernel
// directly, so the choice can be re-measured on another machine.
#include "bench/bench_util.h"
#include "kernels/binary.h"
#include "kernels/cast.h"
#include "kernels/cpu/layer_norm_cpu.h"
#include "kernels/layer_norm.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

constexpr double kEps = 1e-5;

struct Inputs {
  Tensor x, gamma, beta, dout;
};
Inputs make_inputs(int64_t rows, int64_t C) {
  Rng rng(0);
  Inputs in{Tensor::empty({rows, C}), Tensor::empty({C}), Tensor::empty({C}),
            Tensor::empty({rows, C})};
  rng.fill_uniform(in.x, -2.f, 4.f);
  rng.fill_uniform(in.gamma, 0.5f, 1.5f);
  rng.fill_uniform(in.beta, -0.5f, 0.5f);
  rng.fill_uniform(in.dout, -1.f, 1.f);
  return in;
}

// The kernel level oneDNN call, with its outputs allocated as the op does.
LayerNormOutput forward_primitive(Context& ctx, const Inputs& in) {
  const int64_t rows = in.x.size(0), C = in.x.size(1);
  LayerNormOutput y{Tensor::empty(in.x.shape()), Tensor::empty({rows}), Tensor::empty({rows})};
  layer_norm_forward_onednn(ctx, y.out.data<float>(), y.mean.data<float>(), y.rstd.data<float>(),
                            in.x.data<float>(), in.gamma.data<float>(), in.beta.data<float>(), rows,
                            C, float(kEps));
  return y;
}
LayerNormGrads backward_primitive(Context& ctx, const Inputs& in, const LayerNormOutput& y) {
  const int64_t rows = in.x.size(0), C = in.x.size(1);
  LayerNormGrads g{Tensor::empty(in.x.shape()), Tensor::empty({C}), Tensor::empty({C})};
  layer_norm_backward_onednn(ctx, g.dx.data<float>(), g.dgamma.data<float>(), g.dbeta.data<float>(),
                             in.dout.data<float>(), in.x.data<float>(), in.gamma.data<float>(),
                             y.mean.data<float>(), y.rstd.data<float>(), rows, C);
  return g;
}

void BM_layer_norm_forward(benchmark::State& state, Backend be, bool primitive) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  const int64_t rows = state.range(0), C = state.range(1);
  Inputs in = make_inputs(rows, C);
  auto run = [&] {
    return primitive ? forward_primitive(ctx, in)
                     : layer_norm_forward(ctx, in.x, in.gamma, in.beta, kEps);
  };
  LayerNormOutput want = layer_norm_forward(ref, in.x, in.gamma, in.beta, kEps), got = run();
  if (!validate(state, got.out, want.out, 1e-5, 1e-5) ||
      !validate(state, got.rstd, want.rstd, 1e-5, 1e-5))
    return;
  const size_t data = in.x.nbytes(), par = 2 * in.gamma.nbytes(), stat = 2 * size_t(rows) * 4;
  // The streaming baseline moves x and out only: bench_util's pass reads a whole multiple of
  // what it writes, so adding the (< 2 %) parameter bytes would make it read x twice.
  run_timed(state, ctx, {double(2 * data + par + stat), 0, data, data},
            [&] { benchmark::DoNotOptimize(run().out.raw_data()); });
}

void BM_layer_norm_backward(benchmark::State& state, Backend be, bool primitive) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  const int64_t rows = state.range(0), C = state.range(1);
  Inputs in = make_inputs(rows, C);
  LayerNormOutput y = layer_norm_forward(ref, in.x, in.gamma, in.beta, kEps);
  auto run = [&] {
    return primitive ? backward_primitive(ctx, in, y)
                     : layer_norm_backward(ctx, in.dout, in.x, in.gamma, y.mean, y.rstd);
  };
  LayerNormGrads want = layer_norm_backward(ref, in.dout, in.x, in.gamma, y.mean, y.rstd),
                 got = run();
  // dgamma, dbeta: sums over 128 rows, whose f32 rounding depends on the summation order.
  if (!validate(state, got.dx, want.dx, 1e-5, 1e-5) ||
      !validate(state, got.dgamma, want.dgamma, 1e-4, 1e-5) ||
      !validate(state, got.dbeta, want.dbeta, 1e-4, 1e-5))
    return;
  // Reads dout, x, gamma, mean, rstd; writes dx, dgamma, dbeta.
  const size_t data = in.x.nbytes(), par = in.gamma.nbytes(), stat = 2 * size_t(rows) * 4;
  run_timed(state, ctx, {double(3 * data + 3 * par + stat), 0, 2 * data, data},
            [&] { benchmark::DoNotOptimize(run().dx.raw_data()); });
}

// Inference's "add & norm", LayerNorm(x + residual): fused = add_layer_norm_forward (one pass
// over the rows), unfused = add then layer_norm_forward (what it replaces). Reads x and the
// residual, writes out.
void BM_add_layer_norm_forward(benchmark::State& state, Backend be, bool fused) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  const int64_t rows = state.range(0), C = state.range(1);
  Inputs in = make_inputs(rows, C);
  const Tensor& res = in.dout;  // any second [rows, C] tensor
  auto run = [&] {
    return fused ? add_layer_norm_forward(ctx, in.x, res, in.gamma, in.beta, kEps)
                 : layer_norm_forward(ctx, add(ctx, in.x, res), in.gamma, in.beta, kEps).out;
  };
  const Tensor want = add_layer_norm_forward(ref, in.x, res, in.gamma, in.beta, kEps);
  if (!validate(state, run(), want, 1e-5, 1e-5)) return;
  const size_t data = in.x.nbytes(), par = 2 * in.gamma.nbytes();
  run_timed(state, ctx, {double(3 * data + par), 0, 2 * data, data},
            [&] { benchmark::DoNotOptimize(run().raw_data()); });
}

// The same with the bf16 copy the next bf16 GEMM reads: fused = add_layer_norm_forward writing
// both (each row rounded while in L1), unfused = add_layer_norm_forward then cast (what it
// replaces). Reads x and the residual, writes out (f32) and its bf16 copy.
void BM_add_layer_norm_forward_bf16(benchmark::State& state, Backend be, bool fused) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  const int64_t rows = state.range(0), C = state.range(1);
  Inputs in = make_inputs(rows, C);
  const Tensor& res = in.dout;
  auto run = [&] {
    Tensor out16;
    if (fused) {
      add_layer_norm_forward(ctx, in.x, res, in.gamma, in.beta, kEps, &out16);
    } else {
      out16 = cast(ctx, add_layer_norm_forward(ctx, in.x, res, in.gamma, in.beta, kEps),
                   DType::BF16);
    }
    return out16;
  };
  const Tensor want = add_layer_norm_forward(ref, in.x, res, in.gamma, in.beta, kEps);
  if (!validate(state, run().to(DType::F32), want, 1e-2, 1e-2)) return;
  const size_t data = in.x.nbytes(), par = 2 * in.gamma.nbytes();
  run_timed(state, ctx, {double(3 * data + data / 2 + par), 0, 2 * data, data + data / 2},
            [&] { benchmark::DoNotOptimize(run().raw_data()); });
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({128, 768})->Args({128, 3072})->Args({4096, 768});
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK_CAPTURE(BM_layer_norm_forward, omp, Backend::Omp, false)->Apply(shapes);
BENCHMARK_CAPTURE(BM_layer_norm_backward, omp, Backend::Omp, false)->Apply(shapes);
BENCHMARK_CAPTURE(BM_add_layer_norm_forward, omp_fused, Backend::Omp, true)->Apply(shapes);
BENCHMARK_CAPTURE(BM_add_layer_norm_forward, omp_unfused, Backend::Omp, false)->Apply(shapes);
BENCHMARK_CAPTURE(BM_add_layer_norm_forward_bf16, omp_fused, Backend::Omp, true)->Apply(shapes);
BENCHMARK_CAPTURE(BM_add_layer_norm_forward_bf16, omp_unfused, Backend::Omp, false)
    ->Apply(shapes);

// The oneDNN variants exist only in builds with oneDNN.
[[maybe_unused]] const bool registered = [] {
  if (!onednn_compiled()) return false;
  benchmark::RegisterBenchmark("BM_layer_norm_forward/onednn", BM_layer_norm_forward,
                               Backend::Onednn, false)
      ->Apply(shapes);
  benchmark::RegisterBenchmark("BM_layer_norm_backward/onednn", BM_layer_norm_backward,
                               Backend::Onednn, false)
      ->Apply(shapes);
  benchmark::RegisterBenchmark("BM_layer_norm_forward/onednn_primitive", BM_layer_norm_forward,
                               Backend::Onednn, true)
      ->Apply(shapes);
  benchmark::RegisterBenchmark("BM_layer_norm_backward/onednn_primitive", BM_layer_norm_backward,
                               Backend::Onednn, true)
      ->Apply(shapes);
  return true;
}();

}  // namespace
}  // namespace kdnas::bench
