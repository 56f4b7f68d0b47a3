#include "kernels/ref/loss_ref.h"

#include <algorithm>
#include <cmath>

namespace kdnas {
namespace {

int64_t selected_rows(const uint8_t* row_mask, int64_t R) {
  if (!row_mask) return R;
  int64_t n = 0;
  for (int64_t r = 0; r < R; ++r) n += row_mask[r] ? 1 : 0;
  return n;
}

// log sum_v exp(x[v] / tau). The maximum is subtracted before exponentiating so that no term
// overflows (logits of 100 would give e^100 > FLT_MAX) and the largest term is exactly 1, so
// the sum is at least 1 and its log is well conditioned.
template <typename T>
double logsumexp(const T* x, int64_t V, double tau) {
  double mx = -INFINITY;
  for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(x[v]) / tau);
  double s = 0;
  for (int64_t v = 0; v < V; ++v) s += std::exp(double(x[v]) / tau - mx);
  return mx + std::log(s);
}

}  // namespace

template <typename T>
void mse_forward_ref(T* loss, const T* pred, const T* target, const uint8_t* row_mask, int64_t R,
                     int64_t C) {
  double s = 0;
  for (int64_t r = 0; r < R; ++r) {
    if (row_mask && !row_mask[r]) continue;
    for (int64_t c = 0; c < C; ++c) {
      const double d = double(pred[r * C + c]) - double(target[r * C + c]);
      s += d * d;
    }
  }
  loss[0] = T(s / (double(selected_rows(row_mask, R)) * double(C)));
}

template <typename T>
void mse_backward_ref(T* dpred, T* dtarget, double dloss, const T* pred, const T* target,
                      const uint8_t* row_mask, int64_t R, int64_t C) {
  const T k = T(2.0 * dloss / (double(selected_rows(row_mask, R)) * double(C)));
  for (int64_t r = 0; r < R; ++r) {
    const bool on = !row_mask || row_mask[r];
    for (int64_t c = 0; c < C; ++c) {
      const int64_t i = r * C + c;
      dpred[i] = on ? k * (pred[i] - target[i]) : T(0);
      dtarget[i] = -dpred[i];
    }
  }
}

template <typename T>
void cross_entropy_forward_ref(T* loss, const T* logits, const int64_t* targets,
                               int64_t ignore_index, int64_t N, int64_t V) {
  double s = 0;
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] == ignore_index) continue;
    const T* x = logits + n * V;
    s += logsumexp(x, V, 1.0) - double(x[targets[n]]);
    ++count;
  }
  // Every row ignored (a batch of padding): no term, and a loss of 0 rather than 0/0 = NaN.
  loss[0] = count ? T(s / double(count)) : T(0);
}

template <typename T>
void cross_entropy_backward_ref(T* dlogits, double dloss, const T* logits, const int64_t* targets,
                                int64_t ignore_index, int64_t N, int64_t V) {
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) count += targets[n] != ignore_index ? 1 : 0;
  const double k = count ? dloss / double(count) : 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const T* x = logits + n * V;
    T* dx = dlogits + n * V;
    if (targets[n] == ignore_index) {
      std::fill(dx, dx + V, T(0));
      continue;
    }
    const double lse = logsumexp(x, V, 1.0);
    for (int64_t v = 0; v < V; ++v) {
      const double softmax = std::exp(double(x[v]) - lse);
      dx[v] = T(k * (softmax - (v == targets[n] ? 1.0 : 0.0)));
    }
  }
}

template <typename T>
void kl_div_forward_ref(T* loss, const T* student, const T* teacher, const uint8_t* row_mask,
                        double tau, int64_t N, int64_t V) {
  double s = 0;
  for (int64_t n = 0; n < N; ++n) {
    if (row_mask && !row_mask[n]) continue;
    const T* xs = student + n * V;
    const T* xt = teacher + n * V;
    const double lse_s = logsumexp(xs, V, tau), lse_t = logsumexp(xt, V, tau);
    for (int64_t v = 0; v < V; ++v) {
      const double log_p = double(xt[v]) / tau - lse_t, log_q = double(xs[v]) / tau - lse_s;
      // p log p -> 0 as p -> 0: an underflowed teacher probability contributes nothing.
      s += std::exp(log_p) * (log_p - log_q);
    }
  }
  loss[0] = T(tau * tau * s / double(selected_rows(row_mask, N)));
}

template <typename T>
void kl_div_backward_ref(T* dstudent, double dloss, const T* student, const T* teacher,
                         const uint8_t* row_mask, double tau, int64_t N, int64_t V) {
  const double k = dloss * tau / double(selected_rows(row_mask, N));
  for (int64_t n = 0; n < N; ++n) {
    T* ds = dstudent + n * V;
    if (row_mask && !row_mask[n]) {
      std::fill(ds, ds + V, T(0));
      continue;
    }
    const T* xs = student + n * V;
    const T* xt = teacher + n * V;
    const double lse_s = logsumexp(xs, V, tau), lse_t = logsumexp(xt, V, tau);
    for (int64_t v = 0; v < V; ++v) {
      const double q = std::exp(double(xs[v]) / tau - lse_s);
      const double p = std::exp(double(xt[v]) / tau - lse_t);
      ds[v] = T(k * (q - p));
    }
  }
}

#define KDNAS_INSTANTIATE(T)                                                                     \
  template void mse_forward_ref<T>(T*, const T*, const T*, const uint8_t*, int64_t, int64_t);    \
  template void mse_backward_ref<T>(T*, T*, double, const T*, const T*, const uint8_t*, int64_t, \
                                    int64_t);                                                    \
  template void cross_entropy_forward_ref<T>(T*, const T*, const int64_t*, int64_t, int64_t,     \
                                             int64_t);                                           \
  template void cross_entropy_backward_ref<T>(T*, double, const T*, const int64_t*, int64_t,     \
                                              int64_t, int64_t);                                 \
  template void kl_div_forward_ref<T>(T*, const T*, const T*, const uint8_t*, double, int64_t,   \
                                      int64_t);                                                  \
  template void kl_div_backward_ref<T>(T*, double, const T*, const T*, const uint8_t*, double,   \
                                       int64_t, int64_t);
KDNAS_INSTANTIATE(float)
KDNAS_INSTANTIATE(double)
#undef KDNAS_INSTANTIATE

}  // namespace kdnas
