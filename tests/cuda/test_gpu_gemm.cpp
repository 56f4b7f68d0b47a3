// GPU tests of the GEMMs (cuBLASLt) and the fused attention kernel against the CPU reference:
// odd and XLM-R shapes, transposed and strided operands, batches with broadcast, bias and GELU
// epilogues, bf16 inputs and outputs, the backward GEMMs, and attention composed from the
// reference's matmul + softmax + matmul.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/cuda_context.h"
#include "kernels/cuda/matmul_cuda.h"
#include "kernels/ref/matmul_ref.h"
#include "kernels/ref/softmax_ref.h"
#include "tests/cuda/gpu_test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// out = act(a · b + bias) on the host, per batch matrix, with the reference kernel. a and b are
// f32 host tensors [batch..., M, K] / [batch..., K, N] (b may have no batch dims: shared).
Tensor ref_matmul(const Tensor& a, const Tensor& b, const Tensor& bias, bool gelu) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  const int64_t batch = a.numel() / std::max<int64_t>(1, M * K);
  const bool shared = b.dim() == 2;
  Shape out_shape = a.shape();
  out_shape.back() = N;
  Tensor out = Tensor::empty(out_shape);
  Tensor ac = a.contiguous(), bc = b.contiguous();
  for (int64_t g = 0; g < batch; ++g)
    matmul_forward_ref(out.data<float>() + g * M * N, ac.data<float>() + g * M * K,
                       bc.data<float>() + (shared ? 0 : g * K * N),
                       bias.defined() ? bias.data<float>() : nullptr, M, K, N, K, 1, N, 1, gelu);
  return out;
}

// The GemmLayout of a (device) [batch, M, K] x [batch or none, K, N] product from the views'
// strides, as the op API builds it.
GemmLayout layout_of(const Tensor& a, const Tensor& b) {
  GemmLayout l;
  l.M = a.size(-2), l.K = a.size(-1), l.N = b.size(-1);
  l.a_rs = a.stride(-2), l.a_cs = a.stride(-1), l.b_rs = b.stride(-2), l.b_cs = b.stride(-1);
  if (a.dim() == 3) {
    l.batch = {a.size(0)};
    l.a_batch_strides = {a.stride(0)};
    l.b_batch_strides = {b.dim() == 3 ? b.stride(0) : 0};
  }
  return l;
}

Tensor bf16_round(const Tensor& t) {
  return t.to(DType::BF16).to(DType::F32);
}

}  // namespace

TEST_SUITE("gpu") {
TEST_CASE("gpu: f32 GEMMs match the reference on odd and XLM-R shapes, any operand layout") {
  Context ctx;
  Rng rng(30);
  struct Case {
    int64_t M, K, N;
  };
  std::vector<Case> cases;
  for (int64_t m : {1, 7, 33})
    for (int64_t k : {1, 13, 769})
      for (int64_t n : {1, 7, 33}) cases.push_back({m, k, n});
  cases.push_back({kT, kC, kFF});
  cases.push_back({kT, kFF, kC});
  cases.push_back({kB * kT, kC, kC});
  for (const Case& c : cases)
    for (int variant = 0; variant < 4; ++variant) {
      // variant bit 0: a as a transposed view; bit 1: b as a transposed view (w.transpose()).
      Tensor a = random_tensor({c.M, c.K}, rng), b = random_tensor({c.K, c.N}, rng);
      Tensor ag = (variant & 1) ? to_gpu(a.transpose(0, 1)).transpose(0, 1) : to_gpu(a);
      Tensor bg = (variant & 2) ? to_gpu(b.transpose(0, 1)).transpose(0, 1) : to_gpu(b);
      Tensor bias = random_tensor({c.N}, rng), biasg = to_gpu(bias);
      for (int epi = 0; epi < 3; ++epi) {  // none, bias, bias + gelu
        const bool with_bias = epi >= 1, gelu = epi == 2;
        Tensor want = ref_matmul(a, b, with_bias ? bias : Tensor(), gelu);
        Tensor got = gpu_empty({c.M, c.N});
        matmul_forward_cuda(ctx, got.raw_data(), DType::F32, ag.raw_data(), bg.raw_data(),
                            DType::F32, with_bias ? biasg.data<float>() : nullptr,
                            layout_of(ag, bg), gelu);
        KDNAS_CHECK_CLOSE(to_host(got), want, gemm_tol(c.K),
                          "gemm " + std::to_string(c.M) + "x" + std::to_string(c.K) + "x" +
                              std::to_string(c.N) + " variant " + std::to_string(variant) +
                              " epilogue " + std::to_string(epi));
      }
    }
}

TEST_CASE("gpu: batched GEMMs: attention shapes, narrow views, a shared b, K = 0") {
  Context ctx;
  Rng rng(31);
  // Q Kᵀ over [B*NH, T, HS] with kᵀ a transposed view, then P V.
  const int64_t G = kB * kNH, T = kT, HS = kHS;
  Tensor q = random_tensor({G, T, HS}, rng), k = random_tensor({G, T, HS}, rng);
  Tensor kt = k.transpose(1, 2).contiguous();  // host [G, HS, T] for the reference
  Tensor qg = to_gpu(q), ktg = to_gpu(k).transpose(1, 2);
  Tensor s = gpu_empty({G, T, T});
  matmul_forward_cuda(ctx, s.raw_data(), DType::F32, qg.raw_data(), ktg.raw_data(), DType::F32,
                      nullptr, layout_of(qg, ktg), false);
  KDNAS_CHECK_CLOSE(to_host(s), ref_matmul(q, kt, Tensor(), false), gemm_tol(HS), "q kᵀ");
  Tensor p = random_tensor({G, T, T}, rng), v = random_tensor({G, T, HS}, rng);
  Tensor o = gpu_empty({G, T, HS}), pg = to_gpu(p), vg = to_gpu(v);
  matmul_forward_cuda(ctx, o.raw_data(), DType::F32, pg.raw_data(), vg.raw_data(), DType::F32,
                      nullptr, layout_of(pg, vg), false);
  KDNAS_CHECK_CLOSE(to_host(o), ref_matmul(p, v, Tensor(), false), gemm_tol(T), "p v");

  // A shared b [K, N] (broadcast batch stride 0: launched matrix by matrix), and a narrow view
  // of a (row stride larger than K).
  Tensor a = random_tensor({5, 9, 40}, rng), w = random_tensor({13, 17}, rng);
  Tensor ag = to_gpu(a).narrow(2, 3, 13), wg = to_gpu(w);
  Tensor an = a.narrow(2, 3, 13).contiguous();
  Tensor got = gpu_empty({5, 9, 17});
  GemmLayout l = layout_of(ag, wg);
  matmul_forward_cuda(ctx, got.raw_data(), DType::F32, ag.raw_data(), wg.raw_data(), DType::F32,
                      nullptr, l, true);
  KDNAS_CHECK_CLOSE(to_host(got), ref_matmul(an, w, Tensor(), true), gemm_tol(13),
                    "shared b, narrow a");

  // K = 0: the product is empty, the epilogue still applies.
  Tensor bias = random_tensor({6}, rng), e = gpu_empty({4, 6});
  GemmLayout z;
  z.M = 4, z.K = 0, z.N = 6, z.a_rs = 1, z.a_cs = 1, z.b_rs = 6, z.b_cs = 1;
  matmul_forward_cuda(ctx, e.raw_data(), DType::F32, nullptr, nullptr, DType::F32,
                      to_gpu(bias).data<float>(), z, true);
  Tensor want = Tensor::empty({4, 6});
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 6; ++j) {
      const double x = bias.data<float>()[j];
      want.data<float>()[i * 6 + j] = float(0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))));
    }
  KDNAS_CHECK_CLOSE(to_host(e), want, kF32, "K = 0");
}

TEST_CASE("gpu: bf16 GEMMs accumulate in f32, with f32 and bf16 outputs") {
  Context ctx;
  Rng rng(32);
  for (auto [M, K, N] :
       {std::tuple<int64_t, int64_t, int64_t>{kT, kC, kFF}, {33, 769, 7}, {1, 1, 1}}) {
    // Exactly representable inputs: the reference on the rounded values is the exact target.
    Tensor a = bf16_round(random_tensor({M, K}, rng)), b = bf16_round(random_tensor({K, N}, rng));
    Tensor bias = random_tensor({N}, rng);
    // b as the transposed view of a [N, K] weight, the way linear reads w.
    Tensor ag = to_gpu(a.to(DType::BF16));
    Tensor bg = to_gpu(b.transpose(0, 1).to(DType::BF16)).transpose(0, 1);
    for (bool gelu : {false, true}) {
      Tensor want = ref_matmul(a, b, bias, gelu);
      Tensor f = gpu_empty({M, N}), h = gpu_empty({M, N}, DType::BF16);
      matmul_forward_cuda(ctx, f.raw_data(), DType::F32, ag.raw_data(), bg.raw_data(),
                          DType::BF16, to_gpu(bias).data<float>(), layout_of(ag, bg), gelu);
      matmul_forward_cuda(ctx, h.raw_data(), DType::BF16, ag.raw_data(), bg.raw_data(),
                          DType::BF16, to_gpu(bias).data<float>(), layout_of(ag, bg), gelu);
      KDNAS_CHECK_CLOSE(to_host(f), want, gemm_tol(K), "bf16 -> f32");
      // One rounding of the f32 result to bf16 (relative 2^-9), on top of the f32 error.
      KDNAS_CHECK_CLOSE(to_host(h).to(DType::F32), want, (Tol{gemm_tol(K).atol, 4e-3}),
                        "bf16 -> bf16");
    }
    // Without an epilogue the bf16 output comes straight from cuBLASLt.
    Tensor h = gpu_empty({M, N}, DType::BF16);
    matmul_forward_cuda(ctx, h.raw_data(), DType::BF16, ag.raw_data(), bg.raw_data(), DType::BF16,
                        nullptr, layout_of(ag, bg), false);
    KDNAS_CHECK_CLOSE(to_host(h).to(DType::F32), ref_matmul(a, b, Tensor(), false),
                      (Tol{gemm_tol(K).atol, 4e-3}), "bf16 -> bf16, no epilogue");
  }
}

TEST_CASE("gpu: TF32 GEMMs are close, and f32 ones exact to f32 rounding") {
  Context ctx;
  Rng rng(33);
  Tensor a = random_tensor({kT, kC}, rng), b = random_tensor({kC, kC}, rng);
  Tensor want = ref_matmul(a, b, Tensor(), false);
  Tensor ag = to_gpu(a), bg = to_gpu(b), got = gpu_empty({kT, kC});
  cuda_set_allow_tf32(ctx, true);
  matmul_forward_cuda(ctx, got.raw_data(), DType::F32, ag.raw_data(), bg.raw_data(), DType::F32,
                      nullptr, layout_of(ag, bg), false);
  // TF32 keeps 10 mantissa bits of each input: errors ~1e-3 relative per product.
  KDNAS_CHECK_CLOSE(to_host(got), want, (Tol{2e-3 * std::sqrt(double(kC)), 1e-2}), "tf32");
  cuda_set_allow_tf32(ctx, false);
  matmul_forward_cuda(ctx, got.raw_data(), DType::F32, ag.raw_data(), bg.raw_data(), DType::F32,
                      nullptr, layout_of(ag, bg), false);
  KDNAS_CHECK_CLOSE(to_host(got), want, gemm_tol(kC), "f32 after tf32 off");
}

TEST_CASE("gpu: GEMM backward and bias backward match the reference") {
  Context ctx;
  Rng rng(34);
  for (auto [M, K, N] : {std::tuple<int64_t, int64_t, int64_t>{kT, kC, kFF},
                         {7, 13, 33},
                         {1, 769, 1},
                         {33, 1, 7}}) {
    Tensor a = random_tensor({M, K}, rng), b = random_tensor({K, N}, rng);
    Tensor d = random_tensor({M, N}, rng);
    // Accumulating (+=) into gradients that already hold something.
    Tensor da = random_tensor({M, K}, rng), db = random_tensor({K, N}, rng);
    Tensor dag = to_gpu(da), dbg = to_gpu(db);
    matmul_backward_ref(da.data<float>(), db.data<float>(), d.data<float>(), a.data<float>(),
                        b.data<float>(), M, K, N);
    matmul_backward_cuda(ctx, dag.data<float>(), dbg.data<float>(), to_gpu(d).data<float>(),
                         to_gpu(a).data<float>(), to_gpu(b).data<float>(), M, K, N);
    const std::string what =
        std::to_string(M) + "x" + std::to_string(K) + "x" + std::to_string(N);
    KDNAS_CHECK_CLOSE(to_host(dag), da, gemm_tol(N), "da " + what);
    KDNAS_CHECK_CLOSE(to_host(dbg), db, gemm_tol(M), "db " + what);
    Tensor dbias = Tensor::empty({N}), dbiasg = gpu_empty({N});
    bias_backward_ref(dbias.data<float>(), d.data<float>(), M, N);
    bias_backward_cuda(ctx, dbiasg.data<float>(), to_gpu(d).data<float>(), M, N);
    KDNAS_CHECK_CLOSE(to_host(dbiasg), dbias, kF32, "dbias " + what);
  }
}

TEST_CASE("gpu: fused attention equals the reference's matmul + masked softmax + matmul") {
  Context ctx;
  Rng rng(35);
  const float ninf = -std::numeric_limits<float>::infinity();
  struct Case {
    int64_t B, NH, T, HS;
    bool bthd;  // q, k, v, out as [B, T, NH, HS] views (a projection's layout)
  };
  const std::vector<Case> cases{{2, 3, 7, 32, false},      {1, 2, 33, 13, true},
                                {kB, kNH, kT, kHS, false}, {kB, kNH, kT, kHS, true},
                                {1, 2, 512, 64, false},    {1, 1, 65, 256, false}};
  for (const Case& c : cases) {
    const int64_t B = c.B, NH = c.NH, T = c.T, HS = c.HS;
    Tensor q = random_tensor({B, NH, T, HS}, rng), k = random_tensor({B, NH, T, HS}, rng);
    Tensor v = random_tensor({B, NH, T, HS}, rng);
    Tensor mask = Tensor::zeros({B, T});
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = T - b; j < T; ++j) mask.data<float>()[b * T + j] = -1e9f;
    if (B > 1)  // a sequence with every key masked with -inf: uniform attention, not NaN
      for (int64_t j = 0; j < T; ++j) mask.data<float>()[1 * T + j] = ninf;
    const float scale = 1.f / std::sqrt(float(HS));

    // The reference: per (b, h), scores = q kᵀ, softmax(scale * scores + mask row b), p v.
    Tensor want = Tensor::empty({B, NH, T, HS});
    std::vector<float> sc(size_t(T * T)), p(size_t(T * T));
    std::vector<int64_t> offs(static_cast<size_t>(T));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < NH; ++h) {
        const int64_t off = (b * NH + h) * T * HS;
        matmul_forward_ref<float>(sc.data(), q.data<float>() + off, k.data<float>() + off,
                                  nullptr, T, HS, T, HS, 1, 1, HS, false);
        for (int64_t r = 0; r < T; ++r) offs[size_t(r)] = b * T;
        softmax_forward_ref(p.data(), sc.data(), mask.data<float>(), offs.data(), scale, T, T);
        matmul_forward_ref<float>(want.data<float>() + off, p.data(), v.data<float>() + off,
                                  nullptr, T, T, HS, T, 1, HS, 1, false);
      }

    // The device operands, in [B, NH, T, HS] or as [B, T, NH, HS] views.
    auto place = [&](const Tensor& t) {
      return c.bthd ? to_gpu(t.permute({0, 2, 1, 3})).permute({0, 2, 1, 3}) : to_gpu(t);
    };
    auto strides = [](const Tensor& t) {
      return AttentionStrides{t.stride(0), t.stride(1), t.stride(2)};
    };
    Tensor qg = place(q), kg = place(k), vg = place(v);
    Tensor ob = c.bthd ? gpu_empty({B, T, NH, HS}) : gpu_empty({B, NH, T, HS});
    Tensor og = c.bthd ? ob.permute({0, 2, 1, 3}) : ob;
    attention_forward_cuda(ctx, og.data<float>(), strides(og), qg.data<float>(), strides(qg),
                           kg.data<float>(), strides(kg), vg.data<float>(), strides(vg),
                           to_gpu(mask).data<float>(), B, NH, T, HS, scale);
    // Two chained f32 sums (HS products, then T) against double-accumulating reference GEMMs.
    const Tensor got = c.bthd ? to_host(ob).permute({0, 2, 1, 3}) : to_host(ob);
    KDNAS_CHECK_CLOSE(got, want, (Tol{2e-5, 1e-4}),
                      "attention B=" + std::to_string(B) + " NH=" + std::to_string(NH) +
                          " T=" + std::to_string(T) + " HS=" + std::to_string(HS) +
                          (c.bthd ? " [B, T, NH, HS]" : ""));
  }
}
}
