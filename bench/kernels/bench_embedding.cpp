// Embedding lookup and its scatter-add gradient at XLM-R-like sizes: ids [B, T] = [8, 128],
// a table of 50000 x 768 (a stand-in for XLM-R's 250002 rows; the dense gradient's cost is the
// table write, and the page faults of a fresh allocation that size, so it scales with V; the
// accumulating gradient touches N rows only). Memory-bound: reports GB/s and x_stream.
#include "bench/bench_util.h"
#include "kernels/embedding.h"
#include "tensor/rng.h"

namespace kdnas::bench {
namespace {

Tensor bench_ids(int64_t n, int64_t V, Rng& rng) {
  Tensor ids = Tensor::empty({n}, DType::I64);
  for (int64_t i = 0; i < n; ++i) ids.data<int64_t>()[i] = int64_t(rng.below(uint64_t(V)));
  return ids;
}

void BM_embedding_forward(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  const int64_t N = state.range(0), V = state.range(1), C = state.range(2);
  Rng rng(0);
  Tensor ids = bench_ids(N, V, rng), table = Tensor::empty({V, C});
  rng.fill_uniform(table, -1.f, 1.f);
  if (!validate(state, embedding_forward(ctx, ids, table), embedding_forward(ref, ids, table), 0,
                0))
    return;
  const size_t rows = size_t(N * C) * sizeof(float);
  // Reads N table rows and the ids, writes N rows.
  run_timed(state, ctx, {2.0 * double(rows) + double(ids.nbytes()), 0, rows, rows},
            [&] { benchmark::DoNotOptimize(embedding_forward(ctx, ids, table).raw_data()); });
}

void BM_embedding_backward(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  const int64_t N = state.range(0), V = state.range(1), C = state.range(2);
  Rng rng(0);
  Tensor ids = bench_ids(N, V, rng), dout = Tensor::empty({N, C});
  rng.fill_uniform(dout, -1.f, 1.f);
  if (!validate(state, embedding_backward(ctx, dout, ids, V), embedding_backward(ref, dout, ids, V),
                0, 0))
    return;
  const size_t table = size_t(V * C) * sizeof(float), rows = size_t(N * C) * sizeof(float);
  // Writes the whole table once; reads dout and read-modify-writes the N touched rows.
  run_timed(state, ctx, {double(table) + 3.0 * double(rows), 0, rows, table},
            [&] { benchmark::DoNotOptimize(embedding_backward(ctx, dout, ids, V).raw_data()); });
}

// The accumulating gradient into a persistent [V, C] buffer (a parameter's .grad): touches only
// the N rows that occur, no allocation, no page faults.
void BM_embedding_backward_accumulate(benchmark::State& state, Backend be) {
  Context ctx(be, bench_threads()), ref(Backend::Ref);
  const int64_t N = state.range(0), V = state.range(1), C = state.range(2);
  Rng rng(0);
  Tensor ids = bench_ids(N, V, rng), dout = Tensor::empty({N, C});
  rng.fill_uniform(dout, -1.f, 1.f);
  Tensor got = Tensor::zeros({V, C}), want = Tensor::zeros({V, C});
  embedding_backward_accumulate(ctx, got, dout, ids);
  embedding_backward_accumulate(ref, want, dout, ids);
  if (!validate(state, got, want, 0, 0)) return;
  const size_t rows = size_t(N * C) * sizeof(float);
  // Reads dout and read-modify-writes N rows of the table.
  run_timed(state, ctx, {3.0 * double(rows), 0, 2 * rows, rows},
            [&] { embedding_backward_accumulate(ctx, got, dout, ids); });
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({8 * 128, 50000, 768})->UseManualTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK_CAPTURE(BM_embedding_forward, omp, Backend::Omp)->Apply(shapes);
BENCHMARK_CAPTURE(BM_embedding_backward, omp, Backend::Omp)->Apply(shapes);
BENCHMARK_CAPTURE(BM_embedding_backward_accumulate, omp, Backend::Omp)->Apply(shapes);

}  // namespace
}  // namespace kdnas::bench
