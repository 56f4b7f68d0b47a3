#include "kernels/ref/layer_norm_ref.h"

#include <cmath>

namespace kdnas {

template <typename T>
void layer_norm_forward_ref(T* out, T* mean, T* rstd, const T* inp, const T* gamma, const T* beta,
                            int64_t rows, int64_t C, T eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = inp + r * C;
    T* o = out + r * C;
    // Two passes: the mean first, then the squared deviations from it. The one-pass
    // E[x^2] - E[x]^2 cancels catastrophically when |mean| >> std (a residual stream with a
    // large offset), and can even come out negative.
    T m = 0;
    for (int64_t c = 0; c < C; ++c) m += x[c];
    m /= T(C);
    T v = 0;
    for (int64_t c = 0; c < C; ++c) v += (x[c] - m) * (x[c] - m);
    v /= T(C);
    const T s = T(1) / std::sqrt(v + eps);
    for (int64_t c = 0; c < C; ++c) o[c] = (x[c] - m) * s * gamma[c] + beta[c];
    mean[r] = m;
    rstd[r] = s;
  }
}

template <typename T>
void add_layer_norm_forward_ref(T* out, const T* inp, const T* residual, const T* gamma,
                                const T* beta, int64_t rows, int64_t C, T eps) {
  // The sum goes into out, then each row is normalised in place (the reference LayerNorm reads
  // a row entirely, for its two statistics, before it writes any of it).
  for (int64_t i = 0; i < rows * C; ++i) out[i] = inp[i] + residual[i];
  for (int64_t r = 0; r < rows; ++r) {
    T m, s;
    layer_norm_forward_ref(out + r * C, &m, &s, out + r * C, gamma, beta, 1, C, eps);
  }
}

template <typename T>
void layer_norm_backward_ref(T* dinp, T* dgamma, T* dbeta, const T* dout, const T* inp,
                             const T* gamma, const T* mean, const T* rstd, int64_t rows,
                             int64_t C) {
  for (int64_t c = 0; c < C; ++c) dgamma[c] = dbeta[c] = T(0);
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = inp + r * C;
    const T* d = dout + r * C;
    T* dx = dinp + r * C;
    const T m = mean[r], s = rstd[r];
    // The two row means of the dx formula: mean_c(g) and mean_c(g * xhat).
    T g_mean = 0, gx_mean = 0;
    for (int64_t c = 0; c < C; ++c) {
      const T xhat = (x[c] - m) * s;
      const T g = d[c] * gamma[c];
      g_mean += g;
      gx_mean += g * xhat;
    }
    g_mean /= T(C);
    gx_mean /= T(C);
    for (int64_t c = 0; c < C; ++c) {
      const T xhat = (x[c] - m) * s;
      const T g = d[c] * gamma[c];
      dx[c] = s * (g - g_mean - xhat * gx_mean);
      dgamma[c] += d[c] * xhat;
      dbeta[c] += d[c];
    }
  }
}

#define KDNAS_INSTANTIATE(T)                                                                   \
  template void layer_norm_forward_ref<T>(T*, T*, T*, const T*, const T*, const T*, int64_t,   \
                                          int64_t, T);                                         \
  template void layer_norm_backward_ref<T>(T*, T*, T*, const T*, const T*, const T*, const T*, \
                                           const T*, int64_t, int64_t);                      \
  template void add_layer_norm_forward_ref<T>(T*, const T*, const T*, const T*, const T*,       \
                                              int64_t, int64_t, T);
KDNAS_INSTANTIATE(float)
KDNAS_INSTANTIATE(double)
#undef KDNAS_INSTANTIATE

}  // namespace kdnas
