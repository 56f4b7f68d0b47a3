// Helpers of the GPU tests: moving tensors to and from the device, and the tolerances of
// tests/test_util.h widened where a GPU kernel sums in a different order than the reference
// (each widening says why).
#pragma once

#include <cmath>

#include "tests/test_util.h"

namespace kdnas::test {

inline Device gpu() {
  return Device{DeviceType::CUDA, 0};
}
// A contiguous device copy of t.
inline Tensor to_gpu(const Tensor& t) {
  return t.contiguous().to(gpu());
}
inline Tensor to_host(const Tensor& t) {
  return t.to(Device{});
}
inline Tensor gpu_empty(const Shape& s, DType dt = DType::F32) {
  return Tensor::empty(s, dt, gpu());
}
inline Tensor gpu_zeros(const Shape& s, DType dt = DType::F32) {
  return Tensor::zeros(s, dt, gpu());
}

// A GEMM sums K products in f32 (the reference in double): the rounding error grows like
// sqrt(K) times the size of the terms (inputs in [-1, 1] here).
inline Tol gemm_tol(int64_t K) {
  return Tol{1e-5 * std::sqrt(double(K) + 1.0), 1e-5};
}

// Exact equality (bit-for-bit kernels: dropout, embedding backward, casts, copies).
constexpr Tol kExact{0.0, 0.0};

}  // namespace kdnas::test
