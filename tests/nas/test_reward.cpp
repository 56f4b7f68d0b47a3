// The reward formula: hand-computed values, monotonicity, the hard budget and the errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "nas/reward.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

TEST_SUITE("nas") {
  TEST_CASE("reward: hand-computed values") {
    // (1 - 0.2) * (10 / (0.6 * 50))^-0.06 = 0.8 * 3^0.06
    CHECK(reward(0.2, 10, 50) == doctest::Approx(0.8545102219595985).epsilon(1e-12));
    CHECK(reward(0.5, 20, 40) == doctest::Approx(0.5054996731282883).epsilon(1e-12));
    // At lat = beta * lat(T) the latency factor is exactly 1.
    CHECK(reward(0.0, 30, 50) == doctest::Approx(1.0).epsilon(1e-15));
    RewardOptions o;
    o.alpha = -0.1;
    o.beta = 0.5;
    CHECK(reward(0.1, 5, 100, o) == doctest::Approx(1.1330328706147506).epsilon(1e-12));
  }

  TEST_CASE("reward: monotonic in loss and in latency") {
    double prev = std::numeric_limits<double>::infinity();
    for (double loss = 0; loss < 0.99; loss += 0.05) {
      const double r = reward(loss, 10, 50);
      CHECK(r < prev);
      prev = r;
    }
    prev = std::numeric_limits<double>::infinity();
    for (double lat = 1; lat < 200; lat *= 1.5) {
      const double r = reward(0.3, lat, 50);
      CHECK(r < prev);
      CHECK(r > 0);
      prev = r;
    }
  }

  TEST_CASE("reward: hard budget") {
    RewardOptions o;
    o.budget_ms = 20;
    CHECK(reward(0.2, 25, 50, o) == 0.0);
    CHECK(reward(0.2, 20, 50, o) == doctest::Approx(reward(0.2, 20, 50)));
    CHECK(reward(0.2, 10, 50, o) == doctest::Approx(reward(0.2, 10, 50)));
  }

  TEST_CASE("reward: errors name the values") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    check_throws_with([] { reward(0.2, 0, 50); }, {"candidate's latency is 0"});
    check_throws_with([] { reward(0.2, -3, 50); }, {"candidate's latency is -3"});
    check_throws_with([&] { reward(0.2, inf, 50); }, {"candidate's latency is inf"});
    check_throws_with([] { reward(0.2, 10, 0); }, {"teacher's latency is 0"});
    check_throws_with([&] { reward(nan, 10, 50); }, {"KD loss is nan"});
    check_throws_with([&] { reward(inf, 10, 50); }, {"KD loss is inf"});
    RewardOptions o;
    o.beta = 0;
    check_throws_with([&] { reward(0.2, 10, 50, o); }, {"beta is 0"});
    o = {};
    o.budget_ms = -1;
    check_throws_with([&] { reward(0.2, 10, 50, o); }, {"budget_ms is -1"});
  }
}
