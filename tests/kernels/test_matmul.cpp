#include <doctest/doctest.h>

#include <array>
#include <cmath>

#include "kernels/matmul.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// f32 GEMM tolerance. The reference accumulates in double; a kernel accumulating K products in
// f32 (in any order) is off by about eps_f32 * sqrt(K) * |partial sums| for random data, so the
// absolute part grows with sqrt(K). A wrong index or a missed K block is off by O(1).
Tol gemm_tol(int64_t K) {
  return {1e-5 * std::sqrt(double(std::max<int64_t>(K, 1))), 1e-5};
}

// bf16 operands: the products are exact in f32, so a kernel differs from the f32 reference of
// the same (bf16-rounded) values only by f32 accumulation order (and oneDNN's bf16 dot products
// pairing two products per step): a tolerance of 1e-3 relative to the sqrt(K)-scaled size of
// the sums.
Tol bf16_gemm_tol(int64_t K) {
  return {1e-4 * std::sqrt(double(std::max<int64_t>(K, 1))), 1e-3};
}

std::string name_of(Backend be, const std::string& what) {
  return std::string(backend_name(be)) + " " + what;
}

std::string mkn(int64_t M, int64_t K, int64_t N) {
  return "M=" + std::to_string(M) + " K=" + std::to_string(K) + " N=" + std::to_string(N);
}

// Checks matmul_forward(a, b, opts) on every fast backend against the reference.
void check_matmul(const Tensor& a, const Tensor& b, const MatmulOptions& o, const std::string& what,
                  Tol tol) {
  Context ref(Backend::Ref);
  const Tensor want = matmul_forward(ref, a, b, o);
  for (Backend be : fast_backends()) {
    Context ctx(be);
    KDNAS_CHECK_CLOSE(matmul_forward(ctx, a, b, o), want, tol, name_of(be, what));
  }
}

// The GELU of the reference, independently: 0.5 x (1 + erf(x / sqrt 2)).
double gelu_exact(double x) {
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("matmul reference values") {
    Context ref(Backend::Ref);
    // [[1, 2, 3], [4, 5, 6]] · [[1, 0], [0, 1], [1, 1]] = [[4, 5], [10, 11]]
    Tensor a = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
    Tensor b = Tensor::from_vector<double>({1, 0, 0, 1, 1, 1}, {3, 2});
    CHECK(matmul_forward(ref, a, b).to_vector<double>() == std::vector<double>{4, 5, 10, 11});
    Tensor bias = Tensor::from_vector<double>({-4, 0.5}, {2});
    std::vector<double> got =
        matmul_forward(ref, a, b, {bias, Activation::Gelu}).to_vector<double>();
    std::vector<double> want{gelu_exact(0), gelu_exact(5.5), gelu_exact(6), gelu_exact(11.5)};
    for (size_t i = 0; i < 4; ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-12));
    // linear: x · wᵀ with w [N, K] = bᵀ gives the same.
    CHECK(linear_forward(ref, a, b.transpose(0, 1).contiguous()).to_vector<double>() ==
          std::vector<double>{4, 5, 10, 11});
  }

  TEST_CASE("matmul matches the reference on odd sizes, with bias and GELU") {
    Rng rng(1);
    std::vector<std::array<int64_t, 3>> sizes;
    const std::vector<int64_t> small{1, 7, 13, 33};
    for (int64_t M : small)
      for (int64_t K : small)
        for (int64_t N : small) sizes.push_back({M, K, N});
    // 769 in each position (ragged against every block size), and once everywhere.
    for (const auto& s : std::vector<std::array<int64_t, 3>>{{769, 33, 13},
                                                             {13, 769, 33},
                                                             {33, 13, 769},
                                                             {769, 7, 769},
                                                             {7, 769, 769},
                                                             {769, 769, 7},
                                                             {769, 769, 769}})
      sizes.push_back(s);
    for (const auto& [M, K, N] : sizes) {
      Tensor a = random_tensor({M, K}, rng), b = random_tensor({K, N}, rng);
      Tensor bias = random_tensor({N}, rng);
      check_matmul(a, b, {}, mkn(M, K, N), gemm_tol(K));
      check_matmul(a, b, {bias, Activation::Gelu}, mkn(M, K, N) + " bias+gelu", gemm_tol(K));
      if (M == 7 || M == 769) check_matmul(a, b, {bias}, mkn(M, K, N) + " bias", gemm_tol(K));
    }
  }

  TEST_CASE("matmul and linear at XLM-R's shapes (FFN and projections)") {
    Rng rng(2);
    // One sequence of 128 tokens through the FFN up-projection and an attention projection, with
    // w in PyTorch's [N, K] layout: linear reads it through a transposed view.
    for (int64_t N : {kFF, kC}) {
      Tensor x = random_tensor({1, kT, kC}, rng),
             w = random_tensor({N, kC}, rng, DType::F32, -0.1f, 0.1f);
      Tensor bias = random_tensor({N}, rng);
      Context ref(Backend::Ref);
      Tensor want = linear_forward(ref, x, w, bias, Activation::Gelu);
      CHECK(want.shape() == Shape{1, kT, N});
      for (Backend be : fast_backends()) {
        Context ctx(be);
        KDNAS_CHECK_CLOSE(linear_forward(ctx, x, w, bias, Activation::Gelu), want, gemm_tol(kC),
                          name_of(be, "linear [1, 128, 768] x [" + std::to_string(N) + ", 768]"));
        KDNAS_CHECK_CLOSE(matmul_forward(ctx, x, w.transpose(0, 1), {bias, Activation::Gelu}), want,
                          gemm_tol(kC), name_of(be, "matmul with wᵀ view, N=" + std::to_string(N)));
      }
    }
    // The FFN down-projection: K = 3072.
    Tensor h = random_tensor({kT, kFF}, rng),
           w2 = random_tensor({kC, kFF}, rng, DType::F32, -0.1f, 0.1f);
    check_matmul(h, w2.transpose(0, 1), {}, "FFN down [128, 3072] x [3072, 768]", gemm_tol(kFF));
  }

  TEST_CASE("matmul on attention shapes: QKᵀ and PV through head views") {
    Rng rng(3);
    const int64_t B = 2;  // a smaller batch than XLM-R's 8 keeps the reference quick; same layout
    // q, k, v as the QKV projection leaves them: [B, T, NH, HS] -> [B, NH, T, HS] views.
    Tensor qkv = random_tensor({B, kT, 3, kNH, kHS}, rng);
    Tensor q = qkv.select(2, 0).permute({0, 2, 1, 3});
    Tensor k = qkv.select(2, 1).permute({0, 2, 1, 3});
    Tensor v = qkv.select(2, 2).permute({0, 2, 1, 3});
    check_matmul(q, k.transpose(-1, -2), {}, "QKᵀ [2, 12, 128, 64] x [2, 12, 64, 128] views",
                 gemm_tol(kHS));
    Tensor p = random_tensor({B, kNH, kT, kT}, rng, DType::F32, 0.f, 0.02f);
    check_matmul(p, v, {}, "PV [2, 12, 128, 128] x [2, 12, 128, 64] view", gemm_tol(kT));
    // The same as contiguous [B*NH, T, HS] batches, XLM-R's B = 8.
    Tensor q3 = random_tensor({kB * kNH, kT, kHS}, rng),
           k3 = random_tensor({kB * kNH, kT, kHS}, rng);
    check_matmul(q3, k3.transpose(-1, -2), {}, "QKᵀ [96, 128, 64] x [96, 64, 128]", gemm_tol(kHS));
  }

  TEST_CASE("matmul reads transposed and strided operands") {
    Rng rng(4);
    const int64_t M = 37, K = 45, N = 29;
    Tensor a = random_tensor({M, K}, rng), b = random_tensor({K, N}, rng);
    Tensor at = a.transpose(0, 1).contiguous().transpose(0, 1);  // a, stored column-major
    Tensor bt = b.transpose(0, 1).contiguous().transpose(0, 1);
    check_matmul(at, b, {}, "a column-major", gemm_tol(K));
    check_matmul(a, bt, {}, "b column-major", gemm_tol(K));
    check_matmul(at, bt, {}, "both column-major", gemm_tol(K));
    // Every other column: no unit stride, so the op copies them first.
    check_matmul(noncontiguous(a), noncontiguous(b), {}, "stride-2 columns", gemm_tol(K));
    // Row stride larger than the row: a narrow of a wider matrix, read in place.
    Tensor wide = random_tensor({M, K + 11}, rng);
    check_matmul(wide.narrow(1, 5, K), b, {}, "narrowed a (row stride K + 11)", gemm_tol(K));
    // Single rows and columns whose strides are arbitrary.
    Tensor row = random_tensor({K, 3}, rng).narrow(1, 1, 1).transpose(0, 1);  // [1, K], stride 3
    check_matmul(row, b, {}, "a [1, K] with column stride 3", gemm_tol(K));
    Tensor col = random_tensor({3, K}, rng).narrow(0, 2, 1).transpose(0, 1);  // [K, 1]
    check_matmul(a, col, {}, "b [K, 1] from a row", gemm_tol(K));
  }

  TEST_CASE("matmul broadcasts batch dims") {
    Rng rng(5);
    const int64_t M = 9, K = 17, N = 11;
    struct Case {
      Shape a, b;
    };
    for (const Case& c : std::vector<Case>{{{2, 3, M, K}, {3, K, N}},
                                           {{1, M, K}, {4, K, N}},
                                           {{M, K}, {2, K, N}},
                                           {{3, 1, M, K}, {1, 2, K, N}},
                                           {{4, 5, M, K}, {K, N}},
                                           {{4, M, K}, {4, K, N}}}) {
      Tensor a = random_tensor(c.a, rng), b = random_tensor(c.b, rng);
      check_matmul(a, b, {random_tensor({N}, rng), Activation::Gelu},
                   shape_str(c.a) + " x " + shape_str(c.b), gemm_tol(K));
    }
    // expand() gives stride-0 batch dims: read as broadcasts, not copied.
    Tensor b = random_tensor({1, K, N}, rng).expand({6, K, N});
    check_matmul(random_tensor({6, M, K}, rng), b, {}, "b expanded along the batch", gemm_tol(K));
    // A batch that does not fold into rows (a permuted, b shared).
    Tensor a = random_tensor({M, 3, K}, rng).permute({1, 0, 2});
    check_matmul(a, random_tensor({K, N}, rng), {}, "[3, M, K] permuted view x [K, N]",
                 gemm_tol(K));
  }

  TEST_CASE("matmul with bf16 operands") {
    Rng rng(6);
    Context ref(Backend::Ref);
    for (const auto& [M, K, N] : std::vector<std::array<int64_t, 3>>{
             {1, 1, 1}, {7, 13, 33}, {33, 7, 13}, {128, 768, 768}, {13, 769, 33}}) {
      Tensor a = random_tensor({M, K}, rng, DType::BF16),
             w = random_tensor({N, K}, rng, DType::BF16);
      Tensor bias = random_tensor({N}, rng);
      // The f32 reference of the very same (bf16) values.
      Tensor want = linear_forward(ref, a.to(DType::F32), w.to(DType::F32), bias, Activation::Gelu);
      for (Backend be : compiled_cpu_backends()) {
        Context ctx(be);
        Tensor got = linear_forward(ctx, a, w, bias, Activation::Gelu);
        CHECK(got.dtype() == DType::F32);
        KDNAS_CHECK_CLOSE(got, want, bf16_gemm_tol(K), name_of(be, "bf16 " + mkn(M, K, N)));
        Tensor got16 = linear_forward(ctx, a, w, bias, Activation::Gelu, DType::BF16);
        CHECK(got16.dtype() == DType::BF16);
        KDNAS_CHECK_CLOSE(got16, want, kBF16, name_of(be, "bf16 out " + mkn(M, K, N)));
      }
    }
    // Against exact f32 operands: bf16 rounding of the inputs stays within bf16's tolerance.
    Tensor a = random_tensor({16, 64}, rng), b = random_tensor({64, 24}, rng);
    Tensor want = matmul_forward(ref, a, b);
    for (Backend be : fast_backends()) {
      Context ctx(be);
      KDNAS_CHECK_CLOSE(matmul_forward(ctx, a.to(DType::BF16), b.to(DType::BF16)), want, kBF16,
                        name_of(be, "bf16 vs exact f32"));
    }
    // Batched attention shape in bf16, with views.
    Tensor q = random_tensor({2, kT, kNH, kHS}, rng, DType::BF16).permute({0, 2, 1, 3});
    Tensor k = random_tensor({2, kT, kNH, kHS}, rng, DType::BF16).permute({0, 2, 1, 3});
    Tensor w2 = matmul_forward(ref, q.to(DType::F32), k.to(DType::F32).transpose(-1, -2));
    for (Backend be : fast_backends()) {
      Context ctx(be);
      KDNAS_CHECK_CLOSE(matmul_forward(ctx, q, k.transpose(-1, -2)), w2, bf16_gemm_tol(kHS),
                        name_of(be, "bf16 QKᵀ views"));
    }
  }

  TEST_CASE("matmul writes into a given out: contiguous or permuted, f32 and bf16") {
    Rng rng(17);
    Context ref(Backend::Ref);
    const int64_t B = 2, NH = 3, T = 17, HS = 8;
    for (DType dt : {DType::F32, DType::BF16}) {
      // PV as attention runs it: heads [B, NH, T, HS] written as a view of merged [B, T, NH, HS].
      Tensor p = random_tensor({B, NH, T, T}, rng, dt), v = random_tensor({B, NH, T, HS}, rng, dt);
      Tensor bias = random_tensor({HS}, rng);
      const MatmulOptions plain{bias, Activation::Gelu};
      const Tensor want = matmul_forward(ref, p.to(DType::F32), v.to(DType::F32), plain);
      const Tol tol = dt == DType::BF16 ? bf16_gemm_tol(T) : gemm_tol(T);
      for (Backend be : compiled_cpu_backends()) {
        Context ctx(be);
        const std::string what = name_of(be, std::string(dtype_name(dt)) + " PV into merged");
        for (DType odt : {DType::F32, DType::BF16}) {
          if (odt == DType::BF16 && dt != DType::BF16) continue;
          Tensor merged = Tensor::full({B, T, NH, HS}, 7.f, odt);
          Tensor heads = merged.permute({0, 2, 1, 3});
          MatmulOptions o = plain;
          o.out_dtype = odt, o.out = heads;
          Tensor got = matmul_forward(ctx, p, v, o);
          CHECK(got.raw_data() == merged.raw_data());
          CHECK(got.strides() == heads.strides());
          KDNAS_CHECK_CLOSE(got.to(DType::F32), want,
                            odt == DType::BF16 ? kBF16 : tol, what + " " + dtype_name(odt));
          // Every element of merged was written (none kept the fill value).
          KDNAS_CHECK_CLOSE(merged.to(DType::F32).permute({0, 2, 1, 3}), want,
                            odt == DType::BF16 ? kBF16 : tol, what + " (merged) " + dtype_name(odt));
        }
        // A contiguous out, and one whose batch folds into the rows (b shared).
        Tensor out = Tensor::empty({B, NH, T, HS});
        MatmulOptions o = plain;
        o.out = out;
        KDNAS_CHECK_CLOSE(matmul_forward(ctx, p, v, o), want, tol, what + " contiguous out");
        Tensor a = random_tensor({B, T, HS}, rng, dt), w = random_tensor({HS, 5}, rng, dt);
        Tensor folded = Tensor::empty({5, B, T}).permute({1, 2, 0});
        o = {};
        o.out = folded;
        KDNAS_CHECK_CLOSE(matmul_forward(ctx, a, w, o),
                          matmul_forward(ref, a.to(DType::F32), w.to(DType::F32)), tol,
                          what + " folded batch into a column-major out");
      }
    }
    // Misuse: wrong shape, dtype, or an out that is not a permuted contiguous tensor.
    Context ctx;
    Tensor a = Tensor::zeros({4, 3}), b = Tensor::zeros({3, 5});
    auto with_out = [&](const Tensor& out) {
      MatmulOptions o;
      o.out = out;
      matmul_forward(ctx, a, b, o);
    };
    check_throws_with([&] { with_out(Tensor::zeros({4, 6})); },
                      {"matmul", "out", "[4, 6]", "[4, 5]"});
    check_throws_with([&] { with_out(Tensor::zeros({4, 5}, DType::BF16)); },
                      {"matmul", "out", "bf16", "f32"});
    check_throws_with([&] { with_out(Tensor::zeros({4, 10}).narrow(1, 0, 5)); },
                      {"matmul", "out", "not a contiguous tensor"});
    check_throws_with([&] { with_out(Tensor::zeros({1, 5}).expand({4, 5})); },
                      {"matmul", "out", "not a contiguous tensor"});
  }

  TEST_CASE("linear with constant (pre-packed) weights matches the reference at any M") {
    Rng rng(16);
    Context ref(Backend::Ref);
    for (DType dt : {DType::F32, DType::BF16}) {
      for (const auto& [K, N] :
           std::vector<std::array<int64_t, 2>>{{768, 768}, {13, 33}, {64, 1}, {300, 70}}) {
        const Tensor w = random_tensor({N, K}, rng, dt, -0.1f, 0.1f);
        const Tensor bias = random_tensor({N}, rng);
        const ConstWeights cw = const_weights(w);
        const Tol tol = dt == DType::F32 ? gemm_tol(K) : bf16_gemm_tol(K);
        for (Backend be : compiled_cpu_backends()) {
          // One Context and one ConstWeights across several M (the first call packs the
          // weights; later Ms reuse them), with and without bias and GELU, f32 and bf16 out.
          Context ctx(be);
          for (int64_t M : {128, 1, 7, 300, 128}) {
            const Tensor x = random_tensor({M, K}, rng, dt);
            const std::string what = name_of(be, std::string(dtype_name(dt)) + " " + mkn(M, K, N));
            const Tensor want =
                linear_forward(ref, x.to(DType::F32), w.to(DType::F32), bias, Activation::Gelu);
            const Tensor got = linear_forward(ctx, x, cw, bias, Activation::Gelu);
            CHECK(got.dtype() == DType::F32);
            KDNAS_CHECK_CLOSE(got, want, tol, what + " bias+gelu");
            const Tensor plain = linear_forward(ref, x.to(DType::F32), w.to(DType::F32));
            KDNAS_CHECK_CLOSE(linear_forward(ctx, x, cw), plain, tol, what + " no bias");
            if (dt == DType::BF16) {
              const Tensor got16 = linear_forward(ctx, x, cw, bias, Activation::Gelu, DType::BF16);
              CHECK(got16.dtype() == DType::BF16);
              KDNAS_CHECK_CLOSE(got16, want, kBF16, what + " bf16 out");
            }
          }
          // Batched rows [B, T, K] and a strided x (a column slice: the plain route).
          const Tensor x3 = random_tensor({2, 5, K}, rng, dt);
          const Tensor want3 = linear_forward(ref, x3.to(DType::F32), w.to(DType::F32), bias);
          const Tensor got3 = linear_forward(ctx, x3, cw, bias);
          CHECK(got3.shape() == Shape{2, 5, N});
          KDNAS_CHECK_CLOSE(got3, want3, tol, name_of(be, "[2, 5, K] rows"));
          const Tensor wide = random_tensor({6, 2 * K}, rng, dt);
          const Tensor xs = wide.narrow(1, 0, K);
          KDNAS_CHECK_CLOSE(linear_forward(ctx, xs, cw, bias),
                            linear_forward(ref, xs.to(DType::F32), w.to(DType::F32), bias), tol,
                            name_of(be, "strided x"));
        }
      }
    }
    // Misuse: the plain linear's checks and messages.
    Context ctx;
    const ConstWeights cw = const_weights(random_tensor({4, 8}, rng));
    CHECK_THROWS_WITH(linear_forward(ctx, random_tensor({2, 9}, rng), cw),
                      doctest::Contains("w must be [N, K]"));
    CHECK_THROWS_WITH(linear_forward(ctx, random_tensor({2, 8}, rng, DType::BF16), cw),
                      doctest::Contains("linear"));
    CHECK_THROWS_WITH(linear_forward(ctx, random_tensor({2, 8}, rng), cw, random_tensor({3}, rng)),
                      doctest::Contains("bias"));
    CHECK_THROWS_WITH(const_weights(random_tensor({8}, rng)), doctest::Contains("[N, K]"));
    CHECK(const_weights(cw.w).id != cw.id);
  }

  TEST_CASE("matmul with an empty dim") {
    Rng rng(7);
    for (Backend be : compiled_cpu_backends()) {
      Context ctx(be);
      CHECK(matmul_forward(ctx, Tensor::zeros({0, 4}), Tensor::zeros({4, 3})).shape() ==
            Shape{0, 3});
      CHECK(matmul_forward(ctx, Tensor::zeros({2, 4}), Tensor::zeros({4, 0})).shape() ==
            Shape{2, 0});
      // K = 0: no products, so every row is act(bias).
      Tensor bias = Tensor::from_vector<float>({1.f, -2.f, 0.5f}, {3});
      Tensor out = matmul_forward(ctx, Tensor::zeros({2, 0}), Tensor::zeros({0, 3}), {bias});
      CHECK(out.to_vector<float>() == std::vector<float>{1.f, -2.f, 0.5f, 1.f, -2.f, 0.5f});
    }
  }

  TEST_CASE("matmul and linear backward match the reference on every backend") {
    Rng rng(8);
    Context ref(Backend::Ref);
    struct Case {
      Shape a, b;
    };
    for (const Case& c : std::vector<Case>{{{7, 13}, {13, 33}},
                                           {{2, 3, 9, 17}, {3, 17, 11}},
                                           {{9, 17}, {4, 17, 11}},
                                           {{4, 9, 17}, {17, 11}},
                                           {{kT, kC}, {kC, kC}}}) {
      Tensor a = random_tensor(c.a, rng), b = random_tensor(c.b, rng);
      Tensor dout = random_tensor(matmul_forward(ref, a, b).shape(), rng);
      MatmulGrads want = matmul_backward(ref, dout, a, b);
      const std::string what = shape_str(c.a) + " x " + shape_str(c.b);
      // Each element of da sums dout.numel() * K / a.numel() products (N of them, times the
      // batches a broadcasts along), each of db dout.numel() * K / b.numel().
      const int64_t K = c.a.back();
      const int64_t reps_a = dout.numel() * K / a.numel(), reps_b = dout.numel() * K / b.numel();
      for (Backend be : fast_backends()) {
        Context ctx(be);
        MatmulGrads got = matmul_backward(ctx, dout, a, b);
        KDNAS_CHECK_CLOSE(got.da, want.da, gemm_tol(reps_a), name_of(be, what + " da"));
        KDNAS_CHECK_CLOSE(got.db, want.db, gemm_tol(reps_b), name_of(be, what + " db"));
      }
    }
    // linear at XLM-R's shape, x [B=2, T, C] (the batch stacks into dw's reduction).
    Tensor x = random_tensor({2, kT, kC}, rng), w = random_tensor({kFF, kC}, rng);
    Tensor dout = random_tensor({2, kT, kFF}, rng);
    LinearGrads want = linear_backward(ref, dout, x, w, true);
    CHECK(want.dw.shape() == Shape{kFF, kC});
    CHECK(want.db.shape() == Shape{kFF});
    for (Backend be : fast_backends()) {
      Context ctx(be);
      LinearGrads got = linear_backward(ctx, dout, x, w, true);
      KDNAS_CHECK_CLOSE(got.dx, want.dx, gemm_tol(kFF), name_of(be, "linear dx"));
      KDNAS_CHECK_CLOSE(got.dw, want.dw, gemm_tol(2 * kT), name_of(be, "linear dw"));
      KDNAS_CHECK_CLOSE(got.db, want.db, gemm_tol(2 * kT), name_of(be, "linear db"));
      CHECK_FALSE(linear_backward(ctx, dout, x, w, false).db.defined());
    }
  }

  TEST_CASE("matmul backward with bf16 operands") {
    Rng rng(9);
    Context ref(Backend::Ref);
    Tensor a = random_tensor({3, 9, 17}, rng, DType::BF16),
           b = random_tensor({17, 11}, rng, DType::BF16);
    for (DType dt : {DType::F32, DType::BF16}) {
      Tensor dout = random_tensor({3, 9, 11}, rng, dt);
      MatmulGrads want =
          matmul_backward(ref, dout.to(DType::F32), a.to(DType::F32), b.to(DType::F32));
      for (Backend be : compiled_cpu_backends()) {
        Context ctx(be);
        MatmulGrads got = matmul_backward(ctx, dout, a, b);
        CHECK(got.da.dtype() == DType::BF16);
        CHECK(got.db.dtype() == DType::BF16);
        KDNAS_CHECK_CLOSE(got.da, want.da, kBF16, name_of(be, "bf16 da"));
        KDNAS_CHECK_CLOSE(got.db, want.db, kBF16, name_of(be, "bf16 db"));
      }
    }
  }

  TEST_CASE("matmul and linear: numerical gradients in double") {
    Context ref(Backend::Ref);
    Rng rng(10);
    struct Case {
      Shape a, b;
    };
    for (const Case& c : std::vector<Case>{{{3, 4}, {4, 5}},
                                           {{2, 3, 4}, {4, 5}},
                                           {{3, 4}, {2, 4, 5}},
                                           {{2, 1, 3, 4}, {3, 4, 2}}}) {
      gradcheck(
          "matmul " + shape_str(c.a) + " x " + shape_str(c.b),
          [&](const std::vector<Tensor>& in) { return matmul_forward(ref, in[0], in[1]); },
          [&](const std::vector<Tensor>& in, const Tensor& dout) {
            MatmulGrads g = matmul_backward(ref, dout, in[0], in[1]);
            return std::vector<Tensor>{g.da, g.db};
          },
          {random_tensor(c.a, rng, DType::F64), random_tensor(c.b, rng, DType::F64)});
    }
    gradcheck(
        "linear with bias",
        [&](const std::vector<Tensor>& in) { return linear_forward(ref, in[0], in[1], in[2]); },
        [&](const std::vector<Tensor>& in, const Tensor& dout) {
          LinearGrads g = linear_backward(ref, dout, in[0], in[1], true);
          return std::vector<Tensor>{g.dx, g.dw, g.db};
        },
        {random_tensor({2, 3, 4}, rng, DType::F64), random_tensor({5, 4}, rng, DType::F64),
         random_tensor({5}, rng, DType::F64)});
  }

  TEST_CASE("matmul misuse names the op and the shapes") {
    Context ctx;
    Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
    check_throws_with([&] { matmul_forward(ctx, a, b); }, {"matmul", "[2, 3]", "[4, 5]"});
    check_throws_with(
        [&] {
          matmul_forward(ctx, a, Tensor::zeros({3, 5}, DType::BF16));
        },
        {"matmul", "b", "bf16", "f32"});
    check_throws_with(
        [&] {
          matmul_forward(ctx, Tensor::zeros({2, 3}, DType::I32), Tensor::zeros({3, 5}, DType::I32));
        },
        {"matmul", "i32"});
    check_throws_with(
        [&] {
          matmul_forward(ctx, Tensor::zeros({3}), Tensor::zeros({3, 5}));
        },
        {"matmul", "[3]", "2 dims"});
    check_throws_with(
        [&] {
          matmul_forward(ctx, a, Tensor::zeros({3, 5}), {Tensor::zeros({4})});
        },
        {"matmul", "bias", "[4]", "N = 5"});
    check_throws_with(
        [&] {
          matmul_forward(ctx, a, Tensor::zeros({3, 5}), {Tensor::zeros({5}, DType::F64)});
        },
        {"matmul", "bias", "f64"});
    check_throws_with(
        [&] {
          matmul_forward(ctx, a, Tensor::zeros({3, 5}), {Tensor(), Activation::None, DType::BF16});
        },
        {"matmul", "out_dtype", "bf16"});
    check_throws_with(
        [&] {
          matmul_forward(ctx, Tensor::zeros({2, 4, 3}), Tensor::zeros({3, 3, 5}));
        },
        {"matmul", "[2, 4, 3]", "[3, 3, 5]", "broadcast"});
    check_throws_with([&] { matmul_forward(ctx, Tensor(), b); }, {"matmul", "undefined"});
    check_throws_with(
        [&] {
          linear_forward(ctx, Tensor::zeros({2, 4}), Tensor::zeros({5, 3}));
        },
        {"linear", "[2, 4]", "[5, 3]"});
    check_throws_with(
        [&] {
          linear_forward(ctx, Tensor::zeros({2, 3}), Tensor::zeros({5, 3}), Tensor::zeros({3}));
        },
        {"linear", "bias", "[3]", "[5, 3]"});
    check_throws_with(
        [&] {
          matmul_backward(ctx, Tensor::zeros({2, 4}), a, Tensor::zeros({3, 5}));
        },
        {"matmul_backward", "dout", "[2, 4]", "[2, 5]"});
    check_throws_with(
        [&] {
          matmul_backward(ctx, Tensor::zeros({2, 5}), a, b);
        },
        {"matmul_backward", "[2, 3]", "[4, 5]"});
    check_throws_with(
        [&] {
          linear_backward(ctx, Tensor::zeros({2, 6}), a, Tensor::zeros({5, 3}), true);
        },
        {"linear_backward", "dout", "[2, 6]", "[2, 5]"});
  }
}
