// Test helper for autograd: checks the gradients that backward() leaves in a function's inputs
// against central differences, all in double through the reference kernels.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "tests/test_util.h"

namespace kdnas::test {

// f maps the inputs to any Variable y; the checked scalar is L = sum(y * w) for a fixed random
// w, so every output element's gradient matters. Every input must be an f64 leaf with
// requires_grad (the check perturbs their values in place and restores them).
inline void check_autograd(const std::string& what, Context& ctx,
                           const std::function<Variable(const std::vector<Variable>&)>& f,
                           const std::vector<Variable>& inputs, double eps = 1e-6,
                           Tol tol = kF64Grad) {
  Rng rng(4321);
  Tensor w;
  auto loss = [&](const std::vector<Variable>& in) {
    Variable y = f(in);
    if (!w.defined()) w = random_tensor(y.shape(), rng, DType::F64, -1.f, 1.f);
    return sum_all(ctx, mul(ctx, y, Variable(w)));
  };
  for (const Variable& x : inputs) {
    REQUIRE(x.dtype() == DType::F64);
    REQUIRE(x.requires_grad());
    x.zero_grad();
  }
  loss(inputs).backward();
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Variable& x = inputs[k];
    REQUIRE_MESSAGE(x.has_grad(), what << ": input " << k << " got no gradient");
    REQUIRE(x.value().is_contiguous());
    Tensor num = Tensor::empty(x.shape(), DType::F64);
    double* xp = x.value().data<double>();
    NoGradGuard no_grad;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double orig = xp[i];
      xp[i] = orig + eps;
      const double lp = loss(inputs).value().item();
      xp[i] = orig - eps;
      const double lm = loss(inputs).value().item();
      xp[i] = orig;
      num.data<double>()[i] = (lp - lm) / (2 * eps);
    }
    KDNAS_CHECK_CLOSE(x.grad(), num, tol, what + ": gradient of input " + std::to_string(k));
  }
}

// An f64 parameter with uniform values in [lo, hi).
inline Variable param64(const Shape& shape, Rng& rng, float lo = -1.f, float hi = 1.f,
                        const std::string& name = "") {
  return Variable::parameter(random_tensor(shape, rng, DType::F64, lo, hi), name);
}

}  // namespace kdnas::test
