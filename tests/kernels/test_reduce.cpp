#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "kernels/reduce.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// Sums of up to 1024 terms of size <= 1 (XLM-R's [8, 128, 768] over dim 1 or 2): f32 rounding
// in either backend is of order sqrt(D) * 2^-24 * |partial sum| ~ 1e-5 absolute, also when the
// sum itself is near 0, where a relative tolerance gives no room.
constexpr Tol kSum{1e-4, 1e-5};

struct Case {
  Shape shape;
  int64_t dim;
};

// Reductions over the first, a middle and the last dim, negative dims, odd sizes and XLM-R.
std::vector<Case> cases() {
  std::vector<Case> v;
  for (int64_t n : kOddSizes) v.push_back({{n}, 0});
  for (int64_t d : {0, 1, 2, -1}) v.push_back({{7, 13, 33}, d});
  for (int64_t d : {0, 1, 2}) v.push_back({{kB, kT, kC}, d});
  v.push_back({{769, 7}, 0});
  v.push_back({{3, 769}, -1});
  v.push_back({{13, 1, 7}, 1});
  v.push_back({{0, 5}, 1});
  return v;
}

std::string describe(const char* op, Backend be, const Case& c, bool keepdim, bool strided) {
  return std::string(op) + " " + backend_name(be) + " " + shape_str(c.shape) + " dim " +
         std::to_string(c.dim) + (keepdim ? " keepdim" : "") + (strided ? " strided" : "");
}

}  // namespace

TEST_SUITE("kernels") {
TEST_CASE("reduce: sum, mean, max match the reference on every backend") {
  Context ref(Backend::Ref);
  Rng rng(1);
  for (Backend be : fast_backends()) {
    Context ctx(be);
    for (const Case& c : cases()) {
      Tensor x = random_tensor(c.shape, rng);
      for (bool keepdim : {false, true}) {
        Tensor s_ref = sum(ref, x, c.dim, keepdim), m_ref = mean(ref, x, c.dim, keepdim);
        MaxOutput mx_ref = c.shape[size_t(c.dim < 0 ? c.dim + int64_t(c.shape.size()) : c.dim)] > 0
                               ? max(ref, x, c.dim, keepdim)
                               : MaxOutput{};
        Tensor dout = random_tensor(s_ref.shape(), rng);
        Tensor dx_sum = sum_backward(ref, dout, c.shape, c.dim, keepdim);
        Tensor dx_mean = mean_backward(ref, dout, c.shape, c.dim, keepdim);
        for (bool strided : {false, true}) {
          Tensor xi = strided ? noncontiguous(x) : x, di = strided ? noncontiguous(dout) : dout;
          KDNAS_CHECK_CLOSE(sum(ctx, xi, c.dim, keepdim), s_ref, kSum,
                            describe("sum", be, c, keepdim, strided));
          KDNAS_CHECK_CLOSE(mean(ctx, xi, c.dim, keepdim), m_ref, kF32,
                            describe("mean", be, c, keepdim, strided));
          KDNAS_CHECK_CLOSE(sum_backward(ctx, di, c.shape, c.dim, keepdim), dx_sum, kF32,
                            describe("sum_backward", be, c, keepdim, strided));
          KDNAS_CHECK_CLOSE(mean_backward(ctx, di, c.shape, c.dim, keepdim), dx_mean, kF32,
                            describe("mean_backward", be, c, keepdim, strided));
          if (!mx_ref.values.defined()) continue;
          MaxOutput mx = max(ctx, xi, c.dim, keepdim);
          const Tol exact{0, 0};
          KDNAS_CHECK_CLOSE(mx.values, mx_ref.values, exact, describe("max", be, c, keepdim, strided));
          KDNAS_CHECK_CLOSE(mx.indices, mx_ref.indices, exact,
                            describe("max indices", be, c, keepdim, strided));
          CHECK(mx.indices.dtype() == DType::I64);
          KDNAS_CHECK_CLOSE(max_backward(ctx, di, mx.indices, c.shape, c.dim, keepdim),
                            max_backward(ref, dout, mx_ref.indices, c.shape, c.dim, keepdim), exact,
                            describe("max_backward", be, c, keepdim, strided));
        }
      }
    }
  }
}

TEST_CASE("reduce: values computed by hand; ties and NaN in max") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    CAPTURE(backend_name(be));
    Tensor x = Tensor::from_vector<float>({1, 5, 5, 7, 2, 7}, {2, 3});
    CHECK(sum(ctx, x, 0).to_vector<float>() == std::vector<float>{8, 7, 12});
    CHECK(sum(ctx, x, 1, true).shape() == Shape{2, 1});
    CHECK(sum(ctx, x, -1).to_vector<float>() == std::vector<float>{11, 16});
    CHECK(mean(ctx, x, 0).to_vector<float>() == std::vector<float>{4, 3.5f, 6});
    MaxOutput m = max(ctx, x, 1);
    CHECK(m.values.to_vector<float>() == std::vector<float>{5, 7});
    CHECK(m.indices.to_vector<int64_t>() == std::vector<int64_t>{1, 0});  // the first maximum
    MaxOutput m0 = max(ctx, x, 0, true);
    CHECK(m0.indices.shape() == Shape{1, 3});
    CHECK(m0.indices.to_vector<int64_t>() == std::vector<int64_t>{1, 0, 1});
    // The gradient goes to the first maximal element only.
    Tensor dx = max_backward(ctx, Tensor::from_vector<float>({10, 20}, {2}), m.indices, {2, 3}, 1);
    CHECK(dx.to_vector<float>() == std::vector<float>{0, 10, 0, 20, 0, 0});
    // A NaN wins over every number, and the first NaN wins: in a row and down a column.
    Tensor xn = Tensor::from_vector<float>({1, nan, 3, nan, 2, 9, 1, 4}, {2, 4});
    MaxOutput mr = max(ctx, xn, 1);
    CHECK(std::isnan(mr.values.to_vector<float>()[0]));
    CHECK(mr.values.to_vector<float>()[1] == 9);
    CHECK(mr.indices.to_vector<int64_t>() == std::vector<int64_t>{1, 1});
    Tensor xc = Tensor::from_vector<float>({1, 2, nan, 5, 7, nan}, {3, 2});
    MaxOutput mc = max(ctx, xc, 0);
    CHECK(std::isnan(mc.values.to_vector<float>()[0]));
    CHECK(std::isnan(mc.values.to_vector<float>()[1]));
    CHECK(mc.indices.to_vector<int64_t>() == std::vector<int64_t>{1, 2});
    // Empty dims: a sum of nothing is 0, a mean of nothing NaN.
    Tensor e = Tensor::zeros({3, 0});
    CHECK(sum(ctx, e, 1).to_vector<float>() == std::vector<float>{0, 0, 0});
    CHECK(std::isnan(mean(ctx, e, 1).to_vector<float>()[0]));
  }
}

TEST_CASE("reduce: long f32 sums stay accurate (blocked accumulation)") {
  // 2^20 copies of 0.1f, in a row (last dim) and down a column (first dim): every add rounds the
  // same way, the worst case for a running sum. A plain f32 sum is 1% off here, one in 16 SIMD
  // lanes 6e-4; f32 blocks of <= 256 terms stay within ~2e-6 (64 terms: 6e-7) of the exact value.
  const int64_t n = int64_t(1) << 20;
  const double exact = double(n) * double(0.1f);
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    CAPTURE(backend_name(be));
    const double row = sum(ctx, Tensor::full({n}, 0.1), 0).item();
    CHECK(std::abs(row - exact) <= 5e-6 * exact);
    std::vector<float> col = sum(ctx, Tensor::full({n / 16, 16}, 0.1), 0).to_vector<float>();
    const double exact_col = double(n / 16) * double(0.1f);
    for (float v : col) CHECK(std::abs(double(v) - exact_col) <= 5e-6 * exact_col);
  }
}

TEST_CASE("reduce: numerical gradients in double for sum, mean, max") {
  Context ref(Backend::Ref);
  Rng rng(2);
  const Shape shape{3, 4, 5};
  for (int64_t dim : {0, 1, 2}) {
    for (bool keepdim : {false, true}) {
      Tensor x = random_tensor(shape, rng, DType::F64);
      std::string what = " dim " + std::to_string(dim) + (keepdim ? " keepdim" : "");
      gradcheck(
          "sum" + what, [&](const std::vector<Tensor>& in) { return sum(ref, in[0], dim, keepdim); },
          [&](const std::vector<Tensor>&, const Tensor& d) {
            return std::vector<Tensor>{sum_backward(ref, d, shape, dim, keepdim)};
          },
          {x});
      gradcheck(
          "mean" + what,
          [&](const std::vector<Tensor>& in) { return mean(ref, in[0], dim, keepdim); },
          [&](const std::vector<Tensor>&, const Tensor& d) {
            return std::vector<Tensor>{mean_backward(ref, d, shape, dim, keepdim)};
          },
          {x});
      // Distinct random values: the argmax does not move under a 1e-6 step.
      gradcheck(
          "max" + what,
          [&](const std::vector<Tensor>& in) { return max(ref, in[0], dim, keepdim).values; },
          [&](const std::vector<Tensor>& in, const Tensor& d) {
            Tensor idx = max(ref, in[0], dim, keepdim).indices;
            return std::vector<Tensor>{max_backward(ref, d, idx, shape, dim, keepdim)};
          },
          {x});
    }
  }
}

TEST_CASE("reduce: misuse names the op and the shapes") {
  Context ctx;
  Tensor x = Tensor::zeros({2, 3});
  check_throws_with([&] { sum(ctx, x, 2); }, {"sum", "dim 2", "[2, 3]"});
  check_throws_with([&] { mean(ctx, x, -3); }, {"mean", "dim -3", "[2, 3]"});
  check_throws_with([&] { max(ctx, Tensor::zeros({4, 0}), 1); }, {"max", "[4, 0]", "empty"});
  check_throws_with([&] { sum(ctx, Tensor::zeros({3}, DType::I64), 0); }, {"sum", "i64"});
  check_throws_with([&] { sum_backward(ctx, Tensor::zeros({3}), {2, 3}, 1); },
                    {"sum_backward", "[3]", "[2, 3]", "[2]"});
  check_throws_with([&] { mean_backward(ctx, Tensor::zeros({2}), {2, 3}, 1, true); },
                    {"mean_backward", "[2]", "[2, 3]", "[2, 1]"});
  check_throws_with([&] { sum_backward(ctx, Tensor::zeros({2}), {2, 3}, 5); },
                    {"sum_backward", "dim 5", "[2, 3]"});
  Tensor idx = Tensor::from_vector<int64_t>({0, 3}, {2});
  check_throws_with([&] { max_backward(ctx, Tensor::zeros({2}), idx, {2, 3}, 1); },
                    {"max_backward", "3", "[2, 3]"});
  check_throws_with([&] { max_backward(ctx, Tensor::zeros({2}), Tensor::zeros({2}), {2, 3}, 1); },
                    {"max_backward", "indices", "f32"});
}
}
