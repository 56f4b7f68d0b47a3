// LayerNorm moves one read of x and one write of out (forward), two reads and one write
// (backward); gamma, beta and the per-row statistics are small. Threads take contiguous blocks
// of rows. One row (3 KiB at C = 768, 12 KiB at C = 3072) stays in L1 across the passes over
// it, so the two-pass mean/variance costs no extra memory traffic: x comes from memory once,
// the later passes hit L1. At XLM-R's sizes for one sequence ([128, 768] is 384 KiB) the data
// sits in L2 and the loops' instruction counts matter as much as the bytes: hence reductions in
// four independent chains (sum4) and a backward that walks four rows per column.
#include "kernels/cpu/layer_norm_cpu.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <vector>

#include "kernels/cpu/cast_cpu.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"
#include "tensor/check.h"

#if KDNAS_HAVE_ONEDNN
#include "kernels/cpu/onednn_context.h"
#endif

namespace kdnas {
namespace {

constexpr int64_t kGrain = 16384;  // elements; below this one thread beats waking two (backward)
// The forward: one thread below elementwise_grain() elements (kernels/cpu/parallel.h).

// sum_i f(i) over [0, n). Long rows are summed as four independent vector sums over the four
// quarters of the range: with one accumulator every vector add waits for the previous one
// (3-4 cycles of latency each), with four they overlap. Short rows keep one accumulator, since
// each extra one costs a horizontal reduction at the end.
template <typename F>
__attribute__((always_inline)) inline float sum4(int64_t n, F f) {
  float s0 = 0.f;
  if (n < 256) {
#pragma omp simd reduction(+ : s0)
    for (int64_t k = 0; k < n; ++k) s0 += f(k);
    return s0;
  }
  float s1 = 0.f, s2 = 0.f, s3 = 0.f;
  const int64_t q = n / 4;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
  for (int64_t k = 0; k < q; ++k) {
    s0 += f(k);
    s1 += f(k + q);
    s2 += f(k + 2 * q);
    s3 += f(k + 3 * q);
  }
  for (int64_t k = 4 * q; k < n; ++k) s0 += f(k);  // at most 3
  return (s0 + s1) + (s2 + s3);
}

// One row of the forward: o = LayerNorm(x), its mean and rstd in m and s. o may be x (the last
// loop reads and writes element by element, after the two statistics are done).
__attribute__((always_inline)) inline void ln_fwd_row(float* o, const float* x, const float* gamma,
                                                      const float* beta, int64_t C, float inv_c,
                                                      float eps, float& m, float& s) {
  m = sum4(C, [&](int64_t c) { return x[c]; }) * inv_c;
  const float mm = m;
  const float var = sum4(C, [&](int64_t c) { return (x[c] - mm) * (x[c] - mm); }) * inv_c;
  s = 1.0f / std::sqrt(var + eps);
  const float ss = s;
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) o[c] = (x[c] - mm) * ss * gamma[c] + beta[c];
}

// Rows [r0, r1) of the forward.
KDNAS_CPU_CLONES void ln_fwd_rows(float* out, float* mean, float* rstd, const float* inp,
                                  const float* gamma, const float* beta, int64_t r0, int64_t r1,
                                  int64_t C, float eps) {
  const float inv_c = 1.0f / float(C);
  for (int64_t r = r0; r < r1; ++r)
    ln_fwd_row(out + r * C, inp + r * C, gamma, beta, C, inv_c, eps, mean[r], rstd[r]);
}

// Rows [r0, r1) of the fused add + forward: the row's sum goes to out (one read of each input,
// one write), and is normalised in place while it sits in L1.
// With out_bf16, each finished row is also rounded to bf16 there, still from L1.
KDNAS_CPU_CLONES void add_ln_fwd_rows(float* out, bf16* out_bf16, const float* inp,
                                      const float* residual, const float* gamma, const float* beta,
                                      int64_t r0, int64_t r1, int64_t C, float eps) {
  const float inv_c = 1.0f / float(C);
  for (int64_t r = r0; r < r1; ++r) {
    float* o = out + r * C;
    const float* x = inp + r * C;
    const float* y = residual + r * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) o[c] = x[c] + y[c];
    float m, s;
    ln_fwd_row(o, o, gamma, beta, C, inv_c, eps, m, s);
    if (out_bf16) f32_to_bf16_serial(out_bf16 + r * C, o, C);
  }
}

// Rows [r, r + R) of the backward's second pass, R rows at a time: dx (=) for those rows, and
// their contributions to dgamma and dbeta added to this block's partial sums (+=). Going down
// R rows per column reads and writes the partial sums once per R rows instead of every row,
// which is most of the pass's memory traffic (it stays in L1/L2, but each access costs a
// load or store slot).
template <int R>
__attribute__((always_inline)) inline void ln_bwd_dx(float* dx, float* dgamma_part,
                                                     float* dbeta_part, const float* d,
                                                     const float* x, const float* gamma,
                                                     const float* m, const float* s,
                                                     const float* g_mean, const float* gx_mean,
                                                     int64_t C) {
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) {
    float dg = 0.f, db = 0.f;
    for (int k = 0; k < R; ++k) {
      const float dk = d[k * C + c];
      const float xhat = (x[k * C + c] - m[k]) * s[k];
      dx[k * C + c] = s[k] * (dk * gamma[c] - g_mean[k] - xhat * gx_mean[k]);
      dg += dk * xhat;
      db += dk;
    }
    dgamma_part[c] += dg;
    dbeta_part[c] += db;
  }
}

// Rows [r0, r1) of the backward: dx (=) for those rows, and their contributions to dgamma and
// dbeta summed into this block's own partial buffers (=), so that threads never share a
// written cache line.
KDNAS_CPU_CLONES void ln_bwd_rows(float* dinp, float* dgamma_part, float* dbeta_part,
                                  const float* dout, const float* inp, const float* gamma,
                                  const float* mean, const float* rstd, int64_t r0, int64_t r1,
                                  int64_t C) {
  // Rows per group: pass 2 re-reads the group's x and dout rows right after pass 1 read them,
  // so they must still be in L1 (32-48 KiB): 4 rows of 2 x 768 floats (24 KiB) fit; rows of
  // 3072 go one at a time (4 of them measured slower than 1).
  constexpr int kR = 4;
  const int group = C <= 1024 ? kR : 1;
  const float inv_c = 1.0f / float(C);
  std::fill(dgamma_part, dgamma_part + C, 0.f);
  std::fill(dbeta_part, dbeta_part + C, 0.f);
  for (int64_t r = r0; r < r1; r += group) {
    const int nr = int(std::min<int64_t>(group, r1 - r));
    // Pass 1, per row: the two row means of the dx formula, mean_c(g) and mean_c(g * xhat).
    float g_mean[kR], gx_mean[kR];
    for (int k = 0; k < nr; ++k) {
      const float* x = inp + (r + k) * C;
      const float* d = dout + (r + k) * C;
      const float m = mean[r + k], s = rstd[r + k];
      float g_sum = 0.f, gx_sum = 0.f;
#pragma omp simd reduction(+ : g_sum, gx_sum)
      for (int64_t c = 0; c < C; ++c) {
        const float g = d[c] * gamma[c];
        g_sum += g;
        gx_sum += g * (x[c] - m) * s;
      }
      g_mean[k] = g_sum * inv_c;
      gx_mean[k] = gx_sum * inv_c;
    }
    // Pass 2: dx and the parameter gradients, kR rows together (a short group row by row).
    const int64_t o = r * C;
    if (nr == kR) {
      ln_bwd_dx<kR>(dinp + o, dgamma_part, dbeta_part, dout + o, inp + o, gamma, mean + r, rstd + r,
                    g_mean, gx_mean, C);
    } else {
      for (int k = 0; k < nr; ++k)
        ln_bwd_dx<1>(dinp + o + k * C, dgamma_part, dbeta_part, dout + o + k * C, inp + o + k * C,
                     gamma, mean + r + k, rstd + r + k, g_mean + k, gx_mean + k, C);
    }
  }
}

// out[c] = sum_b part[b * C + c] over nb partial rows.
KDNAS_CPU_CLONES void sum_partials(float* out, const float* part, int64_t nb, int64_t C) {
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) out[c] = part[c];
  for (int64_t b = 1; b < nb; ++b) {
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) out[c] += part[b * C + c];
  }
}

}  // namespace

void layer_norm_forward_cpu(Context& ctx, float* out, float* mean, float* rstd, const float* inp,
                            const float* gamma, const float* beta, int64_t rows, int64_t C,
                            float eps) {
  parallel_for(ctx, rows, std::max<int64_t>(1, elementwise_grain() / C), [&](int64_t b, int64_t e) {
    ln_fwd_rows(out, mean, rstd, inp, gamma, beta, b, e, C, eps);
  });
}

void add_layer_norm_forward_cpu(Context& ctx, float* out, bf16* out_bf16, const float* inp,
                                const float* residual, const float* gamma, const float* beta,
                                int64_t rows, int64_t C, float eps) {
  parallel_for(ctx, rows, std::max<int64_t>(1, elementwise_grain() / C), [&](int64_t b, int64_t e) {
    add_ln_fwd_rows(out, out_bf16, inp, residual, gamma, beta, b, e, C, eps);
  });
}

void layer_norm_backward_cpu(Context& ctx, float* dinp, float* dgamma, float* dbeta,
                             const float* dout, const float* inp, const float* gamma,
                             const float* mean, const float* rstd, int64_t rows, int64_t C) {
  // One block of rows per thread (fewer for small problems), each with its own [C] partial
  // sums of dgamma and dbeta, added up at the end: nb * C extra floats, small next to rows * C.
  const int64_t nb =
      std::clamp<int64_t>(rows * C / kGrain, 1, std::min<int64_t>(ctx.threads(), rows));
  std::vector<float> part(static_cast<size_t>(2 * nb * C));
  float* dgamma_part = part.data();
  float* dbeta_part = part.data() + nb * C;
  parallel_for(ctx, nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      ln_bwd_rows(dinp, dgamma_part + b * C, dbeta_part + b * C, dout, inp, gamma, mean, rstd,
                  rows * b / nb, rows * (b + 1) / nb, C);
  });
  sum_partials(dgamma, dgamma_part, nb, C);
  sum_partials(dbeta, dbeta_part, nb, C);
}

#if KDNAS_HAVE_ONEDNN
// oneDNN's layer_normalization over [rows, C] with separate scale (gamma) and shift (beta).
// oneDNN keeps the variance where kdnas keeps rstd = 1 / sqrt(var + eps) (what the backward
// multiplies by), so the forward converts its [rows] variances in place, and the backward
// hands oneDNN var' = 1 / rstd^2 with eps = 0, which gives back the same rstd without needing
// the forward's eps.
namespace {
dnnl::memory::desc ln_data_md(int64_t rows, int64_t C) {
  return dnnl::memory::desc({rows, C}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
}
dnnl::memory::desc ln_vec_md(int64_t n) {
  return dnnl::memory::desc({n}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::a);
}
dnnl::layer_normalization_forward::primitive_desc ln_fwd_pd(OnednnState& st, int64_t rows,
                                                            int64_t C, float eps) {
  using namespace dnnl;
  return {{prop_kind::forward_training, ln_data_md(rows, C), ln_vec_md(rows), eps,
           normalization_flags::use_scale | normalization_flags::use_shift},
          st.engine};
}
}  // namespace

void layer_norm_forward_onednn(Context& ctx, float* out, float* mean, float* rstd, const float* inp,
                               const float* gamma, const float* beta, int64_t rows, int64_t C,
                               float eps) {
  using namespace dnnl;
  OnednnState& st = onednn_state(ctx);
  const auto& e = onednn_cached(
      ctx, detail::concat("layer_norm_fwd:", rows, "x", C, ":", std::bit_cast<uint32_t>(eps)), [&] {
        auto pd = ln_fwd_pd(st, rows, C, eps);
        return OnednnState::Entry{layer_normalization_forward(pd), pd};
      });
  const memory::desc data = ln_data_md(rows, C), stat = ln_vec_md(rows), par = ln_vec_md(C);
  memory src(data, st.engine, const_cast<float*>(inp)), dst(data, st.engine, out);
  memory mm(stat, st.engine, mean), vm(stat, st.engine, rstd);
  memory sc(par, st.engine, const_cast<float*>(gamma)),
      sh(par, st.engine, const_cast<float*>(beta));
  e.prim.execute(st.stream, {{DNNL_ARG_SRC, src},
                             {DNNL_ARG_DST, dst},
                             {DNNL_ARG_MEAN, mm},
                             {DNNL_ARG_VARIANCE, vm},
                             {DNNL_ARG_SCALE, sc},
                             {DNNL_ARG_SHIFT, sh}});
  st.stream.wait();
  for (int64_t r = 0; r < rows; ++r) rstd[r] = 1.0f / std::sqrt(rstd[r] + eps);
}

void layer_norm_backward_onednn(Context& ctx, float* dinp, float* dgamma, float* dbeta,
                                const float* dout, const float* inp, const float* gamma,
                                const float* mean, const float* rstd, int64_t rows, int64_t C) {
  using namespace dnnl;
  OnednnState& st = onednn_state(ctx);
  const auto& e = onednn_cached(ctx, detail::concat("layer_norm_bwd:", rows, "x", C), [&] {
    auto hint = ln_fwd_pd(st, rows, C, 0.f);
    layer_normalization_backward::primitive_desc pd(
        {prop_kind::backward, ln_data_md(rows, C), ln_data_md(rows, C), ln_vec_md(rows), 0.f,
         normalization_flags::use_scale | normalization_flags::use_shift},
        st.engine, hint);
    return OnednnState::Entry{layer_normalization_backward(pd), pd};
  });
  std::vector<float> var(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) var[size_t(r)] = 1.0f / (rstd[r] * rstd[r]);
  const memory::desc data = ln_data_md(rows, C), stat = ln_vec_md(rows), par = ln_vec_md(C);
  memory src(data, st.engine, const_cast<float*>(inp)),
      ddst(data, st.engine, const_cast<float*>(dout));
  memory dsrc(data, st.engine, dinp);
  memory mm(stat, st.engine, const_cast<float*>(mean)), vm(stat, st.engine, var.data());
  memory sc(par, st.engine, const_cast<float*>(gamma));
  memory dsc(par, st.engine, dgamma), dsh(par, st.engine, dbeta);
  // oneDNN 2.6 refuses to execute a use_shift backward without a SHIFT argument, although no
  // gradient depends on beta and it reads none; gamma's buffer (same size) stands in for it.
  e.prim.execute(st.stream, {{DNNL_ARG_SRC, src},
                             {DNNL_ARG_DIFF_DST, ddst},
                             {DNNL_ARG_MEAN, mm},
                             {DNNL_ARG_VARIANCE, vm},
                             {DNNL_ARG_SCALE, sc},
                             {DNNL_ARG_SHIFT, sc},
                             {DNNL_ARG_DIFF_SRC, dsrc},
                             {DNNL_ARG_DIFF_SCALE, dsc},
                             {DNNL_ARG_DIFF_SHIFT, dsh}});
  st.stream.wait();
}
#else
void layer_norm_forward_onednn(Context&, float*, float*, float*, const float*, const float*,
                               const float*, int64_t, int64_t, float) {
  detail::fail("layer_norm: built without oneDNN");
}
void layer_norm_backward_onednn(Context&, float*, float*, float*, const float*, const float*,
                                const float*, const float*, const float*, int64_t, int64_t) {
  detail::fail("layer_norm: built without oneDNN");
}
#endif

}  // namespace kdnas
