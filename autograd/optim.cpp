#include "autograd/optim.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "kernels/cpu/parallel.h"
#include "kernels/eltwise.h"
#include "kernels/optim.h"

namespace kdnas {

// ---------------------------------------------------------------------------------------------
// Groups

bool is_no_decay_name(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  const bool bias = lower.size() >= 4 && lower.compare(lower.size() - 4, 4, "bias") == 0;
  return bias || lower.find("layernorm") != std::string::npos ||
         lower.find("layer_norm") != std::string::npos;
}

std::vector<ParamGroup> split_decay_groups(const std::vector<Variable>& params,
                                           double weight_decay) {
  ParamGroup decay{{}, 1.0, weight_decay}, no_decay{{}, 1.0, 0.0};
  for (const Variable& p : params)
    (is_no_decay_name(p.name()) ? no_decay : decay).params.push_back(p);
  std::vector<ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

// ---------------------------------------------------------------------------------------------
// Optimizer

Optimizer::Optimizer(const char* kind, std::vector<ParamGroup> groups, double lr,
                     std::vector<std::string> slot_names)
    : kind_(kind), groups_(std::move(groups)), slot_names_(std::move(slot_names)), lr_(0) {
  set_lr(lr);
  std::set<const void*> seen;
  std::set<std::string> keys;
  for (const ParamGroup& g : groups_) {
    KDNAS_CHECK(g.lr_scale >= 0 && std::isfinite(g.lr_scale), kind_, ": a group's lr_scale is ",
                g.lr_scale);
    KDNAS_CHECK(g.weight_decay >= 0 && std::isfinite(g.weight_decay), kind_,
                ": a group's weight_decay is ", g.weight_decay);
    for (const Variable& p : g.params) {
      const std::string name =
          p.defined() && !p.name().empty() ? p.name() : "param" + std::to_string(params_.size());
      KDNAS_CHECK(p.defined(), kind_, ": ", name, " is an undefined variable");
      KDNAS_CHECK(p.is_leaf() && p.requires_grad(), kind_, ": ", name, " (shape ", p.shape(),
                  ") is not a leaf that requires a gradient");
      KDNAS_CHECK(p.dtype() == DType::F32 && p.value().is_contiguous(), kind_, ": ", name,
                  " (shape ", p.shape(), ") must be a contiguous f32 tensor, it is ",
                  dtype_name(p.dtype()));
      KDNAS_CHECK(seen.insert(p.node().get()).second, kind_, ": parameter ", name,
                  " appears twice");
      KDNAS_CHECK(keys.insert(name).second, kind_, ": two parameters are named ", name,
                  "; the state needs unique names");
      params_.push_back(ParamState{p, &g, name, {}, 0});
    }
  }
}

void Optimizer::set_lr(double lr) {
  KDNAS_CHECK(lr >= 0 && std::isfinite(lr), kind_, ": learning rate must be >= 0, got ", lr);
  lr_ = lr;
}

std::vector<Variable> Optimizer::params() const {
  std::vector<Variable> v;
  for (const ParamState& p : params_) v.push_back(p.param);
  return v;
}

void Optimizer::zero_grad() {
  for (ParamState& p : params_) p.param.zero_grad();
}

void Optimizer::step(Context& ctx) {
  NoGradGuard no_grad;
  for (ParamState& p : params_) {
    if (!p.param.has_grad()) continue;
    if (p.slots.empty())
      for (size_t s = 0; s < slot_names_.size(); ++s)
        p.slots.push_back(Tensor::zeros(p.param.shape(), DType::F32, p.param.value().device()));
    ++p.steps;
    update(ctx, p, lr_ * p.group->lr_scale);
  }
}

NamedTensors Optimizer::state() const {
  NamedTensors out;
  for (const ParamState& p : params_) {
    if (p.steps == 0) continue;
    for (size_t s = 0; s < slot_names_.size(); ++s)
      out.emplace_back(p.key + "." + slot_names_[s], p.slots[s]);
    Tensor steps = Tensor::empty({}, DType::I64);
    *steps.data<int64_t>() = p.steps;
    out.emplace_back(p.key + ".step", steps);
  }
  return out;
}

void Optimizer::load_state(const NamedTensors& state) {
  // Index the parameters' keys, then place every entry; a parameter with no entries has not
  // been updated yet.
  std::map<std::string, ParamState*> by_key;
  for (ParamState& p : params_) by_key[p.key] = &p;
  std::map<ParamState*, std::vector<Tensor>> slots;
  std::map<ParamState*, int64_t> steps;
  for (const auto& [key, t] : state) {
    const size_t dot = key.rfind('.');
    KDNAS_CHECK(dot != std::string::npos, kind_, ": state entry '", key, "' is not <param>.<slot>");
    const std::string pname = key.substr(0, dot), slot = key.substr(dot + 1);
    auto it = by_key.find(pname);
    KDNAS_CHECK(it != by_key.end(), kind_, ": state entry '", key, "' names no parameter");
    ParamState* p = it->second;
    if (slot == "step") {
      KDNAS_CHECK(t.numel() == 1 && t.dtype() == DType::I64, kind_, ": state entry '", key,
                  "' must be an i64 scalar, it is ", t.shape(), " ", dtype_name(t.dtype()));
      steps[p] = int64_t(t.item());
      KDNAS_CHECK(steps[p] > 0, kind_, ": state entry '", key, "' is ", steps[p]);
      continue;
    }
    auto s = std::find(slot_names_.begin(), slot_names_.end(), slot);
    KDNAS_CHECK(s != slot_names_.end(), kind_, ": state entry '", key, "': ", kind_,
                " has no slot '", slot, "'");
    KDNAS_CHECK(t.shape() == p->param.shape() && t.dtype() == DType::F32, kind_, ": state entry '",
                key, "' is ", t.shape(), " ", dtype_name(t.dtype()), " but the parameter is ",
                p->param.shape(), " f32");
    auto& v = slots[p];
    v.resize(slot_names_.size());
    v[size_t(s - slot_names_.begin())] = t.contiguous().clone();
  }
  for (ParamState& p : params_) {
    const bool has_slots = slots.count(&p) > 0, has_step = steps.count(&p) > 0;
    KDNAS_CHECK(has_slots == has_step || slot_names_.empty(), kind_, ": the state of ", p.key,
                has_step ? " has a step but no slots" : " has slots but no step");
    for (size_t s = 0; has_slots && s < slot_names_.size(); ++s)
      KDNAS_CHECK(slots[&p][s].defined(), kind_, ": the state of ", p.key, " lacks slot '",
                  slot_names_[s], "'");
  }
  // Everything checked: only now replace the live state.
  for (ParamState& p : params_) {
    p.steps = steps.count(&p) ? steps[&p] : 0;
    p.slots = slots.count(&p) ? slots[&p] : std::vector<Tensor>{};
  }
}

// ---------------------------------------------------------------------------------------------
// The optimizers: each step is one fused kernel call per parameter.

AdamW::AdamW(std::vector<Variable> params, const AdamWOptions& opt)
    : AdamW(std::vector<ParamGroup>{{std::move(params), 1.0, opt.weight_decay}}, opt) {}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& opt)
    : Optimizer("adamw", std::move(groups), opt.lr, {"exp_avg", "exp_avg_sq"}), opt_(opt) {
  KDNAS_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1,
              "adamw: betas must lie in [0, 1), got ", opt.beta1, " and ", opt.beta2);
  KDNAS_CHECK(opt.eps > 0, "adamw: eps must be > 0, got ", opt.eps);
}

void AdamW::update(Context& ctx, ParamState& p, double lr) {
  AdamWHyper h{lr, opt_.beta1, opt_.beta2, opt_.eps, p.group->weight_decay};
  adamw_update(ctx, p.param.value(), p.param.grad(), p.slots[0], p.slots[1], h, p.steps);
}

SGD::SGD(std::vector<Variable> params, const SgdOptions& opt)
    : SGD(std::vector<ParamGroup>{{std::move(params), 1.0, opt.weight_decay}}, opt) {}

SGD::SGD(std::vector<ParamGroup> groups, const SgdOptions& opt)
    : Optimizer("sgd", std::move(groups), opt.lr,
                opt.momentum > 0 ? std::vector<std::string>{"momentum_buffer"}
                                 : std::vector<std::string>{}),
      opt_(opt) {
  KDNAS_CHECK(opt.momentum >= 0, "sgd: momentum must be >= 0, got ", opt.momentum);
  KDNAS_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0),
              "sgd: nesterov needs momentum > 0 and no dampening");
  KDNAS_CHECK(opt.dampening >= 0 && opt.dampening <= 1, "sgd: dampening must lie in [0, 1], got ",
              opt.dampening);
}

void SGD::update(Context& ctx, ParamState& p, double lr) {
  SgdHyper h{lr, opt_.momentum, p.group->weight_decay, opt_.nesterov, opt_.dampening};
  sgd_update(ctx, p.param.value(), p.param.grad(), p.slots.empty() ? Tensor() : p.slots[0], h,
             p.steps);
}

RMSprop::RMSprop(std::vector<Variable> params, const RmspropOptions& opt)
    : RMSprop(std::vector<ParamGroup>{{std::move(params), 1.0, opt.weight_decay}}, opt) {}

RMSprop::RMSprop(std::vector<ParamGroup> groups, const RmspropOptions& opt)
    : Optimizer("rmsprop", std::move(groups), opt.lr,
                opt.momentum > 0 ? std::vector<std::string>{"square_avg", "momentum_buffer"}
                                 : std::vector<std::string>{"square_avg"}),
      opt_(opt) {
  KDNAS_CHECK(opt.alpha >= 0 && opt.alpha < 1, "rmsprop: alpha must lie in [0, 1), got ",
              opt.alpha);
  KDNAS_CHECK(opt.eps > 0, "rmsprop: eps must be > 0, got ", opt.eps);
  KDNAS_CHECK(opt.momentum >= 0, "rmsprop: momentum must be >= 0, got ", opt.momentum);
}

void RMSprop::update(Context& ctx, ParamState& p, double lr) {
  RmspropHyper h{lr, opt_.alpha, opt_.eps, p.group->weight_decay, opt_.momentum};
  rmsprop_update(ctx, p.param.value(), p.param.grad(), p.slots[0],
                 p.slots.size() > 1 ? p.slots[1] : Tensor(), h);
}

// ---------------------------------------------------------------------------------------------
// Gradient norm and clipping

namespace {

// Sum of squares in double over fixed blocks, added in block order: the same bits for any
// thread count (a reduction's result must not depend on how many cores the machine has).
template <typename T>
double sum_of_squares(Context& ctx, const T* x, int64_t n) {
  constexpr int64_t kBlock = 1 << 14;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(size_t(blocks), 0.0);
  parallel_for(ctx, blocks, 4, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      double s = 0;
      for (int64_t i = b * kBlock, e = std::min(n, i + kBlock); i < e; ++i)
        s += double(x[i]) * x[i];
      partial[size_t(b)] = s;
    }
  });
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

double grad_sum_of_squares(Context& ctx, const Variable& p) {
  // A gradient on a GPU is summed over a host copy (in double, as on the CPU); the clipping's
  // scale_forward then runs where the gradient is.
  Tensor g = p.grad().to(cpu_device()).contiguous();
  if (g.dtype() == DType::F64) return sum_of_squares(ctx, g.data<double>(), g.numel());
  KDNAS_CHECK(g.dtype() == DType::F32, "clip_grad_norm: ", p.name(), " has a ",
              dtype_name(g.dtype()), " gradient of shape ", g.shape(), " (f32 or f64)");
  return sum_of_squares(ctx, g.data<float>(), g.numel());
}

}  // namespace

double grad_norm(Context& ctx, const std::vector<Variable>& params) {
  double total = 0;
  for (const Variable& p : params)
    if (p.defined() && p.has_grad()) total += grad_sum_of_squares(ctx, p);
  return std::sqrt(total);
}

double clip_grad_norm(Context& ctx, const std::vector<Variable>& params, double max_norm,
                      bool error_if_nonfinite) {
  KDNAS_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be > 0, got ", max_norm);
  double total = 0;
  for (const Variable& p : params) {
    if (!p.defined() || !p.has_grad()) continue;
    const double s = grad_sum_of_squares(ctx, p);
    KDNAS_CHECK(std::isfinite(s) || !error_if_nonfinite, "clip_grad_norm: the gradient of ",
                p.name().empty() ? std::string("a parameter") : p.name(), " (shape ", p.shape(),
                ") is not finite (sum of squares ", s, ")");
    total += s;
  }
  const double norm = std::sqrt(total);
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  // PyTorch's coefficient: the 1e-6 keeps a norm just above max_norm from dividing by ~0.
  const double coef = max_norm / (norm + 1e-6);
  NoGradGuard no_grad;
  for (const Variable& p : params)
    if (p.defined() && p.has_grad()) p.set_grad(scale_forward(ctx, p.grad(), coef));
  return norm;
}

}  // namespace kdnas
