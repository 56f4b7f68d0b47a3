// Optimizers over parameter Variables (AdamW, SGD with momentum, RMSprop), global gradient-norm
// clipping, and the optimizer state as named tensors for checkpoints.
//
// The update rules are PyTorch's (torch.optim.AdamW / SGD / RMSprop); the arithmetic is the fused
// in-place kernels of kernels/optim.h. Parameters are f32 leaves with requires_grad = true; a
// parameter with no gradient at a step (none reached it since zero_grad) is skipped, its state
// and step count unchanged, as in PyTorch.
//
// Parameter groups: each group has its own lr multiplier and weight decay (the classic use:
// no weight decay on biases and LayerNorm weights, see split_decay_groups). The effective rate
// of a group is lr() * lr_scale; a schedule sets lr() before each step:
//   for (step = 0; ...) { opt.zero_grad(); loss.backward(); clip_grad_norm(...);
//                         opt.set_lr(sched.lr_at(step)); opt.step(ctx); }
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/variable.h"
#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

struct ParamGroup {
  std::vector<Variable> params;
  double lr_scale = 1.0;      // this group's lr = optimizer lr * lr_scale
  double weight_decay = 0.0;  // decoupled (AdamW) or L2 (SGD, RMSprop), as each optimizer says
};

// Two groups: {params that decay, weight_decay} and {biases and LayerNorm parameters, 0}.
// A parameter goes to the no-decay group when its name ends in "bias" or contains "LayerNorm",
// "layer_norm" or "layernorm" (Hugging Face's names: "....attention.output.LayerNorm.weight",
// "....intermediate.dense.bias"). Empty groups are dropped.
std::vector<ParamGroup> split_decay_groups(const std::vector<Variable>& params,
                                           double weight_decay);
bool is_no_decay_name(const std::string& name);

// Named state tensors; a checkpoint stores them as they are.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient. Runs under NoGradGuard.
  void step(Context& ctx);
  void zero_grad();  // drops every parameter's gradient

  double lr() const { return lr_; }
  void set_lr(double lr);
  const std::vector<ParamGroup>& groups() const { return groups_; }
  std::vector<Variable> params() const;

  // The state as named tensors: for parameter p (named by its Variable name, or "param<i>" in
  // group order when unnamed) and each slot s of the optimizer: "<p>.<s>" (e.g.
  // "encoder.layer.0.attention.self.query.weight.exp_avg"), plus "<p>.step" (i64 scalar),
  // for parameters that have state. The tensors are the live state, not copies.
  NamedTensors state() const;
  // Restores a state written by state() of an optimizer of the same kind over parameters of the
  // same names and shapes. Errors name the key: an unknown parameter or slot, a shape or dtype
  // mismatch, a missing slot or step. The tensors are copied.
  void load_state(const NamedTensors& state);

  // Updates applied to parameter i (group order) so far.
  int64_t param_steps(size_t i) const { return params_[i].steps; }

 protected:
  Optimizer(const char* kind, std::vector<ParamGroup> groups, double lr,
            std::vector<std::string> slot_names);
  // One parameter's state: its slot tensors (zeros of the parameter's shape, created on the
  // first update) and the number of updates applied.
  struct ParamState {
    Variable param;
    const ParamGroup* group;
    std::string key;
    std::vector<Tensor> slots;  // in slot_names_ order
    int64_t steps = 0;
  };
  // Applies one update to p (whose steps has already been incremented); lr is the group's rate.
  virtual void update(Context& ctx, ParamState& p, double lr) = 0;

  const char* kind_;
  std::vector<ParamGroup> groups_;
  std::vector<ParamState> params_;
  std::vector<std::string> slot_names_;
  double lr_;
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // for the one-group constructor; groups carry their own
};

// AdamW (Loshchilov & Hutter): p -= lr * wd * p, then the bias-corrected Adam step. Slots:
// exp_avg, exp_avg_sq.
class AdamW : public Optimizer {
 public:
  AdamW(std::vector<Variable> params, const AdamWOptions& opt = {});
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& opt = {});

 private:
  void update(Context& ctx, ParamState& p, double lr) override;
  AdamWOptions opt_;
};

struct SgdOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double weight_decay = 0.0;  // L2: added to the gradient
  bool nesterov = false;
  double dampening = 0.0;  // buf = momentum * buf + (1 - dampening) * g after the first step
};

// SGD with momentum (PyTorch's form: buf = momentum * buf + g, the first buf = g). Slot:
// momentum_buffer (present only with momentum > 0).
class SGD : public Optimizer {
 public:
  SGD(std::vector<Variable> params, const SgdOptions& opt = {});
  SGD(std::vector<ParamGroup> groups, const SgdOptions& opt = {});

 private:
  void update(Context& ctx, ParamState& p, double lr) override;
  SgdOptions opt_;
};

struct RmspropOptions {
  double lr = 1e-2;
  double alpha = 0.99;  // smoothing of the squared-gradient average
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2: added to the gradient
  double momentum = 0.0;
};

// RMSprop (PyTorch's form, not centered). Slots: square_avg, and momentum_buffer with momentum.
class RMSprop : public Optimizer {
 public:
  RMSprop(std::vector<Variable> params, const RmspropOptions& opt = {});
  RMSprop(std::vector<ParamGroup> groups, const RmspropOptions& opt = {});

 private:
  void update(Context& ctx, ParamState& p, double lr) override;
  RmspropOptions opt_;
};

// Scales every gradient by max_norm / (norm + 1e-6) when the global L2 norm over all of them
// exceeds max_norm (PyTorch's clip_grad_norm_), and returns the norm before clipping; parameters
// without a gradient are skipped. The norm is accumulated in double. A non-finite norm (an inf
// or NaN gradient) is returned as it is and the gradients are left untouched, so the caller
// sees it and can skip the step; with error_if_nonfinite it throws instead, naming the first
// parameter whose gradient is not finite.
double clip_grad_norm(Context& ctx, const std::vector<Variable>& params, double max_norm,
                      bool error_if_nonfinite = false);

// The global L2 norm of the gradients (no clipping).
double grad_norm(Context& ctx, const std::vector<Variable>& params);

}  // namespace kdnas
