#include "autograd/schedule.h"

#include <cmath>
#include <numbers>

#include "tensor/check.h"

namespace kdnas {

const char* decay_name(Decay d) {
  switch (d) {
    case Decay::Linear:
      return "linear";
    case Decay::Cosine:
      return "cosine";
    case Decay::Constant:
      return "constant";
  }
  return "?";
}

Decay decay_from_name(const std::string& name) {
  for (Decay d : {Decay::Linear, Decay::Cosine, Decay::Constant})
    if (name == decay_name(d)) return d;
  detail::fail(
      detail::concat("schedule: unknown decay '", name, "' (expected linear, cosine or constant)"));
}

LrSchedule::LrSchedule(double peak_lr, int64_t warmup_steps, int64_t total_steps, Decay decay,
                       double floor_lr)
    : peak_(peak_lr), floor_(floor_lr), warmup_(warmup_steps), total_(total_steps), decay_(decay) {
  KDNAS_CHECK(peak_lr > 0 && std::isfinite(peak_lr), "schedule: peak lr must be > 0, got ",
              peak_lr);
  KDNAS_CHECK(warmup_steps >= 0, "schedule: warmup steps must be >= 0, got ", warmup_steps);
  KDNAS_CHECK(total_steps >= warmup_steps, "schedule: total steps ", total_steps,
              " is less than the warmup steps ", warmup_steps);
  KDNAS_CHECK(floor_lr >= 0 && floor_lr <= peak_lr, "schedule: floor lr ", floor_lr,
              " must lie in [0, peak lr ", peak_lr, "]");
}

double LrSchedule::lr_at(int64_t step) const {
  KDNAS_CHECK(step >= 0, "schedule: lr_at(", step, "): negative step");
  if (step < warmup_) return peak_ * double(step) / double(warmup_);
  if (decay_ == Decay::Constant) return peak_;
  if (step >= total_) return floor_;
  const double p = double(step - warmup_) / double(total_ - warmup_);
  const double f = decay_ == Decay::Linear ? 1.0 - p : 0.5 * (1.0 + std::cos(std::numbers::pi * p));
  return floor_ + (peak_ - floor_) * f;
}

}  // namespace kdnas
