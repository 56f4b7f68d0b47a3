// permute_copy at XLM-R's attention shapes: the head split [B, T, NH, HS] -> [B, NH, T, HS]
// (order {0, 2, 1, 3}, runs of HS = 64 floats) for 8 sequences of 128 tokens and for one, in
// f32 and bf16; inference's QKV split of one sequence; and a 2-D transpose [1024 x 768] ->
// [768 x 1024] (the tiled path). A pure copy: reports GB/s and x_stream against a streaming copy of the same bytes (see bench_util.h).
#include "bench/bench_util.h"
#include "kernels/permute.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

void run_permute(benchmark::State& state, Backend be, const Shape& shape,
                 const std::vector<int64_t>& order, DType dt) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  Rng rng(0);
  Tensor x = Tensor::empty(shape, dt);
  rng.fill_uniform(x, -1.f, 1.f);
  // validate() reads f32: compare bf16 results through an exact conversion.
  Tensor got = permute_copy(ctx, x, order).to(DType::F32);
  if (!validate(state, got, permute_copy(ref, x, order).to(DType::F32), 0, 0)) return;
  const size_t bytes = x.nbytes();
  run_timed(state, ctx, {2.0 * double(bytes), 0, bytes, bytes},
            [&] { benchmark::DoNotOptimize(permute_copy(ctx, x, order).raw_data()); });
}

void BM_permute_heads(benchmark::State& state, Backend be, DType dt) {
  run_permute(state, be, {state.range(0), 128, 12, 64}, {0, 2, 1, 3}, dt);
}

// Inference's QKV split of one sequence (an attention chunk): qkv [1, T, 3, NH, HS] -> [3, 1,
// NH, T, HS], bf16, T = 128: runs of HS elements (128 bytes for XLM-R's HS = 64, 64 bytes for
// the 6L/384H student's HS = 32). range(0) = NH, range(1) = HS.
void BM_permute_qkv(benchmark::State& state, Backend be) {
  run_permute(state, be, {1, 128, 3, state.range(0), state.range(1)}, {2, 0, 3, 1, 4},
              DType::BF16);
}

void BM_permute_transpose(benchmark::State& state, Backend be) {
  run_permute(state, be, {state.range(0), state.range(1)}, {1, 0}, DType::F32);
}

// The oneDNN route runs the same OpenMP kernels, so only omp is registered.
BENCHMARK_CAPTURE(BM_permute_heads, omp_f32, Backend::Omp, DType::F32)
    ->Arg(8)->Arg(1)->ArgName("B")->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_permute_heads, omp_bf16, Backend::Omp, DType::BF16)
    ->Arg(8)->ArgName("B")->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_permute_qkv, omp_bf16, Backend::Omp)
    ->Args({12, 64})->Args({12, 32})->ArgNames({"NH", "HS"})->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_permute_transpose, omp, Backend::Omp)
    ->Args({1024, 768})->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kdnas::bench
