// qlinear (dynamically quantised int8 linear): every fast backend against the reference, the
// reference against hand-computed integers, the quantisation error against the f32 linear, and
// misuse. There is no gradient check: the op is inference-only (kernels/qlinear.h).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "kernels/cast.h"
#include "kernels/qlinear.h"
#include "kernels/ref/qlinear_ref.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// The output's quantisation scale: results are compared relative to the largest |out|.
double max_abs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(double(t.data<float>()[i])));
  return m;
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("qlinear reference: quantisation rules and integer products by hand") {
    // w rows: [1, -0.5] -> sw = 1/127, wq = [127, -64] (63.5 rounds to even 64); [0, 0] -> sw 1.
    const float w[4] = {1.f, -0.5f, 0.f, 0.f};
    int8_t wq[4];
    float sw[2];
    int32_t rs[2];
    quantize_weight_ref(wq, sw, rs, w, 2, 2);
    CHECK(wq[0] == 127);
    CHECK(wq[1] == -64);
    CHECK(wq[2] == 0);
    CHECK(sw[0] == doctest::Approx(1.0 / 127));
    CHECK(sw[1] == 1.f);
    CHECK(rs[0] == 63);
    CHECK(rs[1] == 0);
    // x in [-1, 1.55]: sx = 2.55 / 255 = 0.01, zp = 100; 0 is exact.
    const float x[2] = {-1.f, 1.55f};
    const ActQuant q = activation_quant_ref(x, 2);
    CHECK(q.scale == doctest::Approx(0.01f));
    CHECK(q.zero_point == 100);
    uint8_t xq[2];
    quantize_activation_ref(xq, x, 2, q);
    CHECK(xq[0] == 0);
    CHECK(xq[1] == 255);
    float out[2];
    const float bias[2] = {0.25f, -1.f};
    qlinear_forward_ref(out, xq, q, wq, sw, rs, bias, 1, 2, 2, false);
    // sum (xq - zp) * wq = (-100) * 127 + 155 * (-64) = -22620
    CHECK(out[0] == doctest::Approx(0.01 * (1.0 / 127) * -22620 + 0.25).epsilon(1e-5));
    CHECK(out[1] == doctest::Approx(-1.0));
    // An all-zero x: scale 1, zero point 0, the output is the bias.
    const float zeros[2] = {0.f, 0.f};
    CHECK(activation_quant_ref(zeros, 2).scale == 1.f);
    // A non-finite x: scale NaN (the op turns it into an error).
    const float bad[2] = {1.f, std::numeric_limits<float>::infinity()};
    CHECK(std::isnan(activation_quant_ref(bad, 2).scale));
  }

  TEST_CASE("qlinear: every fast backend against the reference") {
    Rng rng(41);
    struct Shape3 {
      int64_t M, K, N;
    };
    std::vector<Shape3> shapes;
    for (int64_t s : kOddSizes)
      if (s < 769) shapes.push_back({s, s + 3, s * 2 + 1});
    shapes.push_back({33, 769, 13});
    shapes.push_back({kT, kC, kFF});   // XLM-R's FFN up-projection at one sequence
    shapes.push_back({kT, kFF, kC});   // and down-projection
    shapes.push_back({1, kC, kC});
    Context ref(Backend::Ref);
    for (const Shape3& s : shapes) {
      Tensor w = random_tensor({s.N, s.K}, rng, DType::F32, -0.1f, 0.1f);
      Tensor b = random_tensor({s.N}, rng);
      // Skewed activations (a non-trivial zero point).
      Tensor x = random_tensor({s.M, s.K}, rng, DType::F32, -0.5f, 2.f);
      for (Activation act : {Activation::None, Activation::Gelu}) {
        const QuantizedLinear q = quantize_linear(ref, w, b);
        const Tensor want = qlinear_forward(ref, x, q, act);
        for (Backend be : fast_backends()) {
          Context ctx(be);
          const Tensor got = qlinear_forward(ctx, x, q, act);
          // Same integers; the f32 epilogue (scale, folded zero point, erf) differs in rounding.
          const double scale = std::max(1.0, max_abs(want));
          const std::string what = std::string(backend_name(be)) + " M" + std::to_string(s.M) +
                                   " K" + std::to_string(s.K) + " N" + std::to_string(s.N) +
                                   (act == Activation::Gelu ? " gelu" : "");
          KDNAS_CHECK_CLOSE(got, want, (Tol{2e-5 * scale, 2e-5}), what);
          // bf16 out: this backend's f32 result rounded to nearest even, bit for bit.
          const Tensor got16 = qlinear_forward(ctx, x, q, act, DType::BF16);
          REQUIRE(got16.dtype() == DType::BF16);
          KDNAS_CHECK_CLOSE(got16.to(DType::F32), cast(ctx, got, DType::BF16).to(DType::F32),
                            (Tol{0, 0}), what + " bf16 out");
        }
        // bf16 x: quantised from its exact f32 value, so the same as that f32 on every backend.
        const Tensor x16 = x.to(DType::BF16), x16f = x16.to(DType::F32);
        for (Backend be : compiled_cpu_backends()) {
          Context ctx(be);
          KDNAS_CHECK_CLOSE(qlinear_forward(ctx, x16, q, act), qlinear_forward(ctx, x16f, q, act),
                            (Tol{0, 0}), std::string(backend_name(be)) + " bf16 x M" +
                                             std::to_string(s.M) + " K" + std::to_string(s.K));
        }
      }
    }
  }

  TEST_CASE("qlinear: a batched x [B, T, K] and a strided x give the rows' results") {
    Rng rng(5);
    Context ctx(best_cpu_backend());
    Tensor w = random_tensor({24, 40}, rng), b = random_tensor({24}, rng);
    const QuantizedLinear q = quantize_linear(ctx, w, b);
    Tensor x = random_tensor({2, 3, 40}, rng);
    const Tensor flat = qlinear_forward(ctx, x.view({6, 40}), q);
    const Tensor out = qlinear_forward(ctx, x, q);
    CHECK(out.shape() == Shape{2, 3, 24});
    KDNAS_CHECK_CLOSE(out.view({6, 24}), flat, kF32, "batched");
    const Tensor strided = qlinear_forward(ctx, noncontiguous(x), q);
    KDNAS_CHECK_CLOSE(strided, out, kF32, "strided");
  }

  TEST_CASE("qlinear: error against the f32 linear stays within the quantisation bound") {
    Rng rng(9);
    Context ctx(best_cpu_backend());
    const int64_t M = 64, K = 768, N = 256;
    Tensor w = random_tensor({N, K}, rng, DType::F32, -0.05f, 0.05f);
    Tensor b = random_tensor({N}, rng);
    Tensor x = random_tensor({M, K}, rng, DType::F32, -2.f, 2.f);
    const Tensor f32 = linear_forward(ctx, x, w, b);
    const Tensor i8 = qlinear_forward(ctx, x, quantize_linear(ctx, w, b));
    // Worst case per output: sum_k (|x| sw/2 + |w| sx/2 + sx sw/4) <= K (2 * 0.05/127 / 2 +
    // 0.05 * 4/255 / 2 + tiny) ~= 0.45; random signs make the real error ~sqrt(K) times smaller.
    double worst = 0, sum_sq = 0, ref_sq = 0;
    for (int64_t i = 0; i < f32.numel(); ++i) {
      const double d = double(i8.data<float>()[i]) - double(f32.data<float>()[i]);
      worst = std::max(worst, std::fabs(d));
      sum_sq += d * d;
      ref_sq += double(f32.data<float>()[i]) * double(f32.data<float>()[i]);
    }
    CHECK(worst < 0.45);
    CHECK(std::sqrt(sum_sq / ref_sq) < 0.01);  // relative RMS error under 1 %
  }

  TEST_CASE("qlinear: misuse") {
    Context ctx(best_cpu_backend());
    Rng rng(1);
    Tensor w = random_tensor({4, 8}, rng);
    const QuantizedLinear q = quantize_linear(ctx, w);
    check_throws_with([&] { qlinear_forward(ctx, random_tensor({2, 7}, rng), q); },
                      {"qlinear", "[2, 7]", "last dim must be K"});
    check_throws_with([&] { qlinear_forward(ctx, random_tensor({2, 8}, rng, DType::F64), q); },
                      {"qlinear", "dtype"});
    Tensor x16 = random_tensor({2, 8}, rng).to(DType::BF16);
    x16.data<bf16>()[5] = f32_to_bf16(std::numeric_limits<float>::infinity());
    for (Backend be : compiled_cpu_backends()) {
      Context c(be);
      check_throws_with([&] { qlinear_forward(c, x16, q); }, {"qlinear", "non-finite"});
    }
    Tensor x = random_tensor({2, 8}, rng);
    x.data<float>()[3] = std::numeric_limits<float>::quiet_NaN();
    for (Backend be : compiled_cpu_backends()) {
      Context c(be);
      check_throws_with([&] { qlinear_forward(c, x, q); }, {"qlinear", "non-finite"});
    }
    check_throws_with([&] { qlinear_forward(ctx, x, QuantizedLinear{}); }, {"not quantised"});
    check_throws_with(
        [&] {
          qlinear_forward(ctx, random_tensor({2, 8}, rng), q, Activation::None, DType::I8);
        },
        {"qlinear", "out_dtype", "i8"});
    Tensor wbad = random_tensor({4, 8}, rng);
    wbad.data<float>()[0] = std::numeric_limits<float>::infinity();
    check_throws_with([&] { quantize_linear(ctx, wbad); }, {"quantize_linear", "non-finite"});
    check_throws_with([&] { quantize_linear(ctx, w, random_tensor({3}, rng)); },
                      {"quantize_linear", "bias"});
    check_throws_with([&] { quantize_linear(ctx, random_tensor({8}, rng)); }, {"quantize_linear"});
  }
}
