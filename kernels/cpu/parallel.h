// How fast CPU kernels split work across threads.
//
// parallel_for(ctx, n, grain, f) calls f(begin, end) on contiguous chunks of [0, n), one chunk
// per thread of the context; problems smaller than `grain` run on the calling thread, since
// waking a team costs microseconds. Without OpenMP it is a plain call of f(0, n).
#pragma once

#include <cstdint>
#include <functional>

#include "kernels/context.h"

namespace kdnas {

void parallel_for(const Context& ctx, int64_t n, int64_t grain,
                  const std::function<void(int64_t begin, int64_t end)>& f);

// Elements below which an element-wise pass (add, cast, permute, the LayerNorm forward) runs on
// the calling thread. It depends on how the OpenMP team waits between parallel regions, read once
// from OMP_WAIT_POLICY: 2^17 (a batch-1 [128, 768] activation stays on one thread) when it
// sleeps (PASSIVE: waking it costs more than half of such a pass, e.g. 39 us for a [128, 768]
// add on 2 threads vs 27 us on 1), 2^14 when it spins (libgomp's default, ACTIVE), where the
// second thread is ready at once. A/B on 2 threads, batch 1, libgomp's default: XLM-R Base int8
// 19.0 -> 18.2 ms, bf16 27.9 -> 26.8; 6L/384H int8 5.05 -> 4.38; 4L/256H bf16 1.75 -> 1.56.
int64_t elementwise_grain();

}  // namespace kdnas
