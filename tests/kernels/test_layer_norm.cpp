#include <doctest/doctest.h>

#include <cmath>

#include "kernels/binary.h"
#include "kernels/cast.h"
#include "kernels/cpu/layer_norm_cpu.h"
#include "kernels/layer_norm.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// The normalised dims: odd sizes that break vector tails, XLM-R's hidden size and FFN width.
const std::vector<int64_t> kCs{1, 7, 13, 33, 769, kC, kFF};
// Rows: a single token, an odd count, and a whole XLM-R batch (B*T).
const std::vector<int64_t> kRows{1, 7, kB * kT};

// dgamma and dbeta are sums over up to 1024 rows of terms of size ~1, values up to ~40: in f32
// the order of the additions alone (one running sum in the reference, per-thread partials and
// SIMD lanes in the fast kernels) moves them by up to ~1e-4 (9e-5 measured); a wrong kernel
// (a row dropped or counted twice) is off by ~1.
constexpr Tol kParamGrad{3e-4, 1e-5};

// Runs forward and backward on ctx and on the reference and compares every output.
void check_one(Context& ctx, Context& ref, const Tensor& x, const Tensor& gamma, const Tensor& beta,
               const Tensor& dout, const std::string& what) {
  const double eps = 1e-5;
  // The reference gets contiguous copies; ctx gets the tensors as given (maybe strided).
  LayerNormOutput want =
      layer_norm_forward(ref, x.contiguous(), gamma.contiguous(), beta.contiguous(), eps);
  LayerNormOutput got = layer_norm_forward(ctx, x, gamma, beta, eps);
  KDNAS_CHECK_CLOSE(got.out, want.out, kF32, what + " out");
  KDNAS_CHECK_CLOSE(got.mean, want.mean, kF32, what + " mean");
  KDNAS_CHECK_CLOSE(got.rstd, want.rstd, kF32, what + " rstd");
  LayerNormGrads gw = layer_norm_backward(ref, dout.contiguous(), x.contiguous(),
                                          gamma.contiguous(), want.mean, want.rstd);
  LayerNormGrads gg = layer_norm_backward(ctx, dout, x, gamma, got.mean, got.rstd);
  KDNAS_CHECK_CLOSE(gg.dx, gw.dx, kF32, what + " dx");
  KDNAS_CHECK_CLOSE(gg.dgamma, gw.dgamma, kParamGrad, what + " dgamma");
  KDNAS_CHECK_CLOSE(gg.dbeta, gw.dbeta, kParamGrad, what + " dbeta");
}

}  // namespace

TEST_SUITE("kernels") {
TEST_CASE("layer_norm matches the reference on every backend") {
  Context ref(Backend::Ref);
  Rng rng(1);
  for (Backend be : fast_backends()) {
    Context ctx(be);
    for (int64_t C : kCs) {
      for (int64_t rows : kRows) {
        // x off-centre (mean ~1), so that the kernels' mean subtraction matters.
        Tensor x = random_tensor({rows, C}, rng, DType::F32, -2.f, 4.f);
        Tensor gamma = random_tensor({C}, rng, DType::F32, 0.5f, 1.5f);
        Tensor beta = random_tensor({C}, rng, DType::F32, -0.5f, 0.5f);
        Tensor dout = random_tensor({rows, C}, rng);
        const std::string what = std::string("layer_norm ") + backend_name(be) + " [" +
                                 std::to_string(rows) + ", " + std::to_string(C) + "]";
        check_one(ctx, ref, x, gamma, beta, dout, what);
        check_one(ctx, ref, noncontiguous(x), noncontiguous(gamma), noncontiguous(beta),
                  noncontiguous(dout), what + " strided");
      }
    }
  }
}

TEST_CASE("layer_norm: the oneDNN primitive kernels match the reference") {
  // Route::Onednn may run the OpenMP kernels (kernels/layer_norm.cpp says which and why); the
  // oneDNN ones are kept for re-measuring on other machines, and checked here directly.
  if (!onednn_compiled()) return;
  Context ctx(Backend::Onednn), ref(Backend::Ref);
  Rng rng(5);
  for (int64_t C : kCs) {
    for (int64_t rows : kRows) {
      Tensor x = random_tensor({rows, C}, rng, DType::F32, -2.f, 4.f);
      Tensor gamma = random_tensor({C}, rng, DType::F32, 0.5f, 1.5f);
      Tensor beta = random_tensor({C}, rng, DType::F32, -0.5f, 0.5f);
      Tensor dout = random_tensor({rows, C}, rng);
      const std::string what = "layer_norm onednn primitive " + shape_str({rows, C});
      LayerNormOutput want = layer_norm_forward(ref, x, gamma, beta, 1e-5);
      LayerNormOutput got{Tensor::empty({rows, C}), Tensor::empty({rows}), Tensor::empty({rows})};
      layer_norm_forward_onednn(ctx, got.out.data<float>(), got.mean.data<float>(),
                                got.rstd.data<float>(), x.data<float>(), gamma.data<float>(),
                                beta.data<float>(), rows, C, 1e-5f);
      KDNAS_CHECK_CLOSE(got.out, want.out, kF32, what + " out");
      KDNAS_CHECK_CLOSE(got.mean, want.mean, kF32, what + " mean");
      KDNAS_CHECK_CLOSE(got.rstd, want.rstd, kF32, what + " rstd");
      LayerNormGrads gw = layer_norm_backward(ref, dout, x, gamma, want.mean, want.rstd);
      LayerNormGrads gg{Tensor::empty({rows, C}), Tensor::empty({C}), Tensor::empty({C})};
      layer_norm_backward_onednn(ctx, gg.dx.data<float>(), gg.dgamma.data<float>(),
                                 gg.dbeta.data<float>(), dout.data<float>(), x.data<float>(),
                                 gamma.data<float>(), want.mean.data<float>(),
                                 want.rstd.data<float>(), rows, C);
      KDNAS_CHECK_CLOSE(gg.dx, gw.dx, kF32, what + " dx");
      KDNAS_CHECK_CLOSE(gg.dgamma, gw.dgamma, kParamGrad, what + " dgamma");
      KDNAS_CHECK_CLOSE(gg.dbeta, gw.dbeta, kParamGrad, what + " dbeta");
    }
  }
}

TEST_CASE("layer_norm on a 3-d transposed view normalises the last dim of each [b, t] row") {
  Context ref(Backend::Ref);
  Rng rng(2);
  // [T, B, C] storage viewed as [B, T, C]: rows are not in memory order.
  Tensor x = random_tensor({5, 3, 33}, rng).transpose(0, 1);
  Tensor gamma = random_tensor({33}, rng), beta = random_tensor({33}, rng);
  Tensor dout = random_tensor({3, 5, 33}, rng);
  for (Backend be : fast_backends()) {
    Context ctx(be);
    check_one(ctx, ref, x, gamma, beta, dout,
              std::string("layer_norm transposed ") + backend_name(be));
  }
  // Row (b, t) of the output is the normalisation of x[b, t, :], whatever the layout.
  LayerNormOutput y = layer_norm_forward(ref, x, Tensor::ones({33}), Tensor::zeros({33}), 1e-5);
  CHECK(y.mean.shape() == Shape{15});
  double s = 0;
  for (int64_t c = 0; c < 33; ++c) s += x.at({2, 4, c});
  CHECK(y.mean.at({2 * 5 + 4}) == doctest::Approx(s / 33).epsilon(1e-6));
}

TEST_CASE("layer_norm reference values") {
  Context ref(Backend::Ref);
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, -1, -1, -1, -1}, {2, 4});
  Tensor gamma = Tensor::from_vector<double>({1, 2, 1, 1}, {4});
  Tensor beta = Tensor::from_vector<double>({0, 0, 0, 0.5}, {4});
  LayerNormOutput y = layer_norm_forward(ref, x, gamma, beta, 1e-5);
  // Row 0: mean 2.5, biased variance 1.25. Row 1: constant, variance 0, so rstd = 1/sqrt(eps)
  // and out = beta.
  const double s0 = 1.0 / std::sqrt(1.25 + 1e-5), s1 = 1.0 / std::sqrt(1e-5);
  CHECK(y.mean.at({0}) == doctest::Approx(2.5).epsilon(1e-15));
  CHECK(y.rstd.at({0}) == doctest::Approx(s0).epsilon(1e-15));
  CHECK(y.rstd.at({1}) == doctest::Approx(s1).epsilon(1e-12));
  std::vector<double> want{-1.5 * s0, -0.5 * s0 * 2, 0.5 * s0, 1.5 * s0 + 0.5, 0, 0, 0, 0.5};
  std::vector<double> got = y.out.to_vector<double>();
  for (size_t i = 0; i < want.size(); ++i)
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-12));
}

TEST_CASE("layer_norm: numerical gradients of x, gamma and beta in double") {
  Context ref(Backend::Ref);
  Rng rng(3);
  for (Shape s : {Shape{3, 11}, Shape{2, 2, 5}, Shape{4, 1}}) {
    const int64_t C = s.back();
    Tensor x = random_tensor(s, rng, DType::F64, -2.f, 3.f);
    Tensor gamma = random_tensor({C}, rng, DType::F64, 0.5f, 1.5f);
    Tensor beta = random_tensor({C}, rng, DType::F64);
    gradcheck(
        "layer_norm " + shape_str(s),
        [&](const std::vector<Tensor>& in) {
          return layer_norm_forward(ref, in[0], in[1], in[2], 1e-5).out;
        },
        [&](const std::vector<Tensor>& in, const Tensor& dout) {
          LayerNormOutput y = layer_norm_forward(ref, in[0], in[1], in[2], 1e-5);
          LayerNormGrads g = layer_norm_backward(ref, dout, in[0], in[1], y.mean, y.rstd);
          return std::vector<Tensor>{g.dx, g.dgamma, g.dbeta};
        },
        {x, gamma, beta});
  }
}

TEST_CASE("layer_norm with no rows gives empty outputs and zero parameter gradients") {
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    Tensor x = Tensor::zeros({0, 8}), gamma = Tensor::ones({8}), beta = Tensor::zeros({8});
    LayerNormOutput y = layer_norm_forward(ctx, x, gamma, beta, 1e-5);
    CHECK(y.out.shape() == Shape{0, 8});
    CHECK(y.mean.shape() == Shape{0});
    LayerNormGrads g = layer_norm_backward(ctx, x, x, gamma, y.mean, y.rstd);
    CHECK(g.dx.shape() == Shape{0, 8});
    CHECK(g.dgamma.to_vector<double>() == std::vector<double>(8, 0.0));
    CHECK(g.dbeta.to_vector<double>() == std::vector<double>(8, 0.0));
  }
}

TEST_CASE("layer_norm misuse names the op and the shapes") {
  Context ctx;
  Tensor x = Tensor::zeros({2, 3}), g3 = Tensor::ones({3}), b3 = Tensor::zeros({3});
  check_throws_with([&] { layer_norm_forward(ctx, x, Tensor::ones({4}), b3, 1e-5); },
                    {"layer_norm", "gamma", "[2, 3]", "[4]"});
  check_throws_with(
      [&] {
        layer_norm_forward(ctx, x, g3, Tensor::zeros({1, 3}), 1e-5);
      },
      {"layer_norm", "beta", "[2, 3]", "[1, 3]"});
  check_throws_with([&] { layer_norm_forward(ctx, x, g3.to(DType::F64), b3, 1e-5); },
                    {"layer_norm", "gamma", "f64", "[3]"});
  check_throws_with([&] { layer_norm_forward(ctx, Tensor::scalar(1.0), g3, b3, 1e-5); },
                    {"layer_norm", "x", "[]"});
  check_throws_with(
      [&] {
        layer_norm_forward(ctx, Tensor::zeros({2, 0}), g3, b3, 1e-5);
      },
      {"layer_norm", "[2, 0]"});
  check_throws_with([&] { layer_norm_forward(ctx, x, g3, b3, -1.0); },
                    {"layer_norm", "eps", "[2, 3]"});
  check_throws_with(
      [&] {
        layer_norm_forward(ctx, Tensor::zeros({2, 3}, DType::I32), g3, b3, 1e-5);
      },
      {"layer_norm", "i32"});
  check_throws_with([&] { layer_norm_forward(ctx, x, Tensor(), b3, 1e-5); },
                    {"layer_norm", "gamma", "undefined"});
  LayerNormOutput y = layer_norm_forward(ctx, x, g3, b3, 1e-5);
  check_throws_with(
      [&] {
        layer_norm_backward(ctx, Tensor::zeros({3, 2}), x, g3, y.mean, y.rstd);
      },
      {"layer_norm_backward", "dout", "[3, 2]", "[2, 3]"});
  check_throws_with([&] { layer_norm_backward(ctx, x, x, g3, Tensor::zeros({3}), y.rstd); },
                    {"layer_norm_backward", "mean", "[2, 3]", "[3]", "expected [2]"});
  check_throws_with([&] { layer_norm_backward(ctx, x, x, Tensor::ones({2}), y.mean, y.rstd); },
                    {"layer_norm_backward", "gamma", "[2, 3]", "[2]"});
  check_throws_with(
      [&] {
        layer_norm_backward(ctx, x, x, g3, y.mean, Tensor::ones({2, 1}));
      },
      {"layer_norm_backward", "rstd", "[2, 1]"});
}

// add_layer_norm (inference's "add & norm") is layer_norm of the rounded sum: within f32
// tolerance of the reference everywhere, and bit for bit the unfused pair on its own backend.
TEST_CASE("add_layer_norm is layer_norm(add(x, residual)) on every backend") {
  Context ref(Backend::Ref);
  Rng rng(11);
  const double eps = 1e-5;
  std::vector<Backend> backends = fast_backends();
  backends.push_back(Backend::Ref);
  for (Backend be : backends) {
    Context ctx(be);
    for (int64_t C : kCs) {
      for (int64_t rows : {int64_t(1), int64_t(7), kT, kB * kT}) {
        Tensor x = random_tensor({rows, C}, rng, DType::F32, -2.f, 4.f);
        Tensor res = random_tensor({rows, C}, rng, DType::F32, -3.f, 3.f);
        Tensor gamma = random_tensor({C}, rng, DType::F32, 0.5f, 1.5f);
        Tensor beta = random_tensor({C}, rng, DType::F32, -0.5f, 0.5f);
        const std::string what = std::string("add_layer_norm ") + backend_name(be) + " [" +
                                 std::to_string(rows) + ", " + std::to_string(C) + "]";
        const Tensor got = add_layer_norm_forward(ctx, x, res, gamma, beta, eps);
        const Tensor want = layer_norm_forward(ref, add(ref, x, res), gamma, beta, eps).out;
        KDNAS_CHECK_CLOSE(got, want, kF32, what);
        const Tensor same = layer_norm_forward(ctx, add(ctx, x, res), gamma, beta, eps).out;
        KDNAS_CHECK_CLOSE(got, same, (Tol{0, 0}), what + " vs add + layer_norm, same backend");
        // With the bf16 copy: the same f32 result, and the copy is exactly its cast.
        Tensor got16;
        const Tensor got2 = add_layer_norm_forward(ctx, x, res, gamma, beta, eps, &got16);
        KDNAS_CHECK_CLOSE(got2, got, (Tol{0, 0}), what + " f32 result with a bf16 copy");
        REQUIRE(got16.dtype() == DType::BF16);
        CHECK(got16.shape() == got.shape());
        KDNAS_CHECK_CLOSE(got16.to(DType::F32), cast(ctx, got, DType::BF16).to(DType::F32),
                          (Tol{0, 0}), what + " bf16 copy vs cast");
      }
    }
  }
}

TEST_CASE("add_layer_norm on strided views, in f64, with no rows, and misuse") {
  Context ref(Backend::Ref);
  Rng rng(12);
  // [T, B, C] storage viewed as [B, T, C], and a residual in a padded buffer.
  Tensor x = random_tensor({5, 3, 33}, rng).transpose(0, 1);
  Tensor res = noncontiguous(random_tensor({3, 5, 33}, rng));
  Tensor gamma = random_tensor({33}, rng), beta = random_tensor({33}, rng);
  const Tensor want =
      layer_norm_forward(ref, add(ref, x, res).contiguous(), gamma, beta, 1e-5).out;
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    KDNAS_CHECK_CLOSE(add_layer_norm_forward(ctx, x, res, gamma, beta, 1e-5), want, kF32,
                      std::string("add_layer_norm strided ") + backend_name(be));
    Tensor empty16;
    Tensor empty = add_layer_norm_forward(ctx, Tensor::zeros({0, 8}), Tensor::zeros({0, 8}),
                                          Tensor::ones({8}), Tensor::zeros({8}), 1e-5, &empty16);
    CHECK(empty.shape() == Shape{0, 8});
    CHECK(empty16.shape() == Shape{0, 8});
    CHECK(empty16.dtype() == DType::BF16);
  }
  // f64 runs on the reference: the sum, then the textbook LayerNorm.
  Tensor xd = random_tensor({4, 9}, rng, DType::F64), rd = random_tensor({4, 9}, rng, DType::F64);
  Tensor gd = random_tensor({9}, rng, DType::F64), bd = random_tensor({9}, rng, DType::F64);
  KDNAS_CHECK_CLOSE(add_layer_norm_forward(ref, xd, rd, gd, bd, 1e-5),
                    layer_norm_forward(ref, add(ref, xd, rd), gd, bd, 1e-5).out, (Tol{0, 0}),
                    "add_layer_norm f64");
  Context ctx;
  Tensor x2 = Tensor::zeros({2, 3}), g3 = Tensor::ones({3}), b3 = Tensor::zeros({3});
  check_throws_with([&] { add_layer_norm_forward(ctx, x2, Tensor::zeros({2, 4}), g3, b3, 1e-5); },
                    {"add_layer_norm", "residual", "[2, 3]", "[2, 4]"});
  check_throws_with([&] { add_layer_norm_forward(ctx, x2, Tensor::zeros({3}), g3, b3, 1e-5); },
                    {"add_layer_norm", "[2, 3]", "[3]"});
  check_throws_with([&] { add_layer_norm_forward(ctx, x2, x2, Tensor::ones({4}), b3, 1e-5); },
                    {"add_layer_norm", "gamma", "[4]"});
  check_throws_with(
      [&] { add_layer_norm_forward(ctx, x2, x2.to(DType::F64), g3, b3, 1e-5); },
      {"add_layer_norm", "residual", "f64"});
  Tensor copy16;
  check_throws_with(
      [&] {
        add_layer_norm_forward(ref, xd, rd, gd, bd, 1e-5, &copy16);
      },
      {"add_layer_norm", "bf16 copy", "f64"});
}
}
