// Element-wise activations (GELU, tanh, ReLU, scale) forward/backward at XLM-R's activation
// shapes for one sequence: [128 x 768] and [128 x 3072]. Memory-bound once vectorised: reports
// GB/s and x_stream (see bench_util.h).
#include <string>

#include "bench/bench_util.h"
#include "kernels/eltwise.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

// One activation: its forward, and its backward given dout and the tensor its rule reads (x for
// GELU and ReLU, the output y for tanh).
struct Activation {
  const char* name;
  Tensor (*forward)(Context&, const Tensor&);
  Tensor (*backward)(Context&, const Tensor& dout, const Tensor& saved);
  bool backward_reads_output;
};

Tensor scale_half(Context& ctx, const Tensor& x) { return scale_forward(ctx, x, 0.5); }
// scale's backward is scale by the same factor: dx = alpha * dout.
Tensor scale_half_backward(Context& ctx, const Tensor& d, const Tensor&) {
  return scale_forward(ctx, d, 0.5);
}

const Activation kActivations[] = {
    {"gelu", gelu_forward, gelu_backward, false},
    {"tanh", tanh_forward, tanh_backward, true},
    {"relu", relu_forward, relu_backward, false},
    {"scale", scale_half, scale_half_backward, false},
};

void BM_forward(benchmark::State& state, Backend be, const Activation* act) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  Tensor x = Tensor::empty({state.range(0), state.range(1)});
  rng.fill_uniform(x, -4.f, 4.f);
  if (!validate(state, act->forward(ctx, x), act->forward(ref, x), 1e-5, 1e-5)) return;
  const size_t bytes = x.nbytes();  // read x, write the output
  run_timed(state, ctx, {2.0 * double(bytes), 0, bytes, bytes},
            [&] { benchmark::DoNotOptimize(act->forward(ctx, x).raw_data()); });
}

void BM_backward(benchmark::State& state, Backend be, const Activation* act) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  Tensor x = Tensor::empty({state.range(0), state.range(1)}), d = Tensor::empty(x.shape());
  rng.fill_uniform(x, -4.f, 4.f);
  rng.fill_uniform(d, -1.f, 1.f);
  const Tensor saved = act->backward_reads_output ? act->forward(ref, x) : x;
  if (!validate(state, act->backward(ctx, d, saved), act->backward(ref, d, saved), 1e-5, 1e-5))
    return;
  const size_t bytes = x.nbytes();  // read dout and the saved tensor, write dx
  run_timed(state, ctx, {3.0 * double(bytes), 0, 2 * bytes, bytes},
            [&] { benchmark::DoNotOptimize(act->backward(ctx, d, saved).raw_data()); });
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({128, 768})->Args({128, 3072})->UseManualTime()->Unit(benchmark::kMicrosecond);
}

// BM_<act>_{forward,backward}/<backend>; the oneDNN variants exist only in builds with oneDNN.
[[maybe_unused]] const bool registered = [] {
  for (const Activation& act : kActivations) {
    for (Backend be : {Backend::Omp, Backend::Onednn}) {
      if (be == Backend::Onednn && !onednn_compiled()) continue;
      const std::string suffix = be == Backend::Omp ? "/omp" : "/onednn";
      benchmark::RegisterBenchmark(("BM_" + std::string(act.name) + "_forward" + suffix).c_str(),
                                   BM_forward, be, &act)
          ->Apply(shapes);
      benchmark::RegisterBenchmark(("BM_" + std::string(act.name) + "_backward" + suffix).c_str(),
                                   BM_backward, be, &act)
          ->Apply(shapes);
    }
  }
  return true;
}();

}  // namespace
}  // namespace kdnas::bench
