// The OpenMP f32 GEMM follows the BLIS recipe (Goto's algorithm), in three levels:
//
//   task      a block of out, [m x nc] of one batch matrix; tasks are split across threads
//             (parallel_for), so no two threads ever write the same output element;
//   K block   for each kc-slice of K: copy ("pack") the kc x nc slice of b into NR-column
//             strips once, then for each mc-row block of a, pack it into MR-row strips; packed
//             strips are contiguous and zero-padded, so the inner kernel reads both with unit
//             stride whatever the operands' strides are (a transposed view costs only a
//             different packing loop);
//   micro     an MR x NR register tile of out: for each p < kc, one row of the B strip times
//             MR broadcast values of the A strip, summed into MR x NR accumulators that never
//             leave the registers (measured: 97% of this machine's FMA peak on packed data).
//
// Memory traffic: the B strip (kc x NR) stays in L1 while the micro-kernel walks down the A
// block (mc x kc, in L2); out is read and written once per K block. The epilogue (bias, GELU)
// runs on the register tile of the last K block, while it is still in registers.
//
// The tile is the widest that fits the vector registers of the CPU, picked at load time:
// 8 x 32 with AVX-512 (16 of 32 zmm registers), 6 x 16 with AVX2 (12 of 16 ymm), 4 x 8 on
// baseline x86-64. (AVX2 with the AVX-512 tile spills and runs 25% slower, measured.) The code
// is one template; the per-ISA entry points only instantiate it under a target attribute.
#include "kernels/cpu/matmul_cpu.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <unordered_map>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"
#include "tensor/check.h"

#if KDNAS_HAVE_ONEDNN
#include "kernels/cpu/onednn_context.h"
#endif

namespace kdnas {

void GemmLayout::batch_offsets(int64_t g, int64_t& a_off, int64_t& b_off) const {
  a_off = b_off = 0;
  for (size_t d = batch.size(); d-- > 0;) {
    const int64_t idx = g % batch[d];
    g /= batch[d];
    a_off += idx * a_batch_strides[d];
    b_off += idx * b_batch_strides[d];
  }
}

namespace {

// Cache blocks: a B strip kKC x NR (32 KiB for NR = 32: L1), an A block kMC x kKC (128 KiB:
// L2), a B block kKC x kNC (512 KiB: L2).
constexpr int64_t kKC = 256, kMC = 128, kNC = 512;
// Task widths are multiples of this (a multiple of every NR), so that strips stay whole.
constexpr int64_t kNAlign = 32;
// Below this many flops per thread a second thread costs more (wake-up, repacking) than it saves.
constexpr double kMinFlopsPerThread = 4e6;
constexpr float kInvSqrt2 = 0.70710678118654752440f;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
int64_t round_up(int64_t a, int64_t b) {
  return ceil_div(a, b) * b;
}

// Packs a(i, p) for i < mc, p < kc (strides rs, cs) into MR-row strips: strip s holds
// ap[s * kc + p * MR + i] = a(s + i, p), rows past mc zero. Reads follow a's unit stride.
template <int64_t MR>
[[gnu::always_inline]] inline void pack_a(float* ap, const float* a, int64_t rs, int64_t cs,
                                          int64_t mc, int64_t kc) {
  for (int64_t s = 0; s < mc; s += MR) {
    const int64_t mr = std::min(MR, mc - s);
    float* dst = ap + s * kc;
    if (cs == 1) {
      for (int64_t i = 0; i < mr; ++i)
        for (int64_t p = 0; p < kc; ++p) dst[p * MR + i] = a[(s + i) * rs + p];
    } else {
      for (int64_t p = 0; p < kc; ++p)
        for (int64_t i = 0; i < mr; ++i) dst[p * MR + i] = a[(s + i) * rs + p * cs];
    }
    for (int64_t p = 0; p < kc; ++p)
      for (int64_t i = mr; i < MR; ++i) dst[p * MR + i] = 0.f;
  }
}

// Packs b(p, j) for p < kc, j < nc into NR-column strips: strip s holds
// bp[s * kc + p * NR + j] = b(p, s + j), columns past nc zero. For a row-major b this copies
// NR-float row pieces; for a column-major b (linear's wᵀ: b(p, j) = w[j * K + p]) it is a
// transpose, done in 16-row slabs so that the reads (16 floats of one w row = one cache line)
// and the writes (16 rows of the strip) both stay in L1.
template <int64_t NR>
[[gnu::always_inline]] inline void pack_b(float* bp, const float* b, int64_t rs, int64_t cs,
                                          int64_t kc, int64_t nc) {
  constexpr int64_t kSlab = 16;
  for (int64_t s = 0; s < nc; s += NR) {
    const int64_t nr = std::min(NR, nc - s);
    float* dst = bp + s * kc;
    if (cs == 1) {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = b + p * rs + s;
        for (int64_t j = 0; j < nr; ++j) dst[p * NR + j] = src[j];
        for (int64_t j = nr; j < NR; ++j) dst[p * NR + j] = 0.f;
      }
    } else {
      for (int64_t p0 = 0; p0 < kc; p0 += kSlab) {
        const int64_t pn = std::min(kSlab, kc - p0);
        for (int64_t j = 0; j < nr; ++j) {
          const float* src = b + p0 * rs + (s + j) * cs;
          for (int64_t q = 0; q < pn; ++q) dst[(p0 + q) * NR + j] = src[q * rs];
        }
        for (int64_t q = 0; q < pn; ++q)
          for (int64_t j = nr; j < NR; ++j) dst[(p0 + q) * NR + j] = 0.f;
      }
    }
  }
}

// What the micro-kernel does with its tile: c = tile (first K block) or c += tile, then on
// the last K block + bias[j] and GELU.
struct Epilogue {
  bool first;
  const float* bias;  // null: none (or not the last K block)
  bool gelu;
};

[[gnu::always_inline]] inline float gelu(float x) {
  return 0.5f * x * (1.0f + vec::erf(x * kInvSqrt2));
}

// out tile c[mr x nr] (ldc) from the packed strips ap (kc x MR) and bp (kc x NR). The loops
// over the tile are fully unrolled, so acc[][] lives in registers and the j loop becomes
// NR / (vector width) FMAs per row.
template <int64_t MR, int64_t NR>
[[gnu::always_inline]] inline void micro_kernel(int64_t kc, const float* __restrict ap,
                                                const float* __restrict bp, float* __restrict c,
                                                int64_t ldc, int64_t mr, int64_t nr,
                                                const Epilogue& e) {
  float acc[MR][NR];
#pragma GCC unroll 16
  for (int64_t i = 0; i < MR; ++i)
#pragma omp simd
    for (int64_t j = 0; j < NR; ++j) acc[i][j] = 0.f;
  for (int64_t p = 0; p < kc; ++p) {
    const float* a = ap + p * MR;
    const float* b = bp + p * NR;
#pragma GCC unroll 16
    for (int64_t i = 0; i < MR; ++i)
#pragma omp simd
      for (int64_t j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
  }
  // The epilogue, one step at a time so that each loop is a plain vector loop (a select
  // between c and 0 would need a load GCC cannot prove safe).
  if (mr == MR && nr == NR) {
#pragma GCC unroll 16
    for (int64_t i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      if (!e.first)
#pragma omp simd
        for (int64_t j = 0; j < NR; ++j) acc[i][j] += ci[j];
      if (e.bias)
#pragma omp simd
        for (int64_t j = 0; j < NR; ++j) acc[i][j] += e.bias[j];
      if (e.gelu)
#pragma omp simd
        for (int64_t j = 0; j < NR; ++j) acc[i][j] = gelu(acc[i][j]);
#pragma omp simd
      for (int64_t j = 0; j < NR; ++j) ci[j] = acc[i][j];
    }
  } else {
    for (int64_t i = 0; i < mr; ++i) {
      float* ci = c + i * ldc;
      for (int64_t j = 0; j < nr; ++j) {
        float x = acc[i][j] + (e.first ? 0.f : ci[j]) + (e.bias ? e.bias[j] : 0.f);
        ci[j] = e.gelu ? gelu(x) : x;
      }
    }
  }
}

// One task: out rows [i0, i0 + m) x columns [j0, j0 + nc) of one matrix (a, b, c point at
// that matrix), over all of K. For each K block the B block is packed once and reused for
// every A block. ap (kMC x kKC) and bp (nc x kKC) are the thread's packing buffers.
struct Task {
  float* c;
  const float* a;
  const float* b;
  const float* bias;
  bool gelu;
  int64_t i0, m, j0, nc;
};

// One K block [p0, p0 + kc) of a task, its B block already in NR-column strips (the strip for
// the task's column jr at strips + jr * kc): for each mc-row block of a, pack it, then every
// strip times it. With `after` (pre-packed weights, which come from memory), the strip after
// each one (the next of this block, or `after` for the last: the next block's first) is
// prefetched into L2 a piece per micro-tile, so it is there when its first tile starts.
template <int64_t MR, int64_t NR>
[[gnu::always_inline]] inline void gemm_k_block(const Task& t, const GemmLayout& l, float* ap,
                                                int64_t p0, int64_t kc, const float* strips,
                                                const float* after) {
  constexpr int64_t mc_max = kMC / MR * MR;
  const bool last = p0 + kc == l.K;
  const int64_t strip_bytes = kc * NR * int64_t(sizeof(float));
  for (int64_t ic = t.i0; ic < t.i0 + t.m; ic += mc_max) {
    const int64_t mc = std::min(mc_max, t.i0 + t.m - ic);
    pack_a<MR>(ap, t.a + ic * l.a_rs + p0 * l.a_cs, l.a_rs, l.a_cs, mc, kc);
    const int64_t tiles = (mc + MR - 1) / MR, chunk = (strip_bytes + tiles - 1) / tiles;
    for (int64_t jr = 0; jr < t.nc; jr += NR) {
      const Epilogue e{p0 == 0, last && t.bias ? t.bias + t.j0 + jr : nullptr, last && t.gelu};
      const float* bp = strips + jr * kc;
      const char* next = reinterpret_cast<const char*>(jr + NR < t.nc ? bp + NR * kc : after);
      for (int64_t ir = 0, tile = 0; ir < mc; ir += MR, ++tile) {
        if (after)
          for (int64_t o = tile * chunk; o < std::min(strip_bytes, (tile + 1) * chunk); o += 64)
            __builtin_prefetch(next + o, 0, 2);
        micro_kernel<MR, NR>(kc, ap + ir * kc, bp, t.c + (ic + ir) * l.N + t.j0 + jr, l.N,
                             std::min(MR, mc - ir), std::min(NR, t.nc - jr), e);
      }
    }
  }
}

// A task whose B is packed here, one K block at a time, into the thread's buffer bp.
template <int64_t MR, int64_t NR>
[[gnu::always_inline]] inline void gemm_task(const Task& t, const GemmLayout& l, float* ap,
                                             float* bp) {
  for (int64_t p0 = 0; p0 < l.K; p0 += kKC) {
    const int64_t kc = std::min(kKC, l.K - p0);
    pack_b<NR>(bp, t.b + p0 * l.b_rs + t.j0 * l.b_cs, l.b_rs, l.b_cs, kc, t.nc);
    gemm_k_block<MR, NR>(t, l, ap, p0, kc, bp, nullptr);
  }
}

// A task on weights packed once (pack_b over all N, K block by K block: block p0 starts at
// p0 * Npad, its strip for column j at + j * kc), with the next strip always prefetched.
template <int64_t MR, int64_t NR>
[[gnu::always_inline]] inline void gemm_task_prepacked(const Task& t, const GemmLayout& l,
                                                       float* ap, const float* packed,
                                                       int64_t Npad) {
  for (int64_t p0 = 0; p0 < l.K; p0 += kKC) {
    const int64_t kc = std::min(kKC, l.K - p0), p1 = p0 + kc;
    // The next K block's first strip of this task (nothing after the last block: the block
    // itself again, already in cache, keeps the pointer valid).
    const float* after = p1 < l.K ? packed + p1 * Npad + t.j0 * std::min(kKC, l.K - p1)
                                  : packed + p0 * Npad + t.j0 * kc;
    gemm_k_block<MR, NR>(t, l, ap, p0, kc, packed + p0 * Npad + t.j0 * kc, after);
  }
}

// The per-ISA instantiations, and the one this CPU runs.
using GemmTaskFn = void (*)(const Task&, const GemmLayout&, float*, float*);
using PrepackedTaskFn = void (*)(const Task&, const GemmLayout&, float*, const float*, int64_t);
using PackFn = void (*)(float*, const float*, int64_t, int64_t, int64_t, int64_t);
struct GemmKernels {
  GemmTaskFn task;
  PrepackedTaskFn prepacked;
  PackFn pack;  // pack_b with this kernel's NR
  int64_t nr;
};
// Each ISA's task, pre-packed task and packing (NR), as one set.
#define KDNAS_GEMM_KERNELS(name, target, MR, NR)                                                  \
  target void gemm_task_##name(const Task& t, const GemmLayout& l, float* ap, float* bp) {      \
    gemm_task<MR, NR>(t, l, ap, bp);                                                            \
  }                                                                                             \
  target void gemm_prepacked_##name(const Task& t, const GemmLayout& l, float* ap,             \
                                    const float* packed, int64_t Npad) {                        \
    gemm_task_prepacked<MR, NR>(t, l, ap, packed, Npad);                                        \
  }                                                                                             \
  target void pack_b_##name(float* bp, const float* b, int64_t rs, int64_t cs, int64_t kc,      \
                            int64_t nc) {                                                       \
    pack_b<NR>(bp, b, rs, cs, kc, nc);                                                          \
  }                                                                                             \
  const GemmKernels kGemm_##name{gemm_task_##name, gemm_prepacked_##name, pack_b_##name, NR};

KDNAS_GEMM_KERNELS(baseline, , 4, 8)
#if defined(__x86_64__) && defined(__GNUC__)
KDNAS_GEMM_KERNELS(avx2, [[gnu::target("avx2,fma")]], 6, 16)
KDNAS_GEMM_KERNELS(avx512, [[gnu::target("avx512f")]], 8, 32)
const GemmKernels& pick_gemm_kernels() {
  if (__builtin_cpu_supports("avx512f")) return kGemm_avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kGemm_avx2;
  return kGemm_baseline;
}
#else
const GemmKernels& pick_gemm_kernels() {
  return kGemm_baseline;
}
#endif
#undef KDNAS_GEMM_KERNELS
const GemmKernels& kGemm = pick_gemm_kernels();
const GemmTaskFn kGemmTask = kGemm.task;

// Row blocks of the tasks: M in mb blocks of mt rows (a multiple of 8), more than one only
// when the col_tasks column tasks are fewer than `want`; and the parallel_for grain, so that a
// thread gets at least kMinFlopsPerThread of nc-wide, K-deep tasks.
struct RowSplit {
  int64_t mb, mt, grain;
};
RowSplit split_rows(int64_t M, int64_t col_tasks, int64_t want, int64_t nc, int64_t K) {
  int64_t mb = 1;
  if (col_tasks < want) mb = std::min(ceil_div(M, 8), ceil_div(want, col_tasks));
  const int64_t mt = round_up(ceil_div(M, mb), 8);
  const double task_flops = 2.0 * double(mt) * double(nc) * double(K);
  return {ceil_div(M, mt), mt,
          std::max<int64_t>(1, int64_t(std::ceil(kMinFlopsPerThread / task_flops)))};
}

}  // namespace

void matmul_forward_cpu(Context& ctx, float* out, const float* a, const float* b, const float* bias,
                        const GemmLayout& l, bool gelu) {
  const int64_t G = l.batch_count();
  if (G == 0 || l.M == 0 || l.N == 0) return;
  KDNAS_ASSERT(l.K > 0);  // the op API handles K = 0 (no products: out = act(bias))
  // Tasks: G matrices x mb row blocks x nb column blocks, each over all of K. A task packs
  // its B block once per K block, so row blocks are split off only when there are too few
  // tasks for the threads otherwise; column blocks are at most kNC wide, and are made
  // narrower if that still leaves fewer than two tasks per thread (for a balanced static
  // split). Blocks are equal-sized, rounded to whole strips.
  const int64_t want = 2 * int64_t(ctx.threads());
  int64_t nb = ceil_div(l.N, kNC);
  if (G * nb < want) nb = std::min(ceil_div(l.N, kNAlign), ceil_div(want, G));
  const int64_t nc = round_up(ceil_div(l.N, nb), kNAlign);
  nb = ceil_div(l.N, nc);
  const RowSplit rows = split_rows(l.M, G * nb, want, nc, l.K);
  const int64_t mb = rows.mb, mt = rows.mt, grain = rows.grain;
  const int64_t tasks = G * mb * nb;

  parallel_for(ctx, tasks, grain, [&](int64_t t0, int64_t t1) {
    // Packing buffers, one pair per thread (64-byte aligned tensor storage).
    Tensor abuf = Tensor::empty({kMC * kKC}), bbuf = Tensor::empty({nc * kKC});
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t g = t / (mb * nb), ib = (t / nb) % mb, jb = t % nb;
      int64_t a_off, b_off;
      l.batch_offsets(g, a_off, b_off);
      const int64_t i0 = ib * mt, j0 = jb * nc;
      const Task task{
          out + g * l.M * l.N,   a + a_off, b + b_off, bias, gelu, i0, std::min(mt, l.M - i0), j0,
          std::min(nc, l.N - j0)};
      kGemmTask(task, l, abuf.data<float>(), bbuf.data<float>());
    }
  });
}

namespace {

// The Context's packed f32 weights (linear_forward_packed_cpu), by weights id.
struct PackedWeights {
  Tensor data;  // round_up(N, nr) x K floats
  int64_t K = 0, N = 0, nr = 0;
};
struct CpuState : BackendState {
  std::unordered_map<uint64_t, PackedWeights> packed;
};

const PackedWeights& packed_weights(Context& ctx, const float* w, int64_t K, int64_t N,
                                    uint64_t weights_id) {
  if (ctx.state(Context::kCpuSlot) == nullptr)
    ctx.set_state(Context::kCpuSlot, std::make_unique<CpuState>());
  auto& cache = static_cast<CpuState&>(*ctx.state(Context::kCpuSlot)).packed;
  auto it = cache.find(weights_id);
  if (it != cache.end()) {
    KDNAS_CHECK(it->second.K == K && it->second.N == N, "linear: weights ", weights_id,
                " were packed as [", it->second.N, ", ", it->second.K, "], now [", N, ", ", K,
                "]");
    return it->second;
  }
  PackedWeights p{Tensor(), K, N, kGemm.nr};
  const int64_t Npad = round_up(N, p.nr);
  p.data = Tensor::empty({Npad * K});
  // wᵀ [K, N] is w read column-major: b(k, n) = w[n * K + k].
  for (int64_t p0 = 0; p0 < K; p0 += kKC)
    kGemm.pack(p.data.data<float>() + p0 * Npad, w + p0, 1, K, std::min(kKC, K - p0), N);
  return cache.emplace(weights_id, std::move(p)).first->second;
}

}  // namespace

void linear_forward_packed_cpu(Context& ctx, float* out, const float* x, const float* w,
                               const float* bias, int64_t M, int64_t K, int64_t N, bool gelu,
                               uint64_t weights_id) {
  if (M == 0 || N == 0) return;
  KDNAS_ASSERT(K > 0);
  const PackedWeights& pw = packed_weights(ctx, w, K, N, weights_id);
  const int64_t Npad = round_up(N, pw.nr);
  GemmLayout l;
  l.M = M, l.K = K, l.N = N;
  l.a_rs = K, l.a_cs = 1;
  // Tasks: one column block (whole strips) per thread, so that each thread packs each K block
  // of x once (with no B to pack, the column blocks need not fit a buffer); row blocks only
  // when there are fewer strips than threads.
  const int64_t want = int64_t(ctx.threads());
  int64_t nb = std::min(ceil_div(N, kNAlign), want);
  const int64_t nc = round_up(ceil_div(N, nb), kNAlign);
  nb = ceil_div(N, nc);
  const RowSplit rows = split_rows(M, nb, want, nc, K);
  const int64_t mb = rows.mb, mt = rows.mt, grain = rows.grain;
  parallel_for(ctx, mb * nb, grain, [&](int64_t t0, int64_t t1) {
    Tensor abuf = Tensor::empty({kMC * kKC});
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i0 = (t / nb) * mt, j0 = (t % nb) * nc;
      const Task task{out, x, nullptr, bias, gelu, i0, std::min(mt, M - i0), j0,
                      std::min(nc, N - j0)};
      kGemm.prepacked(task, l, abuf.data<float>(), pw.data.data<float>(), Npad);
    }
  });
}

namespace {
// dbias[j0, j1) = column sums of dout over M rows; double accumulators, vectorised across j.
KDNAS_CPU_CLONES void column_sums(float* dbias, const float* dout, int64_t M, int64_t N, int64_t j0,
                                  int64_t j1) {
  constexpr int64_t kW = 64;
  for (int64_t jb = j0; jb < j1; jb += kW) {
    const int64_t w = std::min(kW, j1 - jb);
    double acc[kW] = {};
    for (int64_t i = 0; i < M; ++i) {
      const float* row = dout + i * N + jb;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) acc[j] += double(row[j]);
    }
    for (int64_t j = 0; j < w; ++j) dbias[jb + j] = float(acc[j]);
  }
}
}  // namespace

void bias_backward_cpu(Context& ctx, float* dbias, const float* dout, int64_t M, int64_t N) {
  const int64_t grain = std::max<int64_t>(64, 65536 / std::max<int64_t>(M, 1));
  parallel_for(ctx, N, grain,
               [&](int64_t j0, int64_t j1) { column_sums(dbias, dout, M, N, j0, j1); });
}

#if KDNAS_HAVE_ONEDNN
// oneDNN's matmul over the batch as one primitive: a, b and out keep their strides (no copy),
// a batch dim an operand broadcasts has size 1 in its descriptor (oneDNN's broadcast rule),
// and bias + GELU are fused as the bias argument and an eltwise post-op. Primitives are cached
// by the full layout, so a hot loop pays only the lookup, three memory objects and the run.
namespace {

struct OperandDesc {
  dnnl::memory::dims dims, strides;
};

// The descriptor of an operand [batch..., rows, cols]: broadcast batch dims (stride 0) get
// size 1, and any size-1 batch dim a stride spanning everything inside it (oneDNN wants
// strides consistent with a dense-enough layout even where the size makes them unused).
OperandDesc operand_desc(const Shape& batch, const Shape& batch_strides, int64_t rows, int64_t cols,
                         int64_t rs, int64_t cs) {
  OperandDesc d;
  const size_t nb = batch.size();
  d.dims.resize(nb + 2);
  d.strides.resize(nb + 2);
  d.dims[nb] = rows;
  d.dims[nb + 1] = cols;
  d.strides[nb] = rs;
  d.strides[nb + 1] = cs;
  int64_t span = std::max(rows * rs, cols * cs);
  for (size_t k = nb; k-- > 0;) {
    const bool bcast = batch_strides[k] == 0 || batch[k] == 1;
    d.dims[k] = bcast ? 1 : batch[k];
    d.strides[k] = bcast ? span : batch_strides[k];
    span = std::max(span, d.dims[k] * d.strides[k]);
  }
  return d;
}

// The attributes of a GEMM with the erf GELU fused as an eltwise post-op, or none.
dnnl::primitive_attr gelu_attr(bool gelu) {
  dnnl::primitive_attr attr;
  if (gelu) {
    dnnl::post_ops po;
    po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
    attr.set_post_ops(po);
  }
  return attr;
}

}  // namespace

void matmul_forward_onednn(Context& ctx, void* out, DType out_dtype, const void* a, const void* b,
                           DType in_dtype, const float* bias, const GemmLayout& l, bool gelu,
                           const Shape& out_strides) {
  using namespace dnnl;
  OnednnState& st = onednn_state(ctx);
  const OperandDesc ad = operand_desc(l.batch, l.a_batch_strides, l.M, l.K, l.a_rs, l.a_cs);
  const OperandDesc bd = operand_desc(l.batch, l.b_batch_strides, l.K, l.N, l.b_rs, l.b_cs);
  memory::dims cdims(l.batch.begin(), l.batch.end());
  cdims.push_back(l.M);
  cdims.push_back(l.N);
  const memory::data_type idt = onednn_dtype(in_dtype), odt = onednn_dtype(out_dtype);
  const memory::desc a_md(ad.dims, idt, ad.strides), b_md(bd.dims, idt, bd.strides);
  memory::dims c_strides(cdims.size());
  if (out_strides.empty()) {
    int64_t s = 1;
    for (size_t k = cdims.size(); k-- > 0;) {
      c_strides[k] = s;
      s *= cdims[k];
    }
  } else {  // the caller's layout, with size-1 dims given strides oneDNN accepts
    const size_t nb = l.batch.size();
    KDNAS_CHECK(out_strides.size() == nb + 2, "matmul: ", out_strides.size(),
                " out strides for ", nb + 2, " dims");
    const int64_t rs = out_strides[nb], cs = out_strides[nb + 1];
    const Shape ob(out_strides.begin(), out_strides.begin() + std::ptrdiff_t(nb));
    const OperandDesc od = operand_desc(l.batch, ob, l.M, l.N, rs, cs);
    c_strides = od.strides;
  }
  const memory::desc out_md(cdims, odt, c_strides);
  // The bias as a [1, ..., 1, N] tensor, broadcast over everything but the columns.
  memory::dims bias_dims(l.batch.size() + 1, 1), bias_strides(l.batch.size() + 1, l.N);
  bias_dims.push_back(l.N);
  bias_strides.push_back(1);
  const memory::desc bias_md =
      bias ? memory::desc(bias_dims, memory::data_type::f32, bias_strides) : memory::desc();

  const std::string key = detail::concat("matmul:", dtype_name(in_dtype), ad.dims, ad.strides,
                                         bd.dims, bd.strides, "->", dtype_name(out_dtype), cdims,
                                         c_strides, bias ? ":bias" : "", gelu ? ":gelu" : "");
  const auto& e = onednn_cached(ctx, key, [&] {
    const primitive_attr attr = gelu_attr(gelu);
    try {
      matmul::primitive_desc pd(matmul::desc(a_md, b_md, bias_md, out_md), attr, st.engine);
      return OnednnState::Entry{matmul(pd), pd};
    } catch (const dnnl::error& err) {
      // E.g. bf16 on a CPU without AVX-512: say which GEMM, not just oneDNN's status.
      detail::fail(detail::concat("matmul: oneDNN cannot run ", key, " on this CPU (", err.what(),
                                  "); use the omp backend"));
    }
  });
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(a_md, st.engine, const_cast<void*>(a))},
      {DNNL_ARG_WEIGHTS, memory(b_md, st.engine, const_cast<void*>(b))},
      {DNNL_ARG_DST, memory(out_md, st.engine, out)}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(bias_md, st.engine, const_cast<float*>(bias)));
  e.prim.execute(st.stream, args);
  st.stream.wait();
}

void linear_forward_onednn_packed(Context& ctx, void* out, DType out_dtype, const void* x,
                                  const void* w, DType in_dtype, const float* bias, int64_t M,
                                  int64_t K, int64_t N, bool gelu, uint64_t weights_id) {
  using namespace dnnl;
  OnednnState& st = onednn_state(ctx);
  const memory::data_type idt = onednn_dtype(in_dtype), odt = onednn_dtype(out_dtype);
  const memory::desc x_md({M, K}, idt, memory::dims{K, 1});
  // w [N, K] row-major is the [K, N] operand in column-major order.
  const memory::desc user_w_md({K, N}, idt, memory::dims{1, K});
  const memory::desc any_w_md({K, N}, idt, memory::format_tag::any);
  const memory::desc out_md({M, N}, odt, memory::dims{N, 1});
  const memory::desc bias_md =
      bias ? memory::desc({1, N}, memory::data_type::f32, memory::dims{N, 1}) : memory::desc();
  const std::string wkey = detail::concat("packed-weights:", weights_id);
  const std::string key = detail::concat("linear-packed:w", weights_id, ":", dtype_name(in_dtype),
                                         ":", M, "x", K, "x", N, "->", dtype_name(out_dtype),
                                         bias ? ":bias" : "", gelu ? ":gelu" : "");
  const auto& e = onednn_cached(ctx, key, [&] {
    const primitive_attr attr = gelu_attr(gelu);
    auto make = [&](const memory::desc& w_md) {
      return matmul::primitive_desc(matmul::desc(x_md, w_md, bias_md, out_md), attr, st.engine);
    };
    try {
      matmul::primitive_desc pd = make(any_w_md);
      auto held = st.cache.find(wkey);
      if (held == st.cache.end()) {
        // The first call: reorder the weights into this primitive's layout, once, and keep them.
        memory packed(pd.weights_desc(), st.engine);
        memory user(user_w_md, st.engine, const_cast<void*>(w));
        reorder(user, packed).execute(st.stream, user, packed);
        st.stream.wait();
        held = st.cache.emplace(wkey, OnednnState::Entry{primitive(), pd, packed}).first;
      }
      const memory& packed = held->second.weights;
      if (pd.weights_desc() == packed.get_desc()) return OnednnState::Entry{matmul(pd), pd, packed};
      // Another M whose best layout differs: the kept layout if oneDNN runs it, else w in place.
      try {
        pd = make(packed.get_desc());
        return OnednnState::Entry{matmul(pd), pd, packed};
      } catch (const dnnl::error&) {
        pd = make(user_w_md);
        return OnednnState::Entry{matmul(pd), pd,
                                  memory(user_w_md, st.engine, const_cast<void*>(w))};
      }
    } catch (const dnnl::error& err) {
      detail::fail(detail::concat("linear: oneDNN cannot run ", key, " on this CPU (", err.what(),
                                  "); use the omp backend"));
    }
  });
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(x_md, st.engine, const_cast<void*>(x))},
      {DNNL_ARG_WEIGHTS, e.weights},
      {DNNL_ARG_DST, memory(out_md, st.engine, out)}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(bias_md, st.engine, const_cast<float*>(bias)));
  e.prim.execute(st.stream, args);
  st.stream.wait();
}
#else
void matmul_forward_onednn(Context&, void*, DType, const void*, const void*, DType, const float*,
                           const GemmLayout&, bool, const Shape&) {
  detail::fail("matmul: built without oneDNN");
}
void linear_forward_onednn_packed(Context&, void*, DType, const void*, const void*, DType,
                                  const float*, int64_t, int64_t, int64_t, bool, uint64_t) {
  detail::fail("linear: built without oneDNN");
}
#endif

}  // namespace kdnas
