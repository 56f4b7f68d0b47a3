#include "kernels/binary.h"

#include <algorithm>
#include <string>

#include "kernels/cpu/binary_cpu.h"
#include "kernels/cuda/binary_cuda.h"
#include "kernels/dispatch.h"
#include "kernels/profiler.h"

namespace kdnas {
namespace {

// Strides that read t (any view) at each index of out_shape: t's own strides on its dims, 0 on
// the dims it is broadcast along (size 1, or missing in front).
Shape broadcast_strides(const Tensor& t, const Shape& out_shape) {
  Shape st(out_shape.size(), 0);
  const size_t lead = out_shape.size() - size_t(t.dim());
  for (size_t k = 0; k < size_t(t.dim()); ++k)
    st[lead + k] = t.shape()[k] == 1 ? 0 : t.strides()[k];
  return st;
}

bool on_ref(Route r, const Tensor& t, const std::string& op) {
  if (r != Route::Ref && t.dtype() != DType::F64) return false;
  KDNAS_CHECK(t.device().is_cpu(), op, ": f64 runs on the CPU reference only");
  return true;
}

// The fast backward's reduction: scale * g (contiguous, the broadcast shape) summed to `shape`.
Tensor sum_to(Context& ctx, const Tensor& g, const Shape& shape, float scale) {
  Tensor out = Tensor::empty(shape, DType::F32, g.device());
  auto* kernel = g.device().is_cpu() ? sum_to_shape_cpu : sum_to_shape_cuda;
  kernel(ctx, out.data<float>(), g.data<float>(), g.shape(), shape, scale);
  return out;
}

// The same for a temporary g that nobody else holds: returned as is when there is nothing to
// sum, saving a copy of the full gradient.
Tensor sum_temp_to(Context& ctx, const Tensor& g, const Shape& shape) {
  return g.shape() == shape ? g : sum_to(ctx, g, shape, 1.f);
}

}  // namespace

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t k = 0; k < n; ++k) {
    // Align at the last dim; a missing leading dim counts as 1.
    const int64_t x = k + a.size() >= n ? a[k + a.size() - n] : 1;
    const int64_t y = k + b.size() >= n ? b[k + b.size() - n] : 1;
    KDNAS_CHECK(x == y || x == 1 || y == 1, op, ": cannot broadcast a ", a, " with b ", b, " (dim ",
                k, " of the result: ", x, " vs ", y, ")");
    out[k] = x == 1 ? y : x;
  }
  return out;
}

Tensor binary_forward(Context& ctx, BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_op_name(op);
  check_dtype(name, "a", a, {DType::F32, DType::F64});
  check_dtype(name, "b", b, {a.dtype()});
  check_same_device(name, {&a, &b});
  const Shape shape = broadcast_shapes(name, a.shape(), b.shape());
  const Route r = route_for(ctx, name, a);
  ProfileScope prof(ctx, name);
  if (prof) prof.set(r, {&a, &b}, double(shape_numel(shape)) * double(a.element_size()));
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  const Shape sa = broadcast_strides(a, shape), sb = broadcast_strides(b, shape);
  if (on_ref(r, a, name)) {
    dispatch_float(name, a.dtype(), [&]<typename T>() {
      binary_forward_ref(out.data<T>(), a.data<T>(), b.data<T>(), op, shape, sa, sb);
    });
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    auto* kernel = r == Route::Cuda ? binary_forward_cuda : binary_forward_cpu;
    kernel(ctx, out.data<float>(), a.data<float>(), b.data<float>(), op, shape, sa, sb);
  } else {
    no_kernel(name, r, a.dtype());
  }
  return out;
}

Tensor add(Context& ctx, const Tensor& a, const Tensor& b) {
  return binary_forward(ctx, BinaryOp::Add, a, b);
}
Tensor sub(Context& ctx, const Tensor& a, const Tensor& b) {
  return binary_forward(ctx, BinaryOp::Sub, a, b);
}
Tensor mul(Context& ctx, const Tensor& a, const Tensor& b) {
  return binary_forward(ctx, BinaryOp::Mul, a, b);
}
Tensor div(Context& ctx, const Tensor& a, const Tensor& b) {
  return binary_forward(ctx, BinaryOp::Div, a, b);
}

BinaryGrads binary_backward(Context& ctx, BinaryOp op, const Tensor& dout, const Tensor& a,
                            const Tensor& b) {
  const std::string name = std::string(binary_op_name(op)) + "_backward";
  const char* nm = name.c_str();
  check_dtype(nm, "dout", dout, {DType::F32, DType::F64});
  check_dtype(nm, "a", a, {dout.dtype()});
  check_dtype(nm, "b", b, {dout.dtype()});
  check_same_device(nm, {&dout, &a, &b});
  const Shape shape = broadcast_shapes(nm, a.shape(), b.shape());
  KDNAS_CHECK(dout.shape() == shape, nm, ": dout is ", dout.shape(), " but a ", a.shape(),
              " and b ", b.shape(), " broadcast to ", shape);
  const Route r = route_for(ctx, nm, dout);
  ProfileScope prof(ctx, nm);
  if (prof) prof.set(r, {&dout, &a, &b}, profile_bytes({&a, &b}));
  BinaryGrads g;
  if (on_ref(r, dout, name)) {
    // Contiguous copies, so that one set of strides reads a and writes da (likewise b, db).
    const Tensor dc = dout.contiguous(), ac = a.contiguous(), bc = b.contiguous();
    g.da = Tensor::zeros(a.shape(), a.dtype());
    g.db = Tensor::zeros(b.shape(), b.dtype());
    const Shape sa = broadcast_strides(ac, shape), sb = broadcast_strides(bc, shape);
    dispatch_float(nm, dout.dtype(), [&]<typename T>() {
      binary_backward_ref(g.da.data<T>(), g.db.data<T>(), dc.data<T>(), ac.data<T>(), bc.data<T>(),
                          op, shape, sa, sb);
    });
    return g;
  }
  if (r != Route::Omp && r != Route::Onednn && r != Route::Cuda) no_kernel(nm, r, dout.dtype());
  // Fast path: the element-wise factor as a broadcast binary op, then one reduction per
  // gradient where its input was broadcast (add and sub: a copy of dout where it was not, as
  // the gradients must not alias dout). In div's db the last 1/b comes after the reduction: b
  // is constant along the dims that are summed.
  const Tensor dc = dout.contiguous();
  switch (op) {
    case BinaryOp::Add:
      g.da = sum_to(ctx, dc, a.shape(), 1.f);
      g.db = sum_to(ctx, dc, b.shape(), 1.f);
      break;
    case BinaryOp::Sub:
      g.da = sum_to(ctx, dc, a.shape(), 1.f);
      g.db = sum_to(ctx, dc, b.shape(), -1.f);
      break;
    case BinaryOp::Mul:
      g.da = sum_temp_to(ctx, mul(ctx, dc, b), a.shape());
      g.db = sum_temp_to(ctx, mul(ctx, dc, a), b.shape());
      break;
    case BinaryOp::Div: {
      const Tensor q = div(ctx, dc, b);                                  // dout / b
      g.db = div(ctx, sum_to(ctx, mul(ctx, q, a), b.shape(), -1.f), b);  // -sum(q * a) / b
      g.da = sum_temp_to(ctx, q, a.shape());
      break;
    }
  }
  return g;
}

}  // namespace kdnas
