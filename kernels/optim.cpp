#include "kernels/optim.h"

#include <cmath>

#include "kernels/cpu/optim_cpu.h"
#include "kernels/cuda/optim_cuda.h"
#include "kernels/dispatch.h"
#include "kernels/profiler.h"
#include "kernels/ref/optim_ref.h"

namespace kdnas {
namespace {

// The parameter: f32 (or f64), contiguous because it is written in place.
void check_param(const char* op, const Tensor& param) {
  check_dtype(op, "param", param, {DType::F32, DType::F64});
  KDNAS_CHECK(param.is_contiguous(), op, ": param ", param.shape(),
              " must be contiguous (it is updated in place)");
}

// A tensor that goes with the parameter: same dtype, shape and device, and contiguous when the
// update writes it (the state).
void check_like(const char* op, const char* name, const Tensor& t, const Tensor& param,
                bool written) {
  check_dtype(op, name, t, {param.dtype()});
  check_same_shape(op, name, t, "param", param);
  check_same_device(op, {&param, &t});
  KDNAS_CHECK(!written || t.is_contiguous(), op, ": ", name, " ", t.shape(),
              " must be contiguous (it is updated in place)");
}

void check_finite_nonneg(const char* op, const char* name, double x) {
  KDNAS_CHECK(std::isfinite(x) && x >= 0, op, ": ", name, " must be finite and >= 0, got ", x);
}
void check_unit(const char* op, const char* name, double x) {
  KDNAS_CHECK(x >= 0 && x < 1, op, ": ", name, " must lie in [0, 1), got ", x);
}

// Runs the reference (f32/f64) or the fast f32 kernel for the route; f64 is Ref only. `state`
// are the tensors the update reads and writes (param, the moments), `grad` is only read: the
// traffic the profiler reports.
template <typename Ref, typename Fast>
void run(Context& ctx, const char* op, const Tensor& param,
         std::initializer_list<const Tensor*> state, const Tensor& grad, Ref&& ref, Fast&& fast) {
  const Route r = route_for(ctx, op, param);
  ProfileScope prof(ctx, op);
  if (prof)
    prof.set(r, param.dtype(), profile_shapes({&param}), 0,
             2 * profile_bytes(state) + double(grad.nbytes()));
  if (r == Route::Ref || param.dtype() == DType::F64) {
    KDNAS_CHECK(param.device().is_cpu(), op, ": f64 runs on the CPU reference only");
    dispatch_float(op, param.dtype(), ref);
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    fast();
  } else {
    no_kernel(op, r, param.dtype());
  }
}

template <typename T>
T* ptr(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

void adamw_update(Context& ctx, const Tensor& param, const Tensor& grad, const Tensor& m,
                  const Tensor& v, const AdamWHyper& h, int64_t step) {
  const char* op = "adamw_update";
  check_param(op, param);
  check_like(op, "grad", grad, param, false);
  check_like(op, "m", m, param, true);
  check_like(op, "v", v, param, true);
  check_finite_nonneg(op, "lr", h.lr);
  check_unit(op, "beta1", h.beta1);
  check_unit(op, "beta2", h.beta2);
  check_finite_nonneg(op, "eps", h.eps);
  check_finite_nonneg(op, "weight_decay", h.weight_decay);
  KDNAS_CHECK(step >= 1, op, ": step must be >= 1 (1 for the first update), got ", step, " (param ",
              param.shape(), ")");
  Tensor g = grad.contiguous();
  const int64_t n = param.numel();
  run(
      ctx, op, param, {&param, &m, &v}, g,
      [&]<typename T>() {
        adamw_update_ref(param.data<T>(), m.data<T>(), v.data<T>(), g.data<T>(), h.lr, h.beta1,
                         h.beta2, h.eps, h.weight_decay, step, n);
      },
      [&] {
        (param.device().is_cpu() ? adamw_update_cpu : adamw_update_cuda)(
            ctx, param.data<float>(), m.data<float>(), v.data<float>(), g.data<float>(), h.lr,
            h.beta1, h.beta2, h.eps, h.weight_decay, step, n);
      });
}

void sgd_update(Context& ctx, const Tensor& param, const Tensor& grad, const Tensor& momentum_buf,
                const SgdHyper& h, int64_t step) {
  const char* op = "sgd_update";
  check_param(op, param);
  check_like(op, "grad", grad, param, false);
  check_finite_nonneg(op, "lr", h.lr);
  check_finite_nonneg(op, "momentum", h.momentum);
  check_finite_nonneg(op, "weight_decay", h.weight_decay);
  KDNAS_CHECK(h.dampening >= 0 && h.dampening <= 1, op, ": dampening must lie in [0, 1], got ",
              h.dampening);
  KDNAS_CHECK(!h.nesterov || (h.momentum > 0 && h.dampening == 0), op,
              ": nesterov needs momentum > 0 and dampening == 0, got momentum ", h.momentum,
              " and dampening ", h.dampening);
  KDNAS_CHECK(step >= 1, op, ": step must be >= 1 (1 for the first update), got ", step, " (param ",
              param.shape(), ")");
  if (h.momentum > 0) {
    KDNAS_CHECK(momentum_buf.defined(), op, ": momentum ", h.momentum,
                " needs a momentum_buf of param's shape ", param.shape());
    check_like(op, "momentum_buf", momentum_buf, param, true);
  }
  Tensor g = grad.contiguous();
  const int64_t n = param.numel();
  const Tensor buf = h.momentum > 0 ? momentum_buf : Tensor();
  run(
      ctx, op, param, {&param, &buf}, g,
      [&]<typename T>() {
        sgd_update_ref(param.data<T>(), ptr<T>(buf), g.data<T>(), h.lr, h.momentum, h.dampening,
                       h.weight_decay, h.nesterov, step, n);
      },
      [&] {
        (param.device().is_cpu() ? sgd_update_cpu : sgd_update_cuda)(
            ctx, param.data<float>(), ptr<float>(buf), g.data<float>(), h.lr, h.momentum,
            h.dampening, h.weight_decay, h.nesterov, step, n);
      });
}

void rmsprop_update(Context& ctx, const Tensor& param, const Tensor& grad, const Tensor& square_avg,
                    const Tensor& momentum_buf, const RmspropHyper& h) {
  const char* op = "rmsprop_update";
  check_param(op, param);
  check_like(op, "grad", grad, param, false);
  check_like(op, "square_avg", square_avg, param, true);
  check_finite_nonneg(op, "lr", h.lr);
  check_unit(op, "alpha", h.alpha);
  check_finite_nonneg(op, "eps", h.eps);
  check_finite_nonneg(op, "weight_decay", h.weight_decay);
  check_finite_nonneg(op, "momentum", h.momentum);
  if (h.momentum > 0) {
    KDNAS_CHECK(momentum_buf.defined(), op, ": momentum ", h.momentum,
                " needs a momentum_buf of param's shape ", param.shape());
    check_like(op, "momentum_buf", momentum_buf, param, true);
  }
  Tensor g = grad.contiguous();
  const int64_t n = param.numel();
  const Tensor buf = h.momentum > 0 ? momentum_buf : Tensor();
  run(
      ctx, op, param, {&param, &square_avg, &buf}, g,
      [&]<typename T>() {
        rmsprop_update_ref(param.data<T>(), square_avg.data<T>(), ptr<T>(buf), g.data<T>(), h.lr,
                           h.alpha, h.eps, h.weight_decay, h.momentum, n);
      },
      [&] {
        (param.device().is_cpu() ? rmsprop_update_cpu : rmsprop_update_cuda)(
            ctx, param.data<float>(), square_avg.data<float>(), ptr<float>(buf), g.data<float>(),
            h.lr, h.alpha, h.eps, h.weight_decay, h.momentum, n);
      });
}

}  // namespace kdnas
