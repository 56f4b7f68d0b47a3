#include <doctest/doctest.h>

#include "kernels/eltwise.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

using Fwd = Tensor (*)(Context&, const Tensor&);
using Bwd = Tensor (*)(Context&, const Tensor&, const Tensor&);

// Shapes: odd sizes, and XLM-R's FFN activation [B*T, FF].
std::vector<Shape> shapes() {
  std::vector<Shape> v;
  for (int64_t n : kOddSizes) v.push_back({n});
  v.push_back({7, 13});
  v.push_back({kB * kT, kFF});
  return v;
}

// Runs fwd (and bwd, whose saved tensor is the input or, if saves_output, the output) on every
// fast backend against the reference, contiguous and strided.
void check_against_ref(const char* name, Fwd fwd, Bwd bwd, bool saves_output) {
  Context ref(Backend::Ref);
  Rng rng(1);
  for (Backend be : fast_backends()) {
    Context ctx(be);
    for (const Shape& s : shapes()) {
      Tensor x = random_tensor(s, rng, DType::F32, -6.f, 6.f);
      Tensor dout = random_tensor(s, rng);
      for (bool strided : {false, true}) {
        Tensor xi = strided ? noncontiguous(x) : x;
        std::string what = std::string(name) + " " + backend_name(be) + " " + shape_str(s) +
                           (strided ? " strided" : "");
        Tensor y_ref = fwd(ref, x), y = fwd(ctx, xi);
        KDNAS_CHECK_CLOSE(y, y_ref, kF32, what);
        if (!bwd) continue;
        Tensor saved_ref = saves_output ? y_ref : x, saved = saves_output ? y : xi;
        Tensor di = strided ? noncontiguous(dout) : dout;
        KDNAS_CHECK_CLOSE(bwd(ctx, di, saved), bwd(ref, dout, saved_ref), kF32, what + " backward");
      }
    }
  }
}

void check_gradient(const char* name, Fwd fwd, Bwd bwd, bool saves_output) {
  Context ref(Backend::Ref);
  Rng rng(2);
  // Values away from relu's kink at 0, where the numerical derivative is meaningless.
  Tensor x = random_tensor({3, 11}, rng, DType::F64, -3.f, 3.f);
  gradcheck(
      name, [&](const std::vector<Tensor>& in) { return fwd(ref, in[0]); },
      [&](const std::vector<Tensor>& in, const Tensor& dout) {
        Tensor saved = saves_output ? fwd(ref, in[0]) : in[0];
        return std::vector<Tensor>{bwd(ref, dout, saved)};
      },
      {x});
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("gelu matches the reference on every backend") {
    check_against_ref("gelu", gelu_forward, gelu_backward, false);
  }
  TEST_CASE("tanh matches the reference on every backend") {
    check_against_ref("tanh", tanh_forward, tanh_backward, true);
  }
  TEST_CASE("relu matches the reference on every backend") {
    check_against_ref("relu", relu_forward, relu_backward, false);
  }
  TEST_CASE("scale matches the reference on every backend") {
    check_against_ref(
        "scale", [](Context& c, const Tensor& x) { return scale_forward(c, x, -0.37); }, nullptr,
        false);
  }

  TEST_CASE("gelu, tanh, relu, scale: numerical gradients in double") {
    check_gradient("gelu", gelu_forward, gelu_backward, false);
    check_gradient("tanh", tanh_forward, tanh_backward, true);
    check_gradient("relu", relu_forward, relu_backward, false);
    check_gradient(
        "scale", [](Context& c, const Tensor& x) { return scale_forward(c, x, 2.5); },
        [](Context& c, const Tensor& d, const Tensor&) { return scale_forward(c, d, 2.5); }, false);
  }

  TEST_CASE("gelu reference values") {
    Context ref(Backend::Ref);
    Tensor x = Tensor::from_vector<double>({-1.0, 0.0, 0.5, 2.0}, {4});
    // 0.5 x (1 + erf(x / sqrt 2)), computed independently.
    std::vector<double> want{-0.15865525393145707, 0.0, 0.34573123063700656, 1.9544997361036416};
    std::vector<double> got = gelu_forward(ref, x).to_vector<double>();
    for (size_t i = 0; i < 4; ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-12));
  }

  TEST_CASE("eltwise misuse names the op and the shapes") {
    Context ctx;
    Tensor x = Tensor::zeros({2, 3}), d = Tensor::zeros({3, 2});
    check_throws_with([&] { gelu_backward(ctx, d, x); }, {"gelu_backward", "[3, 2]", "[2, 3]"});
    check_throws_with([&] { relu_forward(ctx, Tensor::zeros({4}, DType::I32)); }, {"relu", "i32"});
    check_throws_with([&] { tanh_forward(ctx, Tensor()); }, {"tanh", "undefined"});
  }
}
