#include "tensor/rng.h"

#include <cmath>

namespace kdnas {

float Rng::normal(float mean, float std) {
  // Box-Muller: two uniforms give one standard normal. 1 - u keeps the log argument in (0, 1].
  float u1 = 1.0f - uniform();
  float u2 = uniform();
  float r = std::sqrt(-2.0f * std::log(u1));
  return mean + std * r * std::cos(6.28318530717958647692f * u2);
}

namespace {
template <typename Draw>
void fill_with(Tensor& t, Draw&& draw) {
  KDNAS_CHECK(t.device().is_cpu(), "rng: fill of a ", t.device().str(), " tensor (CPU only)");
  if (t.dtype() == DType::F32 && t.is_contiguous()) {  // the common case, without a temporary
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(draw());
    return;
  }
  Tensor c = Tensor::empty(t.shape(), DType::F64);
  double* p = c.data<double>();
  for (int64_t i = 0; i < c.numel(); ++i) p[i] = draw();
  t.copy_(c);
}
}  // namespace

void Rng::fill_uniform(Tensor& t, float lo, float hi) {
  fill_with(t, [&] { return double(uniform(lo, hi)); });
}
void Rng::fill_normal(Tensor& t, float mean, float std) {
  fill_with(t, [&] { return double(normal(mean, std)); });
}
void Rng::fill_bernoulli(Tensor& t, float p) {
  fill_with(t, [&] { return uniform() < p ? 1.0 : 0.0; });
}

}  // namespace kdnas
