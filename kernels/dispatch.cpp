#include "kernels/dispatch.h"

namespace kdnas {

Route route_for(const Context& ctx, const char* op, const Tensor& t) {
  if (t.device().type == DeviceType::CUDA) {
    KDNAS_CHECK(cuda_compiled(), op, ": built without CUDA");
    return Route::Cuda;
  }
  switch (ctx.backend()) {
    case Backend::Ref:
      return Route::Ref;
    case Backend::Omp:
      return Route::Omp;
    case Backend::Onednn:
      return Route::Onednn;
  }
  return Route::Ref;
}

void check_dtype(const char* op, const char* arg, const Tensor& t,
                 std::initializer_list<DType> allowed) {
  KDNAS_CHECK(t.defined(), op, ": ", arg, " is an undefined tensor");
  for (DType d : allowed)
    if (t.dtype() == d) return;
  std::string names;
  for (DType d : allowed) names += std::string(names.empty() ? "" : ", ") + dtype_name(d);
  detail::fail(detail::concat(op, ": ", arg, " has dtype ", dtype_name(t.dtype()), " (shape ",
                              t.shape(), "); expected ", names));
}

void check_same_device(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = *ts.begin();
  for (const Tensor* t : ts)
    KDNAS_CHECK(t->device() == first->device(), op, ": tensors on different devices (",
                first->device().str(), " and ", t->device().str(), ")");
}

void check_same_shape(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                      const Tensor& b) {
  KDNAS_CHECK(a.shape() == b.shape(), op, ": ", a_name, " is ", a.shape(), " but ", b_name, " is ",
              b.shape());
}

void check_dim(const char* op, const char* arg, const Tensor& t, int64_t n) {
  KDNAS_CHECK(t.dim() == n, op, ": ", arg, " must have ", n, " dims, got shape ", t.shape());
}

void no_kernel(const char* op, Route r, DType dt) {
  const char* names[] = {"ref", "omp", "onednn", "cuda"};
  detail::fail(detail::concat(op, ": no ", names[int(r)], " kernel for dtype ", dtype_name(dt)));
}

}  // namespace kdnas
