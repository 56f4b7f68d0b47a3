// kdnas_bench_cuda: the CUDA backend's kernels on the GPU. GEMMs report TFLOP/s; the
// memory-bound kernels (GELU, LayerNorm, softmax, attention) report GB/s of the bytes they must
// move and x_copy = their time / the time of a device-to-device copy of as many bytes (1.0 =
// copy speed). Every bench validates its kernel first (against the CPU, or the fused attention
// against the unfused GPU path), then times it.
//
// Timing: each benchmark iteration launches the kernel `reps` times between two
// synchronisations (reps chosen so a batch takes ~2 ms) and reports the batch time / reps, so
// the ~10 us of a synchronisation does not count against a kernel of a few microseconds.
//
// Without a usable CUDA device it prints why and exits with status 0: there is nothing to time.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>

#include "bench/bench_util.h"
#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/cast_cuda.h"
#include "kernels/cuda/cuda_context.h"
#include "kernels/cuda/eltwise_cuda.h"
#include "kernels/cuda/layer_norm_cuda.h"
#include "kernels/cuda/matmul_cuda.h"
#include "kernels/cuda/softmax_cuda.h"
#include "kernels/ref/eltwise_ref.h"
#include "kernels/ref/layer_norm_ref.h"
#include "kernels/ref/matmul_ref.h"
#include "kernels/ref/softmax_ref.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

Device gpu() {
  return Device{DeviceType::CUDA, 0};
}

Tensor host_random(const Shape& s, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  Rng rng(seed);
  Tensor t = Tensor::empty(s);
  rng.fill_uniform(t, lo, hi);
  return t;
}

// Seconds for one launch of fn, from batches of launches between synchronisations.
double time_batch(Context& ctx, const std::function<void()>& fn, int reps) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) fn();
  cuda_synchronize(ctx);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

int reps_for(Context& ctx, const std::function<void()>& fn) {
  for (int i = 0; i < 3; ++i) fn();  // warm-up: plans, caches, clocks
  cuda_synchronize(ctx);
  const double one = time_batch(ctx, fn, 1);
  return std::clamp(int(2e-3 / std::max(one, 1e-7)), 1, 2000);
}

// Seconds for a device-to-device copy moving `bytes` (half read, half written), cached per size.
double copy_seconds(Context& ctx, double bytes) {
  static std::map<int64_t, double> cache;
  const int64_t n = std::max<int64_t>(1, int64_t(bytes / 8));  // floats per side
  if (auto it = cache.find(n); it != cache.end()) return it->second;
  Tensor a = Tensor::zeros({n}, DType::F32, gpu()), b = Tensor::empty({n}, DType::F32, gpu());
  auto fn = [&] { cast_cuda(ctx, b.raw_data(), DType::F32, a.raw_data(), DType::F32, n); };
  const int reps = reps_for(ctx, fn);
  double best = 1e30;
  for (int i = 0; i < 5; ++i) best = std::min(best, time_batch(ctx, fn, reps));
  return cache[n] = best;
}

// The timing loop; bytes and flops per launch give the counters.
void run_gpu(benchmark::State& state, Context& ctx, double bytes, double flops,
             const std::function<void()>& fn) {
  const int reps = reps_for(ctx, fn);
  double total = 0;
  for (auto _ : state) {
    const double s = time_batch(ctx, fn, reps);
    state.SetIterationTime(s);
    total += s;
  }
  const double t = total / double(std::max<int64_t>(state.iterations(), 1));
  if (flops > 0) state.counters["TFLOP/s"] = flops / t / 1e12;
  if (bytes > 0) {
    state.counters["GB/s"] = bytes / t / 1e9;
    state.counters["x_copy"] = t / copy_seconds(ctx, bytes);
  }
}

// ---- GEMMs ----------------------------------------------------------------------------------

// out [M, N] = x [M, K] · wᵀ (w [N, K], as linear reads it), optionally + bias and GELU.
// kind: 0 f32, 1 f32 with TF32, 2 bf16 -> f32, 3 bf16 -> bf16.
void BM_gemm(benchmark::State& state, int kind, bool epilogue) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  Context ctx;
  cuda_set_allow_tf32(ctx, kind == 1);
  const bool bf16 = kind >= 2;
  const DType in = bf16 ? DType::BF16 : DType::F32, out_dt = kind == 3 ? DType::BF16 : DType::F32;
  Tensor x = host_random({M, K}, 1), w = host_random({N, K}, 2), bias = host_random({N}, 3);
  if (bf16) {  // the exact bf16 values, so the f32 check below is a fair reference
    x = x.to(DType::BF16).to(DType::F32);
    w = w.to(DType::BF16).to(DType::F32);
  }
  Tensor xg = x.to(in).to(gpu()), wg = w.to(in).to(gpu()).transpose(0, 1);
  Tensor bg = bias.to(gpu()), out = Tensor::empty({M, N}, out_dt, gpu());
  GemmLayout l;
  l.M = M, l.K = K, l.N = N, l.a_rs = K, l.a_cs = 1, l.b_rs = 1, l.b_cs = K;
  auto fn = [&] {
    matmul_forward_cuda(ctx, out.raw_data(), out_dt, xg.raw_data(), wg.raw_data(), in,
                        epilogue ? bg.data<float>() : nullptr, l, epilogue);
  };
  fn();
  // Check a corner of the result (8 rows) against the reference in double.
  const int64_t rows = std::min<int64_t>(M, 8);
  Tensor want = Tensor::empty({rows, N});
  matmul_forward_ref(want.data<float>(), x.data<float>(), w.data<float>(),
                     epilogue ? bias.data<float>() : nullptr, rows, K, N, K, 1, 1, K, epilogue);
  // f32 accumulation of exact inputs: ~sqrt(K) rounding steps; TF32 inputs and bf16 outputs
  // lose ~1e-3 relative per term or per result.
  const double tol = (kind == 0 || kind == 2 ? 1e-4 : 2e-3) * std::sqrt(double(K));
  if (!validate(state, out.to(Device{}).to(DType::F32).narrow(0, 0, rows), want, tol, 1e-2)) return;
  run_gpu(state, ctx, 0, 2.0 * double(M) * double(K) * double(N), fn);
}

void gemm_shapes(benchmark::internal::Benchmark* b) {
  // XLM-R Base at batch 8 x 128 tokens: QKV/output projections, FFN up and down; a square one.
  b->Args({1024, 768, 768})
      ->Args({1024, 768, 3072})
      ->Args({1024, 3072, 768})
      ->Args({4096, 4096, 4096})
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
}

// ---- memory-bound kernels ---------------------------------------------------------------------

void BM_gelu_forward(benchmark::State& state) {
  const int64_t n = state.range(0) * state.range(1);
  Context ctx;
  Tensor x = host_random({n}, 4, -4.f, 4.f), want = Tensor::empty({n});
  gelu_forward_ref(want.data<float>(), x.data<float>(), n);
  Tensor xg = x.to(gpu()), y = Tensor::empty({n}, DType::F32, gpu());
  auto fn = [&] { gelu_forward_cuda(ctx, y.data<float>(), xg.data<float>(), n); };
  fn();
  if (!validate(state, y, want, 1e-5, 1e-5)) return;
  run_gpu(state, ctx, 8.0 * double(n), 0, fn);
}

void BM_layer_norm_forward(benchmark::State& state) {
  const int64_t rows = state.range(0), C = state.range(1);
  Context ctx;
  Tensor x = host_random({rows, C}, 5), g = host_random({C}, 6), b = host_random({C}, 7);
  Tensor want = Tensor::empty({rows, C}), m = Tensor::empty({rows}), r = Tensor::empty({rows});
  layer_norm_forward_ref(want.data<float>(), m.data<float>(), r.data<float>(), x.data<float>(),
                         g.data<float>(), b.data<float>(), rows, C, 1e-5f);
  Tensor xg = x.to(gpu()), gg = g.to(gpu()), bg = b.to(gpu());
  Tensor y = Tensor::empty({rows, C}, DType::F32, gpu());
  Tensor mg = Tensor::empty({rows}, DType::F32, gpu()),
         rg = Tensor::empty({rows}, DType::F32, gpu());
  auto fn = [&] {
    layer_norm_forward_cuda(ctx, y.data<float>(), mg.data<float>(), rg.data<float>(),
                            xg.data<float>(), gg.data<float>(), bg.data<float>(), rows, C, 1e-5f);
  };
  fn();
  if (!validate(state, y, want, 1e-5, 1e-5)) return;
  run_gpu(state, ctx, 8.0 * double(rows * C) + 8.0 * double(rows), 0, fn);
}

void BM_layer_norm_backward(benchmark::State& state) {
  const int64_t rows = state.range(0), C = state.range(1);
  Context ctx;
  Tensor x = host_random({rows, C}, 8), g = host_random({C}, 9), d = host_random({rows, C}, 10);
  Tensor y = Tensor::empty({rows, C}), m = Tensor::empty({rows}), r = Tensor::empty({rows});
  layer_norm_forward_ref(y.data<float>(), m.data<float>(), r.data<float>(), x.data<float>(),
                         g.data<float>(), g.data<float>(), rows, C, 1e-5f);
  Tensor dx = Tensor::empty({rows, C}), dg = Tensor::empty({C}), db = Tensor::empty({C});
  layer_norm_backward_ref(dx.data<float>(), dg.data<float>(), db.data<float>(), d.data<float>(),
                          x.data<float>(), g.data<float>(), m.data<float>(), r.data<float>(), rows,
                          C);
  Tensor xg = x.to(gpu()), gg = g.to(gpu()), dgpu = d.to(gpu()), mg = m.to(gpu()), rg = r.to(gpu());
  Tensor dxg = Tensor::empty({rows, C}, DType::F32, gpu());
  Tensor dgg = Tensor::empty({C}, DType::F32, gpu()), dbg = Tensor::empty({C}, DType::F32, gpu());
  auto fn = [&] {
    layer_norm_backward_cuda(ctx, dxg.data<float>(), dgg.data<float>(), dbg.data<float>(),
                             dgpu.data<float>(), xg.data<float>(), gg.data<float>(),
                             mg.data<float>(), rg.data<float>(), rows, C);
  };
  fn();
  if (!validate(state, dxg, dx, 1e-5, 1e-5)) return;
  // dout and x read twice (two kernels), dx written once.
  run_gpu(state, ctx, 4.0 * 5.0 * double(rows * C), 0, fn);
}

// Attention scores [B * NH * T, T] with a [B, 1, 1, T] key mask and scale 1/8.
void BM_softmax_forward(benchmark::State& state) {
  const int64_t B = state.range(0), NH = 12, T = state.range(1), rows = B * NH * T;
  Context ctx;
  Tensor x = host_random({rows, T}, 11, -8.f, 8.f), mask = Tensor::zeros({B, T});
  for (int64_t b = 0; b < B; ++b) mask.data<float>()[b * T + T - 1] = -1e9f;
  std::vector<int64_t> offs(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) offs[size_t(r)] = (r / (NH * T)) * T;
  Tensor want = Tensor::empty({rows, T});
  softmax_forward_ref(want.data<float>(), x.data<float>(), mask.data<float>(), offs.data(), 0.125f,
                      rows, T);
  Tensor xg = x.to(gpu()), mg = mask.to(gpu()), y = Tensor::empty({rows, T}, DType::F32, gpu());
  auto fn = [&] {
    softmax_forward_cuda(ctx, y.data<float>(), xg.data<float>(), mg.data<float>(), offs.data(),
                         0.125f, rows, T);
  };
  fn();
  if (!validate(state, y, want, 1e-5, 1e-5)) return;
  run_gpu(state, ctx, 8.0 * double(rows * T), 0, fn);
}

// Fused attention [B, NH, T, HS] against the unfused GPU path (GEMM, masked softmax, GEMM).
void BM_attention(benchmark::State& state, bool fused) {
  const int64_t B = state.range(0), NH = 12, T = state.range(1), HS = 64, G = B * NH;
  Context ctx;
  Tensor q = host_random({B, NH, T, HS}, 12).to(gpu()),
         k = host_random({B, NH, T, HS}, 13).to(gpu());
  Tensor v = host_random({B, NH, T, HS}, 14).to(gpu()), mask = Tensor::zeros({B, T});
  for (int64_t b = 0; b < B; ++b) mask.data<float>()[b * T + T - 1 - b % 7] = -1e9f;
  Tensor mg = mask.to(gpu());
  const float scale = 0.125f;
  Tensor out = Tensor::empty({B, NH, T, HS}, DType::F32, gpu());
  Tensor s = Tensor::empty({G, T, T}, DType::F32, gpu()),
         p = Tensor::empty({G, T, T}, DType::F32, gpu());
  Tensor ref_out = Tensor::empty({B, NH, T, HS}, DType::F32, gpu());
  std::vector<int64_t> offs(static_cast<size_t>(G * T));
  for (int64_t r = 0; r < G * T; ++r) offs[size_t(r)] = (r / (NH * T)) * T;
  GemmLayout qk, pv;
  qk.M = T, qk.K = HS, qk.N = T, qk.a_rs = HS, qk.a_cs = 1, qk.b_rs = 1, qk.b_cs = HS;
  qk.batch = {G}, qk.a_batch_strides = {T * HS}, qk.b_batch_strides = {T * HS};
  pv.M = T, pv.K = T, pv.N = HS, pv.a_rs = T, pv.a_cs = 1, pv.b_rs = HS, pv.b_cs = 1;
  pv.batch = {G}, pv.a_batch_strides = {T * T}, pv.b_batch_strides = {T * HS};
  auto unfused = [&](float* o) {
    matmul_forward_cuda(ctx, s.raw_data(), DType::F32, q.raw_data(), k.raw_data(), DType::F32,
                        nullptr, qk, false);
    softmax_forward_cuda(ctx, p.data<float>(), s.data<float>(), mg.data<float>(), offs.data(),
                         scale, G * T, T);
    matmul_forward_cuda(ctx, o, DType::F32, p.raw_data(), v.raw_data(), DType::F32, nullptr, pv,
                        false);
  };
  const AttentionStrides st = attention_bhtd(NH, T, HS);
  auto fused_fn = [&] {
    attention_forward_cuda(ctx, out.data<float>(), st, q.data<float>(), st, k.data<float>(), st,
                           v.data<float>(), st, mg.data<float>(), B, NH, T, HS, scale);
  };
  fused_fn();
  unfused(ref_out.data<float>());
  if (!validate(state, out, ref_out, 2e-5, 1e-4)) return;
  // What attention must move: q, k, v read and out written; the unfused path also writes and
  // reads the two [G, T, T] matrices, which the fused kernel never stores.
  const double bytes = 4.0 * 4.0 * double(G * T * HS);
  if (fused)
    run_gpu(state, ctx, bytes, 0, fused_fn);
  else
    run_gpu(state, ctx, bytes, 0, [&] { unfused(out.data<float>()); });
}

void row_shapes(benchmark::internal::Benchmark* b) {
  b->Args({1024, 768})
      ->Args({8192, 768})
      ->Args({1024, 3072})
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
}
void attention_shapes(benchmark::internal::Benchmark* b) {
  b->Args({8, 128})->Args({32, 128})->Args({1, 512})->Args({8, 512})->UseManualTime()->Unit(
      benchmark::kMicrosecond);
}

void register_all() {
  const char* kinds[] = {"f32", "tf32", "bf16_f32", "bf16_bf16"};
  for (int kind = 0; kind < 4; ++kind)
    for (bool epi : {false, true})
      benchmark::RegisterBenchmark(
          (std::string("BM_cuda_gemm/") + kinds[kind] + (epi ? "_bias_gelu" : "")).c_str(), BM_gemm,
          kind, epi)
          ->Apply(gemm_shapes);
  benchmark::RegisterBenchmark("BM_cuda_gelu_forward", BM_gelu_forward)->Apply(row_shapes);
  benchmark::RegisterBenchmark("BM_cuda_layer_norm_forward", BM_layer_norm_forward)
      ->Apply(row_shapes);
  benchmark::RegisterBenchmark("BM_cuda_layer_norm_backward", BM_layer_norm_backward)
      ->Apply(row_shapes);
  benchmark::RegisterBenchmark("BM_cuda_softmax_forward", BM_softmax_forward)
      ->Apply(attention_shapes);
  benchmark::RegisterBenchmark("BM_cuda_attention/fused", BM_attention, true)
      ->Apply(attention_shapes);
  benchmark::RegisterBenchmark("BM_cuda_attention/unfused", BM_attention, false)
      ->Apply(attention_shapes);
}

}  // namespace
}  // namespace kdnas::bench

int main(int argc, char** argv) {
  std::string why;
  if (!kdnas::cuda_device_usable(&why)) {
    std::printf("kdnas_bench_cuda: no usable CUDA device (%s); nothing to run\n", why.c_str());
    return 0;
  }
  kdnas::cuda_init();
  std::printf("kdnas_bench_cuda on %s\n", kdnas::cuda_device_description().c_str());
  benchmark::Initialize(&argc, argv);
  kdnas::bench::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
