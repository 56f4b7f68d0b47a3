#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <limits>

#include "kernels/cast.h"
#include "kernels/softmax.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

const std::vector<int64_t> kNs{1, 7, 13, 33, 769, kC, kFF};
const std::vector<int64_t> kRows{1, 7, kB * kT};
constexpr double kInf = std::numeric_limits<double>::infinity();

// Element-wise scale * a + b (b broadcast to a's shape), computed here from the tensors'
// elements: an independent check of the op's own mask broadcasting.
Tensor scale_add(double scale, const Tensor& a, const Tensor& b) {
  std::vector<double> av = a.to_vector<double>();
  std::vector<double> bv = b.expand(a.shape()).contiguous().to_vector<double>();
  for (size_t i = 0; i < av.size(); ++i) av[i] = scale * av[i] + bv[i];
  return Tensor::from_vector<double>(av, a.shape()).to(a.dtype());
}

// A mask of x's shape: 0, with about one entry in five -inf.
Tensor random_mask(const Shape& s, Rng& rng) {
  Tensor m = random_tensor(s, rng);
  std::vector<double> v = m.to_vector<double>();
  for (double& e : v) e = e < -0.6 ? -kInf : 0.0;
  return Tensor::from_vector<double>(v, s).to(DType::F32);
}

void compare_softmax(Context& ctx, Context& ref, const Tensor& x, const Tensor& mask, double scale,
                     const Tensor& dout, const std::string& what) {
  Tensor want =
      softmax_forward(ref, x.contiguous(), mask.defined() ? mask.contiguous() : mask, scale);
  Tensor got = softmax_forward(ctx, x, mask, scale);
  KDNAS_CHECK_CLOSE(got, want, kF32, what);
  KDNAS_CHECK_CLOSE(softmax_backward(ctx, dout, got, scale),
                    softmax_backward(ref, dout.contiguous(), want, scale), kF32,
                    what + " backward");
}

void compare_log_softmax(Context& ctx, Context& ref, const Tensor& x, const Tensor& dout,
                         const std::string& what) {
  Tensor want = log_softmax_forward(ref, x.contiguous());
  Tensor got = log_softmax_forward(ctx, x);
  KDNAS_CHECK_CLOSE(got, want, kF32, what);
  KDNAS_CHECK_CLOSE(log_softmax_backward(ctx, dout, got),
                    log_softmax_backward(ref, dout.contiguous(), want), kF32, what + " backward");
}

}  // namespace

TEST_SUITE("kernels") {
TEST_CASE("softmax and log_softmax match the reference on every backend") {
  Context ref(Backend::Ref);
  Rng rng(1);
  for (Backend be : fast_backends()) {
    Context ctx(be);
    for (int64_t N : kNs) {
      for (int64_t rows : kRows) {
        Tensor x = random_tensor({rows, N}, rng, DType::F32, -8.f, 8.f);
        Tensor mask = random_mask({rows, N}, rng);
        Tensor dout = random_tensor({rows, N}, rng);
        const std::string what = std::string(backend_name(be)) + " [" + std::to_string(rows) +
                                 ", " + std::to_string(N) + "]";
        for (bool strided : {false, true}) {
          Tensor xi = strided ? noncontiguous(x) : x, di = strided ? noncontiguous(dout) : dout;
          Tensor mi = strided ? noncontiguous(mask) : mask;
          const std::string w = what + (strided ? " strided" : "");
          compare_softmax(ctx, ref, xi, Tensor(), 1.0, di, "softmax " + w);
          compare_softmax(ctx, ref, xi, mi, 0.37, di, "softmax masked, scaled " + w);
          compare_log_softmax(ctx, ref, xi, di, "log_softmax " + w);
        }
      }
    }
  }
}

TEST_CASE("softmax at the attention shape with a padding mask and scale 1/sqrt(HS)") {
  Context ref(Backend::Ref);
  Rng rng(2);
  // Scores [B, NH, T, T]; sequence b has T - 15 b real tokens, the rest padding, masked with
  // -FLT_MAX (as Hugging Face does) or -1e9.
  Tensor x = random_tensor({kB, kNH, kT, kT}, rng, DType::F32, -20.f, 20.f);
  Tensor dout = random_tensor(x.shape(), rng);
  std::vector<float> mv(size_t(kB * kT), 0.f);
  for (int64_t b = 0; b < kB; ++b)
    for (int64_t t = kT - 15 * b; t < kT; ++t) mv[size_t(b * kT + t)] = b % 2 ? -1e9f : -FLT_MAX;
  Tensor mask = Tensor::from_vector<float>(mv, {kB, 1, 1, kT});
  const double scale = 1.0 / 8.0;  // 1 / sqrt(HS), HS = 64
  // The reference on the explicit logits scale * x + mask: no broadcasting inside the op.
  Tensor want = softmax_forward(ref, scale_add(scale, x, mask));
  KDNAS_CHECK_CLOSE(softmax_forward(ref, x, mask, scale), want, kF32, "softmax attention ref");
  Tensor dwant = softmax_backward(ref, dout, want, scale);
  for (Backend be : fast_backends()) {
    Context ctx(be);
    const std::string what = std::string("softmax attention ") + backend_name(be);
    Tensor got = softmax_forward(ctx, x, mask, scale);
    KDNAS_CHECK_CLOSE(got, want, kF32, what);
    KDNAS_CHECK_CLOSE(softmax_backward(ctx, dout, got, scale), dwant, kF32, what + " backward");
    // Padded keys get exactly zero probability.
    CHECK(got.at({7, 5, 3, kT - 1}) == 0.0);
    CHECK(got.at({2, 11, 100, kT - 30}) == 0.0);
    CHECK(got.at({2, 11, 100, kT - 31}) > 0.0);
  }
}

TEST_CASE("softmax mask broadcasting: every numpy-compatible mask shape and layout") {
  Context ref(Backend::Ref);
  Rng rng(3);
  const Shape xs{2, 3, 5, 7};
  Tensor x = random_tensor(xs, rng, DType::F32, -4.f, 4.f);
  std::vector<Tensor> masks;
  for (Shape ms : {Shape{}, Shape{7}, Shape{1}, Shape{5, 1}, Shape{2, 1, 1, 7}, Shape{3, 5, 7},
                   Shape{2, 3, 5, 1}, Shape{1, 3, 1, 7}, Shape{2, 3, 5, 7}})
    masks.push_back(random_tensor(ms, rng, DType::F32, -3.f, 3.f));
  // Strided masks: a transposed [2, 1, 7, 5] -> [2, 1, 5, 7], and every other column.
  masks.push_back(random_tensor({2, 1, 7, 5}, rng).transpose(2, 3));
  masks.push_back(noncontiguous(random_tensor({1, 3, 5, 7}, rng)));
  for (const Tensor& m : masks) {
    Tensor want = softmax_forward(ref, scale_add(0.5, x, m));
    for (Backend be : compiled_cpu_backends()) {
      Context ctx(be);
      KDNAS_CHECK_CLOSE(
          softmax_forward(ctx, x, m, 0.5), want, kF32,
          std::string("softmax mask ") + shape_str(m.shape()) + " " + backend_name(be));
    }
  }
}

TEST_CASE("softmax: a fully masked row is uniform, never NaN") {
  Context ref(Backend::Ref);
  Rng rng(4);
  const int64_t N = 37;
  Tensor x = random_tensor({4, 2, N}, rng, DType::F32, -5.f, 5.f);
  Tensor dout = random_tensor(x.shape(), rng);
  // Batch 0 keeps all keys; 1, 2, 3 mask every key with -inf, -FLT_MAX and -1e9.
  std::vector<float> mv(size_t(4 * N), 0.f);
  const float fill[] = {0.f, -std::numeric_limits<float>::infinity(), -FLT_MAX, -1e9f};
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t n = 0; n < N; ++n) mv[size_t(b * N + n)] = fill[b];
  Tensor mask = Tensor::from_vector<float>(mv, {4, 1, N});
  Tensor plain = softmax_forward(ref, x.narrow(0, 0, 1));
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    const std::string what = std::string("fully masked ") + backend_name(be);
    Tensor y = softmax_forward(ctx, x, mask);
    KDNAS_CHECK_CLOSE(y.narrow(0, 0, 1), plain, kF32, what + " unmasked batch");
    KDNAS_CHECK_CLOSE(y.narrow(0, 1, 3), Tensor::full({3, 2, N}, 1.0 / N), kF32,
                      what + " uniform");
    Tensor dx = softmax_backward(ctx, dout, y);
    for (double v : dx.to_vector<double>()) REQUIRE(std::isfinite(v));
    // log_softmax of an all -inf row: log(1/N).
    Tensor ly = log_softmax_forward(ctx, Tensor::full({2, N}, -kInf));
    KDNAS_CHECK_CLOSE(ly, Tensor::full({2, N}, -std::log(double(N))), kF32,
                      what + " log_softmax");
  }
}

TEST_CASE("softmax and log_softmax reference values") {
  Context ref(Backend::Ref);
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 1000, 1001, -kInf}, {2, 3});
  // softmax(1, 2, 3) = e^k / (e + e^2 + e^3); rows with huge values shift by their max.
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  std::vector<double> want{std::exp(1.0) / z,
                           std::exp(2.0) / z,
                           std::exp(3.0) / z,
                           1 / (1 + std::exp(1.0)),
                           std::exp(1.0) / (1 + std::exp(1.0)),
                           0};
  std::vector<double> got = softmax_forward(ref, x).to_vector<double>();
  std::vector<double> lgot = log_softmax_forward(ref, x).to_vector<double>();
  for (size_t i = 0; i < 6; ++i) {
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-14));
    if (i < 5) CHECK(lgot[i] == doctest::Approx(std::log(want[i])).epsilon(1e-12));
  }
  CHECK(lgot[5] == -kInf);
}

TEST_CASE("softmax (masked, scaled) and log_softmax: numerical gradients in double") {
  Context ref(Backend::Ref);
  Rng rng(5);
  Tensor x = random_tensor({2, 3, 5}, rng, DType::F64, -3.f, 3.f);
  // A [2, 1, 5] mask: two keys of batch 1 padded.
  Tensor mask = Tensor::from_vector<double>({0, 0, 0, 0, 0, 0, 0, 0, -1e9, -1e9}, {2, 1, 5});
  const double scale = 0.7;
  gradcheck(
      "softmax",
      [&](const std::vector<Tensor>& in) { return softmax_forward(ref, in[0], mask, scale); },
      [&](const std::vector<Tensor>& in, const Tensor& dout) {
        Tensor y = softmax_forward(ref, in[0], mask, scale);
        return std::vector<Tensor>{softmax_backward(ref, dout, y, scale)};
      },
      {x});
  gradcheck(
      "log_softmax",
      [&](const std::vector<Tensor>& in) { return log_softmax_forward(ref, in[0]); },
      [&](const std::vector<Tensor>& in, const Tensor& dout) {
        return std::vector<Tensor>{
            log_softmax_backward(ref, dout, log_softmax_forward(ref, in[0]))};
      },
      {random_tensor({3, 7}, rng, DType::F64, -3.f, 3.f)});
}

TEST_CASE("softmax and log_softmax on empty tensors") {
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    CHECK(softmax_forward(ctx, Tensor::zeros({0, 5}), Tensor::zeros({5})).shape() == Shape{0, 5});
    CHECK(softmax_forward(ctx, Tensor::zeros({3, 0})).shape() == Shape{3, 0});
    CHECK(log_softmax_forward(ctx, Tensor::zeros({0, 5})).shape() == Shape{0, 5});
    CHECK(softmax_backward(ctx, Tensor::zeros({0, 5}), Tensor::zeros({0, 5})).shape() ==
          Shape{0, 5});
  }
}

TEST_CASE("softmax_forward_bf16: the f32 softmax rounded, bit for bit, on every backend") {
  Context ref(Backend::Ref);
  Rng rng(4);
  std::vector<Backend> backends = compiled_cpu_backends();
  for (Backend be : backends) {
    Context ctx(be);
    for (int64_t N : {int64_t(1), int64_t(13), kT, int64_t(769)}) {
      for (int64_t rows : {int64_t(1), int64_t(7), kB * kT}) {
        Tensor x = random_tensor({rows, N}, rng, DType::F32, -8.f, 8.f);
        Tensor mask = random_mask({rows, N}, rng);
        for (bool masked : {false, true}) {
          const std::string what = std::string("softmax bf16 out ") + backend_name(be) + " [" +
                                   std::to_string(rows) + ", " + std::to_string(N) + "]" +
                                   (masked ? " masked" : "");
          Tensor m = masked ? mask : Tensor();
          Tensor got = softmax_forward_bf16(ctx, x, m, 0.37);
          CHECK(got.dtype() == DType::BF16);
          CHECK(got.shape() == x.shape());
          // Exactly the same backend's f32 softmax, rounded by cast: the fused path changes
          // where the rounding happens, not what it gives.
          Tensor f32 = softmax_forward(ctx, x, m, 0.37);
          KDNAS_CHECK_CLOSE(got.to(DType::F32), cast(ctx, f32, DType::BF16).to(DType::F32),
                            (Tol{0.0, 0.0}), what + " vs cast");
          // And within bf16 rounding of the reference.
          KDNAS_CHECK_CLOSE(got.to(DType::F32), softmax_forward(ref, x, m, 0.37), kBF16, what);
        }
      }
    }
  }
  // The attention case: [B, NH, T, T] scores, a [B, 1, 1, T] padding mask, a fully masked row.
  Tensor x = random_tensor({2, 3, 5, kT}, rng, DType::F32, -20.f, 20.f);
  std::vector<float> mv(size_t(2 * kT), 0.f);
  for (int64_t t = kT - 40; t < kT; ++t) mv[size_t(kT + t)] = -FLT_MAX;
  Tensor mask = Tensor::from_vector<float>(mv, {2, 1, 1, kT});
  Tensor want = cast(ref, softmax_forward(ref, x, mask, 0.125), DType::BF16);
  for (Backend be : backends) {
    Context ctx(be);
    Tensor got = softmax_forward_bf16(ctx, noncontiguous(x), mask, 0.125);
    KDNAS_CHECK_CLOSE(got.to(DType::F32), want.to(DType::F32), kBF16,
                      std::string("softmax bf16 out attention ") + backend_name(be));
    CHECK(got.to(DType::F32).at({1, 2, 4, kT - 1}) == 0.0);
  }
  Tensor all_masked = Tensor::full({1, 4}, -kInf);
  for (Backend be : backends) {
    Context ctx(be);
    Tensor u = softmax_forward_bf16(ctx, Tensor::zeros({1, 4}), all_masked);
    CHECK(u.to(DType::F32).at({0, 2}) == 0.25);
    CHECK(softmax_forward_bf16(ctx, Tensor::zeros({0, 4})).numel() == 0);
  }
}

TEST_CASE("softmax misuse names the op and the shapes") {
  Context ctx;
  Tensor x = Tensor::zeros({8, 12, 4, 4});
  check_throws_with(
      [&] {
        softmax_forward(ctx, x, Tensor::zeros({8, 1, 2, 4}));
      },
      {"softmax", "mask", "[8, 1, 2, 4]", "[8, 12, 4, 4]", "broadcast"});
  check_throws_with([&] { softmax_forward(ctx, x, Tensor::zeros({3})); },
                    {"softmax", "mask", "[3]", "[8, 12, 4, 4]"});
  check_throws_with(
      [&] {
        softmax_forward(ctx, x, Tensor::zeros({2, 8, 12, 4, 4}));
      },
      {"softmax", "mask", "[2, 8, 12, 4, 4]", "[8, 12, 4, 4]"});
  check_throws_with([&] { softmax_forward(ctx, x, Tensor::zeros({4}, DType::F64)); },
                    {"softmax", "mask", "f64", "[4]"});
  check_throws_with([&] { softmax_forward(ctx, Tensor::scalar(1.0)); }, {"softmax", "x", "[]"});
  check_throws_with([&] { softmax_forward_bf16(ctx, Tensor::zeros({2, 2}, DType::F64)); },
                    {"softmax_bf16", "x", "f64"});
  check_throws_with([&] { softmax_forward_bf16(ctx, x, Tensor::zeros({3})); },
                    {"softmax_bf16", "mask", "[3]", "[8, 12, 4, 4]"});
  check_throws_with([&] { softmax_forward(ctx, Tensor::zeros({2}, DType::I64)); },
                    {"softmax", "i64"});
  check_throws_with(
      [&] {
        softmax_backward(ctx, Tensor::zeros({2, 3}), Tensor::zeros({3, 2}));
      },
      {"softmax_backward", "dout", "[2, 3]", "y", "[3, 2]"});
  check_throws_with([&] { log_softmax_forward(ctx, Tensor()); }, {"log_softmax", "undefined"});
  check_throws_with(
      [&] {
        log_softmax_backward(ctx, Tensor::zeros({2, 3}), Tensor::zeros({2, 3}, DType::F64));
      },
      {"log_softmax_backward", "y", "f64", "[2, 3]"});
}
}
