// Helpers shared by the op API files (kernels/*.cpp): argument checks whose messages name the
// op and the shapes, and the choice of kernel for a tensor's device and the context's backend.
#pragma once

#include <initializer_list>

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

// Which kernel family runs an op.
enum class Route { Ref, Omp, Onednn, Cuda };

// The route for an op whose inputs live on t's device. Throws "op: built without CUDA" for a
// CUDA tensor in a build without the backend.
Route route_for(const Context& ctx, const char* op, const Tensor& t);

// Checks that t is defined, and that its dtype is one of `allowed`.
void check_dtype(const char* op, const char* arg, const Tensor& t,
                 std::initializer_list<DType> allowed);
// Checks that every tensor lives on the same device as the first.
void check_same_device(const char* op, std::initializer_list<const Tensor*> ts);
// Checks a.shape() == b.shape().
void check_same_shape(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                      const Tensor& b);
// Checks t.dim() == n.
void check_dim(const char* op, const char* arg, const Tensor& t, int64_t n);

// Message for an op that has no kernel for this route/dtype yet.
[[noreturn]] void no_kernel(const char* op, Route r, DType dt);

// Runs `f.template operator()<T>()` with T = float or double for an F32/F64 tensor: the
// reference kernels are templates over the scalar type (double for gradient checks).
template <typename F>
auto dispatch_float(const char* op, DType dt, F&& f) {
  if (dt == DType::F32) return f.template operator()<float>();
  if (dt == DType::F64) return f.template operator()<double>();
  detail::fail(detail::concat(op, ": dtype ", dtype_name(dt), " is not supported (f32 or f64)"));
}

// The dispatch every op API function ends with: the reference kernel (a generic lambda over the
// scalar type, run as ref.template operator()<T>()) on Route::Ref and for every f64 tensor; the
// fast f32 kernel (`fast()`, which picks CPU or CUDA itself) on the other routes.
template <typename Ref, typename Fast>
void run_kernel(const char* op, Route r, const Tensor& x, Ref&& ref, Fast&& fast) {
  if (r == Route::Ref || x.dtype() == DType::F64) {
    KDNAS_CHECK(x.device().is_cpu(), op, ": f64 runs on the CPU reference only");
    dispatch_float(op, x.dtype(), ref);
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    fast();
  } else {
    no_kernel(op, r, x.dtype());
  }
}

}  // namespace kdnas
