#include <doctest/doctest.h>

#include <cmath>

#include "kernels/cpu/vec_math.h"

TEST_SUITE("kernels") {
  TEST_CASE("vec:: exp, erf and tanh match libm") {
    double max_exp_rel = 0, max_erf_abs = 0, max_tanh_abs = 0;
    for (int i = -200000; i <= 200000; ++i) {
      float x = float(i) * 4.3e-4f;  // [-86, 86]
      max_exp_rel =
          std::max(max_exp_rel, std::abs(double(kdnas::vec::exp(x)) - std::exp(double(x))) /
                                    std::exp(double(x)));
      float y = float(i) * 5e-5f;  // [-10, 10]
      max_erf_abs =
          std::max(max_erf_abs, std::abs(double(kdnas::vec::erf(y)) - std::erf(double(y))));
      max_tanh_abs =
          std::max(max_tanh_abs, std::abs(double(kdnas::vec::tanh(y)) - std::tanh(double(y))));
    }
    INFO("exp rel " << max_exp_rel << ", erf abs " << max_erf_abs << ", tanh abs " << max_tanh_abs);
    CHECK(max_exp_rel < 3e-7);
    CHECK(max_erf_abs < 6e-7);  // A&S 7.1.26 is 1.5e-7 exact; f32 rounding adds the rest
    CHECK(max_tanh_abs < 3e-7);
    CHECK(kdnas::vec::exp(-200.f) < 1e-37f);
    CHECK(std::isfinite(kdnas::vec::exp(200.f)));
  }
}
