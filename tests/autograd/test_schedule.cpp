// Learning-rate schedules at the steps that define them.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>

#include "autograd/schedule.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

TEST_SUITE("autograd") {
TEST_CASE("schedule: linear warmup then linear decay to a floor") {
  LrSchedule s(1e-3, 10, 110, Decay::Linear, 1e-4);
  CHECK(s.lr_at(0) == 0.0);  // Hugging Face's convention: the first update has lr 0
  CHECK(s.lr_at(1) == doctest::Approx(1e-4));
  CHECK(s.lr_at(5) == doctest::Approx(5e-4));
  CHECK(s.lr_at(10) == doctest::Approx(1e-3));   // peak at the end of warmup
  CHECK(s.lr_at(60) == doctest::Approx(5.5e-4));  // halfway: floor + (peak - floor) / 2
  CHECK(s.lr_at(109) == doctest::Approx(1e-4 + 9e-4 / 100));
  CHECK(s.lr_at(110) == doctest::Approx(1e-4));
  CHECK(s.lr_at(100000) == doctest::Approx(1e-4));
}

TEST_CASE("schedule: cosine decay") {
  LrSchedule s(1e-3, 10, 110, Decay::Cosine, 1e-4);
  CHECK(s.lr_at(5) == doctest::Approx(5e-4));
  CHECK(s.lr_at(10) == doctest::Approx(1e-3));
  // p = 1/4: floor + (peak - floor) (1 + cos(pi/4)) / 2.
  CHECK(s.lr_at(35) == doctest::Approx(1e-4 + 9e-4 * (1 + std::sqrt(0.5)) / 2));
  CHECK(s.lr_at(60) == doctest::Approx(5.5e-4));
  CHECK(s.lr_at(85) == doctest::Approx(1e-4 + 9e-4 * (1 - std::sqrt(0.5)) / 2));
  CHECK(s.lr_at(110) == doctest::Approx(1e-4));
  // The default floor is 0, as in Hugging Face's schedules.
  LrSchedule z(2.0, 0, 4, Decay::Cosine);
  CHECK(z.lr_at(0) == doctest::Approx(2.0));  // no warmup: the first update runs at the peak
  CHECK(z.lr_at(2) == doctest::Approx(1.0));
  CHECK(z.lr_at(4) == 0.0);
}

TEST_CASE("schedule: constant after warmup, and decay names") {
  LrSchedule s(0.5, 4, 4, Decay::Constant);
  CHECK(s.lr_at(2) == doctest::Approx(0.25));
  CHECK(s.lr_at(4) == 0.5);
  CHECK(s.lr_at(1000) == 0.5);
  for (Decay d : {Decay::Linear, Decay::Cosine, Decay::Constant})
    CHECK(decay_from_name(decay_name(d)) == d);
  check_throws_with([] { decay_from_name("exponential"); }, {"schedule", "exponential"});
}

TEST_CASE("schedule: bad settings are errors that name the values") {
  check_throws_with([] { LrSchedule(0.0, 1, 2); }, {"schedule", "peak lr", "0"});
  check_throws_with([] { LrSchedule(1e-3, -1, 2); }, {"schedule", "warmup", "-1"});
  check_throws_with([] { LrSchedule(1e-3, 10, 5); }, {"schedule", "total steps 5", "10"});
  check_throws_with([] { LrSchedule(1e-3, 1, 5, Decay::Linear, 2e-3); }, {"schedule", "floor"});
  check_throws_with([] { LrSchedule(1e-3, 1, 5).lr_at(-3); }, {"schedule", "-3"});
}
}
