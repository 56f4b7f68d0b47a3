// Helpers for the kernel benchmarks: timing, throughput counters and the memory-bound baseline.
//
// Every benchmark validates its kernel against the reference once before timing (a fast wrong
// kernel is not fast), then reports plain counters:
//   GB/s      bytes the op must move / median-free mean time per iteration
//   GFLOP/s   useful flops / time (GEMMs)
//   x_stream  time / time of a plain parallel streaming pass over the same bytes (read what the
//             op reads, write what it writes), measured in the same process. 1.0 = memory
//             speed; the target for LayerNorm, softmax and GELU is <= 2.
// Benches register with UseManualTime(): run_timed() times each iteration with a steady clock
// (the work runs on OpenMP threads that the main thread's CPU time does not see).
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <functional>

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas::bench {

// Thread count for the benches: KDNAS_BENCH_THREADS, or 2 (this machine's core count).
int bench_threads();

struct Work {
  double bytes = 0;         // bytes the op reads + writes per call
  double flops = 0;         // flops per call (0: not reported)
  size_t stream_read = 0;   // for x_stream: bytes a streaming pass reads ...
  size_t stream_write = 0;  // ... and writes (both 0: x_stream not reported)
};

// Runs fn once per benchmark iteration, timing it, then sets the counters of `work`.
void run_timed(benchmark::State& state, Context& ctx, const Work& work,
               const std::function<void()>& fn);

// Seconds for one streaming pass reading `read_bytes` and writing `write_bytes` with the
// context's threads (median of 31 runs, cached per size).
double stream_pass_seconds(Context& ctx, size_t read_bytes, size_t write_bytes);

// Calls state.SkipWithError and returns false unless got matches want within atol + rtol*|want|.
bool validate(benchmark::State& state, const Tensor& got, const Tensor& want, double atol,
              double rtol);

}  // namespace kdnas::bench
