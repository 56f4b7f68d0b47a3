// The tape itself: accumulation, zero_grad, grad mode, freeing, what the graph keeps alive.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <thread>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "tests/autograd/autograd_check.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

TEST_SUITE("autograd") {
TEST_CASE("autograd: a variable used twice sums both gradients") {
  Context ctx(Backend::Ref);
  Rng rng(1);
  Variable x = param64({2, 3}, rng);
  // L = sum(x * x + tanh(x)): dL/dx = 2x + 1 - tanh(x)^2, three paths into x.
  Variable y = add(ctx, mul(ctx, x, x), tanh(ctx, x));
  sum_all(ctx, y).backward();
  std::vector<double> xv = x.value().to_vector<double>(), g = x.grad().to_vector<double>();
  for (size_t i = 0; i < xv.size(); ++i) {
    const double t = std::tanh(xv[i]);
    CHECK(g[i] == doctest::Approx(2 * xv[i] + 1 - t * t).epsilon(1e-12));
  }
  check_autograd(
      "x*x + tanh(x)", ctx,
      [&](const std::vector<Variable>& in) {
        return add(ctx, mul(ctx, in[0], in[0]), tanh(ctx, in[0]));
      },
      {x});
}

TEST_CASE("autograd: gradients accumulate over backward calls until zero_grad") {
  Context ctx(Backend::Ref);
  Variable x = Variable::parameter(Tensor::from_vector<double>({1, 2, 3}, {3}), "x");
  CHECK_FALSE(x.has_grad());
  auto loss = [&] { return sum_all(ctx, scale(ctx, x, 3.0)); };
  loss().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3, 3, 3});
  loss().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{6, 6, 6});
  x.zero_grad();
  CHECK_FALSE(x.has_grad());
  loss().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3, 3, 3});
}

TEST_CASE("autograd: NoGradGuard records nothing, nests, and is per thread") {
  Context ctx(Backend::Ref);
  Variable x = Variable::parameter(Tensor::ones({4}, DType::F64), "x");
  CHECK(grad_enabled());
  {
    NoGradGuard outer;
    CHECK_FALSE(grad_enabled());
    Variable y = gelu(ctx, x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    CHECK(y.graph_size() == 0);
    {
      NoGradGuard inner;
      CHECK_FALSE(grad_enabled());
    }
    CHECK_FALSE(grad_enabled());  // the inner guard restores "off", not "on"
    bool other_thread_enabled = false;
    std::thread([&] { other_thread_enabled = grad_enabled(); }).join();
    CHECK(other_thread_enabled);
    check_throws_with([&] { sum_all(ctx, y).backward(); }, {"backward", "does not require"});
  }
  CHECK(grad_enabled());
  Variable y = gelu(ctx, x);
  CHECK(y.requires_grad());
  CHECK(y.graph_size() == 2);
}

TEST_CASE("autograd: backward needs a one-element loss and names the shape") {
  Context ctx(Backend::Ref);
  Variable x = Variable::parameter(Tensor::ones({2, 3}, DType::F64), "x");
  Variable y = relu(ctx, x);
  check_throws_with([&] { y.backward(); }, {"backward", "[2, 3]"});
  check_throws_with([&] { y.backward(Tensor::ones({3, 2}, DType::F64)); },
                    {"backward", "[3, 2]", "[2, 3]"});
  // With an explicit dL/dy it works: relu'(1) = 1.
  y.backward(Tensor::full({2, 3}, 0.5, DType::F64));
  CHECK(x.grad().to_vector<double>() == std::vector<double>(6, 0.5));
}

TEST_CASE("autograd: the graph is freed by backward and cannot be run twice") {
  Context ctx(Backend::Ref);
  Variable x = Variable::parameter(Tensor::ones({3}, DType::F64), "x");
  Variable h = tanh(ctx, x);
  Variable loss = sum_all(ctx, h);
  CHECK(loss.graph_size() == 4);  // loss (a sum) <- reshape <- tanh <- x
  loss.backward();
  CHECK(loss.graph_size() == 1);  // edges dropped
  check_throws_with([&] { loss.backward(); }, {"backward", "already freed"});
  // A new graph on top of a freed intermediate cannot reach x either.
  check_throws_with([&] { sum_all(ctx, h).backward(); }, {"already freed", "tanh"});
  // The leaf is intact and a fresh forward pass works.
  sum_all(ctx, tanh(ctx, x)).backward();
  CHECK(x.grad().at({0}) == doctest::Approx(2 * (1 - std::pow(std::tanh(1.0), 2))));
}

TEST_CASE("autograd: the graph keeps only the tensors a backward needs") {
  Context ctx(Backend::Ref);
  Variable x = Variable::parameter(Tensor::ones({64}, DType::F64), "x");
  Variable c(Tensor::full({64}, 2.0, DType::F64));
  // add's backward needs no values and tanh's needs only its output: once the caller drops h,
  // its bytes are gone although the graph still runs through it.
  Variable h = add(ctx, x, c);
  std::weak_ptr<Storage> h_bytes = h.value().storage();
  Variable y = tanh(ctx, h);
  h = Variable();
  CHECK(h_bytes.expired());
  // gelu's backward needs its input: that one stays alive.
  Variable h2 = add(ctx, x, c);
  std::weak_ptr<Storage> h2_bytes = h2.value().storage();
  Variable y2 = gelu(ctx, h2);
  h2 = Variable();
  CHECK_FALSE(h2_bytes.expired());
  sum_all(ctx, add(ctx, y, y2)).backward();
  CHECK(h2_bytes.expired());  // backward freed the closure that held it
  CHECK(x.has_grad());
}

TEST_CASE("autograd: a leaf's gradient is its own tensor, never a view of another") {
  Context ctx(Backend::Ref);
  Variable x = Variable::parameter(Tensor::ones({2, 3}, DType::F64), "x");
  Variable y = Variable::parameter(Tensor::ones({2, 3}, DType::F64), "y");
  // reshape's backward hands back a view of its dout, and a + b gives both inputs the same
  // incoming gradient: the leaves must still own separate, contiguous gradients, since
  // optimizers and clip_grad_norm write them in place.
  Variable s = add(ctx, reshape(ctx, x, {6}), reshape(ctx, y, {6}));
  s.backward(Tensor::ones({6}, DType::F64));
  CHECK(x.grad().is_contiguous());
  CHECK(x.grad().storage().use_count() == 1);
  CHECK(y.grad().storage().use_count() == 1);
  CHECK(x.grad().storage() != y.grad().storage());
}

TEST_CASE("autograd: leaves, names and misuse messages") {
  Context ctx(Backend::Ref);
  Variable w = Variable::parameter(Tensor::ones({2}, DType::F64), "encoder.w");
  CHECK(w.is_leaf());
  CHECK(w.requires_grad());
  CHECK(w.name() == "encoder.w");
  Variable y = scale(ctx, w, 2.0);
  CHECK_FALSE(y.is_leaf());
  check_throws_with([&] { y.set_requires_grad(false); }, {"set_requires_grad", "scale"});
  check_throws_with([&] { y.set_value(Tensor::ones({2}, DType::F64)); }, {"set_value"});
  check_throws_with([&] { w.set_value(Tensor::ones({3}, DType::F64)); },
                    {"set_value", "encoder.w", "[3]", "[2]"});
  check_throws_with([&] { w.set_grad(Tensor::ones({2, 1}, DType::F64)); },
                    {"set_grad", "encoder.w", "[2, 1]", "[2]"});
  check_throws_with([&] { Variable::parameter(Tensor::zeros({3}, DType::I64), "ids"); },
                    {"ids", "i64"});
  check_throws_with([&] { gelu(ctx, Variable()); }, {"gelu", "x", "undefined"});
  check_throws_with([&] { add(ctx, w, Variable()); }, {"add", "b", "undefined"});
  // A constant leaf can be made trainable and back.
  Variable c(Tensor::ones({2}, DType::F64));
  CHECK_FALSE(c.requires_grad());
  c.set_requires_grad(true);
  sum_all(ctx, mul(ctx, c, w)).backward();
  CHECK(c.grad().to_vector<double>() == std::vector<double>{1, 1});
  c.set_requires_grad(false);
  CHECK_FALSE(c.has_grad());
}

TEST_CASE("autograd: a leaf can be the root of backward") {
  Variable s = Variable::parameter(Tensor::scalar(3.0, DType::F64), "s");
  s.backward();
  s.backward();
  CHECK(s.grad().item() == 2.0);
}

TEST_CASE("autograd: detach cuts the graph") {
  Context ctx(Backend::Ref);
  Variable x = Variable::parameter(Tensor::full({3}, 2.0, DType::F64), "x");
  // L = sum(x * detach(x)): dL/dx = detach(x) = 2, not 2x = 4.
  sum_all(ctx, mul(ctx, x, x.detach())).backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 2, 2});
}
}
