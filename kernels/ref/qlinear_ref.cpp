#include "kernels/ref/qlinear_ref.h"

#include <algorithm>
#include <cmath>

namespace kdnas {

void quantize_weight_ref(int8_t* wq, float* scales, int32_t* row_sums, const float* w, int64_t N,
                         int64_t K) {
  for (int64_t n = 0; n < N; ++n) {
    const float* row = w + n * K;
    float amax = 0.f;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(row[k]));
    const float s = amax > 0.f ? amax / 127.f : 1.f;
    int32_t sum = 0;
    for (int64_t k = 0; k < K; ++k) {
      const float v = std::clamp(std::nearbyint(row[k] / s), -127.f, 127.f);
      wq[n * K + k] = int8_t(v);
      sum += int32_t(v);
    }
    scales[n] = s;
    row_sums[n] = sum;
  }
}

ActQuant activation_quant_ref(const float* x, int64_t n) {
  float lo = 0.f, hi = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return ActQuant{NAN, 0};
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  return activation_quant_from_range(lo, hi);
}

ActQuant activation_quant_from_range(float lo, float hi) {
  ActQuant q;
  q.scale = hi > lo ? (hi - lo) / 255.f : 1.f;
  q.zero_point = int32_t(std::clamp(std::nearbyint(-lo / q.scale), 0.f, 255.f));
  return q;
}

void quantize_activation_ref(uint8_t* xq, const float* x, int64_t n, ActQuant q) {
  const float inv = 1.f / q.scale;
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv) + float(q.zero_point);
    xq[i] = uint8_t(std::clamp(v, 0.f, 255.f));
  }
}

void qlinear_forward_ref(float* out, const uint8_t* xq, ActQuant q, const int8_t* wq,
                         const float* scales, const int32_t* row_sums, const float* bias, int64_t M,
                         int64_t N, int64_t K, bool gelu) {
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      int32_t acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += int32_t(xq[m * K + k]) * int32_t(wq[n * K + k]);
      acc -= q.zero_point * row_sums[n];
      float v = q.scale * scales[n] * float(acc) + (bias ? bias[n] : 0.f);
      if (gelu) v = 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f));
      out[m * N + n] = v;
    }
  }
}

}  // namespace kdnas
