// Optimizers against PyTorch's update rules written out in scalar double arithmetic, parameter
// groups, state save/load, and gradient clipping.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "autograd/optim.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

Variable param(const std::vector<float>& v, const std::string& name) {
  return Variable::parameter(Tensor::from_vector<float>(v, {int64_t(v.size())}), name);
}
void set_grad(const Variable& p, const std::vector<float>& g) {
  p.set_grad(Tensor::from_vector<float>(g, {int64_t(g.size())}));
}
void check_values(const Variable& p, const std::vector<double>& want, const std::string& what) {
  std::vector<float> got = p.value().to_vector<float>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(what << " element " << i);
    CHECK(double(got[i]) == doctest::Approx(want[i]).epsilon(2e-6));
  }
}

// torch.optim.AdamW for one scalar, in double.
struct AdamWRef {
  double lr, b1, b2, eps, wd, m = 0, v = 0;
  int t = 0;
  double step(double p, double g) {
    ++t;
    p *= 1 - lr * wd;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
    return p - lr / bc1 * m / (std::sqrt(v) / std::sqrt(bc2) + eps);
  }
};
// torch.optim.SGD.
struct SgdRef {
  double lr, mu, wd;
  bool nesterov;
  double dampening = 0, buf = 0;
  bool first = true;
  double step(double p, double g) {
    g += wd * p;
    if (mu > 0) {
      buf = first ? g : mu * buf + (1 - dampening) * g;
      first = false;
      g = nesterov ? g + mu * buf : buf;
    }
    return p - lr * g;
  }
};
// torch.optim.RMSprop (not centered).
struct RmspropRef {
  double lr, alpha, eps, wd, mu, sq = 0, buf = 0;
  double step(double p, double g) {
    g += wd * p;
    sq = alpha * sq + (1 - alpha) * g * g;
    const double avg = std::sqrt(sq) + eps;
    if (mu > 0) {
      buf = mu * buf + g / avg;
      return p - lr * buf;
    }
    return p - lr * g / avg;
  }
};

// Runs `steps` updates of opt on p with the gradients gs[step], checking every step against
// the scalar reference `ref` (one copy per element).
template <typename Ref>
void check_steps(Optimizer& opt, const Variable& p, std::vector<double> p0, Ref ref,
                 const std::vector<std::vector<float>>& gs, const std::string& what) {
  Context ctx(Backend::Ref);
  std::vector<Ref> refs(p0.size(), ref);
  for (size_t s = 0; s < gs.size(); ++s) {
    set_grad(p, gs[s]);
    opt.step(ctx);
    for (size_t i = 0; i < p0.size(); ++i) p0[i] = refs[i].step(p0[i], gs[s][i]);
    check_values(p, p0, what + " step " + std::to_string(s + 1));
  }
}

const std::vector<std::vector<float>> kGrads{{0.5f, 0.1f, -2.f}, {-0.25f, 0.3f, -1.f},
                                             {0.125f, 0.f, 4.f}};

}  // namespace

TEST_SUITE("autograd") {
TEST_CASE("optim: AdamW's first step, by hand") {
  // Step 1 of Adam is lr * sign(g) (m_hat = g, v_hat = g^2), after decay p *= 1 - lr * wd.
  Context ctx(Backend::Ref);
  Variable p = param({1.f, -2.f}, "w");
  AdamW opt({p}, AdamWOptions{0.1, 0.9, 0.999, 1e-8, 0.01});
  set_grad(p, {0.5f, 0.1f});
  opt.step(ctx);
  check_values(p, {0.999 - 0.1, -1.998 - 0.1}, "adamw step 1");
  CHECK(opt.param_steps(0) == 1);
}

TEST_CASE("optim: AdamW, SGD and RMSprop follow PyTorch's rules over three steps") {
  const std::vector<double> p0{1.0, -2.0, 0.5};
  {
    Variable p = param({1.f, -2.f, 0.5f}, "w");
    AdamW opt({p}, AdamWOptions{0.1, 0.9, 0.999, 1e-8, 0.01});
    check_steps(opt, p, p0, AdamWRef{0.1, 0.9, 0.999, 1e-8, 0.01}, kGrads, "adamw");
  }
  {
    Variable p = param({1.f, -2.f, 0.5f}, "w");
    SGD opt({p}, SgdOptions{0.1, 0.9, 0.0, false});
    check_steps(opt, p, p0, SgdRef{0.1, 0.9, 0.0, false}, kGrads, "sgd momentum");
  }
  {
    Variable p = param({1.f, -2.f, 0.5f}, "w");
    SGD opt({p}, SgdOptions{0.1, 0.9, 0.05, true});
    check_steps(opt, p, p0, SgdRef{0.1, 0.9, 0.05, true}, kGrads, "sgd nesterov + wd");
  }
  {
    Variable p = param({1.f, -2.f, 0.5f}, "w");
    SGD opt({p}, SgdOptions{0.1, 0.8, 0.0, false, 0.25});
    check_steps(opt, p, p0, SgdRef{0.1, 0.8, 0.0, false, 0.25}, kGrads, "sgd dampening");
  }
  {
    Variable p = param({1.f, -2.f, 0.5f}, "w");
    SGD opt({p}, SgdOptions{0.1});
    check_steps(opt, p, p0, SgdRef{0.1, 0.0, 0.0, false}, kGrads, "plain sgd");
  }
  {
    Variable p = param({1.f, -2.f, 0.5f}, "w");
    RMSprop opt({p}, RmspropOptions{0.01, 0.99, 1e-8, 0.0, 0.0});
    check_steps(opt, p, p0, RmspropRef{0.01, 0.99, 1e-8, 0.0, 0.0}, kGrads, "rmsprop");
  }
  {
    Variable p = param({1.f, -2.f, 0.5f}, "w");
    RMSprop opt({p}, RmspropOptions{0.01, 0.9, 1e-6, 0.1, 0.5});
    check_steps(opt, p, p0, RmspropRef{0.01, 0.9, 1e-6, 0.1, 0.5}, kGrads, "rmsprop momentum");
  }
}

TEST_CASE("optim: SGD's first step, by hand") {
  // buf = g on the first step, so p -= lr * g; the second step uses buf = mu * g1 + g2.
  Context ctx(Backend::Ref);
  Variable p = param({1.f, -2.f}, "w");
  SGD opt({p}, SgdOptions{0.5, 0.9});
  set_grad(p, {0.5f, 0.1f});
  opt.step(ctx);
  check_values(p, {0.75, -2.05}, "sgd step 1");
  set_grad(p, {1.f, 0.f});
  opt.step(ctx);
  check_values(p, {0.75 - 0.5 * (0.45 + 1), -2.05 - 0.5 * 0.09}, "sgd step 2");
}

TEST_CASE("optim: RMSprop's first step, by hand") {
  // sq = (1 - alpha) g^2, so p -= lr * g / (sqrt(1 - alpha) |g| + eps) = lr * sign(g) * 10.
  Context ctx(Backend::Ref);
  Variable p = param({1.f, -2.f}, "w");
  RMSprop opt({p}, RmspropOptions{0.01, 0.99, 1e-8});
  set_grad(p, {0.5f, -4.f});
  opt.step(ctx);
  check_values(p, {1 - 0.1, -2 + 0.1}, "rmsprop step 1");
}

TEST_CASE("optim: parameters without a gradient are skipped; zero_grad clears") {
  Context ctx(Backend::Ref);
  Variable a = param({1.f}, "a"), b = param({2.f}, "b");
  AdamW opt({a, b}, AdamWOptions{0.1});
  set_grad(a, {1.f});
  opt.step(ctx);
  CHECK(a.value().item() != 1.0);
  CHECK(b.value().item() == 2.0);
  CHECK(opt.param_steps(0) == 1);
  CHECK(opt.param_steps(1) == 0);
  opt.zero_grad();
  CHECK_FALSE(a.has_grad());
  opt.step(ctx);  // nothing to do
  CHECK(opt.param_steps(0) == 1);
}

TEST_CASE("optim: groups carry their own lr multiplier and weight decay") {
  Context ctx(Backend::Ref);
  std::vector<Variable> ps{param({1.f}, "encoder.dense.weight"), param({1.f}, "encoder.dense.bias"),
                           param({1.f}, "encoder.LayerNorm.weight"), param({1.f}, "out.layer_norm.gamma"),
                           param({1.f}, "head.weight")};
  CHECK_FALSE(is_no_decay_name("encoder.dense.weight"));
  CHECK(is_no_decay_name("encoder.dense.bias"));
  CHECK(is_no_decay_name("embeddings.LayerNorm.weight"));
  std::vector<ParamGroup> groups = split_decay_groups(ps, 0.5);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].weight_decay == 0.5);
  CHECK(groups[0].params.size() == 2);  // the two weights
  CHECK(groups[1].weight_decay == 0.0);
  CHECK(groups[1].params.size() == 3);
  groups[1].lr_scale = 0.5;
  // SGD without momentum: p -= lr * scale * (g + wd * p). With g = 1, lr = 0.1:
  SGD opt(groups, SgdOptions{0.1});
  for (const Variable& p : ps) set_grad(p, {1.f});
  opt.step(ctx);
  CHECK(ps[0].value().item() == doctest::Approx(1 - 0.1 * 1.5));   // decayed, full lr
  CHECK(ps[1].value().item() == doctest::Approx(1 - 0.05 * 1.0));  // no decay, half lr
  CHECK(ps[4].value().item() == doctest::Approx(1 - 0.1 * 1.5));
  opt.set_lr(0.2);
  CHECK(opt.lr() == 0.2);
}

TEST_CASE("optim: state saved and loaded reproduces the next step exactly") {
  Context ctx(Backend::Ref);
  auto make = [] { return std::vector<Variable>{param({1.f, 2.f}, "w"), param({-1.f}, "b")}; };
  std::vector<Variable> ps = make(), qs = make();
  AdamW a(ps, AdamWOptions{0.01}), b(qs, AdamWOptions{0.01});
  for (int s = 0; s < 3; ++s) {
    set_grad(ps[0], {0.3f * s, -1.f});
    if (s != 1) set_grad(ps[1], {0.7f});  // b skips a step: its own step count
    a.step(ctx);
    a.zero_grad();
  }
  NamedTensors state = a.state();
  CHECK(state.size() == 6);  // two params x (exp_avg, exp_avg_sq, step)
  for (size_t i = 0; i < 2; ++i) qs[i].set_value(ps[i].value().clone());
  b.load_state(state);
  CHECK(b.param_steps(0) == 3);
  CHECK(b.param_steps(1) == 2);
  set_grad(ps[0], {0.5f, 0.5f});
  set_grad(ps[1], {-0.5f});
  set_grad(qs[0], {0.5f, 0.5f});
  set_grad(qs[1], {-0.5f});
  a.step(ctx);
  b.step(ctx);
  for (size_t i = 0; i < 2; ++i)
    CHECK(ps[i].value().to_vector<float>() == qs[i].value().to_vector<float>());
  // Loading copies: changing the source afterwards does not reach b.
  state[0].second.fill_(123.0);
  CHECK(b.state()[0].second.to_vector<float>() != state[0].second.to_vector<float>());
}

TEST_CASE("optim: bad state and bad parameters are errors naming them") {
  Context ctx(Backend::Ref);
  Variable w = param({1.f, 2.f}, "w");
  AdamW opt({w});
  Tensor two = Tensor::zeros({2}), three = Tensor::zeros({3});
  Tensor step = Tensor::full({}, 1.0, DType::I64);
  check_throws_with([&] { opt.load_state({{"v.exp_avg", two}}); }, {"adamw", "v.exp_avg"});
  check_throws_with([&] { opt.load_state({{"w.exp_avg", three}}); },
                    {"adamw", "w.exp_avg", "[3]", "[2]"});
  check_throws_with([&] { opt.load_state({{"w.momentum_buffer", two}}); },
                    {"adamw", "momentum_buffer"});
  check_throws_with([&] { opt.load_state({{"w.exp_avg", two}, {"w.step", step}}); },
                    {"adamw", "w", "exp_avg_sq"});
  check_throws_with([&] { opt.load_state({{"w.exp_avg", two}, {"w.exp_avg_sq", two}}); },
                    {"adamw", "w", "no step"});

  Context ref(Backend::Ref);
  Variable nonleaf(Tensor::ones({2}));
  check_throws_with([&] { AdamW({w, w}); }, {"adamw", "w", "twice"});
  check_throws_with([&] { SGD({w, param({1.f, 2.f}, "w")}); }, {"sgd", "named w"});
  check_throws_with([&] { SGD({nonleaf}); }, {"sgd", "param0", "[2]", "not a leaf"});
  check_throws_with(
      [&] { RMSprop({Variable::parameter(Tensor::ones({2}, DType::F64), "d")}); },
      {"rmsprop", "d", "f32", "f64"});
  check_throws_with([&] { AdamW({w}, AdamWOptions{0.1, 1.0}); }, {"adamw", "betas"});
  check_throws_with([&] { opt.set_lr(-1); }, {"adamw", "-1"});
}

TEST_CASE("optim: clip_grad_norm scales to the global norm and returns the norm before") {
  Context ctx(Backend::Ref);
  Variable a = param({3.f, 0.f}, "a"), b = param({4.f, 12.f}, "b"), c = param({5.f}, "c");
  set_grad(a, {3.f, 0.f});
  set_grad(b, {4.f, 12.f});  // c has no gradient: skipped
  CHECK(grad_norm(ctx, {a, b, c}) == doctest::Approx(13.0));
  CHECK(clip_grad_norm(ctx, {a, b, c}, 20.0) == doctest::Approx(13.0));
  CHECK(a.grad().to_vector<float>() == std::vector<float>{3.f, 0.f});  // below: untouched
  CHECK(clip_grad_norm(ctx, {a, b, c}, 6.5) == doctest::Approx(13.0));
  const double coef = 6.5 / (13.0 + 1e-6);
  CHECK(a.grad().at({0}) == doctest::Approx(3 * coef));
  CHECK(b.grad().at({1}) == doctest::Approx(12 * coef));
  CHECK(grad_norm(ctx, {a, b, c}) == doctest::Approx(6.5));
  CHECK_FALSE(c.has_grad());
}

TEST_CASE("optim: clip_grad_norm reports a non-finite norm instead of hiding it") {
  Context ctx(Backend::Ref);
  Variable a = param({1.f, 1.f}, "a"), b = param({1.f}, "layer.bias");
  set_grad(a, {1.f, 2.f});
  set_grad(b, {std::numeric_limits<float>::infinity()});
  CHECK(std::isinf(clip_grad_norm(ctx, {a, b}, 1.0)));
  CHECK(a.grad().to_vector<float>() == std::vector<float>{1.f, 2.f});  // left as they were
  set_grad(b, {std::numeric_limits<float>::quiet_NaN()});
  CHECK(std::isnan(clip_grad_norm(ctx, {a, b}, 1.0)));
  check_throws_with([&] { clip_grad_norm(ctx, {a, b}, 1.0, true); },
                    {"clip_grad_norm", "layer.bias", "[1]", "not finite"});
  check_throws_with([&] { clip_grad_norm(ctx, {a}, 0.0); }, {"clip_grad_norm", "max_norm"});
}

TEST_CASE("optim: the gradient norm is accumulated in double") {
  // One gradient of 1e8 and 10^4 of 1: the squares sum to 1e16 + 1e4, the norm is
  // 1e8 + 5e-5. In f32 (or f32 partial sums) the ones vanish next to 1e16 and the norm is 1e8.
  Context ctx(Backend::Omp);
  Tensor g = Tensor::ones({10001});
  g.data<float>()[0] = 1e8f;
  Variable p = Variable::parameter(Tensor::zeros({10001}), "p");
  p.set_grad(g);
  CHECK(grad_norm(ctx, {p}) - 1e8 == doctest::Approx(5e-5).epsilon(1e-3));
}
}
