// Mixed-precision training GEMMs (autograd/precision.h): autograd's linear and matmul under
// GemmPrecisionScope(BF16) against the f32 path and against numerical gradients of the f32
// function, on every compiled CPU backend; the scope's rules; an MLP and a tiny MLM pretraining
// run that learn in bf16; the --precision option in the saved training options.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "autograd/functions.h"
#include "autograd/optim.h"
#include "autograd/precision.h"
#include "distill/finetune.h"
#include "distill/pretrain.h"
#include "distill/trainer.h"
#include "tests/distill/distill_fixtures.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

using Fn = std::function<Variable(Context&, const std::vector<Variable>&)>;

// The value of f and the gradients of L = sum(f(x) * g) for a fixed random g, with f's GEMMs in
// precision p. Inputs are f32 copies of `xs`.
struct Result {
  Tensor y;
  std::vector<Tensor> grads;
};
Result run(Context& ctx, const Fn& f, const std::vector<Tensor>& xs, GemmPrecision p) {
  std::vector<Variable> in;
  for (const Tensor& x : xs) in.push_back(Variable::parameter(x.to(DType::F32).contiguous(), "x"));
  Variable y, loss;
  {
    GemmPrecisionScope scope(p);
    y = f(ctx, in);
  }
  Rng rng(99);
  const Tensor g = random_tensor(y.shape(), rng);
  loss = sum_all(ctx, mul(ctx, y, Variable(g)));
  loss.backward();  // outside the scope: the nodes recorded their precision
  Result r{y.value(), {}};
  for (const Variable& v : in) r.grads.push_back(v.grad());
  return r;
}

// max |got - want| <= rel * max |want|: a bf16 tolerance relative to the tensor's scale (bf16
// keeps 8 mantissa bits, ~4e-3 relative per operand; a K-long dot product of rounded operands
// is off by about that times the scale of the result).
double scale_of(const Tensor& t) {
  const Tensor c = t.to(DType::F64).contiguous();
  double m = 0;
  for (int64_t i = 0; i < c.numel(); ++i) m = std::max(m, std::abs(c.data<double>()[i]));
  return m;
}
void check_close_to_scale(const Tensor& got, const Tensor& want, double rel,
                          const std::string& what) {
  REQUIRE(got.shape() == want.shape());
  CHECK(got.dtype() == DType::F32);
  const double s = scale_of(want);
  KDNAS_CHECK_CLOSE(got.to(DType::F32), want.to(DType::F32), (Tol{rel * s, 0}), what);
}

// Whether a and b differ in at least one element (bit for bit).
bool differ(const Tensor& a, const Tensor& b) {
  return !same_bits(a.to(DType::F32).contiguous(), b.to(DType::F32).contiguous());
}

// Central differences of L = sum(f(x) * g) in double (f64 inputs, the Ref kernels: the f32
// function without rounding), g as in run().
std::vector<Tensor> numerical_grads(const Fn& f, const std::vector<Tensor>& xs) {
  Context ctx(Backend::Ref);
  NoGradGuard no_grad;
  std::vector<Variable> in;
  for (const Tensor& x : xs) in.push_back(Variable(x.to(DType::F64).contiguous()));
  Tensor g;
  auto loss = [&] {
    Variable y = f(ctx, in);
    if (!g.defined()) {
      Rng rng(99);
      g = random_tensor(y.shape(), rng).to(DType::F64);
    }
    return sum_all(ctx, mul(ctx, y, Variable(g))).value().item();
  };
  std::vector<Tensor> out;
  const double eps = 1e-4;  // L is linear in each input: any eps is exact up to rounding
  for (Variable& v : in) {
    Tensor num = Tensor::empty(v.shape(), DType::F64);
    double* p = v.value().data<double>();
    for (int64_t i = 0; i < v.numel(); ++i) {
      const double orig = p[i];
      p[i] = orig + eps;
      const double lp = loss();
      p[i] = orig - eps;
      const double lm = loss();
      p[i] = orig;
      num.data<double>()[i] = (lp - lm) / (2 * eps);
    }
    out.push_back(num);
  }
  return out;
}

struct Case {
  std::string name;
  Fn f;
  std::vector<Shape> shapes;
};

std::vector<Case> gemm_cases() {
  auto lin = [](Context& c, const std::vector<Variable>& in) {
    return linear(c, in[0], in[1], in[2]);
  };
  auto lin_nb = [](Context& c, const std::vector<Variable>& in) {
    return linear(c, in[0], in[1], Variable());
  };
  auto mm = [](Context& c, const std::vector<Variable>& in) { return matmul(c, in[0], in[1]); };
  auto mm_kt = [](Context& c, const std::vector<Variable>& in) {  // attention scores q · kᵀ
    return matmul(c, in[0], transpose(c, in[1], -1, -2));
  };
  return {
      {"linear [2,7,33]x[13,33]+b", lin, {{2, 7, 33}, {13, 33}, {13}}},
      {"linear without bias [5,33]x[9,33]", lin_nb, {{5, 33}, {9, 33}}},
      {"matmul batched [2,3,7,33]x[2,3,33,9]", mm, {{2, 3, 7, 33}, {2, 3, 33, 9}}},
      {"matmul shared b [2,7,33]x[33,9]", mm, {{2, 7, 33}, {33, 9}}},
      {"matmul broadcast [2,1,7,33]x[3,33,9]", mm, {{2, 1, 7, 33}, {3, 33, 9}}},
      {"matmul q kT [2,2,7,33]x[2,2,9,33]T", mm_kt, {{2, 2, 7, 33}, {2, 2, 9, 33}}},
  };
}

std::vector<Tensor> random_inputs(const Case& c, uint64_t seed) {
  Rng rng(seed);
  std::vector<Tensor> xs;
  for (const Shape& s : c.shapes) xs.push_back(random_tensor(s, rng));
  return xs;
}

std::vector<Backend> cpu_backends() {
  std::vector<Backend> b{Backend::Ref};
  for (Backend f : fast_backends()) b.push_back(f);
  return b;
}

}  // namespace

TEST_SUITE("autograd") {
  TEST_CASE("mixed precision: linear and matmul in bf16 match f32 within bf16 tolerance") {
    for (Backend be : cpu_backends()) {
      Context ctx(be);
      for (const Case& c : gemm_cases()) {
        const std::string what = c.name + " on " + backend_name(be);
        INFO(what);
        const std::vector<Tensor> xs = random_inputs(c, 7);
        const Result f32 = run(ctx, c.f, xs, GemmPrecision::F32);
        const Result bf = run(ctx, c.f, xs, GemmPrecision::BF16);
        check_close_to_scale(bf.y, f32.y, 2e-2, what + ": forward");
        for (size_t k = 0; k < xs.size(); ++k)
          check_close_to_scale(bf.grads[k], f32.grads[k], 2e-2,
                               what + ": gradient of input " + std::to_string(k));
        // The mode really changes the GEMMs: not the f32 result bit for bit (so this test cannot
        // pass by running f32 twice), and not wildly off either (the checks above).
        CHECK_MESSAGE(differ(bf.y, f32.y), what << ": the bf16 forward equals the f32 one");
        CHECK_MESSAGE(differ(bf.grads[0], f32.grads[0]),
                      what << ": the bf16 gradient equals the f32 one");
      }
    }
  }

  TEST_CASE("mixed precision: bf16 gradients against numerical gradients of the f32 function") {
    for (Backend be : cpu_backends()) {
      Context ctx(be);
      for (const Case& c : gemm_cases()) {
        const std::string what = c.name + " on " + backend_name(be);
        INFO(what);
        const std::vector<Tensor> xs = random_inputs(c, 8);
        const Result bf = run(ctx, c.f, xs, GemmPrecision::BF16);
        const std::vector<Tensor> num = numerical_grads(c.f, xs);
        for (size_t k = 0; k < xs.size(); ++k)
          check_close_to_scale(bf.grads[k], num[k], 3e-2,
                               what + ": gradient of input " + std::to_string(k));
      }
    }
  }

  TEST_CASE("mixed precision: the scope's rules") {
    CHECK(gemm_precision() == GemmPrecision::F32);  // the default
    {
      GemmPrecisionScope a(GemmPrecision::BF16);
      CHECK(gemm_precision() == GemmPrecision::BF16);
      {
        GemmPrecisionScope b(GemmPrecision::F32);
        CHECK(gemm_precision() == GemmPrecision::F32);
      }
      CHECK(gemm_precision() == GemmPrecision::BF16);
    }
    CHECK(gemm_precision() == GemmPrecision::F32);
    CHECK(parse_gemm_precision("f32", "--precision") == GemmPrecision::F32);
    CHECK(parse_gemm_precision("bf16", "--precision") == GemmPrecision::BF16);
    CHECK(std::string(gemm_precision_name(GemmPrecision::BF16)) == "bf16");
    check_throws_with([] { parse_gemm_precision("fp8", "--precision"); },
                      {"--precision", "fp8", "f32 or bf16"});

    // f64 operands (the gradient checks) ignore the setting: bit for bit the f32-mode result.
    Context ctx(Backend::Ref);
    Rng rng(3);
    const Tensor a = random_tensor({4, 6}, rng, DType::F64),
                 b = random_tensor({6, 5}, rng, DType::F64);
    const Tensor plain = matmul(ctx, Variable(a), Variable(b)).value();
    GemmPrecisionScope s(GemmPrecision::BF16);
    CHECK(same_bits(matmul(ctx, Variable(a), Variable(b)).value(), plain));
  }

  TEST_CASE("mixed precision: an MLP trained with bf16 GEMMs learns as the f32 one does") {
    // 2 -> 32 -> 32 -> 1 with GELU and tanh, full batch, AdamW at 1e-2: y = sin(x1) + x2^2 / 2.
    auto train = [](GemmPrecision prec) {
      Context ctx;  // the fastest backend of this build: the path training really takes
      Rng rng(2024);
      const int64_t N = 256, H = 32;
      const Tensor x = random_tensor({N, 2}, rng, DType::F32, -2.f, 2.f);
      Tensor y = Tensor::empty({N, 1});
      for (int64_t i = 0; i < N; ++i) {
        const float* xi = x.data<float>() + 2 * i;
        y.data<float>()[i] = std::sin(xi[0]) + 0.5f * xi[1] * xi[1];
      }
      Rng init(1);
      int n = 0;
      auto param = [&](const Shape& s, int64_t fan_in) {
        const float b = 1.f / std::sqrt(float(fan_in));
        return Variable::parameter(random_tensor(s, init, DType::F32, -b, b),
                                   "p" + std::to_string(n++));
      };
      std::vector<Variable> p{param({H, 2}, 2), param({H}, 2),    param({H, H}, H),
                              param({H}, H),    param({1, H}, H), param({1}, H)};
      AdamW opt(p, AdamWOptions{});
      opt.set_lr(1e-2);
      auto forward = [&] {
        GemmPrecisionScope scope(prec);
        Variable h = gelu(ctx, linear(ctx, Variable(x), p[0], p[1]));
        h = tanh(ctx, linear(ctx, h, p[2], p[3]));
        return mse(ctx, linear(ctx, h, p[4], p[5]), Variable(y));
      };
      std::pair<double, double> r{0, 0};
      for (int s = 0; s < 200; ++s) {
        opt.zero_grad();
        Variable loss = forward();
        if (s == 0) r.first = loss.value().item();
        loss.backward();
        opt.step(ctx);
      }
      NoGradGuard no_grad;
      r.second = forward().value().item();
      return r;
    };
    const auto f32 = train(GemmPrecision::F32), bf = train(GemmPrecision::BF16);
    MESSAGE("MLP loss f32 " << f32.first << " -> " << f32.second << ", bf16 " << bf.first << " -> "
                            << bf.second);
    CHECK(bf.first == doctest::Approx(f32.first).epsilon(0.02));
    CHECK(bf.second < 0.1 * bf.first);
    CHECK(bf.second < 2 * f32.second + 0.01);
    CHECK(bf.second != f32.second);  // the runs really differ
  }
}

TEST_SUITE("distill") {
  TEST_CASE("mixed precision: tiny MLM pretraining with --precision bf16 lowers the loss") {
    TempDir d;
    train_tiny_tokenizer(d.file("tok.model"));
    PretrainOptions o;
    o.config = std::string(KDNAS_SOURCE_DIR) + "/tests/data/configs/tiny.json";
    o.tokenizer = d.file("tok.model");
    o.corpus = std::string(KDNAS_SOURCE_DIR) + "/tests/data/corpus/tiny.txt";
    o.batch = 16, o.seq = 32, o.lr = 2e-3, o.seed = 3, o.threads = 1, o.quiet = true;
    o.steps = 60;
    o.precision = "bf16";
    o.out = d.file("out");
    Pretrainer t(o);
    t.run();
    const auto& h = t.history();
    REQUIRE(h.size() == 60u);
    double first = 0, last = 0;
    for (int i = 0; i < 5; ++i) first += h[i].loss / 5, last += h[h.size() - 1 - i].loss / 5;
    MESSAGE("bf16 MLM loss " << first << " -> " << last);
    CHECK(last < 0.8 * first);
    // The checkpoint keeps the precision: a resumed run continues in bf16.
    o.resume = true, o.precision = "f32", o.steps = 62;
    Pretrainer r(o);
    r.run();
    CHECK(r.step() == 62);
    const nlohmann::json state = nlohmann::json::parse(read_file(d.file("out/train_state.json")));
    CHECK(state["options"]["precision"] == "bf16");

    o.resume = false, o.precision = "fp8", o.out = d.file("bad");
    check_throws_with([&] { Pretrainer bad(o); }, {"pretrain", "--precision", "fp8"});
  }

  TEST_CASE("mixed precision: --precision in the saved training options; absent means f32") {
    CHECK(PretrainOptions{}.precision == "f32");
    CHECK(TrainOptions{}.precision == "f32");
    CHECK(FinetuneOptions{}.precision == "f32");
    PretrainOptions p;
    p.precision = "bf16";
    CHECK(pretrain_options_from_json(pretrain_options_to_json(p)).precision == "bf16");
    TrainOptions t;
    t.precision = "bf16";
    CHECK(train_options_from_json(train_options_to_json(t)).precision == "bf16");
    // A checkpoint written before --precision existed: no key, so f32.
    auto without = [](const std::string& text) {
      nlohmann::json j = nlohmann::json::parse(text);
      REQUIRE(j.contains("precision"));
      j.erase("precision");
      return j.dump();
    };
    CHECK(pretrain_options_from_json(without(pretrain_options_to_json(p))).precision == "f32");
    CHECK(train_options_from_json(without(train_options_to_json(t))).precision == "f32");
    nlohmann::json j = nlohmann::json::parse(train_options_to_json(t));
    j["precision"] = 16;
    check_throws_with([&] { train_options_from_json(j.dump()); }, {"precision", "wrong type"});
  }
}
