// Every differentiable function, and small composite graphs, against numerical gradients in
// double through the reference kernels.
#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "tests/autograd/autograd_check.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {
using In = std::vector<Variable>;
}

TEST_SUITE("autograd") {
TEST_CASE("autograd functions: element-wise") {
  Context ctx(Backend::Ref);
  Rng rng(10);
  Variable x = param64({3, 5}, rng, -3.f, 3.f);
  check_autograd("gelu", ctx, [&](const In& in) { return gelu(ctx, in[0]); }, {x});
  check_autograd("tanh", ctx, [&](const In& in) { return tanh(ctx, in[0]); }, {x});
  check_autograd("relu", ctx, [&](const In& in) { return relu(ctx, in[0]); }, {x});
  check_autograd("scale", ctx, [&](const In& in) { return scale(ctx, in[0], -1.7); }, {x});
}

TEST_CASE("autograd functions: binary ops with broadcasting") {
  Context ctx(Backend::Ref);
  Rng rng(11);
  // Both sides broadcast: [3, 1, 5] op [1, 4, 1] -> [3, 4, 5]; and the bias case [4, 5] op [5].
  Variable a = param64({3, 1, 5}, rng), b = param64({1, 4, 1}, rng, 0.5f, 2.f);
  Variable m = param64({4, 5}, rng), r = param64({5}, rng, 0.5f, 2.f);
  for (auto [name, f] : std::vector<std::pair<const char*, Variable (*)(Context&, const Variable&,
                                                                         const Variable&)>>{
           {"add", add}, {"sub", sub}, {"mul", mul}, {"div", div}}) {
    check_autograd(std::string(name) + " [3,1,5] [1,4,1]", ctx,
                   [&](const In& in) { return f(ctx, in[0], in[1]); }, {a, b});
    check_autograd(std::string(name) + " [4,5] [5]", ctx,
                   [&](const In& in) { return f(ctx, in[0], in[1]); }, {m, r});
  }
}

TEST_CASE("autograd functions: a broadcast composite with a variable used twice") {
  Context ctx(Backend::Ref);
  Rng rng(12);
  Variable x = param64({4, 3}, rng), s = param64({3}, rng, 0.5f, 2.f), c = param64({1}, rng);
  // y = (x * s + c) / s - tanh(x * c): s and c each reach y twice, through broadcasts.
  check_autograd(
      "broadcast composite", ctx,
      [&](const In& in) {
        Variable xs = mul(ctx, in[0], in[1]);
        return sub(ctx, div(ctx, add(ctx, xs, in[2]), in[1]), tanh(ctx, mul(ctx, in[0], in[2])));
      },
      {x, s, c});
}

TEST_CASE("autograd functions: matmul and linear") {
  Context ctx(Backend::Ref);
  Rng rng(13);
  Variable a = param64({2, 3, 4}, rng), b = param64({4, 5}, rng), bb = param64({2, 4, 5}, rng);
  check_autograd("matmul shared b", ctx, [&](const In& in) { return matmul(ctx, in[0], in[1]); },
                 {a, b});
  check_autograd("matmul batched", ctx, [&](const In& in) { return matmul(ctx, in[0], in[1]); },
                 {a, bb});
  // A transposed view as the right operand: q kᵀ.
  Variable k = param64({2, 5, 4}, rng);
  check_autograd(
      "matmul a kT", ctx,
      [&](const In& in) { return matmul(ctx, in[0], transpose(ctx, in[1], -1, -2)); }, {a, k});
  Variable x = param64({5, 4}, rng), w = param64({3, 4}, rng), bias = param64({3}, rng);
  check_autograd("linear", ctx,
                 [&](const In& in) { return linear(ctx, in[0], in[1], in[2]); }, {x, w, bias});
  check_autograd("linear without bias", ctx,
                 [&](const In& in) { return linear(ctx, in[0], in[1], Variable()); }, {a, w});
}

TEST_CASE("autograd functions: layer_norm, softmax, log_softmax") {
  Context ctx(Backend::Ref);
  Rng rng(14);
  Variable x = param64({4, 6}, rng, -2.f, 2.f), g = param64({6}, rng, 0.5f, 1.5f),
           b = param64({6}, rng);
  check_autograd("layer_norm", ctx,
                 [&](const In& in) { return layer_norm(ctx, in[0], in[1], in[2], 1e-5); },
                 {x, g, b});
  // Attention-shaped softmax with a padding mask [B, 1, 1, T] and a scale.
  Variable s = param64({2, 3, 4, 5}, rng, -2.f, 2.f);
  Tensor mask = Tensor::zeros({2, 1, 1, 5}, DType::F64);
  mask.data<double>()[4] = -1e9;  // batch 0: last key padded
  mask.data<double>()[8] = -1e9;  // batch 1: keys 3 and 4 padded
  mask.data<double>()[9] = -1e9;
  check_autograd("softmax masked, scaled", ctx,
                 [&](const In& in) { return softmax(ctx, in[0], mask, 0.125); }, {s});
  check_autograd("softmax", ctx, [&](const In& in) { return softmax(ctx, in[0]); }, {x});
  check_autograd("log_softmax", ctx, [&](const In& in) { return log_softmax(ctx, in[0]); }, {x});
}

TEST_CASE("autograd functions: embedding and dropout") {
  Context ctx(Backend::Ref);
  Rng rng(15);
  Variable table = param64({6, 4}, rng);
  // Repeated ids accumulate; the padding row (1) gets no gradient.
  Tensor ids = Tensor::from_vector<int64_t>({0, 3, 3, 1, 5, 3}, {2, 3});
  check_autograd("embedding", ctx, [&](const In& in) { return embedding(ctx, ids, in[0]); },
                 {table});
  table.zero_grad();
  embedding(ctx, ids, table, 1).backward(Tensor::ones({2, 3, 4}, DType::F64));
  std::vector<double> g = table.grad().to_vector<double>();
  CHECK(g[1 * 4] == 0.0);   // the padding row
  CHECK(g[3 * 4] == 3.0);   // id 3 appears three times
  CHECK(g[2 * 4] == 0.0);   // id 2 never appears
  Variable x = param64({5, 7}, rng);
  // Each evaluation draws the same mask: a fresh Rng with the same seed.
  check_autograd("dropout", ctx,
                 [&](const In& in) {
                   Rng r(99);
                   return dropout(ctx, in[0], 0.3, r, true);
                 },
                 {x});
  Rng r(1);
  CHECK(dropout(ctx, x, 0.3, r, false).node() == x.node());  // evaluation: x itself
  CHECK(r.state().counter == 0);                             // and no draws
  dropout(ctx, x, 0.3, r, true);
  CHECK(r.state().counter == 35);  // one counter per element
}

TEST_CASE("autograd functions: reductions") {
  Context ctx(Backend::Ref);
  Rng rng(16);
  Variable x = param64({3, 4, 5}, rng);
  for (int64_t dim : {0, 1, -1})
    for (bool keep : {false, true}) {
      std::string tag = " dim " + std::to_string(dim) + (keep ? " keepdim" : "");
      check_autograd("sum" + tag, ctx, [&](const In& in) { return sum(ctx, in[0], dim, keep); },
                     {x});
      check_autograd("mean" + tag, ctx, [&](const In& in) { return mean(ctx, in[0], dim, keep); },
                     {x});
      check_autograd("max" + tag, ctx, [&](const In& in) { return max(ctx, in[0], dim, keep); },
                     {x});
    }
  check_autograd("sum_all", ctx, [&](const In& in) { return sum_all(ctx, in[0]); }, {x});
  check_autograd("mean_all", ctx, [&](const In& in) { return mean_all(ctx, in[0]); }, {x});
}

TEST_CASE("autograd functions: concat, split, narrow, permute, reshape, view, transpose") {
  Context ctx(Backend::Ref);
  Rng rng(17);
  Variable a = param64({2, 3}, rng), b = param64({2, 2}, rng), x = param64({2, 5}, rng);
  check_autograd("concat", ctx, [&](const In& in) { return concat(ctx, {in[0], in[1]}, 1); },
                 {a, b});
  check_autograd(
      "split, both pieces used", ctx,
      [&](const In& in) {
        std::vector<Variable> p = split(ctx, in[0], 1, {2, 3});
        return concat(ctx, {tanh(ctx, p[1]), p[0]}, 1);
      },
      {x});
  check_autograd("split, one piece used", ctx,
                 [&](const In& in) { return split(ctx, in[0], -1, {1, 3, 1})[1]; }, {x});
  check_autograd("narrow", ctx, [&](const In& in) { return narrow(ctx, in[0], 1, 1, 3); }, {x});
  Variable t = param64({2, 3, 4}, rng);
  check_autograd("permute", ctx, [&](const In& in) { return permute(ctx, in[0], {2, 0, 1}); },
                 {t});
  check_autograd("reshape", ctx, [&](const In& in) { return reshape(ctx, in[0], {4, -1}); }, {t});
  check_autograd("view", ctx, [&](const In& in) { return view(ctx, in[0], {6, 4}); }, {t});
  check_autograd("transpose", ctx, [&](const In& in) { return transpose(ctx, in[0], 0, 2); },
                 {t});
  // A transposed (non-contiguous) value feeding a kernel, then reshaped: the head merge.
  check_autograd(
      "transpose + reshape", ctx,
      [&](const In& in) { return reshape(ctx, gelu(ctx, transpose(ctx, in[0], 0, 1)), {3, 8}); },
      {t});
}

TEST_CASE("autograd functions: losses") {
  Context ctx(Backend::Ref);
  Rng rng(18);
  Variable pred = param64({3, 4}, rng), target = param64({3, 4}, rng);
  check_autograd("mse", ctx, [&](const In& in) { return mse(ctx, in[0], in[1]); },
                 {pred, target});
  Tensor rows = Tensor::from_vector<double>({1, 0, 1}, {3});
  check_autograd("mse masked", ctx, [&](const In& in) { return mse(ctx, in[0], in[1], rows); },
                 {pred, target});
  Variable logits = param64({4, 5}, rng, -2.f, 2.f);
  Tensor targets = Tensor::from_vector<int64_t>({1, 0, -100, 4}, {4});
  check_autograd("cross_entropy", ctx,
                 [&](const In& in) { return cross_entropy(ctx, in[0], targets); }, {logits});
  Tensor teacher = random_tensor({4, 5}, rng, DType::F64, -2.f, 2.f);
  check_autograd("kl_div T=2", ctx,
                 [&](const In& in) { return kl_div(ctx, in[0], teacher, 2.0); }, {logits});
}

TEST_CASE("autograd functions: a 2-layer MLP with LayerNorm and GELU") {
  Context ctx(Backend::Ref);
  Rng rng(19);
  Variable x(random_tensor({6, 4}, rng, DType::F64));
  Variable w1 = param64({8, 4}, rng), b1 = param64({8}, rng), g = param64({8}, rng, 0.5f, 1.5f),
           be = param64({8}, rng), w2 = param64({3, 8}, rng), b2 = param64({3}, rng);
  Tensor labels = Tensor::from_vector<int64_t>({0, 2, 1, 1, 0, 2}, {6});
  check_autograd(
      "MLP", ctx,
      [&](const In& p) {
        Variable h = gelu(ctx, layer_norm(ctx, linear(ctx, x, p[0], p[1]), p[2], p[3], 1e-5));
        return cross_entropy(ctx, linear(ctx, h, p[4], p[5]), labels);
      },
      {w1, b1, g, be, w2, b2});
}

TEST_CASE("autograd functions: an attention block") {
  // Multi-head self-attention as the encoder will write it: head split by permute, q kᵀ through
  // a transposed view, masked scaled softmax, head merge by permute + reshape.
  Context ctx(Backend::Ref);
  Rng rng(20);
  constexpr int64_t B = 2, T = 3, NH = 2, HS = 2, C = NH * HS;
  Variable x(random_tensor({B, T, C}, rng, DType::F64));
  Variable wq = param64({C, C}, rng), wk = param64({C, C}, rng), wv = param64({C, C}, rng);
  Tensor mask = Tensor::zeros({B, 1, 1, T}, DType::F64);
  mask.data<double>()[T + 2] = -1e9;  // batch 1: last key padded
  auto heads = [&](const Variable& t) {  // [B, T, C] -> [B, NH, T, HS]
    return permute(ctx, reshape(ctx, t, {B, T, NH, HS}), {0, 2, 1, 3});
  };
  check_autograd(
      "attention", ctx,
      [&](const In& p) {
        Variable q = heads(linear(ctx, x, p[0], Variable()));
        Variable k = heads(linear(ctx, x, p[1], Variable()));
        Variable v = heads(linear(ctx, x, p[2], Variable()));
        Variable att = softmax(ctx, matmul(ctx, q, transpose(ctx, k, -1, -2)), mask, 0.7);
        return reshape(ctx, permute(ctx, matmul(ctx, att, v), {0, 2, 1, 3}), {B, T, C});
      },
      {wq, wk, wv});
}

TEST_CASE("autograd functions: f32 gradients on every backend match the f64 reference") {
  // The MLP of the test above, run in f32 on each fast backend: the same graph machinery over
  // the fast kernels, compared with the double-precision gradients.
  Rng rng(21);
  std::vector<Tensor> init{random_tensor({8, 4}, rng, DType::F64),
                           random_tensor({8}, rng, DType::F64),
                           random_tensor({8}, rng, DType::F64, 0.5f, 1.5f),
                           random_tensor({8}, rng, DType::F64),
                           random_tensor({3, 8}, rng, DType::F64),
                           random_tensor({3}, rng, DType::F64)};
  Tensor x = random_tensor({6, 4}, rng, DType::F64);
  Tensor labels = Tensor::from_vector<int64_t>({0, 2, 1, 1, 0, 2}, {6});
  auto grads = [&](Context& ctx, DType dt) {
    std::vector<Variable> p;
    for (const Tensor& t : init) p.push_back(Variable::parameter(t.to(dt), ""));
    Variable h = gelu(ctx, layer_norm(ctx, linear(ctx, Variable(x.to(dt)), p[0], p[1]), p[2],
                                      p[3], 1e-5));
    Variable z = tanh(ctx, linear(ctx, h, p[4], p[5]));
    add(ctx, cross_entropy(ctx, z, labels), scale(ctx, mean_all(ctx, mul(ctx, z, z)), 0.1))
        .backward();
    std::vector<Tensor> g;
    for (const Variable& v : p) g.push_back(v.grad().to(DType::F64));
    return g;
  };
  Context ref(Backend::Ref);
  std::vector<Tensor> want = grads(ref, DType::F64);
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    std::vector<Tensor> got = grads(ctx, DType::F32);
    for (size_t i = 0; i < want.size(); ++i)
      KDNAS_CHECK_CLOSE(got[i], want[i], (Tol{1e-5, 1e-4}),
                        std::string("MLP f32 on ") + backend_name(be) + ", parameter " +
                            std::to_string(i));
  }
}

TEST_CASE("autograd functions: misuse names the function and the shapes") {
  Context ctx(Backend::Ref);
  Variable a = Variable::parameter(Tensor::zeros({2, 3}, DType::F64), "a");
  Variable b = Variable::parameter(Tensor::zeros({4, 5}, DType::F64), "b");
  check_throws_with([&] { add(ctx, a, b); }, {"add", "[2, 3]", "[4, 5]"});
  check_throws_with([&] { matmul(ctx, a, b); }, {"matmul", "[2, 3]", "[4, 5]"});
  check_throws_with([&] { linear(ctx, a, Variable(), Variable()); }, {"linear", "w", "undefined"});
  check_throws_with([&] { reshape(ctx, a, {4}); }, {"[2, 3]", "[4]"});
  check_throws_with([&] { concat(ctx, {a, b}, 0); }, {"concat", "[2, 3]", "[4, 5]"});
}
}
