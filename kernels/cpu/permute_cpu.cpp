// A permutation copy reads every element once and writes it once; its speed depends on whether
// both streams run along memory. The output is contiguous; after coalescing (size-1 dims drop
// out, output dims that are also adjacent in x merge) one of three cases applies:
//   runs: x's stride along the last output dim is 1, so the output is a sequence of contiguous
//     runs of x. The attention head split/merge [B, T, NH, HS] <-> [B, NH, T, HS] is runs of HS
//     elements (256 bytes in f32). Each run is a memcpy; threads take equal ranges of the output.
//   transpose: another output dim j is the contiguous one in x (2-D transposes, [B, T, C] ->
//     [B, C, T]). The [size_j, size_last] plane is copied in 8 x 8 tiles, a band of 8 rows of
//     j at a time: a tile touches 8 source and 8 output lines, all in L1, and the next band
//     finds the rest of those source lines in L2, so neither stream wastes memory bandwidth.
//   strided: no dim is contiguous in x (an every-other-element view): an element loop.
// Elements are moved as opaque 1-, 2-, 4- or 8-byte words, so every dtype takes the same path.
#include "kernels/cpu/permute_cpu.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/parallel.h"
#include "tensor/check.h"

namespace kdnas {
namespace {

// Below elementwise_grain() elements one thread runs (kernels/cpu/parallel.h).

// The output's shape and x's stride (elements) along each output dim, coalesced.
struct Layout {
  Shape shape, src;
};

Layout coalesce(const Shape& x_shape, const Shape& x_strides, const std::vector<int64_t>& order) {
  Layout l;
  for (int64_t d : order) {
    const int64_t s = x_shape[size_t(d)], st = x_strides[size_t(d)];
    if (s == 1) continue;
    // The previous output dim steps over exactly this one in x: one dim. (The output is
    // contiguous, so neighbouring output dims are always adjacent there.)
    if (!l.shape.empty() && l.src.back() == st * s) {
      l.shape.back() *= s;
      l.src.back() = st;
      continue;
    }
    l.shape.push_back(s);
    l.src.push_back(st);
  }
  if (l.shape.empty()) l = {{1}, {1}};  // one element
  return l;
}

// Walks output elements [b, e) as pieces of rows along the last dim, calling
// f(output index, x offset, count); an odometer over the outer dims tracks the x offset.
template <typename F>
void for_rows(const Layout& l, int64_t b, int64_t e, F&& f) {
  const int64_t nd = int64_t(l.shape.size()), N = l.shape.back(), s = l.src.back();
  std::vector<int64_t> idx(size_t(nd), 0);
  int64_t rest = b / N, col = b % N, src = 0;
  for (int64_t k = nd - 2; k >= 0; --k) {
    idx[size_t(k)] = rest % l.shape[size_t(k)];
    rest /= l.shape[size_t(k)];
    src += idx[size_t(k)] * l.src[size_t(k)];
  }
  for (int64_t p = b; p < e;) {
    const int64_t n = std::min(N - col, e - p);
    f(p, src + col * s, n);
    p += n;
    col = 0;
    for (int64_t k = nd - 2; k >= 0; --k) {
      const size_t u = size_t(k);
      src += l.src[u];
      if (++idx[u] < l.shape[u]) break;
      src -= l.src[u] * l.shape[u];
      idx[u] = 0;
    }
  }
}

template <typename T>
void copy_runs(Context& ctx, T* out, const T* x, const Layout& l) {
  parallel_for(ctx, shape_numel(l.shape), elementwise_grain(), [&](int64_t b, int64_t e) {
    for_rows(l, b, e, [&](int64_t dst, int64_t src, int64_t n) {
      std::memcpy(out + dst, x + src, size_t(n) * sizeof(T));
    });
  });
}

template <typename T>
void copy_strided(Context& ctx, T* out, const T* x, const Layout& l) {
  const int64_t s = l.src.back();
  parallel_for(ctx, shape_numel(l.shape), elementwise_grain(), [&](int64_t b, int64_t e) {
    for_rows(l, b, e, [&](int64_t dst, int64_t src, int64_t n) {
      for (int64_t i = 0; i < n; ++i) out[dst + i] = x[src + i * s];
    });
  });
}

// Tile edge in elements. Measured on the reference machine (portable GCC 12 build, run-time
// strides, [1024 x 768] and [768 x 1024] transposes of 1-, 2-, 4- and 8-byte elements): 8 x 8
// tiles were the fastest or within 10% of it in every case; 16 x 16 was up to 2x and 32 x 32 up
// to 5x slower, and two-level tiles (8 x 8 blocks in 32 x 32 or 64 x 64) gained nothing.
constexpr int64_t kEdge = 8;

// A full tile: out[m * dj + n] = x[m + n * s]. Compile-time trip counts let GCC unroll it into
// straight-line loads and stores. Kept out of line: inlined into its caller, GCC merged it with
// the run-time-bounds edge loop below and lost that code.
template <typename T>
[[gnu::noinline]] void transpose_full_tile(T* __restrict out, const T* __restrict x, int64_t dj,
                                           int64_t s) {
  for (int64_t m = 0; m < kEdge; ++m)
    for (int64_t n = 0; n < kEdge; ++n) out[m * dj + n] = x[m + n * s];
}

// A tile of mn x nn elements (at most kEdge x kEdge).
template <typename T>
void transpose_tile(T* out, const T* x, int64_t dj, int64_t s, int64_t mn, int64_t nn) {
  if (mn == kEdge && nn == kEdge) return transpose_full_tile(out, x, dj, s);
  for (int64_t m = 0; m < mn; ++m)
    for (int64_t n = 0; n < nn; ++n) out[m * dj + n] = x[m + n * s];
}

// Output dim j is contiguous in x: tiles of the [M = size_j, N = size_last] plane, for every
// index of the other ("outer") dims. Work items are (outer index, band of one tile of rows of j).
template <typename T>
void copy_transposed(Context& ctx, T* out, const T* x, const Layout& l, size_t j) {
  const size_t nd = l.shape.size(), last = nd - 1;
  const int64_t M = l.shape[j], N = l.shape[last], s = l.src[last];
  Shape oshape, osrc, odst;  // the outer dims: sizes, x strides, output strides
  int64_t dst_stride = 1, dj = 1;
  for (size_t k = nd; k-- > 0;) {
    if (k == j) dj = dst_stride;
    if (k != j && k != last) {
      oshape.insert(oshape.begin(), l.shape[k]);
      osrc.insert(osrc.begin(), l.src[k]);
      odst.insert(odst.begin(), dst_stride);
    }
    dst_stride *= l.shape[k];
  }
  const int64_t bands = (M + kEdge - 1) / kEdge, outer = shape_numel(oshape);
  const int64_t grain = std::max<int64_t>(1, elementwise_grain() / (kEdge * N));
  parallel_for(ctx, outer * bands, grain, [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      int64_t rest = item / bands, dst0 = 0, src0 = 0;
      for (size_t k = oshape.size(); k-- > 0;) {
        const int64_t i = rest % oshape[k];
        rest /= oshape[k];
        dst0 += i * odst[k];
        src0 += i * osrc[k];
      }
      const int64_t m0 = (item % bands) * kEdge, mn = std::min(kEdge, M - m0);
      for (int64_t n0 = 0; n0 < N; n0 += kEdge)
        transpose_tile(out + dst0 + m0 * dj + n0, x + src0 + m0 + n0 * s, dj, s, mn,
                       std::min(kEdge, N - n0));
    }
  });
}

template <typename T>
void permute_typed(Context& ctx, T* out, const T* x, const Layout& l) {
  if (l.src.back() == 1) return copy_runs(ctx, out, x, l);
  for (size_t j = 0; j + 1 < l.shape.size(); ++j)
    if (l.src[j] == 1) return copy_transposed(ctx, out, x, l, j);
  copy_strided(ctx, out, x, l);
}

}  // namespace

void permute_copy_cpu(Context& ctx, void* out, const void* x, size_t element_size,
                      const Shape& x_shape, const Shape& x_strides,
                      const std::vector<int64_t>& order) {
  if (shape_numel(x_shape) == 0) return;
  const Layout l = coalesce(x_shape, x_strides, order);
  switch (element_size) {
    case 1:
      return permute_typed(ctx, static_cast<uint8_t*>(out), static_cast<const uint8_t*>(x), l);
    case 2:
      return permute_typed(ctx, static_cast<uint16_t*>(out), static_cast<const uint16_t*>(x), l);
    case 4:
      return permute_typed(ctx, static_cast<uint32_t*>(out), static_cast<const uint32_t*>(x), l);
    case 8:
      return permute_typed(ctx, static_cast<uint64_t*>(out), static_cast<const uint64_t*>(x), l);
  }
  KDNAS_ASSERT(false);
}

}  // namespace kdnas
