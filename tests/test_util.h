// Shared test helpers: random tensors, non-contiguous views, closeness checks that print the
// worst error and the first bad index, and a numerical gradient check in double precision.
#pragma once

#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "kernels/context.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace kdnas::test {

// Default tolerances (STYLE.md): |a - r| <= atol + rtol * |r| per element.
struct Tol {
  double atol, rtol;
};
constexpr Tol kF32{1e-5, 1e-5};
constexpr Tol kBF16{4e-2, 4e-2};
constexpr Tol kF16{1e-2, 1e-2};
constexpr Tol kF64Grad{1e-6, 1e-5};  // numeric vs analytic gradients in double

// Sizes every op is run at: odd sizes that break vector tails and blockings.
inline const std::vector<int64_t> kOddSizes{1, 7, 13, 33, 769};
// XLM-R Base sizes.
constexpr int64_t kB = 8, kT = 128, kC = 768, kNH = 12, kFF = 3072, kHS = kC / kNH;

// The fast CPU backends compiled into this build (everything but Ref).
std::vector<Backend> fast_backends();

// Uniform values in [lo, hi).
Tensor random_tensor(const Shape& shape, Rng& rng, DType dtype = DType::F32, float lo = -1.f,
                     float hi = 1.f);
// The same values as t, in a non-contiguous layout (a strided view into a larger buffer).
Tensor noncontiguous(const Tensor& t);

// Result of comparing two tensors element-wise.
struct Closeness {
  bool ok = true;
  double max_abs = 0, max_rel = 0;
  int64_t first_bad = -1;
  double bad_got = 0, bad_want = 0;
  std::string message(const std::string& what) const;
};
Closeness compare(const Tensor& got, const Tensor& want, Tol tol);

// CHECKs that got matches want within tol, reporting max abs/rel error and the first bad index.
#define KDNAS_CHECK_CLOSE(got, want, tol, what)                                             \
  do {                                                                                      \
    const ::kdnas::test::Closeness kdnas_c_ = ::kdnas::test::compare((got), (want), (tol)); \
    INFO(kdnas_c_.message(what));                                                           \
    CHECK(kdnas_c_.ok);                                                                     \
  } while (0)

// Numerical gradient check in double precision.
//   forward(inputs) -> output (any shape)
//   backward(inputs, dout) -> one gradient per input (undefined tensor = not differentiable)
// Builds the scalar L = sum(forward(x) * w) for a fixed random w and compares each analytic
// gradient with central differences (step eps) element by element.
void gradcheck(
    const std::string& what, const std::function<Tensor(const std::vector<Tensor>&)>& forward,
    const std::function<std::vector<Tensor>(const std::vector<Tensor>&, const Tensor&)>& backward,
    std::vector<Tensor> inputs, double eps = 1e-6, Tol tol = kF64Grad);

// Runs f and CHECKs that it throws kdnas::Error whose message contains every one of `parts`.
void check_throws_with(const std::function<void()>& f, const std::vector<std::string>& parts);

// A fresh directory under the system temp directory, removed with everything in it at the end.
struct TempDir {
  std::filesystem::path path;
  TempDir();
  ~TempDir();
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// Writes text to path (binary, truncating).
void write_file(const std::string& path, const std::string& text);
// The whole file's bytes.
std::string read_file(const std::string& path);

}  // namespace kdnas::test
