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

}  // namespace kdnas
