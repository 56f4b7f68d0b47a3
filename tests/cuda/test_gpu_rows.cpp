// GPU tests of the row-wise kernels against the CPU reference kernels: LayerNorm, softmax and
// log-softmax (masked, scaled), reductions, embedding (bit-exact backward) and the losses.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "kernels/cuda/embedding_cuda.h"
#include "kernels/cuda/layer_norm_cuda.h"
#include "kernels/cuda/loss_cuda.h"
#include "kernels/cuda/reduce_cuda.h"
#include "kernels/cuda/softmax_cuda.h"
#include "kernels/ref/embedding_ref.h"
#include "kernels/ref/layer_norm_ref.h"
#include "kernels/ref/loss_ref.h"
#include "kernels/ref/reduce_ref.h"
#include "kernels/ref/softmax_ref.h"
#include "tests/cuda/gpu_test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// (rows, C) pairs: odd sizes in both directions and XLM-R's [B*T, C].
std::vector<std::pair<int64_t, int64_t>> row_shapes() {
  std::vector<std::pair<int64_t, int64_t>> v;
  for (int64_t c : kOddSizes) v.push_back({7, c});
  for (int64_t r : kOddSizes) v.push_back({r, 33});
  v.push_back({kB * kT, kC});
  return v;
}

// The parameter gradients sum over every row: the reference adds them one by one in f32, the
// kernel in double, so the reference's own rounding (growing with the row count) sets the margin.
Tol column_sum_tol(int64_t rows) {
  return Tol{2e-6 * std::sqrt(double(rows)) + 1e-5, 1e-5};
}

}  // namespace

TEST_SUITE("gpu") {
TEST_CASE("gpu: layer_norm forward and backward match the reference") {
  Context ctx;
  Rng rng(20);
  for (auto [rows, C] : row_shapes()) {
    // An offset mean (3) as a residual stream has, so a one-pass variance would show.
    Tensor x = random_tensor({rows, C}, rng, DType::F32, 2.f, 4.f);
    Tensor g = random_tensor({C}, rng, DType::F32, 0.5f, 1.5f), b = random_tensor({C}, rng);
    Tensor d = random_tensor({rows, C}, rng);
    Tensor y = Tensor::empty({rows, C}), mean = Tensor::empty({rows}),
           rstd = Tensor::empty({rows});
    layer_norm_forward_ref(y.data<float>(), mean.data<float>(), rstd.data<float>(),
                           x.data<float>(), g.data<float>(), b.data<float>(), rows, C, 1e-5f);
    Tensor dx = Tensor::empty({rows, C}), dg = Tensor::empty({C}), db = Tensor::empty({C});
    layer_norm_backward_ref(dx.data<float>(), dg.data<float>(), db.data<float>(), d.data<float>(),
                            x.data<float>(), g.data<float>(), mean.data<float>(),
                            rstd.data<float>(), rows, C);

    Tensor xg = to_gpu(x), gg = to_gpu(g), bg = to_gpu(b), dgpu = to_gpu(d);
    Tensor yg = gpu_empty({rows, C}), mg = gpu_empty({rows}), rg = gpu_empty({rows});
    layer_norm_forward_cuda(ctx, yg.data<float>(), mg.data<float>(), rg.data<float>(),
                            xg.data<float>(), gg.data<float>(), bg.data<float>(), rows, C, 1e-5f);
    const std::string what =
        "layer_norm [" + std::to_string(rows) + ", " + std::to_string(C) + "]";
    KDNAS_CHECK_CLOSE(to_host(yg), y, kF32, what);
    KDNAS_CHECK_CLOSE(to_host(mg), mean, kF32, what + " mean");
    KDNAS_CHECK_CLOSE(to_host(rg), rstd, kF32, what + " rstd");

    Tensor dxg = gpu_empty({rows, C}), dgg = gpu_empty({C}), dbg = gpu_empty({C});
    layer_norm_backward_cuda(ctx, dxg.data<float>(), dgg.data<float>(), dbg.data<float>(),
                             dgpu.data<float>(), xg.data<float>(), gg.data<float>(),
                             to_gpu(mean).data<float>(), to_gpu(rstd).data<float>(), rows, C);
    KDNAS_CHECK_CLOSE(to_host(dxg), dx, kF32, what + " dx");
    KDNAS_CHECK_CLOSE(to_host(dgg), dg, column_sum_tol(rows), what + " dgamma");
    KDNAS_CHECK_CLOSE(to_host(dbg), db, column_sum_tol(rows), what + " dbeta");
    // Run twice: the column sums are deterministic.
    Tensor dgg2 = gpu_empty({C}), dbg2 = gpu_empty({C});
    layer_norm_backward_cuda(ctx, dxg.data<float>(), dgg2.data<float>(), dbg2.data<float>(),
                             dgpu.data<float>(), xg.data<float>(), gg.data<float>(),
                             to_gpu(mean).data<float>(), to_gpu(rstd).data<float>(), rows, C);
    KDNAS_CHECK_CLOSE(to_host(dgg2), to_host(dgg), kExact, what + " dgamma twice");
  }
}

TEST_CASE("gpu: masked, scaled softmax and log-softmax match the reference") {
  Context ctx;
  Rng rng(21);
  const float ninf = -std::numeric_limits<float>::infinity();
  // Attention scores [B, NH, T, T] with a key mask [B, 1, 1, T] (affine rows), odd shapes with
  // a full mask (one mask row per row), a shared mask row, and an irregular table.
  struct Case {
    int64_t rows, N;
    const char* mask;  // "none", "key" (period NH*T, step T), "full", "shared", "table"
  };
  const int64_t B = 2, NH = 3, T = 33;
  const std::vector<Case> cases{
      {B * NH * T, T, "key"}, {kB * kNH * kT, kT, "key"}, {7, 769, "full"},  {13, 1, "none"},
      {33, 250, "shared"},    {37, 13, "table"},          {5, 70000, "none"}};
  for (const Case& c : cases) {
    Tensor x = random_tensor({c.rows, c.N}, rng, DType::F32, -8.f, 8.f);
    Tensor mask;
    std::vector<int64_t> offs(size_t(c.rows), 0);
    const std::string kind = c.mask;
    if (kind == "key") {
      const int64_t b_count = c.rows / (c.N * (c.rows == B * NH * T ? NH : kNH));
      mask = Tensor::zeros({b_count, c.N});
      for (int64_t b = 0; b < b_count; ++b)  // pad the last b + 1 keys of batch b
        for (int64_t j = c.N - 1 - b; j < c.N; ++j) mask.data<float>()[b * c.N + j] = -1e9f;
      const int64_t period = c.rows / b_count;
      for (int64_t r = 0; r < c.rows; ++r) offs[size_t(r)] = (r / period) * c.N;
    } else if (kind == "full") {
      mask = random_tensor({c.rows, c.N}, rng, DType::F32, -2.f, 0.f);
      mask.data<float>()[3] = ninf;
      for (int64_t n = 0; n < c.N; ++n) mask.data<float>()[2 * c.N + n] = ninf;  // a dead row
      for (int64_t r = 0; r < c.rows; ++r) offs[size_t(r)] = r * c.N;
    } else if (kind == "shared") {
      mask = random_tensor({c.N}, rng, DType::F32, -1.f, 0.f);
    } else if (kind == "table") {
      mask = random_tensor({4, c.N}, rng, DType::F32, -1.f, 0.f);
      for (int64_t r = 0; r < c.rows; ++r) offs[size_t(r)] = int64_t(rng.below(4)) * c.N;
    }
    const float scale = 0.125f;
    const bool has_mask = mask.defined();
    Tensor y = Tensor::empty({c.rows, c.N});
    softmax_forward_ref(y.data<float>(), x.data<float>(), has_mask ? mask.data<float>() : nullptr,
                        offs.data(), scale, c.rows, c.N);
    Tensor xg = to_gpu(x), yg = gpu_empty({c.rows, c.N});
    Tensor mg = has_mask ? to_gpu(mask) : Tensor();
    softmax_forward_cuda(ctx, yg.data<float>(), xg.data<float>(),
                         has_mask ? mg.data<float>() : nullptr, offs.data(), scale, c.rows, c.N);
    const std::string what =
        "softmax [" + std::to_string(c.rows) + ", " + std::to_string(c.N) + "] mask " + kind;
    KDNAS_CHECK_CLOSE(to_host(yg), y, kF32, what);

    Tensor d = random_tensor({c.rows, c.N}, rng), dx = Tensor::empty({c.rows, c.N});
    softmax_backward_ref(dx.data<float>(), d.data<float>(), y.data<float>(), scale, c.rows, c.N);
    Tensor dg = to_gpu(d), dxg = gpu_empty({c.rows, c.N});
    softmax_backward_cuda(ctx, dxg.data<float>(), dg.data<float>(), to_gpu(y).data<float>(),
                          scale, c.rows, c.N);
    KDNAS_CHECK_CLOSE(to_host(dxg), dx, kF32, what + " backward");

    Tensor ly = Tensor::empty({c.rows, c.N}), ldx = Tensor::empty({c.rows, c.N});
    log_softmax_forward_ref(ly.data<float>(), x.data<float>(), c.rows, c.N);
    log_softmax_backward_ref(ldx.data<float>(), d.data<float>(), ly.data<float>(), c.rows, c.N);
    Tensor lyg = gpu_empty({c.rows, c.N}), ldxg = gpu_empty({c.rows, c.N});
    log_softmax_forward_cuda(ctx, lyg.data<float>(), xg.data<float>(), c.rows, c.N);
    log_softmax_backward_cuda(ctx, ldxg.data<float>(), dg.data<float>(), to_gpu(ly).data<float>(),
                              c.rows, c.N);
    // Log-probabilities of long rows are large negative numbers formed from a log of a sum
    // of N terms: allow the f32 rounding of that sum.
    KDNAS_CHECK_CLOSE(to_host(lyg), ly, (Tol{1e-5, 2e-5}), what + " log_softmax");
    KDNAS_CHECK_CLOSE(to_host(ldxg), ldx, (Tol{2e-5, 2e-5}), what + " log_softmax backward");
  }
}

TEST_CASE("gpu: sum, mean and max over a dim match the reference on every launch shape") {
  Context ctx;
  Rng rng(22);
  struct Case {
    int64_t outer, D, inner;
  };
  // inner == 1 (a warp per row), inner > 1 (a thread per output, or split over D when there
  // are few outputs), and few outputs with a long D (a block per output).
  const std::vector<Case> cases{{kB * kT, kC, 1}, {1, 250002, 1}, {3, 4096, 1}, {7, 13, 33},
                                {1, 1024, 768},   {2, 5000, 3},   {769, 1, 1},  {33, 7, 1},
                                {1, 1, 769},      {4, 0, 3}};
  for (const Case& c : cases) {
    const std::string what = "reduce [" + std::to_string(c.outer) + ", " + std::to_string(c.D) +
                             ", " + std::to_string(c.inner) + "]";
    Tensor x = random_tensor({c.outer, c.D, c.inner}, rng);
    if (x.numel() > 20 + c.inner) {  // ties and NaNs for max: the first occurrence must win
      x.data<float>()[5] = 2.f;
      x.data<float>()[5 + c.inner] = 2.f;
      x.data<float>()[17] = std::numeric_limits<float>::quiet_NaN();
    }
    const Shape rshape{c.outer, c.inner};
    Tensor xg = to_gpu(x);
    for (double scale : {1.0, c.D ? 1.0 / double(c.D) : 1.0}) {
      Tensor want = Tensor::empty(rshape), got = gpu_empty(rshape);
      sum_forward_ref(want.data<float>(), x.data<float>(), c.outer, c.D, c.inner, scale);
      sum_forward_cuda(ctx, got.data<float>(), xg.data<float>(), c.outer, c.D, c.inner, scale);
      KDNAS_CHECK_CLOSE(to_host(got), want, kF32, what + " sum");
      Tensor d = random_tensor(rshape, rng), dx = Tensor::empty(x.shape()),
             dxg = gpu_empty(x.shape());
      sum_backward_ref(dx.data<float>(), d.data<float>(), c.outer, c.D, c.inner, scale);
      sum_backward_cuda(ctx, dxg.data<float>(), to_gpu(d).data<float>(), c.outer, c.D, c.inner,
                        scale);
      KDNAS_CHECK_CLOSE(to_host(dxg), dx, kExact, what + " sum backward");
    }
    if (c.D == 0) continue;
    Tensor v = Tensor::empty(rshape), i = Tensor::empty(rshape, DType::I64);
    max_forward_ref(v.data<float>(), i.data<int64_t>(), x.data<float>(), c.outer, c.D, c.inner);
    Tensor vg = gpu_empty(rshape), ig = gpu_empty(rshape, DType::I64);
    max_forward_cuda(ctx, vg.data<float>(), ig.data<int64_t>(), xg.data<float>(), c.outer, c.D,
                     c.inner);
    KDNAS_CHECK_CLOSE(to_host(vg), v, kExact, what + " max values");
    KDNAS_CHECK_CLOSE(to_host(ig), i, kExact, what + " max indices");
    Tensor d = random_tensor(rshape, rng), dx = Tensor::empty(x.shape()),
           dxg = gpu_empty(x.shape());
    max_backward_ref(dx.data<float>(), d.data<float>(), i.data<int64_t>(), c.outer, c.D, c.inner);
    max_backward_cuda(ctx, dxg.data<float>(), to_gpu(d).data<float>(), ig.data<int64_t>(),
                      c.outer, c.D, c.inner);
    KDNAS_CHECK_CLOSE(to_host(dxg), dx, kExact, what + " max backward");
  }
}

TEST_CASE("gpu: embedding gathers rows, and its backward is the reference's bits") {
  Context ctx;
  Rng rng(23);
  const int64_t V = 30000, C = 768, N = kB * kT, pad = 1;
  Tensor table = random_tensor({V, C}, rng), tg = to_gpu(table);
  std::vector<int64_t> ids(static_cast<size_t>(N));
  for (auto& id : ids) id = int64_t(rng.below(50));  // many repeats
  ids[0] = V - 1, ids[1] = pad, ids[2] = pad, ids[3] = 0;
  Tensor out = Tensor::empty({N, C}), outg = gpu_empty({N, C});
  embedding_forward_ref(out.data<float>(), ids.data(), table.data<float>(), N, C);
  embedding_forward_cuda(ctx, outg.data<float>(), ids.data(), tg.data<float>(), N, C);
  KDNAS_CHECK_CLOSE(to_host(outg), out, kExact, "embedding forward");

  Tensor d = random_tensor({N, C}, rng), dg = to_gpu(d);
  for (int64_t padding : {int64_t(-1), pad}) {
    Tensor dt = Tensor::empty({V, C}), dtg = gpu_empty({V, C});
    embedding_backward_ref(dt.data<float>(), d.data<float>(), ids.data(), N, V, C, padding);
    embedding_backward_cuda(ctx, dtg.data<float>(), dg.data<float>(), ids.data(), N, V, C,
                            padding);
    KDNAS_CHECK_CLOSE(to_host(dtg), dt, kExact, "embedding backward");
    // Accumulate into an existing gradient.
    Tensor acc = random_tensor({V, C}, rng), accg = to_gpu(acc);
    embedding_backward_accumulate_ref(acc.data<float>(), d.data<float>(), ids.data(), N, C,
                                      padding);
    embedding_backward_accumulate_cuda(ctx, accg.data<float>(), dg.data<float>(), ids.data(), N,
                                       C, padding);
    KDNAS_CHECK_CLOSE(to_host(accg), acc, kExact, "embedding backward accumulate");
  }
  // Odd sizes.
  for (int64_t c : kOddSizes) {
    std::vector<int64_t> few{2, 0, 2, 2, 1, 0, 2};
    Tensor t = random_tensor({3, c}, rng), o = Tensor::empty({7, c}), og = gpu_empty({7, c});
    embedding_forward_ref(o.data<float>(), few.data(), t.data<float>(), 7, c);
    embedding_forward_cuda(ctx, og.data<float>(), few.data(), to_gpu(t).data<float>(), 7, c);
    KDNAS_CHECK_CLOSE(to_host(og), o, kExact, "embedding odd forward");
    Tensor dd = random_tensor({7, c}, rng), w = Tensor::empty({3, c}), wg = gpu_empty({3, c});
    embedding_backward_ref(w.data<float>(), dd.data<float>(), few.data(), 7, 3, c, -1);
    embedding_backward_cuda(ctx, wg.data<float>(), to_gpu(dd).data<float>(), few.data(), 7, 3, c,
                            -1);
    KDNAS_CHECK_CLOSE(to_host(wg), w, kExact, "embedding odd backward");
  }
}

TEST_CASE("gpu: mse, cross-entropy and KL losses and their gradients match the reference") {
  Context ctx;
  Rng rng(24);
  const Tol loss_tol{1e-6, 1e-5};
  // mse over [R, C] with and without a row mask.
  {
    const int64_t R = kB * kT, C = kC;
    Tensor p = random_tensor({R, C}, rng), t = random_tensor({R, C}, rng);
    std::vector<uint8_t> mask(static_cast<size_t>(R));
    for (auto& m : mask) m = rng.uniform() < 0.7f ? 1 : 0;
    for (const uint8_t* mp :
         {static_cast<const uint8_t*>(nullptr), static_cast<const uint8_t*>(mask.data())}) {
      Tensor l = Tensor::empty({1}), lg = gpu_empty({1});
      mse_forward_ref(l.data<float>(), p.data<float>(), t.data<float>(), mp, R, C);
      Tensor pg = to_gpu(p), tg = to_gpu(t);
      mse_forward_cuda(ctx, lg.data<float>(), pg.data<float>(), tg.data<float>(), mp, R, C);
      KDNAS_CHECK_CLOSE(to_host(lg), l, loss_tol, "mse");
      Tensor dp = Tensor::empty({R, C}), dt = Tensor::empty({R, C});
      Tensor dpg = gpu_empty({R, C}), dtg = gpu_empty({R, C});
      mse_backward_ref(dp.data<float>(), dt.data<float>(), 0.5, p.data<float>(), t.data<float>(),
                       mp, R, C);
      mse_backward_cuda(ctx, dpg.data<float>(), dtg.data<float>(), 0.5, pg.data<float>(),
                        tg.data<float>(), mp, R, C);
      KDNAS_CHECK_CLOSE(to_host(dpg), dp, kF32, "mse dpred");
      KDNAS_CHECK_CLOSE(to_host(dtg), dt, kF32, "mse dtarget");
    }
  }
  // cross-entropy [N, V] with ignored rows, and with every row ignored.
  for (int64_t V : {int64_t(2), int64_t(769), int64_t(8000)}) {
    const int64_t N = 1024;
    Tensor x = random_tensor({N, V}, rng, DType::F32, -10.f, 10.f), xg = to_gpu(x);
    std::vector<int64_t> tgt(static_cast<size_t>(N));
    for (auto& t : tgt) t = rng.uniform() < 0.2f ? -100 : int64_t(rng.below(uint64_t(V)));
    std::vector<int64_t> none(size_t(N), -100);
    for (const std::vector<int64_t>* tv : {&tgt, &none}) {
      Tensor l = Tensor::empty({1}), lg = gpu_empty({1});
      cross_entropy_forward_ref(l.data<float>(), x.data<float>(), tv->data(), -100, N, V);
      cross_entropy_forward_cuda(ctx, lg.data<float>(), xg.data<float>(), tv->data(), -100, N, V);
      KDNAS_CHECK_CLOSE(to_host(lg), l, loss_tol, "cross_entropy V=" + std::to_string(V));
      Tensor dx = Tensor::empty({N, V}), dxg = gpu_empty({N, V});
      cross_entropy_backward_ref(dx.data<float>(), 2.0, x.data<float>(), tv->data(), -100, N, V);
      cross_entropy_backward_cuda(ctx, dxg.data<float>(), 2.0, xg.data<float>(), tv->data(), -100,
                                  N, V);
      // The kernel's probabilities come from f32 exp (~1e-7 absolute error, the reference's
      // from double), scaled by dloss / count ~ 2.5e-3: an absolute margin of 1e-8.
      KDNAS_CHECK_CLOSE(to_host(dxg), dx, (Tol{1e-8, 1e-5}),
                        "cross_entropy backward V=" + std::to_string(V));
    }
  }
  // KL divergence with temperature, with and without a row mask.
  {
    const int64_t N = 257, V = 3001;
    Tensor s = random_tensor({N, V}, rng, DType::F32, -5.f, 5.f);
    Tensor t = random_tensor({N, V}, rng, DType::F32, -5.f, 5.f);
    Tensor sg = to_gpu(s), tg = to_gpu(t);
    std::vector<uint8_t> mask(static_cast<size_t>(N));
    for (auto& m : mask) m = rng.uniform() < 0.5f ? 1 : 0;
    mask[0] = 1;
    for (const uint8_t* mp :
         {static_cast<const uint8_t*>(nullptr), static_cast<const uint8_t*>(mask.data())})
      for (double tau : {1.0, 2.0}) {
        Tensor l = Tensor::empty({1}), lg = gpu_empty({1});
        kl_div_forward_ref(l.data<float>(), s.data<float>(), t.data<float>(), mp, tau, N, V);
        kl_div_forward_cuda(ctx, lg.data<float>(), sg.data<float>(), tg.data<float>(), mp, tau, N,
                            V);
        KDNAS_CHECK_CLOSE(to_host(lg), l, loss_tol, "kl_div tau=" + std::to_string(tau));
        Tensor ds = Tensor::empty({N, V}), dsg = gpu_empty({N, V});
        kl_div_backward_ref(ds.data<float>(), 1.5, s.data<float>(), t.data<float>(), mp, tau, N,
                            V);
        kl_div_backward_cuda(ctx, dsg.data<float>(), 1.5, sg.data<float>(), tg.data<float>(), mp,
                             tau, N, V);
        // As for cross-entropy: f32 exp in q and p, scaled by dloss * tau / rows ~ 1e-2.
        KDNAS_CHECK_CLOSE(to_host(dsg), ds, (Tol{1e-8, 1e-5}), "kl_div backward");
      }
  }
}
}
