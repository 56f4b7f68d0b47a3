#include "kernels/cast.h"

#include "kernels/cpu/cast_cpu.h"
#include "kernels/cuda/cast_cuda.h"
#include "kernels/dispatch.h"
#include "kernels/profiler.h"
#include "kernels/ref/cast_ref.h"

namespace kdnas {
namespace {

// Runs f.template operator()<T>() with T the C++ type of a floating dtype.
template <typename F>
void dispatch_floating(DType dt, F&& f) {
  switch (dt) {
    case DType::F32:
      return f.template operator()<float>();
    case DType::F64:
      return f.template operator()<double>();
    case DType::BF16:
      return f.template operator()<bf16>();
    case DType::F16:
      return f.template operator()<f16>();
    default:
      KDNAS_ASSERT(false);
  }
}

// The vectorised kernel for from -> to, or false if that pair has none.
bool cast_fast(Context& ctx, void* out, DType to, const void* in, DType from, int64_t n) {
  if (from == DType::F32 && to == DType::BF16)
    cast_f32_to_bf16_cpu(ctx, static_cast<bf16*>(out), static_cast<const float*>(in), n);
  else if (from == DType::BF16 && to == DType::F32)
    cast_bf16_to_f32_cpu(ctx, static_cast<float*>(out), static_cast<const bf16*>(in), n);
  else if (from == DType::F32 && to == DType::F16)
    cast_f32_to_f16_cpu(ctx, static_cast<f16*>(out), static_cast<const float*>(in), n);
  else if (from == DType::F16 && to == DType::F32)
    cast_f16_to_f32_cpu(ctx, static_cast<float*>(out), static_cast<const f16*>(in), n);
  else
    return false;
  return true;
}

}  // namespace

Tensor cast(Context& ctx, const Tensor& x, DType to) {
  const char* op = "cast";
  check_dtype(op, "x", x, {DType::F32, DType::F64, DType::BF16, DType::F16});
  KDNAS_CHECK(is_floating(to), "cast: x is ", dtype_name(x.dtype()), " ", x.shape(),
              "; cannot cast to ", dtype_name(to), " (f32, f64, bf16 or f16)");
  const Route r = route_for(ctx, op, x);
  if (x.dtype() == to) return x.contiguous();
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&x}, double(x.numel()) * double(dtype_size(to)));
  if (r == Route::Cuda) {  // f32, bf16 and f16 on the device (f64 is a CPU dtype)
    KDNAS_CHECK(x.dtype() != DType::F64 && to != DType::F64, "cast: x is ", dtype_name(x.dtype()),
                " ", x.shape(), " on ", x.device().str(), "; f64 casts run on the CPU only");
    Tensor xc = x.contiguous(), out = Tensor::empty(x.shape(), to, x.device());
    cast_cuda(ctx, out.raw_data(), to, xc.raw_data(), x.dtype(), x.numel());
    return out;
  }
  // A strided x is first gathered in its own dtype (a same-size copy), so that the kernels
  // below only ever stream contiguous memory.
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), to, x.device());
  const int64_t n = x.numel();
  if (r != Route::Ref && cast_fast(ctx, out.raw_data(), to, xc.raw_data(), x.dtype(), n))
    return out;
  dispatch_floating(to, [&]<typename D>() {
    dispatch_floating(x.dtype(), [&]<typename S>() {
      cast_ref<D, S>(static_cast<D*>(out.raw_data()), static_cast<const S*>(xc.raw_data()), n);
    });
  });
  return out;
}

}  // namespace kdnas
