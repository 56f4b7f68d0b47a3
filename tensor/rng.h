// A seeded, counter-based random number generator.
//
// Every random number is a pure function of (seed, counter): draw i of a stream is
// hash(seed, i). That makes results independent of thread count and kernel (the reference and
// fast dropout kernels produce the same mask), and the whole state is two integers, so a
// training checkpoint can save and restore it exactly.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace kdnas {

// The mixing function: a strong 64-bit hash (splitmix64 finaliser over seed and counter).
inline uint64_t rng_hash(uint64_t seed, uint64_t counter) {
  uint64_t z =
      seed * 0x9e3779b97f4a7c15ull + counter * 0xbf58476d1ce4e5b9ull + 0x94d049bb133111ebull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z = z ^ (z >> 31);
  // A second round decorrelates neighbouring counters fully.
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) with 24 random bits: exactly representable in f32.
inline float rng_uniform01(uint64_t seed, uint64_t counter) {
  return float(rng_hash(seed, counter) >> 40) * (1.0f / 16777216.0f);
}

struct RngState {
  uint64_t seed = 0;
  uint64_t counter = 0;
};

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { state_.seed = seed; }

  uint64_t next_u64() { return rng_hash(state_.seed, state_.counter++); }
  float uniform() { return rng_uniform01(state_.seed, state_.counter++); }  // [0, 1)
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  float normal(float mean = 0.f, float std = 1.f);  // Box-Muller
  // An integer in [0, n).
  uint64_t below(uint64_t n) { return n ? next_u64() % n : 0; }
  // Reserves `count` counters for a kernel that draws them itself (e.g. dropout), returning
  // the first one; the kernel uses rng_hash(seed(), first + i).
  uint64_t reserve(uint64_t count) {
    uint64_t first = state_.counter;
    state_.counter += count;
    return first;
  }
  uint64_t seed() const { return state_.seed; }

  RngState state() const { return state_; }
  void set_state(const RngState& s) { state_ = s; }

  // Fill a floating tensor (any dtype/strides, CPU) in row-major order.
  void fill_uniform(Tensor& t, float lo = 0.f, float hi = 1.f);
  void fill_normal(Tensor& t, float mean = 0.f, float std = 1.f);
  void fill_bernoulli(Tensor& t, float p);  // 1 with probability p, else 0

 private:
  RngState state_;
};

}  // namespace kdnas
