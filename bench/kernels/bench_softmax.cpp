// Softmax and log-softmax forward/backward over the last dim. Shapes: [128 x 768] and
// [128 x 3072] (unmasked, scale 1), and attention scores [B, 12, 128, 128] for B = 1 and 8
// with a [B, 1, 1, 128] padding mask and scale 1/8, as XLM-R's attention runs it.
// Memory-bound: reports GB/s and x_stream (see bench_util.h). The bf16-output forward is
// timed fused and as softmax + cast.
#include <cfloat>

#include "bench/bench_util.h"
#include "kernels/cast.h"
#include "kernels/softmax.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

// range(0) = 0: [range(1), range(2)] unmasked. range(0) = B > 0: [B, 12, 128, 128] with a
// padding mask (sequence b keeps 128 - 8 b tokens) and scale 1/8.
struct Case {
  Tensor x, mask, dout;
  double scale = 1.0;
};
Case make_case(benchmark::State& state) {
  Rng rng(0);
  Case c;
  const int64_t B = state.range(0);
  c.x = B ? Tensor::empty({B, 12, 128, 128}) : Tensor::empty({state.range(1), state.range(2)});
  rng.fill_uniform(c.x, -8.f, 8.f);
  c.dout = Tensor::empty(c.x.shape());
  rng.fill_uniform(c.dout, -1.f, 1.f);
  if (B) {
    c.mask = Tensor::zeros({B, 1, 1, 128});
    float* m = c.mask.data<float>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 128 - 8 * b; t < 128; ++t) m[b * 128 + t] = -FLT_MAX;
    c.scale = 1.0 / 8.0;
  }
  return c;
}

void BM_softmax_forward(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Case c = make_case(state);
  if (!validate(state, softmax_forward(ctx, c.x, c.mask, c.scale),
                softmax_forward(ref, c.x, c.mask, c.scale), 1e-5, 1e-5))
    return;
  const size_t data = c.x.nbytes(), mask = c.mask.defined() ? c.mask.nbytes() : 0;
  // The streaming baseline leaves out the mask (1/(12*128) of x for attention): bench_util's
  // pass reads a whole multiple of what it writes, so the mask bytes would make it read x twice.
  run_timed(state, ctx, {double(2 * data + mask), 0, data, data}, [&] {
    benchmark::DoNotOptimize(softmax_forward(ctx, c.x, c.mask, c.scale).raw_data());
  });
}

// The bf16-output softmax the bf16 / int8 attention runs (fused: each row rounded as it is
// done), and what it replaces: the f32 softmax, then a cast.
void BM_softmax_forward_bf16(benchmark::State& state, Backend be, bool fused) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Case c = make_case(state);
  auto op = [&] {
    return fused ? softmax_forward_bf16(ctx, c.x, c.mask, c.scale)
                 : cast(ctx, softmax_forward(ctx, c.x, c.mask, c.scale), DType::BF16);
  };
  if (!validate(state, op().to(DType::F32), softmax_forward(ref, c.x, c.mask, c.scale), 1e-2,
                1e-2))
    return;
  const size_t data = c.x.nbytes(), out = data / 2;
  run_timed(state, ctx, {double(data + out), 0, data, out},
            [&] { benchmark::DoNotOptimize(op().raw_data()); });
}

void BM_softmax_backward(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Case c = make_case(state);
  Tensor y = softmax_forward(ref, c.x, c.mask, c.scale);
  if (!validate(state, softmax_backward(ctx, c.dout, y, c.scale),
                softmax_backward(ref, c.dout, y, c.scale), 1e-5, 1e-5))
    return;
  const size_t data = c.x.nbytes();
  run_timed(state, ctx, {3.0 * double(data), 0, 2 * data, data}, [&] {
    benchmark::DoNotOptimize(softmax_backward(ctx, c.dout, y, c.scale).raw_data());
  });
}

void BM_log_softmax_forward(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Case c = make_case(state);
  if (!validate(state, log_softmax_forward(ctx, c.x), log_softmax_forward(ref, c.x), 1e-5, 1e-5))
    return;
  const size_t data = c.x.nbytes();
  run_timed(state, ctx, {2.0 * double(data), 0, data, data},
            [&] { benchmark::DoNotOptimize(log_softmax_forward(ctx, c.x).raw_data()); });
}

void BM_log_softmax_backward(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Case c = make_case(state);
  Tensor y = log_softmax_forward(ref, c.x);
  if (!validate(state, log_softmax_backward(ctx, c.dout, y), log_softmax_backward(ref, c.dout, y),
                1e-5, 1e-5))
    return;
  const size_t data = c.x.nbytes();
  run_timed(state, ctx, {3.0 * double(data), 0, 2 * data, data},
            [&] { benchmark::DoNotOptimize(log_softmax_backward(ctx, c.dout, y).raw_data()); });
}

void rows_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "rows", "N"})->Args({0, 128, 768})->Args({0, 128, 3072});
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
}
void all_shapes(benchmark::internal::Benchmark* b) {
  rows_shapes(b);
  b->Args({1, 0, 0})->Args({8, 0, 0});
}

void register_all(const char* suffix, Backend be) {
  const std::string s = suffix;
  benchmark::RegisterBenchmark(("BM_softmax_forward/" + s).c_str(), BM_softmax_forward, be)
      ->Apply(all_shapes);
  benchmark::RegisterBenchmark(("BM_softmax_forward_bf16/" + s).c_str(), BM_softmax_forward_bf16,
                               be, true)
      ->Apply(all_shapes);
  benchmark::RegisterBenchmark(("BM_softmax_forward_bf16/" + s + "/unfused").c_str(),
                               BM_softmax_forward_bf16, be, false)
      ->Apply(all_shapes);
  benchmark::RegisterBenchmark(("BM_softmax_backward/" + s).c_str(), BM_softmax_backward, be)
      ->Apply(all_shapes);
  benchmark::RegisterBenchmark(("BM_log_softmax_forward/" + s).c_str(), BM_log_softmax_forward, be)
      ->Apply(rows_shapes);
  benchmark::RegisterBenchmark(("BM_log_softmax_backward/" + s).c_str(), BM_log_softmax_backward,
                               be)
      ->Apply(rows_shapes);
}

// The oneDNN variants exist only in builds with oneDNN.
[[maybe_unused]] const bool registered = [] {
  register_all("omp", Backend::Omp);
  if (onednn_compiled()) register_all("onednn", Backend::Onednn);
  return true;
}();

}  // namespace
}  // namespace kdnas::bench
