// The reward: accuracy (1 - KD loss) traded against latency relative to a fraction of the
// teacher's, through a small negative power (alpha = -0.06: halving latency is worth about 4%).
#include "nas/reward.h"

#include <cmath>

#include "tensor/check.h"

namespace kdnas {

double reward(double kd_loss, double latency_ms, double teacher_latency_ms,
              const RewardOptions& opt) {
  KDNAS_CHECK(std::isfinite(kd_loss), "reward: the KD loss is ", kd_loss, ", not a finite number");
  KDNAS_CHECK(std::isfinite(latency_ms) && latency_ms > 0, "reward: the candidate's latency is ",
              latency_ms, " ms; it must be positive");
  KDNAS_CHECK(std::isfinite(teacher_latency_ms) && teacher_latency_ms > 0,
              "reward: the teacher's latency is ", teacher_latency_ms, " ms; it must be positive");
  KDNAS_CHECK(std::isfinite(opt.beta) && opt.beta > 0, "reward: beta is ", opt.beta,
              "; it must be positive");
  KDNAS_CHECK(std::isfinite(opt.alpha), "reward: alpha is ", opt.alpha, ", not a finite number");
  KDNAS_CHECK(std::isfinite(opt.budget_ms) && opt.budget_ms >= 0, "reward: budget_ms is ",
              opt.budget_ms, "; it must be >= 0 (0: no hard budget)");
  if (opt.budget_ms > 0 && latency_ms > opt.budget_ms) return 0.0;
  return (1.0 - kd_loss) * std::pow(latency_ms / (opt.beta * teacher_latency_ms), opt.alpha);
}

}  // namespace kdnas
