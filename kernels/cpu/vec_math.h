// Branch-free f32 math that compilers vectorise: exp, erf, tanh built from polynomials and bit
// manipulation only, so a `#pragma omp simd` loop over them becomes AVX-512 / AVX2 code.
// (std::exp and std::erf are opaque library calls and keep loops scalar.)
//
// Accuracy, measured against double precision by tests/kernels/test_vec_math.cpp:
// relative error of exp < 3e-7 over [-86, 86]; absolute error of erf < 6e-7, of tanh < 3e-7.
//
// KDNAS_CPU_CLONES marks a hot loop to be compiled for AVX-512, AVX2 and baseline x86-64 and
// picked at load time for the CPU it runs on: a portable binary that still uses the wide units.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define KDNAS_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KDNAS_CPU_CLONES
#endif

namespace kdnas::vec {

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// e^x. Range reduction x = n*ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r, and
// 2^n assembled directly in the exponent bits. Inputs are clamped to the finite range.
inline float exp(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
  // Round to nearest by adding and subtracting 1.5 * 2^23 (no floor call, so it vectorises).
  float n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;
  // ln2 split in a high part exact in f32 and a low correction: r stays accurate.
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t e = int32_t(n) + 127;
  // 2^n for n in [-126, 128): the exponent field; the clamp keeps e inside [1, 254] then
  // fixes the last power of two with one multiply.
  int32_t e1 = e > 254 ? 254 : (e < 1 ? 1 : e);
  float scale = bits_to_float(uint32_t(e1) << 23);
  float fix = bits_to_float(uint32_t(e - e1 + 127) << 23);
  return p * scale * fix;
}

// erf(x) from Abramowitz & Stegun 7.1.26 refined: 1 - t*poly(t)*e^{-x^2}, t = 1/(1+p|x|),
// with the sign restored at the end. Max absolute error ~1.5e-7.
inline float erf(float x) {
  float ax = x < 0.f ? -x : x;
  float t = 1.0f / (1.0f + 0.3275911f * ax);
  float y = 1.061405429f;
  y = y * t - 1.453152027f;
  y = y * t + 1.421413741f;
  y = y * t - 0.284496736f;
  y = y * t + 0.254829592f;
  y = 1.0f - y * t * exp(-ax * ax);
  return x < 0.f ? -y : y;
}

// tanh(x) = sign(x) * (1 - 2 / (e^{2|x|} + 1)); for |x| < 0.004 the cubic Taylor term is more
// accurate than the subtraction.
inline float tanh(float x) {
  float ax = x < 0.f ? -x : x;
  float big = 1.0f - 2.0f / (exp(2.0f * ax) + 1.0f);
  float small = ax - ax * ax * ax * (1.0f / 3.0f);
  float y = ax < 0.004f ? small : big;
  return x < 0.f ? -y : y;
}

}  // namespace kdnas::vec
