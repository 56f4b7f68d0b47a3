#include "kernels/cpu/qlinear_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"
#include "tensor/check.h"

#if KDNAS_HAVE_ONEDNN
#include "kernels/cpu/onednn_context.h"
#endif

namespace kdnas {
namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per thread below which a pass stays serial

// lo, hi of x (and 0); z = sum of x * 0, which is NaN exactly when some x is NaN or infinite.
// Ternaries, not std::min/std::max: GCC 12 does not vectorise a min/max reduction written with
// those (they return references), and kept one scalar chain of ~4 cycles per element — at
// XLM-R Base, batch 1, about 0.4 ms per layer on 2 threads, more than the attention-output GEMM.
// x is f32 or bf16 (read as its exact f32 value).
inline float widen(float v) { return v; }
inline float widen(bf16 v) { return bf16_to_f32(v); }

template <typename T>
[[gnu::always_inline]] inline void min_max_body(const T* x, int64_t n, float& lo, float& hi,
                                                float& z) {
  float l = 0.f, h = 0.f, s = 0.f;
#pragma omp simd reduction(min : l) reduction(max : h) reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    const float v = widen(x[i]);
    l = v < l ? v : l;
    h = v > h ? v : h;
    s += v * 0.f;
  }
  lo = l, hi = h, z = s;
}

// Round half to even by adding and subtracting 1.5 * 2^23 (exact for |v| < 2^22, which
// x * (1 / sx) always is: |x| <= 255 sx), the same integers as std::nearbyint, and vectorisable.
template <typename T>
[[gnu::always_inline]] inline void quantize_body(uint8_t* xq, const T* x, int64_t n, float inv,
                                                 float zp) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = ((widen(x[i]) * inv + 12582912.f) - 12582912.f) + zp;
    // The clamp on the integer (vpmaxsd, vpminsd; v is a whole number, |v| < 2^22): a float
    // clamp written as ternaries became masks and byte blends in GCC 12, several times slower.
    int32_t iv = int32_t(v);
    iv = iv > 0 ? iv : 0;
    iv = iv < 255 ? iv : 255;
    xq[i] = uint8_t(iv);
  }
}

// One clone set per dtype (target_clones does not apply to templates).
KDNAS_CPU_CLONES void min_max(const float* x, int64_t n, float& lo, float& hi, float& z) {
  min_max_body(x, n, lo, hi, z);
}
KDNAS_CPU_CLONES void min_max(const bf16* x, int64_t n, float& lo, float& hi, float& z) {
  min_max_body(x, n, lo, hi, z);
}
KDNAS_CPU_CLONES void quantize_range(uint8_t* xq, const float* x, int64_t n, float inv, float zp) {
  quantize_body(xq, x, n, inv, zp);
}
KDNAS_CPU_CLONES void quantize_range(uint8_t* xq, const bf16* x, int64_t n, float inv, float zp) {
  quantize_body(xq, x, n, inv, zp);
}

KDNAS_CPU_CLONES
int32_t dot_u8s8(const uint8_t* a, const int8_t* b, int64_t K) {
  int32_t acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t k = 0; k < K; ++k) acc += int32_t(a[k]) * int32_t(b[k]);
  return acc;
}

}  // namespace

template <typename T>
ActQuant activation_quant_cpu(Context& ctx, const T* x, int64_t n) {
  const int nt = std::max(1, ctx.threads());
  std::vector<float> lo(size_t(nt), 0.f), hi(size_t(nt), 0.f), z(size_t(nt), 0.f);
  const int64_t chunk = std::max<int64_t>(kGrain, (n + nt - 1) / nt);
  const int64_t parts = (n + chunk - 1) / chunk;
  parallel_for(ctx, parts, 1, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const int64_t i0 = p * chunk, i1 = std::min(n, i0 + chunk);
      min_max(x + i0, i1 - i0, lo[size_t(p)], hi[size_t(p)], z[size_t(p)]);
    }
  });
  float l = 0.f, h = 0.f;
  for (int64_t p = 0; p < parts; ++p) {
    if (!std::isfinite(z[size_t(p)])) return ActQuant{NAN, 0};
    l = std::min(l, lo[size_t(p)]), h = std::max(h, hi[size_t(p)]);
  }
  return activation_quant_from_range(l, h);
}

template <typename T>
void quantize_activation_cpu(Context& ctx, uint8_t* xq, const T* x, int64_t n, ActQuant q) {
  const float inv = 1.f / q.scale, zp = float(q.zero_point);
  parallel_for(ctx, n, kGrain, [&](int64_t b, int64_t e) { quantize_range(xq + b, x + b, e - b, inv, zp); });
}

template ActQuant activation_quant_cpu(Context&, const float*, int64_t);
template ActQuant activation_quant_cpu(Context&, const bf16*, int64_t);
template void quantize_activation_cpu(Context&, uint8_t*, const float*, int64_t, ActQuant);
template void quantize_activation_cpu(Context&, uint8_t*, const bf16*, int64_t, ActQuant);

// Blocks of 16 output features: their weight rows (16 K bytes) stay in L1/L2 while every row of
// xq passes over them; features are split across threads.
void qlinear_forward_cpu(Context& ctx, float* out, const uint8_t* xq, ActQuant q, const int8_t* wq,
                         const float* scales, const int32_t* row_sums, const float* bias,
                         int64_t M, int64_t N, int64_t K, bool gelu) {
  constexpr int64_t kBlock = 16;
  const int64_t blocks = (N + kBlock - 1) / kBlock;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(1, M * K * kBlock));
  parallel_for(ctx, blocks, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t n0 = blk * kBlock, n1 = std::min(N, n0 + kBlock);
      for (int64_t m = 0; m < M; ++m) {
        const uint8_t* a = xq + m * K;
        for (int64_t n = n0; n < n1; ++n) {
          const int32_t acc = dot_u8s8(a, wq + n * K, K) - q.zero_point * row_sums[n];
          float v = q.scale * scales[n] * float(acc) + (bias ? bias[n] : 0.f);
          if (gelu) v = 0.5f * v * (1.f + vec::erf(v * 0.70710678118654752f));
          out[m * N + n] = v;
        }
      }
    }
  });
}

#if KDNAS_HAVE_ONEDNN
void qlinear_forward_onednn(Context& ctx, void* out, bool out_bf16, const uint8_t* xq, ActQuant q,
                            const int8_t* wq, const float* scales, const int32_t* row_sums,
                            const float* bias, int64_t M, int64_t N, int64_t K, bool gelu,
                            uint64_t weights_id) {
  using namespace dnnl;
  OnednnState& st = onednn_state(ctx);
  const memory::desc src_md({M, K}, memory::data_type::u8, memory::dims{K, 1});
  // wq [N, K] is the [K, N] operand in column-major order; the primitive picks its own layout
  // (format any) and the weights are reordered into it once, when the primitive is made.
  const memory::desc user_wei_md({K, N}, memory::data_type::s8, memory::dims{1, K});
  const memory::desc any_wei_md({K, N}, memory::data_type::s8, memory::format_tag::any);
  const memory::desc dst_md({M, N}, out_bf16 ? memory::data_type::bf16 : memory::data_type::f32,
                            memory::dims{N, 1});
  const memory::desc mul_md({1, 1}, memory::data_type::f32, memory::dims{1, 1});
  const memory::desc add_md({1, N}, memory::data_type::f32, memory::dims{N, 1});
  // oneDNN 2.6 runs int8 matmul on AMX (brg:avx512_core_amx_int8) only with output scales fixed
  // at creation (runtime scales fall back to gemm:jit, ~3x slower): the weight scales sw[n] are
  // baked into the primitive, which is therefore one per quantised layer (weights_id) and M, and
  // the per-call activation scale sx comes in as a [1, 1] binary-multiply post-op.
  const std::string key = detail::concat("qlinear:u8s8:w", weights_id, ":", M, "x", K, "x", N,
                                         gelu ? ":gelu" : "", out_bf16 ? "->bf16" : "->f32");
  const auto& e = onednn_cached(ctx, key, [&] {
    primitive_attr attr;
    attr.set_output_scales(1 << 1, std::vector<float>(scales, scales + N));
    post_ops po;
    po.append_binary(algorithm::binary_mul, mul_md);
    po.append_binary(algorithm::binary_add, add_md);
    if (gelu) po.append_eltwise(1.f, algorithm::eltwise_gelu_erf, 0.f, 0.f);
    attr.set_post_ops(po);
    try {
      matmul::primitive_desc pd(matmul::desc(src_md, any_wei_md, dst_md), attr, st.engine);
      memory packed(pd.weights_desc(), st.engine);
      memory user(user_wei_md, st.engine, const_cast<int8_t*>(wq));
      reorder(user, packed).execute(st.stream, user, packed);
      st.stream.wait();
      return OnednnState::Entry{matmul(pd), pd, packed};
    } catch (const dnnl::error& err) {
      detail::fail(detail::concat("qlinear: oneDNN cannot run ", key, " on this CPU (", err.what(),
                                  "); use the omp backend"));
    }
  });
  // Per call: sx, and the bias with the zero point folded in: bias[n] - sx sw[n] zp rs[n].
  float sx = q.scale;
  std::vector<float> col_add(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n)
    col_add[size_t(n)] =
        (bias ? bias[n] : 0.f) - q.scale * scales[n] * float(q.zero_point) * float(row_sums[n]);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(src_md, st.engine, const_cast<uint8_t*>(xq))},
      {DNNL_ARG_WEIGHTS, e.weights},
      {DNNL_ARG_DST, memory(dst_md, st.engine, out)},
      {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, memory(mul_md, st.engine, &sx)},
      {DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1,
       memory(add_md, st.engine, col_add.data())}};
  e.prim.execute(st.stream, args);
  st.stream.wait();
}
#else
void qlinear_forward_onednn(Context&, void*, bool, const uint8_t*, ActQuant, const int8_t*,
                            const float*, const int32_t*, const float*, int64_t, int64_t, int64_t,
                            bool, uint64_t) {
  detail::fail("qlinear: built without oneDNN");
}
#endif

}  // namespace kdnas
