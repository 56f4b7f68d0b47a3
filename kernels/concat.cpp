#include "kernels/concat.h"

#include "kernels/cpu/concat_cpu.h"
#include "kernels/cuda/concat_cuda.h"
#include "kernels/dispatch.h"
#include "kernels/profiler.h"
#include "kernels/ref/concat_ref.h"

namespace kdnas {
namespace {

// Resolves a possibly negative dim of `shape` for `op`, with a message naming both.
int64_t wrap_dim(const char* op, const char* arg, const Shape& shape, int64_t dim) {
  const int64_t nd = int64_t(shape.size());
  KDNAS_CHECK(nd >= 1 && dim >= -nd && dim < nd, op, ": dim ", dim, " is out of range for ", arg,
              " ", shape);
  return dim < 0 ? dim + nd : dim;
}

// Elements before and after `dim`: the tensors are [outer, size(dim), inner] blocks.
void outer_inner(const Shape& shape, int64_t dim, int64_t& outer, int64_t& inner) {
  outer = inner = 1;
  for (int64_t k = 0; k < int64_t(shape.size()); ++k) {
    if (k < dim) outer *= shape[size_t(k)];
    if (k > dim) inner *= shape[size_t(k)];
  }
}

// Runs f.template operator()<T>() with T the unsigned integer type of the element's size: the
// reference kernels move elements as opaque words.
template <typename F>
void dispatch_bytes(size_t element_size, F&& f) {
  switch (element_size) {
    case 1:
      return f.template operator()<uint8_t>();
    case 2:
      return f.template operator()<uint16_t>();
    case 4:
      return f.template operator()<uint32_t>();
    case 8:
      return f.template operator()<uint64_t>();
  }
  KDNAS_ASSERT(false);
}

std::vector<Tensor> split_impl(Context& ctx, const char* op, const Tensor& x, int64_t dim,
                               const std::vector<int64_t>& sizes) {
  KDNAS_CHECK(x.defined(), op, ": x is an undefined tensor");
  const int64_t d = wrap_dim(op, "x", x.shape(), dim);
  int64_t sum = 0;
  for (int64_t s : sizes) {
    KDNAS_CHECK(s >= 0, op, ": sizes ", sizes, " has a negative size (x ", x.shape(), ")");
    sum += s;
  }
  KDNAS_CHECK(sum == x.size(d), op, ": sizes ", sizes, " sum to ", sum, " but dim ", d, " of x ",
              x.shape(), " is ", x.size(d));
  const Route r = route_for(ctx, op, x);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&x}, double(x.nbytes()));
  int64_t outer, inner;
  outer_inner(x.shape(), d, outer, inner);
  const Tensor xc = x.contiguous();
  std::vector<Tensor> outs;
  for (int64_t s : sizes) {
    Shape shape = x.shape();
    shape[size_t(d)] = s;
    outs.push_back(Tensor::empty(shape, x.dtype(), x.device()));
  }
  const size_t esz = x.element_size();
  if (r == Route::Ref) {
    dispatch_bytes(esz, [&]<typename T>() {
      std::vector<T*> ps;
      for (Tensor& t : outs) ps.push_back(static_cast<T*>(t.raw_data()));
      split_ref(ps, static_cast<const T*>(xc.raw_data()), sizes, outer, inner);
    });
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    std::vector<void*> ps;
    std::vector<int64_t> seg;
    for (size_t k = 0; k < outs.size(); ++k) {
      ps.push_back(outs[k].raw_data());
      seg.push_back(sizes[k] * inner * int64_t(esz));
    }
    (r == Route::Cuda ? split_cuda : split_cpu)(ctx, ps, xc.raw_data(), seg, outer);
  } else {
    no_kernel(op, r, x.dtype());
  }
  return outs;
}

}  // namespace

Tensor concat(Context& ctx, const std::vector<Tensor>& xs, int64_t dim) {
  const char* op = "concat";
  KDNAS_CHECK(!xs.empty(), op, ": no tensors to concatenate");
  for (size_t k = 0; k < xs.size(); ++k)
    KDNAS_CHECK(xs[k].defined(), op, ": xs[", k, "] is an undefined tensor");
  const Tensor& x0 = xs[0];
  const int64_t d = wrap_dim(op, "xs[0]", x0.shape(), dim);
  Shape out_shape = x0.shape();
  out_shape[size_t(d)] = 0;
  std::vector<int64_t> sizes;
  for (size_t k = 0; k < xs.size(); ++k) {
    const Tensor& x = xs[k];
    bool same = x.dim() == x0.dim();
    for (int64_t j = 0; same && j < x0.dim(); ++j) same = j == d || x.size(j) == x0.size(j);
    KDNAS_CHECK(same, op, ": xs[0] is ", x0.shape(), " but xs[", k, "] is ", x.shape(),
                "; they must match in every dim but dim ", d);
    KDNAS_CHECK(x.dtype() == x0.dtype(), op, ": xs[0] is ", dtype_name(x0.dtype()), " ", x0.shape(),
                " but xs[", k, "] is ", dtype_name(x.dtype()), " ", x.shape());
    KDNAS_CHECK(x.device() == x0.device(), op, ": xs[0] is on ", x0.device().str(), " but xs[", k,
                "] is on ", x.device().str());
    sizes.push_back(x.size(d));
    out_shape[size_t(d)] += x.size(d);
  }
  const Route r = route_for(ctx, op, x0);
  ProfileScope prof(ctx, op);
  if (prof) {
    double bytes = 0;
    std::string shapes;
    for (const Tensor& t : xs) {
      bytes += double(t.nbytes());
      shapes += shapes.empty() ? "" : ", ";
      shapes += shape_str(t.shape());
    }
    prof.set(r, x0.dtype(), std::move(shapes), 0, 2 * bytes);  // read once, written once
  }
  int64_t outer, inner;
  outer_inner(x0.shape(), d, outer, inner);
  std::vector<Tensor> cs;
  for (const Tensor& x : xs) cs.push_back(x.contiguous());
  Tensor out = Tensor::empty(out_shape, x0.dtype(), x0.device());
  const size_t esz = x0.element_size();
  if (r == Route::Ref) {
    dispatch_bytes(esz, [&]<typename T>() {
      std::vector<const T*> ps;
      for (const Tensor& c : cs) ps.push_back(static_cast<const T*>(c.raw_data()));
      concat_ref(static_cast<T*>(out.raw_data()), ps, sizes, outer, inner);
    });
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    std::vector<const void*> ps;
    std::vector<int64_t> seg;
    for (size_t k = 0; k < cs.size(); ++k) {
      ps.push_back(cs[k].raw_data());
      seg.push_back(sizes[k] * inner * int64_t(esz));
    }
    (r == Route::Cuda ? concat_cuda : concat_cpu)(ctx, out.raw_data(), ps, seg, outer);
  } else {
    no_kernel(op, r, x0.dtype());
  }
  return out;
}

std::vector<Tensor> split(Context& ctx, const Tensor& x, int64_t dim,
                          const std::vector<int64_t>& sizes) {
  return split_impl(ctx, "split", x, dim, sizes);
}

std::vector<Tensor> concat_backward(Context& ctx, const Tensor& dout,
                                    const std::vector<int64_t>& sizes, int64_t dim) {
  return split_impl(ctx, "concat_backward", dout, dim, sizes);
}

}  // namespace kdnas
