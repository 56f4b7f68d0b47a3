#include "kernels/dropout.h"

#include <cmath>

#include "kernels/cpu/dropout_cpu.h"
#include "kernels/cuda/dropout_cuda.h"
#include "kernels/dispatch.h"
#include "kernels/profiler.h"
#include "kernels/ref/dropout_ref.h"

namespace kdnas {
namespace {

void check_p(const char* op, double p, const Tensor& t) {
  KDNAS_CHECK(std::isfinite(p) && p >= 0.0 && p <= 1.0, op, ": p = ", p,
              " is outside [0, 1] (input ", t.shape(), ")");
}

}  // namespace

DropoutOutput dropout_forward(Context& ctx, const Tensor& x, double p, uint64_t seed,
                              uint64_t counter) {
  const char* op = "dropout";
  check_dtype(op, "x", x, {DType::F32, DType::F64});
  check_p(op, p, x);
  const Route r = route_for(ctx, op, x);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&x}, double(x.nbytes()) + double(x.numel()));  // out + the u8 mask
  Tensor xc = x.contiguous();
  DropoutOutput res{Tensor::empty(x.shape(), x.dtype(), x.device()),
                    Tensor::empty(x.shape(), DType::U8, x.device())};
  const int64_t n = x.numel();
  if (r == Route::Ref || x.dtype() == DType::F64) {
    KDNAS_CHECK(x.device().is_cpu(), op, ": f64 runs on the CPU reference only");
    dispatch_float(op, x.dtype(), [&]<typename T>() {
      dropout_forward_ref(res.out.data<T>(), res.mask.data<uint8_t>(), xc.data<T>(), p, seed,
                          counter, n);
    });
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    auto* kernel = r == Route::Cuda ? dropout_forward_cuda : dropout_forward_cpu;
    kernel(ctx, res.out.data<float>(), res.mask.data<uint8_t>(), xc.data<float>(), p, seed, counter,
           n);
  } else {
    no_kernel(op, r, x.dtype());
  }
  return res;
}

Tensor dropout_backward(Context& ctx, const Tensor& dout, const Tensor& mask, double p) {
  const char* op = "dropout_backward";
  check_dtype(op, "dout", dout, {DType::F32, DType::F64});
  check_dtype(op, "mask", mask, {DType::U8});
  check_same_shape(op, "dout", dout, "mask", mask);
  check_same_device(op, {&dout, &mask});
  check_p(op, p, dout);
  const Route r = route_for(ctx, op, dout);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&dout, &mask}, double(dout.nbytes()));
  Tensor dc = dout.contiguous(), mc = mask.contiguous();
  Tensor dx = Tensor::empty(dout.shape(), dout.dtype(), dout.device());
  const int64_t n = dout.numel();
  if (r == Route::Ref || dout.dtype() == DType::F64) {
    KDNAS_CHECK(dout.device().is_cpu(), op, ": f64 runs on the CPU reference only");
    dispatch_float(op, dout.dtype(), [&]<typename T>() {
      dropout_backward_ref(dx.data<T>(), dc.data<T>(), mc.data<uint8_t>(), p, n);
    });
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    auto* kernel = r == Route::Cuda ? dropout_backward_cuda : dropout_backward_cpu;
    kernel(ctx, dx.data<float>(), dc.data<float>(), mc.data<uint8_t>(), p, n);
  } else {
    no_kernel(op, r, dout.dtype());
  }
  return dx;
}

}  // namespace kdnas
