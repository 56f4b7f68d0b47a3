#include "kernels/reduce.h"

#include "kernels/cpu/reduce_cpu.h"
#include "kernels/cuda/reduce_cuda.h"
#include "kernels/dispatch.h"
#include "kernels/profiler.h"
#include "kernels/ref/reduce_ref.h"

namespace kdnas {
namespace {

// x seen as [outer, D, inner] around the reduced dim, and the reduced shape.
struct ReduceDims {
  int64_t outer = 1, D = 1, inner = 1;
  Shape out_shape;
};

ReduceDims reduce_dims(const char* op, const Shape& x_shape, int64_t dim, bool keepdim) {
  const int64_t nd = int64_t(x_shape.size());
  KDNAS_CHECK(nd >= 1 && dim >= -nd && dim < nd, op, ": dim ", dim, " is out of range for x ",
              x_shape);
  if (dim < 0) dim += nd;
  ReduceDims g;
  for (int64_t k = 0; k < nd; ++k) {
    const int64_t s = x_shape[size_t(k)];
    if (k < dim) g.outer *= s;
    if (k > dim) g.inner *= s;
    if (k != dim)
      g.out_shape.push_back(s);
    else if (keepdim)
      g.out_shape.push_back(1);
  }
  g.D = x_shape[size_t(dim)];
  return g;
}

// dout must have the reduced shape of x_shape (as the forward's keepdim made it).
void check_reduced(const char* op, const Tensor& dout, const Shape& x_shape, int64_t dim,
                   bool keepdim, const ReduceDims& g) {
  KDNAS_CHECK(dout.shape() == g.out_shape, op, ": dout is ", dout.shape(), " but x ", x_shape,
              " reduced over dim ", dim, keepdim ? " with keepdim" : "", " is ", g.out_shape);
}

bool on_ref(Route r, const Tensor& t, const char* op) {
  if (r != Route::Ref && t.dtype() != DType::F64) return false;
  KDNAS_CHECK(t.device().is_cpu(), op, ": f64 runs on the CPU reference only");
  return true;
}

Tensor sum_or_mean(Context& ctx, const char* op, const Tensor& x, int64_t dim, bool keepdim,
                   bool is_mean) {
  check_dtype(op, "x", x, {DType::F32, DType::F64});
  const Route r = route_for(ctx, op, x);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&x}, 0);  // (the output is small next to x)
  const ReduceDims g = reduce_dims(op, x.shape(), dim, keepdim);
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(g.out_shape, x.dtype(), x.device());
  // mean of an empty dim: 0 * (1/0) = NaN, as 0/0.
  const double scale = is_mean ? 1.0 / double(g.D) : 1.0;
  if (on_ref(r, x, op)) {
    dispatch_float(op, x.dtype(), [&]<typename T>() {
      sum_forward_ref(out.data<T>(), xc.data<T>(), g.outer, g.D, g.inner, scale);
    });
  } else if (r == Route::Cuda) {
    sum_forward_cuda(ctx, out.data<float>(), xc.data<float>(), g.outer, g.D, g.inner, scale);
  } else if (r == Route::Omp || r == Route::Onednn) {
    sum_forward_cpu(ctx, out.data<float>(), xc.data<float>(), g.outer, g.D, g.inner, float(scale));
  } else {
    no_kernel(op, r, x.dtype());
  }
  return out;
}

Tensor sum_or_mean_backward(Context& ctx, const char* op, const Tensor& dout, const Shape& x_shape,
                            int64_t dim, bool keepdim, bool is_mean) {
  check_dtype(op, "dout", dout, {DType::F32, DType::F64});
  const Route r = route_for(ctx, op, dout);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&dout}, double(shape_numel(x_shape)) * double(dout.element_size()));
  const ReduceDims g = reduce_dims(op, x_shape, dim, keepdim);
  check_reduced(op, dout, x_shape, dim, keepdim, g);
  const Tensor dc = dout.contiguous();
  Tensor dx = Tensor::empty(x_shape, dout.dtype(), dout.device());
  const double scale = is_mean ? 1.0 / double(g.D) : 1.0;
  if (on_ref(r, dout, op)) {
    dispatch_float(op, dout.dtype(), [&]<typename T>() {
      sum_backward_ref(dx.data<T>(), dc.data<T>(), g.outer, g.D, g.inner, scale);
    });
  } else if (r == Route::Cuda) {
    sum_backward_cuda(ctx, dx.data<float>(), dc.data<float>(), g.outer, g.D, g.inner, scale);
  } else if (r == Route::Omp || r == Route::Onednn) {
    sum_backward_cpu(ctx, dx.data<float>(), dc.data<float>(), g.outer, g.D, g.inner, float(scale));
  } else {
    no_kernel(op, r, dout.dtype());
  }
  return dx;
}

}  // namespace

Tensor sum(Context& ctx, const Tensor& x, int64_t dim, bool keepdim) {
  return sum_or_mean(ctx, "sum", x, dim, keepdim, false);
}

Tensor mean(Context& ctx, const Tensor& x, int64_t dim, bool keepdim) {
  return sum_or_mean(ctx, "mean", x, dim, keepdim, true);
}

MaxOutput max(Context& ctx, const Tensor& x, int64_t dim, bool keepdim) {
  const char* op = "max";
  check_dtype(op, "x", x, {DType::F32, DType::F64});
  const Route r = route_for(ctx, op, x);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&x}, 0);
  const ReduceDims g = reduce_dims(op, x.shape(), dim, keepdim);
  KDNAS_CHECK(g.D > 0 || g.outer * g.inner == 0, op, ": dim ", dim, " of x ", x.shape(),
              " is empty; the max of nothing is undefined");
  const Tensor xc = x.contiguous();
  MaxOutput res{Tensor::empty(g.out_shape, x.dtype(), x.device()),
                Tensor::empty(g.out_shape, DType::I64, x.device())};
  if (g.D == 0) return res;  // nothing to reduce and (checked above) nothing to write
  if (on_ref(r, x, op)) {
    dispatch_float(op, x.dtype(), [&]<typename T>() {
      max_forward_ref(res.values.data<T>(), res.indices.data<int64_t>(), xc.data<T>(), g.outer, g.D,
                      g.inner);
    });
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    auto* kernel = r == Route::Cuda ? max_forward_cuda : max_forward_cpu;
    kernel(ctx, res.values.data<float>(), res.indices.data<int64_t>(), xc.data<float>(), g.outer,
           g.D, g.inner);
  } else {
    no_kernel(op, r, x.dtype());
  }
  return res;
}

Tensor sum_backward(Context& ctx, const Tensor& dout, const Shape& x_shape, int64_t dim,
                    bool keepdim) {
  return sum_or_mean_backward(ctx, "sum_backward", dout, x_shape, dim, keepdim, false);
}

Tensor mean_backward(Context& ctx, const Tensor& dout, const Shape& x_shape, int64_t dim,
                     bool keepdim) {
  return sum_or_mean_backward(ctx, "mean_backward", dout, x_shape, dim, keepdim, true);
}

Tensor max_backward(Context& ctx, const Tensor& dout, const Tensor& indices, const Shape& x_shape,
                    int64_t dim, bool keepdim) {
  const char* op = "max_backward";
  check_dtype(op, "dout", dout, {DType::F32, DType::F64});
  check_dtype(op, "indices", indices, {DType::I64});
  check_same_device(op, {&dout, &indices});
  const Route r = route_for(ctx, op, dout);
  ProfileScope prof(ctx, op);
  if (prof)
    prof.set(r, {&dout, &indices}, double(shape_numel(x_shape)) * double(dout.element_size()));
  const ReduceDims g = reduce_dims(op, x_shape, dim, keepdim);
  check_reduced(op, dout, x_shape, dim, keepdim, g);
  check_same_shape(op, "dout", dout, "indices", indices);
  const Tensor dc = dout.contiguous(), ic = indices.contiguous();
  // The fast kernel scatters through the indices: one out of range would write outside dx.
  // (CUDA indices are checked in a host copy.)
  const Tensor ih = ic.to(Device{});
  const int64_t* ip = ih.data<int64_t>();
  for (int64_t k = 0; k < ic.numel(); ++k)
    KDNAS_CHECK(ip[k] >= 0 && ip[k] < g.D, op, ": indices hold ", ip[k], ", out of range for dim ",
                dim, " of x ", x_shape);
  Tensor dx = Tensor::empty(x_shape, dout.dtype(), dout.device());
  if (on_ref(r, dout, op)) {
    dispatch_float(op, dout.dtype(), [&]<typename T>() {
      max_backward_ref(dx.data<T>(), dc.data<T>(), ip, g.outer, g.D, g.inner);
    });
  } else if (r == Route::Cuda) {
    max_backward_cuda(ctx, dx.data<float>(), dc.data<float>(), ic.data<int64_t>(), g.outer, g.D,
                      g.inner);
  } else if (r == Route::Omp || r == Route::Onednn) {
    max_backward_cpu(ctx, dx.data<float>(), dc.data<float>(), ip, g.outer, g.D, g.inner);
  } else {
    no_kernel(op, r, dout.dtype());
  }
  return dx;
}

}  // namespace kdnas
