#include <doctest/doctest.h>

#include "kernels/binary.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

const BinaryOp kOps[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div};

// A reduced gradient (the bias gradient sums 1024 rows of XLM-R's [B*T, C]) is a sum of up to
// ~1000 f32 terms of size <= 1 in each backend: rounding of order sqrt(1000) * 2^-24 * |partial
// sum| ~ 2e-5 absolute, whatever the size of the final sum (which may be near 0).
constexpr Tol kReducedGrad{1e-4, 1e-5};

struct Case {
  Shape a, b;
};

// Broadcasting patterns: same shape (odd sizes, XLM-R), the bias row broadcast, column and scalar
// broadcast, a broadcast on the left, and both sides broadcasting.
std::vector<Case> cases() {
  std::vector<Case> v;
  for (int64_t n : kOddSizes) v.push_back({{n}, {n}});
  v.push_back({{7, 13}, {7, 13}});
  v.push_back({{kB, kT, kC}, {kB, kT, kC}});
  v.push_back({{kB, kT, kC}, {kC}});  // the bias add
  v.push_back({{33, 769}, {769}});
  v.push_back({{769, 7}, {1, 7}});
  v.push_back({{33, 13}, {33, 1}});  // column broadcast
  v.push_back({{7, 13}, {}});        // scalar
  v.push_back({{1}, {769}});
  v.push_back({{13}, {7, 13}});          // a broadcast
  v.push_back({{3, 1, 5}, {1, 4, 1}});   // both sides
  v.push_back({{7, 1, 33}, {13, 1}});    // both sides, different ranks
  v.push_back({{2, 1, 3, 1}, {5, 1, 7}});
  v.push_back({{0, 5}, {5}});  // empty
  return v;
}

// Inputs for op: b kept away from 0 for div, so that every backend divides by the same safe
// numbers.
Tensor input(const Shape& s, Rng& rng, bool is_divisor, DType dt = DType::F32) {
  return is_divisor ? random_tensor(s, rng, dt, 0.5f, 2.f) : random_tensor(s, rng, dt);
}

// The same values in the layouts an op must read without copying: contiguous, strided (every
// other element) and transposed (column-major).
std::vector<std::pair<std::string, Tensor>> views(const Tensor& t) {
  std::vector<std::pair<std::string, Tensor>> v{{"contiguous", t}, {"strided", noncontiguous(t)}};
  if (t.dim() >= 2) v.push_back({"transposed", t.transpose(0, 1).contiguous().transpose(0, 1)});
  return v;
}

}  // namespace

TEST_SUITE("kernels") {
TEST_CASE("binary: every fast backend matches the reference, forward and backward") {
  Context ref(Backend::Ref);
  Rng rng(1);
  for (Backend be : fast_backends()) {
    Context ctx(be);
    for (const Case& c : cases()) {
      for (BinaryOp op : kOps) {
        Tensor a = input(c.a, rng, false), b = input(c.b, rng, op == BinaryOp::Div);
        Tensor y_ref = binary_forward(ref, op, a, b);
        Tensor dout = random_tensor(y_ref.shape(), rng);
        BinaryGrads g_ref = binary_backward(ref, op, dout, a, b);
        const Tensor dout_strided = noncontiguous(dout);
        for (const auto& [va_name, va] : views(a)) {
          for (const auto& [vb_name, vb] : views(b)) {
            std::string what = std::string(binary_op_name(op)) + " " + backend_name(be) + " " +
                               shape_str(c.a) + " " + va_name + " with " + shape_str(c.b) + " " +
                               vb_name;
            KDNAS_CHECK_CLOSE(binary_forward(ctx, op, va, vb), y_ref, kF32, what);
            BinaryGrads g = binary_backward(ctx, op, dout_strided, va, vb);
            const bool a_reduced = a.numel() != dout.numel(), b_reduced = b.numel() != dout.numel();
            KDNAS_CHECK_CLOSE(g.da, g_ref.da, a_reduced ? kReducedGrad : kF32, what + " da");
            KDNAS_CHECK_CLOSE(g.db, g_ref.db, b_reduced ? kReducedGrad : kF32, what + " db");
          }
        }
      }
    }
  }
}

TEST_CASE("binary: expanded (stride-0) inputs read like their contiguous copies") {
  Context ref(Backend::Ref);
  Rng rng(3);
  Tensor row = random_tensor({1, 769}, rng), col = random_tensor({33, 1}, rng, DType::F32, 0.5f, 2.f);
  Tensor a = row.expand({33, 769}), b = col.expand({33, 769});  // strides [0, 1] and [1, 0]
  Tensor dout = random_tensor({33, 769}, rng);
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    for (BinaryOp op : kOps) {
      std::string what = std::string(binary_op_name(op)) + " " + backend_name(be) + " expanded";
      KDNAS_CHECK_CLOSE(binary_forward(ctx, op, a, b),
                        binary_forward(ref, op, a.contiguous(), b.contiguous()), kF32, what);
      BinaryGrads g = binary_backward(ctx, op, dout, a, b);
      BinaryGrads g_ref = binary_backward(ref, op, dout, a.contiguous(), b.contiguous());
      KDNAS_CHECK_CLOSE(g.da, g_ref.da, kF32, what + " da");
      KDNAS_CHECK_CLOSE(g.db, g_ref.db, kF32, what + " db");
    }
  }
}

TEST_CASE("binary: broadcasting values and reduced gradients, computed by hand") {
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    CAPTURE(backend_name(be));
    // [2, 1] op [3] -> [2, 3]
    Tensor a = Tensor::from_vector<float>({1, 2}, {2, 1});
    Tensor b = Tensor::from_vector<float>({10, 20, 40}, {3});
    CHECK(add(ctx, a, b).to_vector<float>() == std::vector<float>{11, 21, 41, 12, 22, 42});
    CHECK(sub(ctx, a, b).to_vector<float>() == std::vector<float>{-9, -19, -39, -8, -18, -38});
    CHECK(mul(ctx, a, b).to_vector<float>() == std::vector<float>{10, 20, 40, 20, 40, 80});
    CHECK(div(ctx, b, a).to_vector<float>() == std::vector<float>{10, 20, 40, 5, 10, 20});
    CHECK(add(ctx, a, b).shape() == Shape{2, 3});
    // dout = 1: add sums to the input shapes; mul's db = sum over rows of a = 3.
    Tensor ones = Tensor::ones({2, 3});
    BinaryGrads ga = binary_backward(ctx, BinaryOp::Add, ones, a, b);
    CHECK(ga.da.to_vector<float>() == std::vector<float>{3, 3});
    CHECK(ga.db.to_vector<float>() == std::vector<float>{2, 2, 2});
    BinaryGrads gs = binary_backward(ctx, BinaryOp::Sub, ones, a, b);
    CHECK(gs.db.to_vector<float>() == std::vector<float>{-2, -2, -2});
    BinaryGrads gm = binary_backward(ctx, BinaryOp::Mul, ones, a, b);
    CHECK(gm.da.to_vector<float>() == std::vector<float>{70, 70});
    CHECK(gm.db.to_vector<float>() == std::vector<float>{3, 3, 3});
    // d(b / a)/da = -b / a^2 summed over the row: -(10 + 20 + 40) / 1, -(70) / 4.
    BinaryGrads gd = binary_backward(ctx, BinaryOp::Div, ones, b, a);
    CHECK(gd.db.to_vector<float>() == std::vector<float>{-70, -17.5f});
    CHECK(gd.da.to_vector<float>() == std::vector<float>{1.5f, 1.5f, 1.5f});
  }
}

TEST_CASE("binary: numerical gradients in double, with broadcasting") {
  Context ref(Backend::Ref);
  Rng rng(2);
  const std::vector<Case> patterns{{{3, 4}, {3, 4}}, {{2, 3}, {3}}, {{3, 1, 5}, {1, 4, 1}},
                                   {{4, 1}, {}},     {{5}, {2, 5}}};
  for (BinaryOp op : kOps) {
    for (const Case& c : patterns) {
      Tensor a = input(c.a, rng, false, DType::F64);
      Tensor b = input(c.b, rng, op == BinaryOp::Div, DType::F64);
      gradcheck(
          std::string(binary_op_name(op)) + " " + shape_str(c.a) + " with " + shape_str(c.b),
          [&](const std::vector<Tensor>& in) { return binary_forward(ref, op, in[0], in[1]); },
          [&](const std::vector<Tensor>& in, const Tensor& dout) {
            BinaryGrads g = binary_backward(ref, op, dout, in[0], in[1]);
            return std::vector<Tensor>{g.da, g.db};
          },
          {a, b});
    }
  }
}

TEST_CASE("binary: misuse names the op and both shapes") {
  Context ctx;
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4});
  check_throws_with([&] { add(ctx, a, b); }, {"add", "[2, 3]", "[4]"});
  check_throws_with([&] { div(ctx, Tensor::zeros({3, 2, 5}), Tensor::zeros({4, 5})); },
                    {"div", "[3, 2, 5]", "[4, 5]"});
  check_throws_with([&] { mul(ctx, a, Tensor::zeros({2, 3}, DType::F64)); }, {"mul", "f64", "f32"});
  check_throws_with([&] { sub(ctx, Tensor::zeros({3}, DType::I32), Tensor::zeros({3}, DType::I32)); },
                    {"sub", "i32"});
  check_throws_with([&] { add(ctx, Tensor(), a); }, {"add", "undefined"});
  check_throws_with(
      [&] { binary_backward(ctx, BinaryOp::Mul, Tensor::zeros({3, 3}), a, Tensor::zeros({3})); },
      {"mul_backward", "[3, 3]", "[2, 3]", "[3]"});
  check_throws_with(
      [&] { binary_backward(ctx, BinaryOp::Add, Tensor::zeros({2, 3}), a, b); },
      {"add_backward", "[2, 3]", "[4]"});
}
}
