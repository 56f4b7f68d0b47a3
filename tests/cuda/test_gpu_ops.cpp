// GPU tests of the op API (kernels/*.h) on CUDA tensors: every op family's Route::Cuda branch,
// against the same op on the CPU reference backend. These check the wiring (shapes, outputs
// on the device, host-side metadata such as masks and ids) on top of the kernel tests.
#include <doctest/doctest.h>

#include <cmath>

#include "kernels/binary.h"
#include "kernels/cast.h"
#include "kernels/concat.h"
#include "kernels/dropout.h"
#include "kernels/eltwise.h"
#include "kernels/embedding.h"
#include "kernels/layer_norm.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"
#include "kernels/optim.h"
#include "kernels/permute.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"
#include "tests/cuda/gpu_test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// The result must live on the GPU and match the reference result.
void check_gpu(const Tensor& got, const Tensor& want, Tol tol, const std::string& what) {
  CHECK_MESSAGE(got.device() == gpu(), what, " is on ", got.device().str());
  KDNAS_CHECK_CLOSE(to_host(got), want, tol, what);
}

}  // namespace

TEST_SUITE("gpu") {
TEST_CASE("gpu ops: activations, dropout, casts") {
  Context g, ref(Backend::Ref);
  Rng rng(40);
  Tensor x = random_tensor({kT, kFF}, rng, DType::F32, -5.f, 5.f),
         d = random_tensor({kT, kFF}, rng);
  Tensor xg = to_gpu(x), dg = to_gpu(d);
  check_gpu(gelu_forward(g, xg), gelu_forward(ref, x), kF32, "gelu");
  check_gpu(gelu_backward(g, dg, xg), gelu_backward(ref, d, x), kF32, "gelu_backward");
  check_gpu(tanh_forward(g, xg), tanh_forward(ref, x), kF32, "tanh");
  check_gpu(tanh_backward(g, dg, tanh_forward(g, xg)),
            tanh_backward(ref, d, tanh_forward(ref, x)), kF32, "tanh_backward");
  check_gpu(relu_forward(g, xg), relu_forward(ref, x), kF32, "relu");
  check_gpu(relu_backward(g, dg, xg), relu_backward(ref, d, x), kF32, "relu_backward");
  check_gpu(scale_forward(g, xg, 0.3), scale_forward(ref, x, 0.3), kF32, "scale");

  DropoutOutput dgpu = dropout_forward(g, xg, 0.1, 7, 1000),
                dref = dropout_forward(ref, x, 0.1, 7, 1000);
  check_gpu(dgpu.out, dref.out, kExact, "dropout");
  check_gpu(dgpu.mask, dref.mask, kExact, "dropout mask");
  check_gpu(dropout_backward(g, dg, dgpu.mask, 0.1), dropout_backward(ref, d, dref.mask, 0.1),
            kExact, "dropout_backward");

  check_gpu(cast(g, xg, DType::BF16), cast(ref, x, DType::BF16), kExact, "cast f32 -> bf16");
  check_gpu(cast(g, cast(g, xg, DType::F16), DType::F32),
            cast(ref, cast(ref, x, DType::F16), DType::F32), kExact, "cast f32 -> f16 -> f32");
}

TEST_CASE("gpu ops: layer_norm, softmax with an attention mask, log_softmax") {
  Context g, ref(Backend::Ref);
  Rng rng(41);
  Tensor x = random_tensor({kB, kT, kC}, rng, DType::F32, 1.f, 3.f);
  Tensor gamma = random_tensor({kC}, rng), beta = random_tensor({kC}, rng);
  LayerNormOutput lg = layer_norm_forward(g, to_gpu(x), to_gpu(gamma), to_gpu(beta), 1e-5);
  LayerNormOutput lr = layer_norm_forward(ref, x, gamma, beta, 1e-5);
  check_gpu(lg.out, lr.out, kF32, "layer_norm");
  Tensor d = random_tensor({kB, kT, kC}, rng);
  LayerNormGrads gg =
      layer_norm_backward(g, to_gpu(d), to_gpu(x), to_gpu(gamma), lg.mean, lg.rstd);
  LayerNormGrads gr = layer_norm_backward(ref, d, x, gamma, lr.mean, lr.rstd);
  check_gpu(gg.dx, gr.dx, kF32, "layer_norm dx");
  check_gpu(gg.dgamma, gr.dgamma, (Tol{1e-4, 1e-5}), "layer_norm dgamma");
  check_gpu(gg.dbeta, gr.dbeta, (Tol{1e-4, 1e-5}), "layer_norm dbeta");

  Tensor s = random_tensor({2, kNH, 33, 33}, rng, DType::F32, -6.f, 6.f);
  Tensor mask = Tensor::zeros({2, 1, 1, 33});
  for (int64_t j = 30; j < 33; ++j) mask.data<float>()[33 + j] = -1e9f;
  Tensor yg = softmax_forward(g, to_gpu(s), to_gpu(mask), 0.125),
         yr = softmax_forward(ref, s, mask, 0.125);
  check_gpu(yg, yr, kF32, "softmax");
  Tensor ds = random_tensor(s.shape(), rng);
  check_gpu(softmax_backward(g, to_gpu(ds), yg, 0.125), softmax_backward(ref, ds, yr, 0.125),
            kF32, "softmax_backward");
  Tensor lsg = log_softmax_forward(g, to_gpu(s)), lsr = log_softmax_forward(ref, s);
  check_gpu(lsg, lsr, kF32, "log_softmax");
  check_gpu(log_softmax_backward(g, to_gpu(ds), lsg), log_softmax_backward(ref, ds, lsr),
            (Tol{2e-5, 2e-5}), "log_softmax_backward");
}

TEST_CASE("gpu ops: binary broadcasting and its gradients, reductions, concat, permute") {
  Context g, ref(Backend::Ref);
  Rng rng(42);
  Tensor a = random_tensor({kB * kT, kC}, rng, DType::F32, 0.5f, 2.f);
  Tensor b = random_tensor({kC}, rng, DType::F32, 0.5f, 2.f);
  Tensor ag = to_gpu(a), bg = to_gpu(b);
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div}) {
    const std::string name = binary_op_name(op);
    Tensor og = binary_forward(g, op, ag, bg), orf = binary_forward(ref, op, a, b);
    check_gpu(og, orf, kF32, name);
    Tensor d = random_tensor(orf.shape(), rng);
    BinaryGrads gg = binary_backward(g, op, to_gpu(d), ag, bg),
                gr = binary_backward(ref, op, d, a, b);
    check_gpu(gg.da, gr.da, kF32, name + " da");
    // db sums 1024 rows: the reference in f32, one by one.
    check_gpu(gg.db, gr.db, (Tol{2e-4, 1e-5}), name + " db");
  }

  Tensor x = random_tensor({7, 33, 13}, rng), xg = to_gpu(x);
  for (int64_t dim : {0, 1, 2})
    for (bool keep : {false, true}) {
      const std::string what = " dim " + std::to_string(dim) + (keep ? " keepdim" : "");
      Tensor sg = sum(g, xg, dim, keep), sr = sum(ref, x, dim, keep);
      check_gpu(sg, sr, kF32, "sum" + what);
      check_gpu(mean(g, xg, dim, keep), mean(ref, x, dim, keep), kF32, "mean" + what);
      Tensor dd = random_tensor(sr.shape(), rng);
      check_gpu(sum_backward(g, to_gpu(dd), x.shape(), dim, keep),
                sum_backward(ref, dd, x.shape(), dim, keep), kExact, "sum_backward" + what);
      MaxOutput mg = max(g, xg, dim, keep), mr = max(ref, x, dim, keep);
      check_gpu(mg.values, mr.values, kExact, "max" + what);
      check_gpu(mg.indices, mr.indices, kExact, "argmax" + what);
      check_gpu(max_backward(g, to_gpu(dd), mg.indices, x.shape(), dim, keep),
                max_backward(ref, dd, mr.indices, x.shape(), dim, keep), kExact,
                "max_backward" + what);
    }

  Tensor p = random_tensor({3, 4, 5}, rng), q = random_tensor({3, 2, 5}, rng);
  Tensor cg = concat(g, {to_gpu(p), to_gpu(q)}, 1), cr = concat(ref, {p, q}, 1);
  check_gpu(cg, cr, kExact, "concat");
  std::vector<Tensor> sg = split(g, cg, 1, {4, 2});
  check_gpu(sg[0], p, kExact, "split 0");
  check_gpu(sg[1], q, kExact, "split 1");

  Tensor h = random_tensor({kB, kT, kNH, kHS}, rng);
  check_gpu(permute_copy(g, to_gpu(h), {0, 2, 1, 3}), permute_copy(ref, h, {0, 2, 1, 3}), kExact,
            "permute_copy");
}

TEST_CASE("gpu ops: embedding with device ids, losses, optimizer updates") {
  Context g, ref(Backend::Ref);
  Rng rng(43);
  const int64_t V = 1000, C = 64;
  Tensor table = random_tensor({V, C}, rng);
  Tensor ids = Tensor::empty({4, 9}, DType::I64);
  for (int64_t i = 0; i < ids.numel(); ++i) ids.data<int64_t>()[i] = int64_t(rng.below(20));
  Tensor eg = embedding_forward(g, to_gpu(ids), to_gpu(table)),
         er = embedding_forward(ref, ids, table);
  check_gpu(eg, er, kExact, "embedding");
  Tensor d = random_tensor({4, 9, C}, rng);
  check_gpu(embedding_backward(g, to_gpu(d), to_gpu(ids), V, 1),
            embedding_backward(ref, d, ids, V, 1), kExact, "embedding_backward");
  check_throws_with(
      [&] { embedding_forward(g, to_gpu(Tensor::full({2}, 5000.0, DType::I64)), to_gpu(table)); },
      {"embedding", "5000", "V = 1000"});

  Tensor logits = random_tensor({64, 500}, rng, DType::F32, -4.f, 4.f);
  Tensor tg = Tensor::empty({64}, DType::I64);
  for (int64_t n = 0; n < 64; ++n)
    tg.data<int64_t>()[n] = n % 5 == 0 ? -100 : int64_t(rng.below(500));
  check_gpu(cross_entropy_forward(g, to_gpu(logits), to_gpu(tg)),
            cross_entropy_forward(ref, logits, tg), (Tol{1e-6, 1e-5}), "cross_entropy");
  check_gpu(cross_entropy_backward(g, 1.0, to_gpu(logits), to_gpu(tg)),
            cross_entropy_backward(ref, 1.0, logits, tg), (Tol{1e-8, 1e-5}),
            "cross_entropy_backward");
  Tensor teacher = random_tensor({64, 500}, rng, DType::F32, -4.f, 4.f);
  check_gpu(kl_div_forward(g, to_gpu(logits), to_gpu(teacher), 2.0),
            kl_div_forward(ref, logits, teacher, 2.0), (Tol{1e-6, 1e-5}), "kl_div");
  check_gpu(kl_div_backward(g, 1.0, to_gpu(logits), to_gpu(teacher), 2.0),
            kl_div_backward(ref, 1.0, logits, teacher, 2.0), (Tol{1e-8, 1e-5}),
            "kl_div_backward");
  Tensor pred = random_tensor({4, 9, C}, rng), target = random_tensor({4, 9, C}, rng);
  Tensor rows = Tensor::ones({4, 9});
  rows.data<float>()[3] = 0.f;
  check_gpu(mse_forward(g, to_gpu(pred), to_gpu(target), to_gpu(rows)),
            mse_forward(ref, pred, target, rows), (Tol{1e-6, 1e-5}), "mse");
  MseGrads mg = mse_backward(g, 1.0, to_gpu(pred), to_gpu(target), to_gpu(rows));
  MseGrads mr = mse_backward(ref, 1.0, pred, target, rows);
  check_gpu(mg.dpred, mr.dpred, kF32, "mse dpred");

  Tensor param = random_tensor({1000}, rng), grad = random_tensor({1000}, rng);
  Tensor pg = to_gpu(param), gg = to_gpu(grad), mgpu = gpu_zeros({1000}),
         vgpu = gpu_zeros({1000});
  Tensor m = Tensor::zeros({1000}), v = Tensor::zeros({1000});
  adamw_update(g, pg, gg, mgpu, vgpu, AdamWHyper{}, 1);
  adamw_update(ref, param, grad, m, v, AdamWHyper{}, 1);
  check_gpu(pg, param, kF32, "adamw_update");
}

TEST_CASE("gpu ops: matmul and linear, forward and backward, f32 and bf16") {
  Context g, ref(Backend::Ref);
  Rng rng(44);
  Tensor x = random_tensor({2, 33, 64}, rng), w = random_tensor({48, 64}, rng),
         bias = random_tensor({48}, rng);
  Tensor xg = to_gpu(x), wg = to_gpu(w), bg = to_gpu(bias);
  for (Activation act : {Activation::None, Activation::Gelu}) {
    check_gpu(linear_forward(g, xg, wg, bg, act), linear_forward(ref, x, w, bias, act),
              gemm_tol(64), "linear");
  }
  Tensor d = random_tensor({2, 33, 48}, rng);
  LinearGrads lg = linear_backward(g, to_gpu(d), xg, wg, true),
              lr = linear_backward(ref, d, x, w, true);
  check_gpu(lg.dx, lr.dx, gemm_tol(48), "linear dx");
  check_gpu(lg.dw, lr.dw, gemm_tol(66), "linear dw");
  check_gpu(lg.db, lr.db, (Tol{1e-5, 1e-5}), "linear db");

  // Batched attention-style matmul with a transposed view, and its backward.
  Tensor q = random_tensor({kB, kNH, 17, kHS}, rng), k = random_tensor({kB, kNH, 17, kHS}, rng);
  Tensor sg = matmul_forward(g, to_gpu(q), to_gpu(k).transpose(-1, -2));
  Tensor sr = matmul_forward(ref, q, k.transpose(-1, -2));
  check_gpu(sg, sr, gemm_tol(kHS), "q kᵀ");
  Tensor ds = random_tensor(sr.shape(), rng);
  MatmulGrads mg = matmul_backward(g, to_gpu(ds), to_gpu(q), to_gpu(k).transpose(-1, -2));
  MatmulGrads mr = matmul_backward(ref, ds, q, k.transpose(-1, -2));
  check_gpu(mg.da, mr.da, gemm_tol(17), "q kᵀ da");
  CHECK(mg.db.shape() == mr.db.shape());
  KDNAS_CHECK_CLOSE(to_host(mg.db).contiguous(), mr.db.contiguous(), gemm_tol(17), "q kᵀ db");

  // bf16 operands, f32 and bf16 outputs (against the f32 reference of the rounded values).
  Tensor xb = cast(ref, x, DType::BF16), wb = cast(ref, w, DType::BF16);
  Tensor want = linear_forward(ref, cast(ref, xb, DType::F32), cast(ref, wb, DType::F32), bias);
  check_gpu(linear_forward(g, to_gpu(xb), to_gpu(wb), bg), want, gemm_tol(64), "bf16 linear");
  Tensor hb = linear_forward(g, to_gpu(xb), to_gpu(wb), bg, Activation::None, DType::BF16);
  CHECK(hb.dtype() == DType::BF16);
  KDNAS_CHECK_CLOSE(to_host(hb).to(DType::F32), want, (Tol{gemm_tol(64).atol, 4e-3}), "bf16 out");
}

TEST_CASE("gpu ops: misuse across devices names the op and both devices") {
  Context g;
  Tensor a = Tensor::ones({4}), ag = to_gpu(a);
  check_throws_with([&] { add(g, a, ag); }, {"add", "cpu", "cuda:0"});
  check_throws_with(
      [&] { layer_norm_forward(g, ag, Tensor::ones({4}), Tensor::zeros({4}), 1e-5); },
      {"layer_norm", "cuda:0", "cpu"});
}
}
