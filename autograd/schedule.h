// Learning-rate schedules: linear warmup from 0 to the peak, then a linear or cosine decay to a
// floor, then the floor.
//
// The convention is Hugging Face's get_{linear,cosine}_schedule_with_warmup (the recipes this
// project distils XLM-R with were tuned under it), with a floor added:
//   step < warmup:           lr = peak * step / warmup            (step 0 trains at lr 0)
//   warmup <= step < total:  p = (step - warmup) / (total - warmup)
//                            lr = floor + (peak - floor) * (1 - p)              linear
//                            lr = floor + (peak - floor) * (1 + cos(pi p)) / 2  cosine
//                            lr = peak                                          constant
//   step >= total:           lr = floor (constant: peak)
// Steps count optimizer updates from 0; lr_at(s) is the rate the update number s uses.
#pragma once

#include <cstdint>
#include <string>

namespace kdnas {

enum class Decay { Linear, Cosine, Constant };
const char* decay_name(Decay d);
Decay decay_from_name(const std::string& name);  // "linear", "cosine", "constant"; throws

class LrSchedule {
 public:
  // Errors (naming the values): peak_lr <= 0, warmup < 0, total < warmup, floor outside
  // [0, peak_lr].
  LrSchedule(double peak_lr, int64_t warmup_steps, int64_t total_steps, Decay decay = Decay::Linear,
             double floor_lr = 0.0);

  double lr_at(int64_t step) const;  // step >= 0

  double peak_lr() const { return peak_; }
  double floor_lr() const { return floor_; }
  int64_t warmup_steps() const { return warmup_; }
  int64_t total_steps() const { return total_; }
  Decay decay() const { return decay_; }

 private:
  double peak_, floor_;
  int64_t warmup_, total_;
  Decay decay_;
};

}  // namespace kdnas
