#include "kernels/ref/matmul_ref.h"

#include <cmath>
#include <vector>

namespace kdnas {

template <typename T>
void matmul_forward_ref(T* out, const T* a, const T* b, const T* bias, int64_t M, int64_t K,
                        int64_t N, int64_t a_rs, int64_t a_cs, int64_t b_rs, int64_t b_cs,
                        bool gelu) {
  // Row i of out is sum_p a[i, p] * (row p of b): walking b by rows keeps the inner loop on
  // one row of b, which is what the common layouts store contiguously.
  std::vector<double> acc(size_t(N > 0 ? N : 0));
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) acc[size_t(j)] = bias ? double(bias[j]) : 0.0;
    for (int64_t p = 0; p < K; ++p) {
      const double aip = double(a[i * a_rs + p * a_cs]);
      for (int64_t j = 0; j < N; ++j) acc[size_t(j)] += aip * double(b[p * b_rs + j * b_cs]);
    }
    for (int64_t j = 0; j < N; ++j) {
      double x = acc[size_t(j)];
      if (gelu) x = 0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440));
      out[i * N + j] = T(x);
    }
  }
}

template <typename T>
void matmul_backward_ref(T* da, T* db, const T* dout, const T* a, const T* b, int64_t M, int64_t K,
                         int64_t N) {
  // da[i, p] = sum_j dout[i, j] * b[p, j]: a dot product of two contiguous rows.
  for (int64_t i = 0; i < M; ++i)
    for (int64_t p = 0; p < K; ++p) {
      double s = 0;
      for (int64_t j = 0; j < N; ++j) s += double(dout[i * N + j]) * double(b[p * N + j]);
      da[i * K + p] += T(s);
    }
  // db[p, :] += a[i, p] * dout[i, :], summed over the rows i.
  for (int64_t i = 0; i < M; ++i)
    for (int64_t p = 0; p < K; ++p) {
      const T aip = a[i * K + p];
      for (int64_t j = 0; j < N; ++j) db[p * N + j] += aip * dout[i * N + j];
    }
}

template <typename T>
void bias_backward_ref(T* dbias, const T* dout, int64_t M, int64_t N) {
  for (int64_t j = 0; j < N; ++j) {
    double s = 0;
    for (int64_t i = 0; i < M; ++i) s += double(dout[i * N + j]);
    dbias[j] = T(s);
  }
}

#define KDNAS_INSTANTIATE(T)                                                                       \
  template void matmul_forward_ref<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, \
                                      int64_t, int64_t, int64_t, int64_t, bool);                   \
  template void matmul_backward_ref<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t,     \
                                       int64_t);                                                   \
  template void bias_backward_ref<T>(T*, const T*, int64_t, int64_t);
KDNAS_INSTANTIATE(float)
KDNAS_INSTANTIATE(double)
#undef KDNAS_INSTANTIATE

}  // namespace kdnas
