#include <doctest/doctest.h>

#include <functional>

#include "kernels/optim.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// One optimizer configuration: how many state tensors it keeps and how it updates.
struct Config {
  std::string name;
  int slots;
  std::function<void(Context&, const Tensor& p, const Tensor& g, const std::vector<Tensor>& s,
                     int64_t step)>
      update;
};

std::vector<Config> configs() {
  return {
      {"adamw", 2,
       [](Context& c, const Tensor& p, const Tensor& g, const std::vector<Tensor>& s, int64_t t) {
         adamw_update(c, p, g, s[0], s[1], AdamWHyper{1e-3, 0.9, 0.999, 1e-8, 0.01}, t);
       }},
      {"adamw large lr, no decay", 2,
       [](Context& c, const Tensor& p, const Tensor& g, const std::vector<Tensor>& s, int64_t t) {
         adamw_update(c, p, g, s[0], s[1], AdamWHyper{0.5, 0.8, 0.99, 1e-6, 0.0}, t);
       }},
      {"sgd", 0,
       [](Context& c, const Tensor& p, const Tensor& g, const std::vector<Tensor>&, int64_t t) {
         sgd_update(c, p, g, Tensor(), SgdHyper{0.1, 0.0, 0.01}, t);
       }},
      {"sgd momentum dampening", 1,
       [](Context& c, const Tensor& p, const Tensor& g, const std::vector<Tensor>& s, int64_t t) {
         sgd_update(c, p, g, s[0], SgdHyper{0.1, 0.9, 0.01, false, 0.1}, t);
       }},
      {"sgd nesterov", 1,
       [](Context& c, const Tensor& p, const Tensor& g, const std::vector<Tensor>& s, int64_t t) {
         sgd_update(c, p, g, s[0], SgdHyper{0.1, 0.9, 0.0, true}, t);
       }},
      {"rmsprop", 1,
       [](Context& c, const Tensor& p, const Tensor& g, const std::vector<Tensor>& s, int64_t t) {
         rmsprop_update(c, p, g, s[0], Tensor(), RmspropHyper{1e-2, 0.99, 1e-8, 0.0, 0.0});
       }},
      {"rmsprop momentum decay", 2,
       [](Context& c, const Tensor& p, const Tensor& g, const std::vector<Tensor>& s, int64_t t) {
         rmsprop_update(c, p, g, s[0], s[1], RmspropHyper{1e-2, 0.9, 1e-6, 0.1, 0.5});
       }},
  };
}

// |g| in [0.25, 2) with a random sign. With weight decay, RMSprop divides d = g + wd * p by
// about |d|: where g nearly cancels wd * p, that quotient turns the one-ulp difference of a
// fused multiply-add (the fast kernels are compiled with FMA, the reference for baseline x86-64)
// into a large relative error. Real, but a property of the rule, not of the kernels.
Tensor away_from_zero(Tensor g, Rng& rng) {
  float* d = g.data<float>();
  for (int64_t i = 0; i < g.numel(); ++i) d[i] = rng.below(2) ? d[i] : -d[i];
  return g;
}

std::vector<Tensor> zero_state(int slots, const Shape& s, DType dt = DType::F32) {
  std::vector<Tensor> v;
  for (int i = 0; i < slots; ++i) v.push_back(Tensor::zeros(s, dt));
  return v;
}

// The two-step example: p = [1, -2], gradients [0.5, 0.1] then [-0.25, 0.3]; the expected
// values were computed in Python (double) from PyTorch's update rules.
const std::vector<double> kP0{1.0, -2.0};
const std::vector<std::vector<double>> kG{{0.5, 0.1}, {-0.25, 0.3}};

void check_vec(const Tensor& t, const std::vector<double>& want, double eps,
               const std::string& what) {
  std::vector<double> got = t.to_vector<double>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(what << " element " << i);
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(eps).scale(1.0));
  }
}

}  // namespace

TEST_SUITE("kernels") {
TEST_CASE("optimizer updates match the reference on every backend over three steps") {
  Context ref(Backend::Ref);
  Rng rng(41);
  std::vector<Shape> shapes;
  for (int64_t n : kOddSizes) shapes.push_back({n});
  shapes.push_back({kC, kC});  // one attention projection of XLM-R: 590K parameters
  for (const Config& cfg : configs()) {
    for (const Shape& s : shapes) {
      Tensor p0 = random_tensor(s, rng);
      std::vector<Tensor> grads;
      for (int k = 0; k < 3; ++k)
        grads.push_back(away_from_zero(random_tensor(s, rng, DType::F32, 0.25f, 2.f), rng));
      Tensor p_ref = p0.clone();
      std::vector<Tensor> s_ref = zero_state(cfg.slots, s);
      for (Backend be : fast_backends()) {
        Context ctx(be);
        Tensor p = p0.clone();
        std::vector<Tensor> st = zero_state(cfg.slots, s);
        p_ref = p0.clone();
        s_ref = zero_state(cfg.slots, s);
        for (int64_t step = 1; step <= 3; ++step) {
          const Tensor& g = grads[size_t(step - 1)];
          cfg.update(ref, p_ref, g, s_ref, step);
          cfg.update(ctx, p, step == 2 ? noncontiguous(g) : g, st, step);  // any grad layout
          const std::string what = cfg.name + " " + backend_name(be) + " " + shape_str(s) +
                                   " step " + std::to_string(step);
          KDNAS_CHECK_CLOSE(p, p_ref, kF32, what + " param");
          for (int k = 0; k < cfg.slots; ++k)
            KDNAS_CHECK_CLOSE(st[size_t(k)], s_ref[size_t(k)], kF32,
                              what + " state " + std::to_string(k));
        }
      }
    }
  }
}

TEST_CASE("optimizer updates: two steps computed by hand (PyTorch's rules in double)") {
  struct Want {
    std::vector<double> p, s0, s1;
  };
  for (Backend be : compiled_cpu_backends()) {
    for (DType dt : {DType::F32, DType::F64}) {
      if (dt == DType::F64 && be != Backend::Ref) continue;
      Context ctx(be);
      // f32 rounds the hyperparameters and every intermediate; f64 (Ref) must agree closely.
      const double eps = dt == DType::F32 ? 2e-6 : 1e-12;
      const std::string tag = std::string(backend_name(be)) + " " + dtype_name(dt);
      auto run2 = [&](const std::string& what, int slots, auto update, const Want(&want)[2]) {
        Tensor p = Tensor::from_vector<double>(kP0, {2}).to(dt);
        std::vector<Tensor> s = zero_state(slots, {2}, dt);
        for (int64_t step = 1; step <= 2; ++step) {
          Tensor g = Tensor::from_vector<double>(kG[size_t(step - 1)], {2}).to(dt);
          update(p, g, s, step);
          const Want& w = want[step - 1];
          const std::string at = what + " " + tag + " step " + std::to_string(step);
          check_vec(p, w.p, eps, at + " param");
          if (slots > 0) check_vec(s[0], w.s0, eps, at + " state 0");
          if (slots > 1) check_vec(s[1], w.s1, eps, at + " state 1");
        }
      };
      const Want adamw[2] = {
          {{0.899000002, -2.097999990000001}, {0.05, 0.01}, {0.00025, 1e-05}},
          {{0.8714672987058463, -2.1876800978044098}, {0.02, 0.039}, {0.00031225, 9.999e-05}}};
      run2(
          "adamw", 2,
          [&](const Tensor& p, const Tensor& g, std::vector<Tensor>& s, int64_t t) {
            adamw_update(ctx, p, g, s[0], s[1], AdamWHyper{0.1, 0.9, 0.999, 1e-8, 0.01}, t);
          },
          adamw);
      const Want sgd[2] = {{{0.945, -2.0}, {0.55, 0.0}, {}},
                           {{0.9157749999999999, -2.02}, {0.29225, 0.2}, {}}};
      run2(
          "sgd momentum", 1,
          [&](const Tensor& p, const Tensor& g, std::vector<Tensor>& s, int64_t t) {
            sgd_update(ctx, p, g, s[0], SgdHyper{0.1, 0.9, 0.05, false}, t);
          },
          sgd);
      const Want nesterov[2] = {{{0.8955, -2.0}, {0.55, 0.0}, {}},
                                {{0.88994275, -2.038}, {0.289775, 0.2}, {}}};
      run2(
          "sgd nesterov", 1,
          [&](const Tensor& p, const Tensor& g, std::vector<Tensor>& s, int64_t t) {
            sgd_update(ctx, p, g, s[0], SgdHyper{0.1, 0.9, 0.05, true}, t);
          },
          nesterov);
      const Want rms[2] = {{{0.9683773900641045, -1.9683782233666944},
                            {0.03599999999999999, 0.0009999999999999998},
                            {3.162260993589553, -3.1621776633305574}},
                           {{0.960782793167747, -1.9758435865397252},
                            {0.034745867819266835, 0.0019642434900240566},
                            {0.7594596896357542, 0.7465363173030872}}};
      run2(
          "rmsprop", 2,
          [&](const Tensor& p, const Tensor& g, std::vector<Tensor>& s, int64_t t) {
            rmsprop_update(ctx, p, g, s[0], s[1], RmspropHyper{0.01, 0.9, 1e-6, 0.1, 0.5});
          },
          rms);
    }
  }
}

TEST_CASE("optimizer update misuse names the op and the shapes") {
  Context ctx;
  Tensor p = Tensor::zeros({2, 3}), g = Tensor::zeros({2, 3}), m = Tensor::zeros({2, 3});
  const AdamWHyper h;
  check_throws_with(
      [&] {
        adamw_update(ctx, p, Tensor::zeros({3, 2}), m, m, h, 1);
      },
      {"adamw_update", "grad is [3, 2]", "param is [2, 3]"});
  check_throws_with([&] { adamw_update(ctx, p, g, m, Tensor::zeros({6}), h, 1); },
                    {"adamw_update", "v is [6]", "[2, 3]"});
  check_throws_with([&] { adamw_update(ctx, p, g.to(DType::F64), m, m, h, 1); },
                    {"adamw_update", "grad", "f64"});
  check_throws_with([&] { adamw_update(ctx, Tensor::zeros({6}, DType::I32), g, m, m, h, 1); },
                    {"adamw_update", "param", "i32"});
  Tensor pt = Tensor::zeros({3, 2}).transpose(0, 1);
  check_throws_with([&] { adamw_update(ctx, pt, g, m, m, h, 1); },
                    {"adamw_update", "param [2, 3]", "contiguous"});
  check_throws_with([&] { adamw_update(ctx, p, g, pt, m, h, 1); },
                    {"adamw_update", "m [2, 3]", "contiguous"});
  check_throws_with([&] { adamw_update(ctx, p, g, m, m, h, 0); }, {"adamw_update", "step", "0"});
  check_throws_with(
      [&] {
        adamw_update(ctx, p, g, m, m, AdamWHyper{1e-3, 1.0}, 1);
      },
      {"adamw_update", "beta1", "[0, 1)"});
  check_throws_with([&] { adamw_update(ctx, p, g, m, m, AdamWHyper{-1.0}, 1); },
                    {"adamw_update", "lr", "-1"});
  check_throws_with(
      [&] {
        sgd_update(ctx, p, g, Tensor(), SgdHyper{0.1, 0.9}, 1);
      },
      {"sgd_update", "momentum_buf", "[2, 3]"});
  check_throws_with(
      [&] {
        sgd_update(ctx, p, g, Tensor::zeros({2}), SgdHyper{0.1, 0.9}, 1);
      },
      {"sgd_update", "momentum_buf is [2]", "[2, 3]"});
  check_throws_with(
      [&] {
        sgd_update(ctx, p, g, Tensor(), SgdHyper{0.1, 0.0, 0.0, true}, 1);
      },
      {"sgd_update", "nesterov"});
  check_throws_with(
      [&] {
        rmsprop_update(ctx, p, g, Tensor::zeros({2, 2}), Tensor(), {});
      },
      {"rmsprop_update", "square_avg is [2, 2]", "[2, 3]"});
  check_throws_with(
      [&] {
        rmsprop_update(ctx, p, g, m, Tensor(), RmspropHyper{0.01, 0.99, 1e-8, 0, 0.9});
      },
      {"rmsprop_update", "momentum_buf", "[2, 3]"});
  check_throws_with(
      [&] {
        rmsprop_update(ctx, p, g, m, Tensor(), RmspropHyper{0.01, 1.5});
      },
      {"rmsprop_update", "alpha", "1.5"});
}
}
