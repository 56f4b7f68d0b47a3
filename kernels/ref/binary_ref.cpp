#include "kernels/ref/binary_ref.h"

#include <vector>

namespace kdnas {
namespace {

template <typename T>
T apply(BinaryOp op, T x, T y) {
  switch (op) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div: return x / y;
  }
  return T(0);
}

// Calls f(i, ia, ib) for every output element i (row-major over shape) with the offsets of
// the inputs it reads: an odometer over the output index.
template <typename F>
void for_each_broadcast(const Shape& shape, const Shape& a_strides, const Shape& b_strides,
                        F&& f) {
  const int64_t n = shape_numel(shape);
  const size_t nd = shape.size();
  std::vector<int64_t> idx(nd, 0);
  int64_t ia = 0, ib = 0;
  for (int64_t i = 0; i < n; ++i) {
    f(i, ia, ib);
    for (size_t k = nd; k-- > 0;) {
      ia += a_strides[k];
      ib += b_strides[k];
      if (++idx[k] < shape[k]) break;
      ia -= a_strides[k] * shape[k];
      ib -= b_strides[k] * shape[k];
      idx[k] = 0;
    }
  }
}

}  // namespace

const char* binary_op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
  }
  return "?";
}

template <typename T>
void binary_forward_ref(T* out, const T* a, const T* b, BinaryOp op, const Shape& shape,
                        const Shape& a_strides, const Shape& b_strides) {
  for_each_broadcast(shape, a_strides, b_strides,
                     [&](int64_t i, int64_t ia, int64_t ib) { out[i] = apply(op, a[ia], b[ib]); });
}

template <typename T>
void binary_backward_ref(T* da, T* db, const T* dout, const T* a, const T* b, BinaryOp op,
                         const Shape& shape, const Shape& a_strides, const Shape& b_strides) {
  for_each_broadcast(shape, a_strides, b_strides, [&](int64_t i, int64_t ia, int64_t ib) {
    const T d = dout[i];
    switch (op) {
      case BinaryOp::Add:
        if (da) da[ia] += d;
        if (db) db[ib] += d;
        break;
      case BinaryOp::Sub:
        if (da) da[ia] += d;
        if (db) db[ib] -= d;
        break;
      case BinaryOp::Mul:
        if (da) da[ia] += d * b[ib];
        if (db) db[ib] += d * a[ia];
        break;
      case BinaryOp::Div:
        // d(a/b)/db = -a / b^2
        if (da) da[ia] += d / b[ib];
        if (db) db[ib] -= d * a[ia] / (b[ib] * b[ib]);
        break;
    }
  });
}

#define KDNAS_INSTANTIATE(T)                                                                  \
  template void binary_forward_ref<T>(T*, const T*, const T*, BinaryOp, const Shape&,         \
                                      const Shape&, const Shape&);                            \
  template void binary_backward_ref<T>(T*, T*, const T*, const T*, const T*, BinaryOp,       \
                                       const Shape&, const Shape&, const Shape&);
KDNAS_INSTANTIATE(float)
KDNAS_INSTANTIATE(double)
#undef KDNAS_INSTANTIATE

}  // namespace kdnas
