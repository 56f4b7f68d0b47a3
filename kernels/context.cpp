#include "kernels/context.h"

#include "kernels/cuda/cuda_context.h"
#include "kernels/profiler.h"
#include "tensor/check.h"

#if KDNAS_HAVE_OPENMP
#include <omp.h>
#endif

namespace kdnas {

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::Ref:
      return "ref";
    case Backend::Omp:
      return "omp";
    case Backend::Onednn:
      return "onednn";
  }
  return "?";
}

bool onednn_compiled() {
  return KDNAS_HAVE_ONEDNN != 0;
}
bool openmp_compiled() {
  return KDNAS_HAVE_OPENMP != 0;
}
bool cuda_compiled() {
  return KDNAS_HAVE_CUDA != 0;
}

std::vector<Backend> compiled_cpu_backends() {
  std::vector<Backend> v{Backend::Ref, Backend::Omp};
  if (onednn_compiled()) v.push_back(Backend::Onednn);
  return v;
}

Backend best_cpu_backend() {
  return onednn_compiled() ? Backend::Onednn : Backend::Omp;
}

Context::Context(Backend backend, int threads) {
  // In a CUDA build this registers the CUDA device hooks (no driver call), so CUDA tensors can
  // be made from here on; in other builds it does nothing (kernels/cuda/cuda_stubs.cpp).
  cuda_init();
  set_backend(backend);
  KDNAS_CHECK(threads >= 0, "context: thread count must be >= 0, got ", threads);
#if KDNAS_HAVE_OPENMP
  // oneDNN's OpenMP runtime follows the process-wide setting, so an explicit count is applied
  // there too; 0 keeps whatever OMP_NUM_THREADS or the machine says.
  if (threads > 0) omp_set_num_threads(threads);
  threads_ = omp_get_max_threads();
#else
  threads_ = 1;
#endif
  profiler_ = Profiler::from_env();
}

Context::~Context() = default;

void Context::set_backend(Backend b) {
  KDNAS_CHECK(b != Backend::Onednn || onednn_compiled(),
              "context: backend onednn requested but kdnas was built without oneDNN");
  backend_ = b;
}

}  // namespace kdnas
