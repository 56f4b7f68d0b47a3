// Broadcasting binary ops are memory-bound: two input streams (one of them often tiny) and one
// output stream. The layout is first simplified: size-1 dims drop out and neighbouring dims that
// are laid out contiguously in both inputs merge (coalescing), so that nearly every call becomes
// rows of the last dim with one of three stride patterns, each its own vectorised loop:
//   (1, 1)  same shape, or the row broadcast [M, N] op [N] (the bias: b restarts each row)
//   (1, 0)  column or scalar broadcast, [M, N] op [M, 1] or [M, N] op []: one b value per row
//   (0, 1)  the same with a broadcast
// plus a general strided loop for the rest (transposed views, every-other-column slices).
// Threads take equal contiguous ranges of the output and walk them row by row with an odometer
// over the outer dims, so a split in the middle of a row costs nothing.
#include "kernels/cpu/binary_cpu.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/eltwise_cpu.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/reduce_cpu.h"
#include "kernels/cpu/vec_math.h"

namespace kdnas {
namespace {

// Below elementwise_grain() elements one thread runs (kernels/cpu/parallel.h).

// out[i] = f(a[i * sa], b[i * sb]) for i < n, with unit-stride and broadcast patterns written
// out so that each compiles to a plain SIMD loop. Inlined into the ISA clones of binary_row.
template <typename F>
[[gnu::always_inline]] inline void row(F f, float* out, const float* a, int64_t sa,
                                       const float* b, int64_t sb, int64_t n) {
  if (sa == 1 && sb == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float y = *b;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], y);
  } else if (sa == 0 && sb == 1) {
    const float x = *a;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = f(x, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i * sa], b[i * sb]);
  }
}

KDNAS_CPU_CLONES void binary_row(BinaryOp op, float* out, const float* a, int64_t sa,
                                 const float* b, int64_t sb, int64_t n) {
  switch (op) {
    case BinaryOp::Add: return row([](float x, float y) { return x + y; }, out, a, sa, b, sb, n);
    case BinaryOp::Sub: return row([](float x, float y) { return x - y; }, out, a, sa, b, sb, n);
    case BinaryOp::Mul: return row([](float x, float y) { return x * y; }, out, a, sa, b, sb, n);
    case BinaryOp::Div: return row([](float x, float y) { return x / y; }, out, a, sa, b, sb, n);
  }
}

// The output shape with its two read strides, simplified (see the top of the file).
struct Layout {
  Shape shape, sa, sb;
};

Layout coalesce(const Shape& shape, const Shape& sa, const Shape& sb) {
  Layout l;
  for (size_t k = 0; k < shape.size(); ++k) {
    if (shape[k] == 1) continue;
    // The previous (outer) dim steps exactly over this one in both inputs: one dim.
    if (!l.shape.empty() && l.sa.back() == sa[k] * shape[k] && l.sb.back() == sb[k] * shape[k]) {
      l.shape.back() *= shape[k];
      l.sa.back() = sa[k];
      l.sb.back() = sb[k];
      continue;
    }
    l.shape.push_back(shape[k]);
    l.sa.push_back(sa[k]);
    l.sb.push_back(sb[k]);
  }
  if (l.shape.empty()) l = {{1}, {0}, {0}};  // one element
  return l;
}

}  // namespace

void binary_forward_cpu(Context& ctx, float* out, const float* a, const float* b, BinaryOp op,
                        const Shape& shape, const Shape& a_strides, const Shape& b_strides) {
  const int64_t total = shape_numel(shape);
  if (total == 0) return;
  const Layout l = coalesce(shape, a_strides, b_strides);
  const int64_t nd = int64_t(l.shape.size()), N = l.shape.back();
  const int64_t sa = l.sa.back(), sb = l.sb.back();
  parallel_for(ctx, total, elementwise_grain(), [&](int64_t begin, int64_t end) {
    // Index and input offsets of the row holding `begin`.
    std::vector<int64_t> idx(size_t(nd), 0);
    int64_t rest = begin / N, col = begin % N, oa = 0, ob = 0;
    for (int64_t k = nd - 2; k >= 0; --k) {
      idx[size_t(k)] = rest % l.shape[size_t(k)];
      rest /= l.shape[size_t(k)];
      oa += idx[size_t(k)] * l.sa[size_t(k)];
      ob += idx[size_t(k)] * l.sb[size_t(k)];
    }
    for (int64_t p = begin; p < end;) {
      const int64_t n = std::min(N - col, end - p);
      binary_row(op, out + p, a + oa + col * sa, sa, b + ob + col * sb, sb, n);
      p += n;
      col = 0;
      for (int64_t k = nd - 2; k >= 0; --k) {  // next row: the odometer
        const size_t u = size_t(k);
        oa += l.sa[u];
        ob += l.sb[u];
        if (++idx[u] < l.shape[u]) break;
        oa -= l.sa[u] * l.shape[u];
        ob -= l.sb[u] * l.shape[u];
        idx[u] = 0;
      }
    }
  });
}

void sum_to_shape_cpu(Context& ctx, float* out, const float* x, const Shape& x_shape,
                      const Shape& out_shape, float scale) {
  // Groups of neighbouring dims that are all reduced or all kept (size-1 dims of x drop out):
  // [B, T, C] -> [C] is one reduced group [B*T] then one kept group [C].
  struct Group {
    int64_t size;
    bool reduced;
  };
  std::vector<Group> g;
  const size_t lead = x_shape.size() - out_shape.size();
  for (size_t k = 0; k < x_shape.size(); ++k) {
    const int64_t xs = x_shape[k], os = k < lead ? 1 : out_shape[k - lead];
    if (xs == 1) continue;
    const bool reduced = os == 1;
    if (!g.empty() && g.back().reduced == reduced)
      g.back().size *= xs;
    else
      g.push_back({xs, reduced});
  }
  auto product = [&](size_t b, size_t e) {
    int64_t p = 1;
    for (size_t k = b; k < e; ++k) p *= g[k].size;
    return p;
  };
  // One [outer, D, inner] sum pass per reduced group, innermost first: each pass shrinks the
  // data for the next, and the last one writes `out` with the scale.
  Tensor tmp;
  const float* cur = x;
  for (;;) {
    size_t r = g.size();
    for (size_t k = g.size(); k-- > 0;)
      if (g[k].reduced) {
        r = k;
        break;
      }
    if (r == g.size()) {  // nothing (left) to reduce: only happens when nothing was
      scale_forward_cpu(ctx, out, cur, scale, product(0, g.size()));
      return;
    }
    const bool last = r == 0 || (r == 1 && !g[0].reduced);
    const int64_t outer = product(0, r), D = g[r].size, inner = product(r + 1, g.size());
    Tensor next = last ? Tensor() : Tensor::empty({outer * inner});
    float* dst = last ? out : next.data<float>();
    sum_forward_cpu(ctx, dst, cur, outer, D, inner, last ? scale : 1.f);
    if (last) return;
    // The kept groups on both sides of the reduced one are now neighbours: merge them.
    if (r + 1 < g.size()) {
      g[r - 1].size *= g[r + 1].size;
      g.erase(g.begin() + long(r), g.begin() + long(r) + 2);
    } else {
      g.erase(g.begin() + long(r));
    }
    tmp = next;
    cur = dst;
  }
}

}  // namespace kdnas
