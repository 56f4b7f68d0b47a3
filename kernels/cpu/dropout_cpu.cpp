// Dropout is a hash per element plus a select: the hash (two rounds of 64-bit multiply-xorshift)
// is the only arithmetic, and it vectorises (AVX-512 has 64-bit lanes; without AVX512DQ the
// 64-bit multiplies are built from 32-bit ones). Each thread takes one contiguous chunk and
// draws counter + i for its own i, so the mask does not depend on the split.
//
// The reference compares the uniform k / 2^24 with p in double; here the same test is done on
// the integer k: k / 2^24 >= p  <=>  k >= ceil(p * 2^24) (k is an integer and p * 2^24 is exact
// in double), which keeps the loop in integer lanes and gives the identical mask.
#include "kernels/cpu/dropout_cpu.h"

#include <cmath>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/ref/dropout_ref.h"
#include "tensor/rng.h"

// The hash needs 64-bit multiplies (vpmullq, AVX512DQ) and byte stores from mask registers
// (AVX512BW): KDNAS_CPU_CLONES's "avx512f" clone has neither and leaves this loop scalar
// (measured 5.5 ns/element against 1.0 ns for the x86-64-v4 clone), so the forward is cloned
// for x86-64-v4 (F+BW+CD+DQ+VL) instead. Same conditions as KDNAS_CPU_CLONES otherwise.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define KDNAS_DROPOUT_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define KDNAS_DROPOUT_CLONES
#endif

namespace kdnas {
namespace {

constexpr int64_t kGrain = 16384;  // below this, one thread is faster than waking two

KDNAS_DROPOUT_CLONES void dropout_fwd_chunk(float* out, uint8_t* mask, const float* inp,
                                            uint64_t threshold, float scale, uint64_t seed,
                                            uint64_t first, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = (rng_hash(seed, first + uint64_t(i)) >> 40) >= threshold;
    mask[i] = keep ? 1 : 0;
    out[i] = keep ? inp[i] * scale : 0.f;
  }
}

KDNAS_CPU_CLONES void dropout_bwd_chunk(float* dinp, const float* dout, const uint8_t* mask,
                                        float scale, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dinp[i] = mask[i] ? dout[i] * scale : 0.f;
}

}  // namespace

void dropout_forward_cpu(Context& ctx, float* out, uint8_t* mask, const float* inp, double p,
                         uint64_t seed, uint64_t counter, int64_t n) {
  const uint64_t threshold = uint64_t(std::ceil(p * 16777216.0));  // in [0, 2^24]
  const float scale = float(dropout_scale(p));
  parallel_for(ctx, n, kGrain, [&](int64_t b, int64_t e) {
    dropout_fwd_chunk(out + b, mask + b, inp + b, threshold, scale, seed, counter + uint64_t(b),
                      e - b);
  });
}

void dropout_backward_cpu(Context& ctx, float* dinp, const float* dout, const uint8_t* mask,
                          double p, int64_t n) {
  const float scale = float(dropout_scale(p));
  parallel_for(ctx, n, kGrain, [&](int64_t b, int64_t e) {
    dropout_bwd_chunk(dinp + b, dout + b, mask + b, scale, e - b);
  });
}

}  // namespace kdnas
