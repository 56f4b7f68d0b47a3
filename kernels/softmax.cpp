#include "kernels/softmax.h"

#include <vector>

#include "kernels/cast.h"
#include "kernels/cpu/softmax_cpu.h"
#include "kernels/cuda/softmax_cuda.h"
#include "kernels/dispatch.h"
#include "kernels/profiler.h"
#include "kernels/ref/softmax_ref.h"

// Route::Onednn runs the OpenMP kernels. oneDNN 2.6's softmax primitive has no additive mask
// and no input scale, so it cannot do the attention case (the hot one) in one pass, and on the
// unmasked shapes it was measured no faster than the OpenMP kernel (bench/README.md).

namespace kdnas {
namespace {

// x is [..., N]: rows = numel / N.
int64_t last_dim(const char* op, const Tensor& x) {
  KDNAS_CHECK(x.dim() >= 1, op, ": x must have at least 1 dim ([..., N]), got shape ", x.shape());
  return x.size(-1);
}

// The mask as the kernels take it: `m` (index with m.data<T>() + offsets[r]) holds, for x-row
// r, N contiguous mask values starting at offsets[r].
struct MaskRows {
  Tensor m;
  std::vector<int64_t> offsets;
};

MaskRows mask_rows(const char* op, const Tensor& x, const Tensor& mask) {
  check_dtype(op, "mask", mask, {x.dtype()});
  check_same_device(op, {&x, &mask});
  bool ok = mask.dim() <= x.dim();
  for (int64_t i = 1; ok && i <= mask.dim(); ++i)
    ok = mask.size(-i) == x.size(-i) || mask.size(-i) == 1;
  KDNAS_CHECK(ok, op, ": mask ", mask.shape(), " does not broadcast to x ", x.shape(),
              " (trailing dims must be equal or 1)");
  const int64_t N = x.size(-1);
  Tensor m = mask.dim() == 0 ? mask.unsqueeze(0) : mask;
  // A mask broadcast along the last dim ([..., 1]) or strided in it is copied once into rows
  // of N contiguous values; it is no larger than x, and usually far smaller ([B, 1, 1, T]).
  if (N > 1 && (m.size(-1) != N || m.stride(-1) != 1)) {
    Shape s = m.shape();
    s.back() = N;
    m = m.expand(s).contiguous();
  }
  m = m.expand(x.shape());  // broadcast dims get stride 0: their rows share one mask row
  // Walk x's leading dims like an odometer, adding the mask's strides.
  const int64_t lead = x.dim() - 1, rows = N > 0 ? x.numel() / N : 0;
  std::vector<int64_t> offsets(static_cast<size_t>(rows)), idx(static_cast<size_t>(lead), 0);
  int64_t off = 0;
  for (int64_t r = 0; r < rows; ++r) {
    offsets[size_t(r)] = off;
    for (int64_t d = lead - 1; d >= 0; --d) {
      off += m.stride(d);
      if (++idx[size_t(d)] < x.size(d)) break;
      off -= idx[size_t(d)] * m.stride(d);
      idx[size_t(d)] = 0;
    }
  }
  return {m, std::move(offsets)};
}

// Checks shared by the two backward ops: dout and y of one dtype and shape.
void check_backward(const char* op, const Tensor& dout, const Tensor& y) {
  check_dtype(op, "dout", dout, {DType::F32, DType::F64});
  check_dtype(op, "y", y, {dout.dtype()});
  check_same_shape(op, "dout", dout, "y", y);
  check_same_device(op, {&dout, &y});
  last_dim(op, dout);
}

}  // namespace

Tensor softmax_forward(Context& ctx, const Tensor& x, const Tensor& mask, double scale) {
  const char* op = "softmax";
  check_dtype(op, "x", x, {DType::F32, DType::F64});
  const int64_t N = last_dim(op, x);
  MaskRows mr;
  if (mask.defined()) mr = mask_rows(op, x, mask);
  const Route r = route_for(ctx, op, x);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&x, &mask}, double(x.nbytes()));
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return out;
  const int64_t rows = x.numel() / N;
  const int64_t* offs = mr.offsets.data();
  run_kernel(
      op, r, x,
      [&]<typename T>() {
        softmax_forward_ref(out.data<T>(), xc.data<T>(), mr.m.defined() ? mr.m.data<T>() : nullptr,
                            offs, T(scale), rows, N);
      },
      [&] {
        auto* kernel = r == Route::Cuda ? softmax_forward_cuda : softmax_forward_cpu;
        kernel(ctx, out.data<float>(), xc.data<float>(),
               mr.m.defined() ? mr.m.data<float>() : nullptr, offs, float(scale), rows, N);
      });
  return out;
}

Tensor softmax_forward_bf16(Context& ctx, const Tensor& x, const Tensor& mask, double scale) {
  const char* op = "softmax_bf16";
  check_dtype(op, "x", x, {DType::F32});
  const int64_t N = last_dim(op, x);
  MaskRows mr;
  if (mask.defined()) mr = mask_rows(op, x, mask);
  const Route r = route_for(ctx, op, x);
  // The reference (and CUDA) result is the definition: the f32 softmax, then rounded.
  if (r == Route::Ref || r == Route::Cuda)
    return cast(ctx, softmax_forward(ctx, x, mask, scale), DType::BF16);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&x, &mask}, double(x.nbytes()));
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), DType::BF16, x.device());
  if (x.numel() == 0) return out;
  softmax_forward_bf16_cpu(ctx, out.data<bf16>(), xc.data<float>(),
                           mr.m.defined() ? mr.m.data<float>() : nullptr, mr.offsets.data(),
                           float(scale), x.numel() / N, N);
  return out;
}

Tensor softmax_backward(Context& ctx, const Tensor& dout, const Tensor& y, double scale) {
  const char* op = "softmax_backward";
  check_backward(op, dout, y);
  const Route r = route_for(ctx, op, dout);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&dout, &y}, double(dout.nbytes()));
  Tensor dc = dout.contiguous(), yc = y.contiguous();
  Tensor dx = Tensor::empty(dout.shape(), dout.dtype(), dout.device());
  if (dout.numel() == 0) return dx;
  const int64_t N = dout.size(-1), rows = dout.numel() / N;
  run_kernel(
      op, r, dout,
      [&]<typename T>() {
        softmax_backward_ref(dx.data<T>(), dc.data<T>(), yc.data<T>(), T(scale), rows, N);
      },
      [&] {
        auto* kernel = r == Route::Cuda ? softmax_backward_cuda : softmax_backward_cpu;
        kernel(ctx, dx.data<float>(), dc.data<float>(), yc.data<float>(), float(scale), rows, N);
      });
  return dx;
}

Tensor log_softmax_forward(Context& ctx, const Tensor& x) {
  const char* op = "log_softmax";
  check_dtype(op, "x", x, {DType::F32, DType::F64});
  const int64_t N = last_dim(op, x);
  const Route r = route_for(ctx, op, x);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&x}, double(x.nbytes()));
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return out;
  const int64_t rows = x.numel() / N;
  run_kernel(
      op, r, x,
      [&]<typename T>() { log_softmax_forward_ref(out.data<T>(), xc.data<T>(), rows, N); },
      [&] {
        auto* kernel = r == Route::Cuda ? log_softmax_forward_cuda : log_softmax_forward_cpu;
        kernel(ctx, out.data<float>(), xc.data<float>(), rows, N);
      });
  return out;
}

Tensor log_softmax_backward(Context& ctx, const Tensor& dout, const Tensor& y) {
  const char* op = "log_softmax_backward";
  check_backward(op, dout, y);
  const Route r = route_for(ctx, op, dout);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&dout, &y}, double(dout.nbytes()));
  Tensor dc = dout.contiguous(), yc = y.contiguous();
  Tensor dx = Tensor::empty(dout.shape(), dout.dtype(), dout.device());
  if (dout.numel() == 0) return dx;
  const int64_t N = dout.size(-1), rows = dout.numel() / N;
  run_kernel(
      op, r, dout,
      [&]<typename T>() {
        log_softmax_backward_ref(dx.data<T>(), dc.data<T>(), yc.data<T>(), rows, N);
      },
      [&] {
        auto* kernel = r == Route::Cuda ? log_softmax_backward_cuda : log_softmax_backward_cpu;
        kernel(ctx, dx.data<float>(), dc.data<float>(), yc.data<float>(), rows, N);
      });
  return dx;
}

}  // namespace kdnas
