#include "kernels/cpu/parallel.h"

#include <strings.h>

#include <algorithm>
#include <cstdlib>

#if KDNAS_HAVE_OPENMP
#include <omp.h>
#endif

namespace kdnas {

void parallel_for(const Context& ctx, int64_t n, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& f) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int nt = int(std::min<int64_t>(ctx.threads(), (n + grain - 1) / grain));
  if (nt <= 1) {
    f(0, n);
    return;
  }
#if KDNAS_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
  {
    // Static, equal chunks: each thread touches one contiguous range (good for streaming).
    const int64_t t = omp_get_thread_num();
    const int64_t chunk = (n + nt - 1) / nt;
    const int64_t b = std::min(n, t * chunk), e = std::min(n, b + chunk);
    if (b < e) f(b, e);
  }
#else
  f(0, n);
#endif
}

int64_t elementwise_grain() {
  static const int64_t grain = [] {
    const char* policy = std::getenv("OMP_WAIT_POLICY");
    const bool passive = policy != nullptr && strcasecmp(policy, "passive") == 0;
    return passive ? int64_t(1) << 17 : int64_t(1) << 14;
  }();
  return grain;
}

}  // namespace kdnas
