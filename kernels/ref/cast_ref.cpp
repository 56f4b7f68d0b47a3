#include "kernels/ref/cast_ref.h"

namespace kdnas {
namespace {

// Every value goes through f32 or f64 on its way: widen exactly, then narrow once.
inline double widen(float x) {
  return x;
}
inline double widen(double x) {
  return x;
}
inline double widen(bf16 x) {
  return bf16_to_f32(x);
}
inline double widen(f16 x) {
  return f16_to_f32(x);
}

template <typename Dst>
Dst narrow_to(double x);
template <>
float narrow_to<float>(double x) {
  return float(x);
}
template <>
double narrow_to<double>(double x) {
  return x;
}
template <>
bf16 narrow_to<bf16>(double x) {
  return f32_to_bf16(float(x));
}
template <>
f16 narrow_to<f16>(double x) {
  return f32_to_f16(float(x));
}

}  // namespace

template <typename Dst, typename Src>
void cast_ref(Dst* out, const Src* in, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = narrow_to<Dst>(widen(in[i]));
}

#define KDNAS_INSTANTIATE(D)                                     \
  template void cast_ref<D, float>(D*, const float*, int64_t);   \
  template void cast_ref<D, double>(D*, const double*, int64_t); \
  template void cast_ref<D, bf16>(D*, const bf16*, int64_t);     \
  template void cast_ref<D, f16>(D*, const f16*, int64_t);
KDNAS_INSTANTIATE(float)
KDNAS_INSTANTIATE(double)
KDNAS_INSTANTIATE(bf16)
KDNAS_INSTANTIATE(f16)
#undef KDNAS_INSTANTIATE

}  // namespace kdnas
