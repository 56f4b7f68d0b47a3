#include "kernels/eltwise.h"

#include "kernels/cpu/eltwise_cpu.h"
#include "kernels/cuda/eltwise_cuda.h"
#include "kernels/dispatch.h"
#include "kernels/profiler.h"
#include "kernels/ref/eltwise_ref.h"

namespace kdnas {
namespace {

// One-input ops: check, make contiguous, pick the kernel. `ref` is a generic lambda over the
// scalar type; `fast` takes f32 pointers and the route (Omp or Onednn).
template <typename Ref, typename Fast>
Tensor unary(Context& ctx, const char* op, const Tensor& x, Ref&& ref, Fast&& fast) {
  check_dtype(op, "x", x, {DType::F32, DType::F64});
  const Route r = route_for(ctx, op, x);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&x}, double(x.nbytes()));
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  const int64_t n = x.numel();
  if (r == Route::Ref || x.dtype() == DType::F64) {
    KDNAS_CHECK(x.device().is_cpu(), op, ": f64 runs on the CPU reference only");
    dispatch_float(op, x.dtype(), [&]<typename T>() { ref(out.data<T>(), xc.data<T>(), n); });
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    fast(r, out.data<float>(), xc.data<float>(), n);
  } else {
    no_kernel(op, r, x.dtype());
  }
  return out;
}

// Gradient ops with two same-shaped inputs (dout and a saved tensor).
template <typename Ref, typename Fast>
Tensor unary_backward(Context& ctx, const char* op, const Tensor& dout, const Tensor& saved,
                      Ref&& ref, Fast&& fast) {
  check_dtype(op, "dout", dout, {DType::F32, DType::F64});
  check_dtype(op, "saved input", saved, {dout.dtype()});
  check_same_shape(op, "dout", dout, "saved input", saved);
  check_same_device(op, {&dout, &saved});
  const Route r = route_for(ctx, op, dout);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&dout, &saved}, double(dout.nbytes()));
  Tensor dc = dout.contiguous(), sc = saved.contiguous();
  Tensor dinp = Tensor::empty(dout.shape(), dout.dtype(), dout.device());
  const int64_t n = dout.numel();
  if (r == Route::Ref || dout.dtype() == DType::F64) {
    KDNAS_CHECK(dout.device().is_cpu(), op, ": f64 runs on the CPU reference only");
    dispatch_float(op, dout.dtype(),
                   [&]<typename T>() { ref(dinp.data<T>(), dc.data<T>(), sc.data<T>(), n); });
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    fast(r, dinp.data<float>(), dc.data<float>(), sc.data<float>(), n);
  } else {
    no_kernel(op, r, dout.dtype());
  }
  return dinp;
}

}  // namespace

Tensor gelu_forward(Context& ctx, const Tensor& x) {
  return unary(
      ctx, "gelu", x, []<typename T>(T* o, const T* i, int64_t n) { gelu_forward_ref(o, i, n); },
      [&](Route r, float* o, const float* i, int64_t n) {
        r == Route::Cuda     ? gelu_forward_cuda(ctx, o, i, n)
        : r == Route::Onednn ? gelu_forward_onednn(ctx, o, i, n)
                             : gelu_forward_cpu(ctx, o, i, n);
      });
}

Tensor gelu_backward(Context& ctx, const Tensor& dout, const Tensor& x) {
  return unary_backward(
      ctx, "gelu_backward", dout, x,
      []<typename T>(T* dx, const T* d, const T* x, int64_t n) { gelu_backward_ref(dx, d, x, n); },
      [&](Route r, float* dx, const float* d, const float* x, int64_t n) {
        r == Route::Cuda     ? gelu_backward_cuda(ctx, dx, d, x, n)
        : r == Route::Onednn ? gelu_backward_onednn(ctx, dx, d, x, n)
                             : gelu_backward_cpu(ctx, dx, d, x, n);
      });
}

Tensor tanh_forward(Context& ctx, const Tensor& x) {
  return unary(
      ctx, "tanh", x, []<typename T>(T* o, const T* i, int64_t n) { tanh_forward_ref(o, i, n); },
      [&](Route r, float* o, const float* i, int64_t n) {
        r == Route::Cuda ? tanh_forward_cuda(ctx, o, i, n) : tanh_forward_cpu(ctx, o, i, n);
      });
}

Tensor tanh_backward(Context& ctx, const Tensor& dout, const Tensor& y) {
  return unary_backward(
      ctx, "tanh_backward", dout, y,
      []<typename T>(T* dx, const T* d, const T* y, int64_t n) { tanh_backward_ref(dx, d, y, n); },
      [&](Route r, float* dx, const float* d, const float* y, int64_t n) {
        r == Route::Cuda ? tanh_backward_cuda(ctx, dx, d, y, n)
                         : tanh_backward_cpu(ctx, dx, d, y, n);
      });
}

Tensor relu_forward(Context& ctx, const Tensor& x) {
  return unary(
      ctx, "relu", x, []<typename T>(T* o, const T* i, int64_t n) { relu_forward_ref(o, i, n); },
      [&](Route r, float* o, const float* i, int64_t n) {
        r == Route::Cuda ? relu_forward_cuda(ctx, o, i, n) : relu_forward_cpu(ctx, o, i, n);
      });
}

Tensor relu_backward(Context& ctx, const Tensor& dout, const Tensor& x) {
  return unary_backward(
      ctx, "relu_backward", dout, x,
      []<typename T>(T* dx, const T* d, const T* x, int64_t n) { relu_backward_ref(dx, d, x, n); },
      [&](Route r, float* dx, const float* d, const float* x, int64_t n) {
        r == Route::Cuda ? relu_backward_cuda(ctx, dx, d, x, n)
                         : relu_backward_cpu(ctx, dx, d, x, n);
      });
}

Tensor scale_forward(Context& ctx, const Tensor& x, double alpha) {
  return unary(
      ctx, "scale", x,
      [alpha]<typename T>(T* o, const T* i, int64_t n) { scale_forward_ref(o, i, T(alpha), n); },
      [&](Route r, float* o, const float* i, int64_t n) {
        r == Route::Cuda ? scale_forward_cuda(ctx, o, i, float(alpha), n)
                         : scale_forward_cpu(ctx, o, i, float(alpha), n);
      });
}

}  // namespace kdnas
