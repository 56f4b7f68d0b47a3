#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "kernels/loss.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// The losses are sums in double on both paths; the fast path's exponentials (vec::exp, relative
// error < 3e-7) and block order make up the difference.
constexpr Tol kLoss{1e-6, 1e-5};
// Gradients are compared with dloss = N (so each row's gradient is O(1), not O(1/N)): then the
// absolute floor 1e-6 is meaningful next to softmax values of 1/V.
constexpr Tol kGrad{1e-6, 1e-5};

// A random 0/1 mask over `rows` with at least one row selected.
Tensor random_row_mask(const Shape& rows, Rng& rng) {
  Tensor m = Tensor::empty(rows, DType::F32);
  rng.fill_bernoulli(m, 0.7f);
  m.data<float>()[0] = 1.f;
  return m;
}

// Targets in [0, V) with about one row in five set to ignore_index.
Tensor random_targets(int64_t N, int64_t V, Rng& rng, int64_t ignore_index = -100) {
  Tensor t = Tensor::empty({N}, DType::I64);
  for (int64_t n = 0; n < N; ++n)
    t.data<int64_t>()[n] = rng.below(5) == 0 ? ignore_index : int64_t(rng.below(uint64_t(V)));
  if (N) t.data<int64_t>()[0] = V - 1;  // at least one counted row
  return t;
}

std::vector<Shape> mse_shapes() {
  return {{1}, {7}, {13, 33}, {33, 769}, {3, 5, 7}, {2, 10007}, {kB, kT, kC}};
}

// [N, V]: odd sizes, then an MLM-like batch of 1024 rows over an 8000-word vocabulary.
std::vector<Shape> logit_shapes() {
  return {{1, 1}, {7, 13}, {13, 33}, {33, 769}, {3, 8000}, {1024, 8000}};
}

std::string name(const char* op, Backend be, const Shape& s, const std::string& extra = "") {
  return std::string(op) + " " + backend_name(be) + " " + shape_str(s) + extra;
}

double item(const Tensor& t) {
  REQUIRE(t.dim() == 0);
  return t.item();
}

}  // namespace

TEST_SUITE("kernels") {
TEST_CASE("mse matches the reference on every backend, with and without a row mask") {
  Context ref(Backend::Ref);
  Rng rng(31);
  for (const Shape& s : mse_shapes()) {
    Tensor pred = random_tensor(s, rng, DType::F32, -2.f, 2.f);
    Tensor target = random_tensor(s, rng, DType::F32, -2.f, 2.f);
    Shape rows(s.begin(), s.end() - 1);
    for (bool masked : {false, true}) {
      Tensor mask = masked ? random_row_mask(rows, rng) : Tensor();
      Tensor want = mse_forward(ref, pred, target, mask);
      const double dloss = double(pred.numel());  // O(1) gradients
      MseGrads gwant = mse_backward(ref, dloss, pred, target, mask);
      for (Backend be : fast_backends()) {
        Context ctx(be);
        for (bool strided : {false, true}) {
          const std::string what = name(
              "mse", be, s, std::string(masked ? " masked" : "") + (strided ? " strided" : ""));
          Tensor p = strided ? noncontiguous(pred) : pred,
                 t = strided ? noncontiguous(target) : target;
          KDNAS_CHECK_CLOSE(mse_forward(ctx, p, t, mask), want, kLoss, what);
          MseGrads g = mse_backward(ctx, dloss, p, t, mask);
          KDNAS_CHECK_CLOSE(g.dpred, gwant.dpred, kGrad, what + " dpred");
          KDNAS_CHECK_CLOSE(g.dtarget, gwant.dtarget, kGrad, what + " dtarget");
        }
      }
    }
  }
}

TEST_CASE("cross_entropy matches the reference on every backend, with ignored rows") {
  Context ref(Backend::Ref);
  Rng rng(32);
  for (const Shape& s : logit_shapes()) {
    Tensor logits = random_tensor(s, rng, DType::F32, -8.f, 8.f);
    Tensor targets = random_targets(s[0], s[1], rng);
    Tensor want = cross_entropy_forward(ref, logits, targets);
    const double dloss = double(s[0]);
    Tensor gwant = cross_entropy_backward(ref, dloss, logits, targets);
    for (Backend be : fast_backends()) {
      Context ctx(be);
      for (bool strided : {false, true}) {
        const std::string what = name("cross_entropy", be, s, strided ? " strided" : "");
        Tensor l = strided ? noncontiguous(logits) : logits;
        KDNAS_CHECK_CLOSE(cross_entropy_forward(ctx, l, targets), want, kLoss, what);
        KDNAS_CHECK_CLOSE(cross_entropy_backward(ctx, dloss, l, targets), gwant, kGrad,
                          what + " backward");
      }
    }
  }
}

TEST_CASE("kl_div matches the reference on every backend, temperatures and row masks") {
  Context ref(Backend::Ref);
  Rng rng(33);
  for (const Shape& s : logit_shapes()) {
    Tensor student = random_tensor(s, rng, DType::F32, -6.f, 6.f);
    Tensor teacher = random_tensor(s, rng, DType::F32, -6.f, 6.f);
    // Every temperature on the odd sizes; the large case once (its reference costs seconds).
    const std::vector<double> taus =
        s[0] >= 1024 ? std::vector<double>{2.0} : std::vector<double>{1.0, 2.0, 4.0};
    for (double tau : taus) {
      Tensor mask = tau == 2.0 ? random_row_mask({s[0]}, rng) : Tensor();
      Tensor want = kl_div_forward(ref, student, teacher, tau, mask);
      const double dloss = double(s[0]);
      Tensor gwant = kl_div_backward(ref, dloss, student, teacher, tau, mask);
      for (Backend be : fast_backends()) {
        Context ctx(be);
        for (bool strided : {false, true}) {
          const std::string what =
              name("kl_div", be, s,
                   " T=" + std::to_string(tau) + (mask.defined() ? " masked" : "") +
                       (strided ? " strided" : ""));
          Tensor st = strided ? noncontiguous(student) : student;
          Tensor te = strided ? noncontiguous(teacher) : teacher;
          KDNAS_CHECK_CLOSE(kl_div_forward(ctx, st, te, tau, mask), want, kLoss, what);
          KDNAS_CHECK_CLOSE(kl_div_backward(ctx, dloss, st, te, tau, mask), gwant, kGrad,
                            what + " backward");
        }
      }
    }
  }
}

TEST_CASE("loss reference values computed independently") {
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    INFO("backend " << backend_name(be));
    // mse: ((1-0)^2 + (2-4)^2) / 2 with the second row of three masked out.
    Tensor p = Tensor::from_vector<float>({1, 2, 9, 9}, {2, 2});
    Tensor t = Tensor::from_vector<float>({0, 4, 0, 0}, {2, 2});
    Tensor m = Tensor::from_vector<float>({1, 0}, {2});
    CHECK(item(mse_forward(ctx, p, t, m)) == doctest::Approx(2.5).epsilon(1e-7));
    MseGrads g = mse_backward(ctx, 1.0, p, t, m);
    CHECK(g.dpred.to_vector<float>() == std::vector<float>{1, -2, 0, 0});
    CHECK(g.dtarget.to_vector<float>() == std::vector<float>{-1, 2, 0, 0});
    // cross-entropy: rows [1, 2, 3] -> 2 and [1, 1, 1] -> 0 (Python, math.log/exp).
    Tensor logits = Tensor::from_vector<float>({1, 2, 3, 1, 1, 1}, {2, 3});
    Tensor targets = Tensor::from_vector<int64_t>({2, 0}, {2});
    CHECK(item(cross_entropy_forward(ctx, logits, targets)) ==
          doctest::Approx(0.753109126556245).epsilon(1e-6));
    std::vector<float> d = cross_entropy_backward(ctx, 1.0, logits, targets).to_vector<float>();
    const double row0[3] = {0.04501528658519023, 0.12236423552739883, -0.16737952211258905};
    for (int v = 0; v < 3; ++v) CHECK(d[size_t(v)] == doctest::Approx(row0[v]).epsilon(1e-6));
    // kl_div with T = 2: student [[1,2,3],[0,0,0]], teacher [[3,1,0],[1,0,-1]].
    Tensor s = Tensor::from_vector<float>({1, 2, 3, 0, 0, 0}, {2, 3});
    Tensor te = Tensor::from_vector<float>({3, 1, 0, 1, 0, -1}, {2, 3});
    CHECK(item(kl_div_forward(ctx, s, te, 2.0)) ==
          doctest::Approx(1.1937500682532467).epsilon(1e-6));
    std::vector<float> ds = kl_div_backward(ctx, 1.0, s, te, 2.0).to_vector<float>();
    const double ds0[3] = {-0.44220799598591487, 0.07597198809634931, 0.36623600788956556};
    for (int v = 0; v < 3; ++v) CHECK(ds[size_t(v)] == doctest::Approx(ds0[v]).epsilon(1e-6));
  }
}

TEST_CASE("cross_entropy ignore_index: ignored rows neither count nor get a gradient") {
  Rng rng(34);
  const int64_t N = 9, V = 11;
  Tensor logits = random_tensor({N, V}, rng, DType::F32, -3.f, 3.f);
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    INFO("backend " << backend_name(be));
    for (int64_t ignore : {int64_t(-100), int64_t(1)}) {  // 1: XLM-R's pad id, inside [0, V)
      Tensor targets =
          Tensor::from_vector<int64_t>({3, ignore, 0, 10, ignore, ignore, 7, 2, 5}, {N});
      // The same loss as the rows that count, alone.
      std::vector<int64_t> keep{0, 2, 3, 6, 7, 8};
      Tensor sub = Tensor::empty({int64_t(keep.size()), V});
      Tensor sub_t = Tensor::empty({int64_t(keep.size())}, DType::I64);
      for (size_t i = 0; i < keep.size(); ++i) {
        sub.select(0, int64_t(i)).copy_(logits.select(0, keep[i]));
        sub_t.data<int64_t>()[i] = targets.data<int64_t>()[keep[i]];
      }
      CHECK(item(cross_entropy_forward(ctx, logits, targets, ignore)) ==
            doctest::Approx(item(cross_entropy_forward(ctx, sub, sub_t, ignore))).epsilon(1e-6));
      Tensor d = cross_entropy_backward(ctx, 1.0, logits, targets, ignore);
      for (int64_t row : {int64_t(1), int64_t(4), int64_t(5)})
        CHECK(d.select(0, row).to_vector<float>() == std::vector<float>(size_t(V), 0.f));
      // Every row ignored: loss 0 (not NaN) and a zero gradient.
      Tensor all = Tensor::full({N}, double(ignore), DType::I64);
      CHECK(item(cross_entropy_forward(ctx, logits, all, ignore)) == 0.0);
      CHECK(cross_entropy_backward(ctx, 1.0, logits, all, ignore).to_vector<float>() ==
            std::vector<float>(size_t(N * V), 0.f));
    }
  }
}

TEST_CASE("cross_entropy and kl_div are stable for large logits (the max is subtracted)") {
  Rng rng(35);
  Tensor x = random_tensor({4, 50}, rng, DType::F32, -4.f, 4.f);
  Tensor y = random_tensor({4, 50}, rng, DType::F32, -4.f, 4.f);
  // Shifted by +-1000: e^1000 overflows even double unless the row maximum is subtracted.
  Tensor xs = Tensor::empty(x.shape()), ys = Tensor::empty(y.shape());
  for (int64_t i = 0; i < x.numel(); ++i) {
    xs.data<float>()[i] = x.data<float>()[i] + 1000.f;
    ys.data<float>()[i] = y.data<float>()[i] - 1000.f;
  }
  Tensor targets = random_targets(4, 50, rng);
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    INFO("backend " << backend_name(be));
    // Softmax is shift-invariant; the shifted inputs lose only the digits f32 cannot hold.
    const double ce = item(cross_entropy_forward(ctx, xs, targets));
    CHECK(std::isfinite(ce));
    CHECK(ce == doctest::Approx(item(cross_entropy_forward(ctx, x, targets))).epsilon(1e-4));
    const double kl = item(kl_div_forward(ctx, xs, ys, 1.0));
    CHECK(std::isfinite(kl));
    CHECK(kl == doctest::Approx(item(kl_div_forward(ctx, x, y, 1.0))).epsilon(1e-4));
    std::vector<float> g = kl_div_backward(ctx, 1.0, xs, ys, 1.0).to_vector<float>();
    for (float v : g) REQUIRE(std::isfinite(v));
  }
}

TEST_CASE("loss results are the same for 1 and 2 threads") {
  Rng rng(36);
  Tensor a = random_tensor({300, 700}, rng), b = random_tensor({300, 700}, rng);
  Tensor targets = random_targets(300, 700, rng);
  Tensor mask = random_row_mask({300}, rng);
  std::vector<float> got[2];
  for (int threads : {1, 2}) {
    Context ctx(Backend::Omp, threads);
    got[threads - 1] = {float(item(mse_forward(ctx, a, b, mask))),
                        float(item(cross_entropy_forward(ctx, a, targets))),
                        float(item(kl_div_forward(ctx, a, b, 2.0, mask)))};
  }
  CHECK(std::memcmp(got[0].data(), got[1].data(), 3 * sizeof(float)) == 0);
}

TEST_CASE("losses: numerical gradients in double") {
  Context ref(Backend::Ref);
  Rng rng(37);
  auto scalar_w = [](const Tensor& dout) { return dout.item(); };
  Tensor pred = random_tensor({3, 4, 5}, rng, DType::F64),
         target = random_tensor({3, 4, 5}, rng, DType::F64);
  Tensor mask = Tensor::from_vector<float>({1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1}, {3, 4});
  for (bool masked : {false, true}) {
    Tensor m = masked ? mask : Tensor();
    gradcheck(
        masked ? "mse masked" : "mse",
        [&](const std::vector<Tensor>& in) { return mse_forward(ref, in[0], in[1], m); },
        [&](const std::vector<Tensor>& in, const Tensor& dout) {
          MseGrads g = mse_backward(ref, scalar_w(dout), in[0], in[1], m);
          return std::vector<Tensor>{g.dpred, g.dtarget};
        },
        {pred, target});
  }
  Tensor logits = random_tensor({5, 7}, rng, DType::F64, -3.f, 3.f);
  Tensor targets = Tensor::from_vector<int64_t>({6, -100, 0, 3, 3}, {5});
  gradcheck(
      "cross_entropy",
      [&](const std::vector<Tensor>& in) { return cross_entropy_forward(ref, in[0], targets); },
      [&](const std::vector<Tensor>& in, const Tensor& dout) {
        return std::vector<Tensor>{cross_entropy_backward(ref, scalar_w(dout), in[0], targets)};
      },
      {logits});
  Tensor teacher = random_tensor({5, 7}, rng, DType::F64, -3.f, 3.f);
  Tensor kl_mask = Tensor::from_vector<double>({1, 1, 0, 1, 0}, {5});
  for (double tau : {1.0, 2.5}) {
    gradcheck(
        "kl_div T=" + std::to_string(tau),
        [&](const std::vector<Tensor>& in) {
          return kl_div_forward(ref, in[0], teacher, tau, kl_mask);
        },
        [&](const std::vector<Tensor>& in, const Tensor& dout) {
          return std::vector<Tensor>{
              kl_div_backward(ref, scalar_w(dout), in[0], teacher, tau, kl_mask)};
        },
        {logits});
  }
}

TEST_CASE("loss misuse names the op, the values and the shapes") {
  Context ctx;
  Tensor logits = Tensor::zeros({4, 10});
  check_throws_with([&] { cross_entropy_forward(ctx, logits, Tensor::zeros({5}, DType::I64)); },
                    {"cross_entropy", "targets is [5]", "[4, 10]"});
  Tensor bad = Tensor::from_vector<int64_t>({0, 1, 2, 12}, {4});
  check_throws_with([&] { cross_entropy_forward(ctx, logits, bad); },
                    {"cross_entropy", "target 12", "row 3", "V = 10"});
  check_throws_with([&] { cross_entropy_backward(ctx, 1.0, logits, bad); },
                    {"cross_entropy_backward", "target 12", "row 3"});
  check_throws_with([&] { cross_entropy_forward(ctx, logits, Tensor::zeros({4})); },
                    {"cross_entropy", "targets", "f32"});
  check_throws_with(
      [&] {
        cross_entropy_forward(ctx, Tensor::zeros({2, 4, 10}), bad);
      },
      {"cross_entropy", "logits", "2 dims", "[2, 4, 10]"});
  check_throws_with(
      [&] {
        cross_entropy_forward(ctx, Tensor::zeros({4, 10}, DType::I32), bad);
      },
      {"cross_entropy", "logits", "i32"});

  Tensor a = Tensor::zeros({2, 3, 4});
  check_throws_with(
      [&] {
        mse_forward(ctx, a, Tensor::zeros({2, 4, 3}));
      },
      {"mse", "[2, 3, 4]", "[2, 4, 3]"});
  check_throws_with(
      [&] {
        mse_backward(ctx, 1.0, a, Tensor::zeros({2, 3, 4}, DType::F64));
      },
      {"mse_backward", "target", "f64"});
  check_throws_with(
      [&] {
        mse_forward(ctx, a, a, Tensor::ones({2, 4}));
      },
      {"mse", "row_mask is [2, 4]", "[2, 3, 4]", "need [2, 3]"});
  Tensor half = Tensor::full({2, 3}, 0.5);
  check_throws_with([&] { mse_forward(ctx, a, a, half); },
                    {"mse", "row_mask value 0.5", "not 0 or 1"});
  check_throws_with(
      [&] {
        mse_forward(ctx, a, a, Tensor::zeros({2, 3}));
      },
      {"mse", "selects no rows", "[2, 3, 4]"});
  check_throws_with([&] { mse_forward(ctx, Tensor::scalar(1.0), Tensor::scalar(1.0)); },
                    {"mse", "at least 1 dim"});

  check_throws_with(
      [&] {
        kl_div_forward(ctx, logits, Tensor::zeros({4, 11}), 1.0);
      },
      {"kl_div", "[4, 10]", "[4, 11]"});
  check_throws_with([&] { kl_div_forward(ctx, logits, logits, 0.0); },
                    {"kl_div", "temperature", "0"});
  check_throws_with([&] { kl_div_backward(ctx, 1.0, logits, logits, -1.0); },
                    {"kl_div_backward", "temperature"});
  check_throws_with([&] { kl_div_forward(ctx, logits, logits, 1.0, Tensor::zeros({4})); },
                    {"kl_div", "selects no rows"});
  check_throws_with([&] { kl_div_backward(ctx, 1.0, logits, logits, 1.0, Tensor::ones({3})); },
                    {"kl_div_backward", "row_mask is [3]", "[4, 10]"});
}
}
