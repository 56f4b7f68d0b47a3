#include "kernels/ref/optim_ref.h"

#include <cmath>

namespace kdnas {

template <typename T>
void adamw_update_ref(T* param, T* m, T* v, const T* grad, double lr, double beta1, double beta2,
                      double eps, double weight_decay, int64_t step, int64_t n) {
  // The bias corrections undo the zero initialisation of m and v: after `step` updates of a
  // constant gradient g, m = (1 - beta1^step) g, so m / bc1 = g.
  const double bc1 = 1.0 - std::pow(beta1, double(step));
  const double bc2 = 1.0 - std::pow(beta2, double(step));
  const T decay = T(1.0 - lr * weight_decay), step_size = T(lr / bc1), bc2_sqrt = T(std::sqrt(bc2));
  for (int64_t i = 0; i < n; ++i) {
    const T g = grad[i];
    m[i] = T(beta1) * m[i] + T(1.0 - beta1) * g;
    v[i] = T(beta2) * v[i] + T(1.0 - beta2) * g * g;
    param[i] = param[i] * decay - step_size * m[i] / (std::sqrt(v[i]) / bc2_sqrt + T(eps));
  }
}

template <typename T>
void sgd_update_ref(T* param, T* buf, const T* grad, double lr, double momentum, double dampening,
                    double weight_decay, bool nesterov, int64_t step, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T d = grad[i] + T(weight_decay) * param[i];
    if (momentum != 0.0) {
      // PyTorch creates the buffer as a copy of the first gradient (no dampening on step 1).
      buf[i] = step == 1 ? d : T(momentum) * buf[i] + T(1.0 - dampening) * d;
      d = nesterov ? d + T(momentum) * buf[i] : buf[i];
    }
    param[i] = param[i] - T(lr) * d;
  }
}

template <typename T>
void rmsprop_update_ref(T* param, T* square_avg, T* buf, const T* grad, double lr, double alpha,
                        double eps, double weight_decay, double momentum, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T d = grad[i] + T(weight_decay) * param[i];
    square_avg[i] = T(alpha) * square_avg[i] + T(1.0 - alpha) * d * d;
    const T avg = std::sqrt(square_avg[i]) + T(eps);
    if (momentum > 0.0) {
      buf[i] = T(momentum) * buf[i] + d / avg;
      param[i] = param[i] - T(lr) * buf[i];
    } else {
      param[i] = param[i] - T(lr) * d / avg;
    }
  }
}

#define KDNAS_INSTANTIATE(T)                                                                       \
  template void adamw_update_ref<T>(T*, T*, T*, const T*, double, double, double, double, double,  \
                                    int64_t, int64_t);                                             \
  template void sgd_update_ref<T>(T*, T*, const T*, double, double, double, double, bool, int64_t, \
                                  int64_t);                                                        \
  template void rmsprop_update_ref<T>(T*, T*, T*, const T*, double, double, double, double,        \
                                      double, int64_t);
KDNAS_INSTANTIATE(float)
KDNAS_INSTANTIATE(double)
#undef KDNAS_INSTANTIATE

}  // namespace kdnas
