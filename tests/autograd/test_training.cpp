// End to end: a small MLP learns a known function with each optimizer. Fixed seeds and a fixed
// number of steps, so each run is deterministic; the bounds leave a wide margin over the losses
// measured when the test was written (quoted next to each bound).
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/functions.h"
#include "autograd/optim.h"
#include "autograd/schedule.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// y = sin(x1) + x2^2 / 2 on [-2, 2]^2: N points, fixed seed.
constexpr int64_t kN = 256;
struct Data {
  Tensor x, y;  // [N, 2], [N, 1]
};
Data make_data() {
  Rng rng(2024);
  Data d{random_tensor({kN, 2}, rng, DType::F32, -2.f, 2.f), Tensor::empty({kN, 1})};
  const float* x = d.x.data<float>();
  for (int64_t i = 0; i < kN; ++i)
    d.y.data<float>()[i] = std::sin(x[2 * i]) + 0.5f * x[2 * i + 1] * x[2 * i + 1];
  return d;
}

// 2 -> H -> H -> 1 with LayerNorm + GELU after the first layer and tanh after the second;
// PyTorch's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
struct Mlp {
  static constexpr int64_t H = 32;
  std::vector<Variable> params;
  explicit Mlp(uint64_t seed) {
    Rng rng(seed);
    auto uniform = [&](const Shape& s, int64_t fan_in, const char* name) {
      const float b = 1.f / std::sqrt(float(fan_in));
      params.push_back(Variable::parameter(random_tensor(s, rng, DType::F32, -b, b), name));
    };
    uniform({H, 2}, 2, "fc1.weight");
    uniform({H}, 2, "fc1.bias");
    params.push_back(Variable::parameter(Tensor::ones({H}), "ln.LayerNorm.weight"));
    params.push_back(Variable::parameter(Tensor::zeros({H}), "ln.LayerNorm.bias"));
    uniform({H, H}, H, "fc2.weight");
    uniform({H}, H, "fc2.bias");
    uniform({1, H}, H, "out.weight");
    uniform({1}, H, "out.bias");
  }
  Variable forward(Context& ctx, const Variable& x) const {
    const auto& p = params;
    Variable h = gelu(ctx, layer_norm(ctx, linear(ctx, x, p[0], p[1]), p[2], p[3], 1e-5));
    h = tanh(ctx, linear(ctx, h, p[4], p[5]));
    return linear(ctx, h, p[6], p[7]);
  }
};

struct Run {
  double first_loss, last_loss;
};

// Full-batch training for `steps` updates; lr follows `sched`; gradients clipped at 1.
Run train(Optimizer& opt, const Mlp& m, const LrSchedule& sched, int steps) {
  Context ctx;  // the fastest backend of this build, f32: the path training really takes
  const Data d = make_data();
  Variable x(d.x), y(d.y);
  Run r{0, 0};
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    Variable loss = mse(ctx, m.forward(ctx, x), y);
    const double l = loss.value().item();
    REQUIRE(std::isfinite(l));
    if (s == 0) r.first_loss = l;
    loss.backward();
    clip_grad_norm(ctx, m.params, 1.0);
    opt.set_lr(sched.lr_at(s));
    opt.step(ctx);
  }
  NoGradGuard no_grad;
  r.last_loss = mse(ctx, m.forward(ctx, x), y).value().item();
  return r;
}

}  // namespace

TEST_SUITE("autograd") {
TEST_CASE("training: an MLP learns sin(x1) + x2^2/2 with AdamW") {
  Mlp m(1);
  AdamW opt(split_decay_groups(m.params, 0.01), AdamWOptions{});
  Run r = train(opt, m, LrSchedule(1e-2, 20, 300, Decay::Cosine, 1e-4), 300);
  MESSAGE("adamw: loss " << r.first_loss << " -> " << r.last_loss);
  CHECK(r.first_loss > 0.5);  // measured: 1.66 (untrained)
  CHECK(r.last_loss < 0.01);  // measured: 0.0018
}

TEST_CASE("training: an MLP learns sin(x1) + x2^2/2 with SGD + momentum") {
  Mlp m(1);
  SGD opt(m.params, SgdOptions{0.0, 0.9});
  Run r = train(opt, m, LrSchedule(5e-2, 20, 300, Decay::Linear), 300);
  MESSAGE("sgd: loss " << r.first_loss << " -> " << r.last_loss);
  CHECK(r.last_loss < 0.02);  // measured: 0.0021
}

TEST_CASE("training: an MLP learns sin(x1) + x2^2/2 with RMSprop") {
  Mlp m(1);
  RMSprop opt(m.params, RmspropOptions{});
  Run r = train(opt, m, LrSchedule(3e-3, 20, 300, Decay::Cosine), 300);
  MESSAGE("rmsprop: loss " << r.first_loss << " -> " << r.last_loss);
  CHECK(r.last_loss < 0.02);  // measured: 0.0051
}
}
