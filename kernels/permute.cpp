#include "kernels/permute.h"

#include "kernels/cpu/permute_cpu.h"
#include "kernels/cuda/permute_cuda.h"
#include "kernels/dispatch.h"
#include "kernels/profiler.h"
#include "kernels/ref/permute_ref.h"

namespace kdnas {
namespace {

// order with negative dims resolved; throws unless it is a permutation of x's dims.
std::vector<int64_t> checked_order(const char* op, const Shape& shape,
                                   const std::vector<int64_t>& order) {
  const int64_t nd = int64_t(shape.size());
  bool ok = int64_t(order.size()) == nd;
  std::vector<int64_t> ord;
  std::vector<bool> seen(size_t(nd), false);
  for (size_t k = 0; ok && k < order.size(); ++k) {
    const int64_t d = order[k] < 0 ? order[k] + nd : order[k];
    ok = d >= 0 && d < nd && !seen[size_t(d)];
    if (ok) seen[size_t(d)] = true;
    ord.push_back(d);
  }
  KDNAS_CHECK(ok, op, ": order ", order, " is not a permutation of the dims of x ", shape);
  return ord;
}

Tensor permute_impl(Context& ctx, const char* op, const Tensor& x,
                    const std::vector<int64_t>& order) {
  KDNAS_CHECK(x.defined(), op, ": x is an undefined tensor");
  const std::vector<int64_t> ord = checked_order(op, x.shape(), order);
  const Route r = route_for(ctx, op, x);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&x}, double(x.nbytes()));
  Shape shape;
  for (int64_t d : ord) shape.push_back(x.shape()[size_t(d)]);
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  if (r == Route::Ref) {
    auto run = [&]<typename T>() {
      permute_copy_ref(static_cast<T*>(out.raw_data()), static_cast<const T*>(x.raw_data()),
                       x.shape(), x.strides(), ord);
    };
    switch (x.element_size()) {
      case 1:
        run.template operator()<uint8_t>();
        break;
      case 2:
        run.template operator()<uint16_t>();
        break;
      case 4:
        run.template operator()<uint32_t>();
        break;
      case 8:
        run.template operator()<uint64_t>();
        break;
      default:
        KDNAS_ASSERT(false);
    }
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    auto* kernel = r == Route::Cuda ? permute_copy_cuda : permute_copy_cpu;
    kernel(ctx, out.raw_data(), x.raw_data(), x.element_size(), x.shape(), x.strides(), ord);
  } else {
    no_kernel(op, r, x.dtype());
  }
  return out;
}

}  // namespace

std::vector<int64_t> inverse_permutation(const std::vector<int64_t>& order) {
  const int64_t n = int64_t(order.size());
  std::vector<int64_t> inv(order.size(), -1);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t d = order[size_t(k)] < 0 ? order[size_t(k)] + n : order[size_t(k)];
    KDNAS_CHECK(d >= 0 && d < n && inv[size_t(d)] < 0, "inverse_permutation: order ", order,
                " is not a permutation");
    inv[size_t(d)] = k;
  }
  return inv;
}

Tensor permute_copy(Context& ctx, const Tensor& x, const std::vector<int64_t>& order) {
  return permute_impl(ctx, "permute", x, order);
}

Tensor permute_backward(Context& ctx, const Tensor& dout, const std::vector<int64_t>& order) {
  const char* op = "permute_backward";
  KDNAS_CHECK(dout.defined(), op, ": dout is an undefined tensor");
  const std::vector<int64_t> ord = checked_order(op, dout.shape(), order);
  return permute_impl(ctx, op, dout, inverse_permutation(ord));
}

}  // namespace kdnas
