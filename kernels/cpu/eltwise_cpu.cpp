// Element-wise activations are memory-bound once their math is vectorised: one read and one
// write per element (two reads for backward). Each thread streams one contiguous chunk; the
// inner loops use the branch-free vec:: math so they compile to SIMD code, cloned per ISA.
#include "kernels/cpu/eltwise_cpu.h"

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"
#include "tensor/check.h"

#if KDNAS_HAVE_ONEDNN
#include "kernels/cpu/onednn_context.h"
#endif

namespace kdnas {
namespace {

constexpr int64_t kGrain = 16384;  // below this, one thread is faster than waking two
constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

KDNAS_CPU_CLONES void gelu_fwd_chunk(float* out, const float* inp, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = 0.5f * inp[i] * (1.0f + vec::erf(inp[i] * kInvSqrt2));
}

KDNAS_CPU_CLONES void gelu_bwd_chunk(float* dinp, const float* dout, const float* inp, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float x = inp[i];
    float cdf = 0.5f * (1.0f + vec::erf(x * kInvSqrt2));
    float pdf = kInvSqrt2Pi * vec::exp(-0.5f * x * x);
    dinp[i] = dout[i] * (cdf + x * pdf);
  }
}

KDNAS_CPU_CLONES void tanh_fwd_chunk(float* out, const float* inp, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = vec::tanh(inp[i]);
}

KDNAS_CPU_CLONES void tanh_bwd_chunk(float* dinp, const float* dout, const float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dinp[i] = dout[i] * (1.0f - out[i] * out[i]);
}

KDNAS_CPU_CLONES void relu_fwd_chunk(float* out, const float* inp, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = inp[i] > 0.f ? inp[i] : 0.f;
}

KDNAS_CPU_CLONES void relu_bwd_chunk(float* dinp, const float* dout, const float* inp, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dinp[i] = inp[i] > 0.f ? dout[i] : 0.f;
}

KDNAS_CPU_CLONES void scale_chunk(float* out, const float* inp, float alpha, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = alpha * inp[i];
}

}  // namespace

void gelu_forward_cpu(Context& ctx, float* out, const float* inp, int64_t n) {
  parallel_for(ctx, n, kGrain,
               [&](int64_t b, int64_t e) { gelu_fwd_chunk(out + b, inp + b, e - b); });
}
void gelu_backward_cpu(Context& ctx, float* dinp, const float* dout, const float* inp, int64_t n) {
  parallel_for(ctx, n, kGrain,
               [&](int64_t b, int64_t e) { gelu_bwd_chunk(dinp + b, dout + b, inp + b, e - b); });
}
void tanh_forward_cpu(Context& ctx, float* out, const float* inp, int64_t n) {
  parallel_for(ctx, n, kGrain,
               [&](int64_t b, int64_t e) { tanh_fwd_chunk(out + b, inp + b, e - b); });
}
void tanh_backward_cpu(Context& ctx, float* dinp, const float* dout, const float* out, int64_t n) {
  parallel_for(ctx, n, kGrain,
               [&](int64_t b, int64_t e) { tanh_bwd_chunk(dinp + b, dout + b, out + b, e - b); });
}
void relu_forward_cpu(Context& ctx, float* out, const float* inp, int64_t n) {
  parallel_for(ctx, n, kGrain,
               [&](int64_t b, int64_t e) { relu_fwd_chunk(out + b, inp + b, e - b); });
}
void relu_backward_cpu(Context& ctx, float* dinp, const float* dout, const float* inp, int64_t n) {
  parallel_for(ctx, n, kGrain,
               [&](int64_t b, int64_t e) { relu_bwd_chunk(dinp + b, dout + b, inp + b, e - b); });
}
void scale_forward_cpu(Context& ctx, float* out, const float* inp, float alpha, int64_t n) {
  parallel_for(ctx, n, kGrain,
               [&](int64_t b, int64_t e) { scale_chunk(out + b, inp + b, alpha, e - b); });
}

#if KDNAS_HAVE_ONEDNN
// oneDNN's JIT eltwise: the gelu_erf algorithm, forward and backward (from the source x), over
// a flat [n] f32 buffer.
void gelu_forward_onednn(Context& ctx, float* out, const float* inp, int64_t n) {
  using namespace dnnl;
  OnednnState& st = onednn_state(ctx);
  memory::desc md({n}, memory::data_type::f32, memory::format_tag::a);
  const auto& e = onednn_cached(ctx, "gelu_fwd:" + std::to_string(n), [&] {
    eltwise_forward::primitive_desc pd(
        {prop_kind::forward_training, algorithm::eltwise_gelu_erf, md, 0.f, 0.f}, st.engine);
    return OnednnState::Entry{eltwise_forward(pd), pd};
  });
  memory src(md, st.engine, const_cast<float*>(inp)), dst(md, st.engine, out);
  e.prim.execute(st.stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  st.stream.wait();
}

void gelu_backward_onednn(Context& ctx, float* dinp, const float* dout, const float* inp,
                          int64_t n) {
  using namespace dnnl;
  OnednnState& st = onednn_state(ctx);
  memory::desc md({n}, memory::data_type::f32, memory::format_tag::a);
  const auto& e = onednn_cached(ctx, "gelu_bwd:" + std::to_string(n), [&] {
    eltwise_forward::primitive_desc hint(
        {prop_kind::forward_training, algorithm::eltwise_gelu_erf, md, 0.f, 0.f}, st.engine);
    eltwise_backward::primitive_desc pd({algorithm::eltwise_gelu_erf, md, md, 0.f, 0.f}, st.engine,
                                        hint);
    return OnednnState::Entry{eltwise_backward(pd), pd};
  });
  memory src(md, st.engine, const_cast<float*>(inp)), ddst(md, st.engine, const_cast<float*>(dout)),
      dsrc(md, st.engine, dinp);
  e.prim.execute(st.stream,
                 {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_SRC, dsrc}});
  st.stream.wait();
}
#else
void gelu_forward_onednn(Context&, float*, const float*, int64_t) {
  detail::fail("gelu: built without oneDNN");
}
void gelu_backward_onednn(Context&, float*, const float*, const float*, int64_t) {
  detail::fail("gelu: built without oneDNN");
}
#endif

}  // namespace kdnas
