#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/dropout.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

constexpr Tol kExact{0, 0};

// The mask by its definition, straight from tensor/rng.h.
std::vector<uint8_t> expected_mask(int64_t n, double p, uint64_t seed, uint64_t counter) {
  std::vector<uint8_t> m(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) m[size_t(i)] = rng_uniform01(seed, counter + uint64_t(i)) >= p;
  return m;
}

std::vector<Shape> shapes() {
  std::vector<Shape> v;
  for (int64_t n : kOddSizes) v.push_back({n});
  v.push_back({7, 13});
  v.push_back({kB, kT, kC});
  return v;
}

}  // namespace

TEST_SUITE("kernels") {
TEST_CASE("dropout: the fast backends give the reference's mask and output, bit for bit") {
  Context ref(Backend::Ref);
  Rng rng(21);
  for (const Shape& s : shapes()) {
    Tensor x = random_tensor(s, rng, DType::F32, -3.f, 3.f);
    Tensor dout = random_tensor(s, rng);
    for (double p : {0.1, 0.5, 0.9}) {
      const uint64_t seed = 42, counter = rng.reserve(uint64_t(x.numel()));
      DropoutOutput want = dropout_forward(ref, x, p, seed, counter);
      REQUIRE(want.mask.dtype() == DType::U8);
      CHECK(want.mask.to_vector<uint8_t>() == expected_mask(x.numel(), p, seed, counter));
      Tensor dx_want = dropout_backward(ref, dout, want.mask, p);
      for (Backend be : fast_backends()) {
        Context ctx(be);
        for (bool strided : {false, true}) {
          std::string what = std::string("dropout ") + backend_name(be) + " " + shape_str(s) +
                             " p=" + std::to_string(p) + (strided ? " strided" : "");
          DropoutOutput got =
              dropout_forward(ctx, strided ? noncontiguous(x) : x, p, seed, counter);
          CHECK_MESSAGE(got.mask.to_vector<uint8_t>() == want.mask.to_vector<uint8_t>(),
                        what << ": masks differ");
          KDNAS_CHECK_CLOSE(got.out, want.out, kExact, what);
          KDNAS_CHECK_CLOSE(
              dropout_backward(ctx, strided ? noncontiguous(dout) : dout, got.mask, p), dx_want,
              kExact, what + " backward");
        }
      }
    }
  }
}

TEST_CASE(
    "dropout: kept values are scaled by 1/(1-p), the keep rate is 1-p, the mask is the stream") {
  Rng rng(22);
  const int64_t n = 1 << 20;
  Tensor x = random_tensor({n}, rng, DType::F32, 0.5f, 2.f);  // no zeros: dropped <=> out == 0
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    for (double p : {0.1, 0.3, 0.5}) {
      DropoutOutput d = dropout_forward(ctx, x, p, 7, 1000);
      std::vector<float> xv = x.to_vector<float>(), ov = d.out.to_vector<float>();
      std::vector<uint8_t> mv = d.mask.to_vector<uint8_t>();
      int64_t kept = 0, bad = 0;
      const float scale = float(1.0 / (1.0 - p));
      for (int64_t i = 0; i < n; ++i) {
        kept += mv[size_t(i)];
        bad += mv[size_t(i)] ? ov[size_t(i)] != xv[size_t(i)] * scale : ov[size_t(i)] != 0.f;
      }
      CHECK(bad == 0);
      // Binomial(n, 1-p): the standard deviation of the rate is sqrt(p(1-p)/n) < 5e-4.
      INFO("backend " << backend_name(be) << " p=" << p);
      CHECK(std::abs(double(kept) / double(n) - (1.0 - p)) < 3e-3);
    }
    // Counter-based: shifting the first counter by one shifts the mask by one element.
    std::vector<uint8_t> a = dropout_forward(ctx, x, 0.5, 7, 1000).mask.to_vector<uint8_t>();
    std::vector<uint8_t> b = dropout_forward(ctx, x, 0.5, 7, 1001).mask.to_vector<uint8_t>();
    CHECK(std::memcmp(a.data() + 1, b.data(), size_t(n - 1)) == 0);
    std::vector<uint8_t> c = dropout_forward(ctx, x, 0.5, 8, 1000).mask.to_vector<uint8_t>();
    CHECK(a != c);  // another seed, another mask
  }
}

TEST_CASE("dropout: p = 0 is the identity, p = 1 gives zeros") {
  Rng rng(23);
  Tensor x = random_tensor({kOddSizes.back(), 5}, rng);
  // An infinite input must give 0, not inf * 0 = NaN, when dropped.
  Tensor xi = x.clone();
  xi.data<float>()[3] = std::numeric_limits<float>::infinity();
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    INFO("backend " << backend_name(be));
    DropoutOutput id = dropout_forward(ctx, x, 0.0, 1, 0);
    KDNAS_CHECK_CLOSE(id.out, x, kExact, "p = 0");
    CHECK(id.mask.to_vector<double>() == std::vector<double>(size_t(x.numel()), 1.0));
    KDNAS_CHECK_CLOSE(dropout_backward(ctx, x, id.mask, 0.0), x, kExact, "p = 0 backward");
    DropoutOutput all = dropout_forward(ctx, xi, 1.0, 1, 0);
    KDNAS_CHECK_CLOSE(all.out, Tensor::zeros(x.shape()), kExact, "p = 1");
    CHECK(all.mask.to_vector<double>() == std::vector<double>(size_t(x.numel()), 0.0));
    KDNAS_CHECK_CLOSE(dropout_backward(ctx, xi, all.mask, 1.0), Tensor::zeros(x.shape()), kExact,
                      "p = 1 backward");
  }
}

TEST_CASE("dropout: numerical gradient in double") {
  Context ref(Backend::Ref);
  Rng rng(24);
  Tensor x = random_tensor({4, 9}, rng, DType::F64);
  const double p = 0.4;
  gradcheck(
      "dropout",
      [&](const std::vector<Tensor>& in) { return dropout_forward(ref, in[0], p, 5, 77).out; },
      [&](const std::vector<Tensor>& in, const Tensor& dout) {
        Tensor mask = dropout_forward(ref, in[0], p, 5, 77).mask;
        return std::vector<Tensor>{dropout_backward(ref, dout, mask, p)};
      },
      {x});
}

TEST_CASE("dropout misuse names the op and the shapes") {
  Context ctx;
  Tensor x = Tensor::zeros({2, 3});
  check_throws_with([&] { dropout_forward(ctx, x, 1.5, 0, 0); },
                    {"dropout", "p = 1.5", "[2, 3]"});
  check_throws_with([&] { dropout_forward(ctx, x, -0.1, 0, 0); }, {"dropout", "p = -0.1"});
  check_throws_with([&] { dropout_forward(ctx, x, std::nan(""), 0, 0); }, {"dropout", "p = nan"});
  check_throws_with([&] { dropout_forward(ctx, Tensor::zeros({2}, DType::I32), 0.1, 0, 0); },
                    {"dropout", "x", "i32"});
  Tensor mask = Tensor::zeros({3, 2}, DType::U8);
  check_throws_with([&] { dropout_backward(ctx, x, mask, 0.1); },
                    {"dropout_backward", "[2, 3]", "[3, 2]"});
  check_throws_with(
      [&] {
        dropout_backward(ctx, x, Tensor::zeros({2, 3}), 0.1);
      },
      {"dropout_backward", "mask", "f32"});
  check_throws_with(
      [&] {
        dropout_backward(ctx, x, Tensor::zeros({2, 3}, DType::U8), 2.0);
      },
      {"dropout_backward", "p = 2"});
}
}
