// The KD-NAS reward (KDNAS.md, "Reward"):
//   R(a) = (1 - L_KD(a)) * (lat(a) / (beta * lat(T)))^alpha,   alpha = -0.06, beta = 0.6
// L_KD: the candidate's mean proxy-distillation loss over its last proxy epoch; lat: measured
// latency (ms) of the candidate and of the teacher at the same settings. Hard-budget mode: a
// candidate slower than the budget gets reward 0.
#pragma once

namespace kdnas {

struct RewardOptions {
  double alpha = -0.06, beta = 0.6;
  double budget_ms = 0;  // > 0: hard budget mode
};

// Errors (naming the values): non-positive or non-finite latencies, a non-finite loss, beta <= 0,
// a negative budget. Note 1 - L_KD may be negative for a loss above 1: the reward stays
// monotonic (lower loss, higher reward) rather than being clamped.
double reward(double kd_loss, double latency_ms, double teacher_latency_ms,
              const RewardOptions& opt = {});

}  // namespace kdnas
