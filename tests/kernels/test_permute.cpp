#include <doctest/doctest.h>

#include <algorithm>

#include "kernels/permute.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

const Tol kExact{0, 0};  // a byte move: bit-identical results

void check_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  auto f = [](const Tensor& t) { return t.dtype() == DType::BF16 ? t.to(DType::F32) : t; };
  CHECK(got.dtype() == want.dtype());
  // (Tensor::is_contiguous() says false for a fresh tensor with a 0 dim, e.g. [5, 0].)
  CHECK((got.is_contiguous() || got.numel() == 0));
  KDNAS_CHECK_CLOSE(f(got), f(want), kExact, what);
}

Tensor random_of(const Shape& s, Rng& rng, DType dt) {
  const bool integer = dt == DType::I64 || dt == DType::I32 || dt == DType::U8;
  return random_tensor(s, rng, dt, integer ? 0.f : -1.f, integer ? 250.f : 1.f);
}

struct Case {
  Shape shape;
  std::vector<int64_t> order;
};

// 2-D transposes at odd sizes, every order of a 3-D tensor, 4-D orders, and XLM-R's attention
// head split [B, T, NH, HS] -> [B, NH, T, HS] and merge (the same order back).
std::vector<Case> cases() {
  std::vector<Case> v;
  for (int64_t n : kOddSizes) v.push_back({{n, 13}, {1, 0}});
  v.push_back({{769, 33}, {1, 0}});
  std::vector<int64_t> o{0, 1, 2};
  do v.push_back({{7, 13, 33}, o});
  while (std::next_permutation(o.begin(), o.end()));
  v.push_back({{2, 3, 5, 7}, {3, 2, 1, 0}});
  v.push_back({{2, 3, 5, 7}, {0, 3, 1, 2}});
  v.push_back({{2, 1, 5, 7}, {0, 2, 1, 3}});
  v.push_back({{3, 4}, {-1, -2}});
  v.push_back({{0, 5}, {1, 0}});
  v.push_back({{}, {}});
  v.push_back({{kB, kT, kNH, kHS}, {0, 2, 1, 3}});
  v.push_back({{kB, kNH, kT, kHS}, {0, 2, 1, 3}});
  v.push_back({{kB, kT, kC}, {0, 2, 1}});
  return v;
}

}  // namespace

TEST_SUITE("kernels") {
TEST_CASE("permute matches the reference on every backend, for every element size") {
  Context ref(Backend::Ref);
  Rng rng(1);
  for (Backend be : fast_backends()) {
    Context ctx(be);
    for (DType dt : {DType::F32, DType::BF16, DType::F64, DType::I64, DType::U8}) {
      for (const Case& c : cases()) {
        if (dt != DType::F32 && shape_numel(c.shape) > 100000) continue;
        Tensor x = random_of(c.shape, rng, dt);
        std::string what = std::string(backend_name(be)) + " " + dtype_name(dt) + " " +
                           shape_str(c.shape) + " order " + shape_str(c.order);
        Tensor y_ref = permute_copy(ref, x, c.order);
        // Independent of the reference: the tensor layer's own strided copy.
        check_equal(y_ref, x.permute(c.order).contiguous(), "ref vs view " + what);
        check_equal(permute_copy(ctx, x, c.order), y_ref, what);
        check_equal(permute_copy(ctx, noncontiguous(x), c.order), y_ref, "strided " + what);
        Tensor xt = x.dim() >= 2 ? x.transpose(0, 1).contiguous().transpose(0, 1) : x;
        check_equal(permute_copy(ctx, xt, c.order), y_ref, "transposed input " + what);
        check_equal(permute_backward(ctx, y_ref, c.order), x, "backward " + what);
      }
    }
  }
}

TEST_CASE("permute: XLM-R attention heads [B, T, C] -> [B, NH, T, HS] and back") {
  Rng rng(2);
  Tensor x = random_tensor({kB, kT, kC}, rng);
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    CAPTURE(backend_name(be));
    Tensor heads = permute_copy(ctx, x.view({kB, kT, kNH, kHS}), {0, 2, 1, 3});
    CHECK(heads.shape() == Shape{kB, kNH, kT, kHS});
    // Head h of token t is x[b, t, h * HS : (h + 1) * HS].
    CHECK(heads.at({3, 5, 17, 9}) == x.at({3, 17, 5 * kHS + 9}));
    CHECK(heads.at({7, 11, 127, 63}) == x.at({7, 127, kC - 1}));
    Tensor merged = permute_copy(ctx, heads, {0, 2, 1, 3}).view({kB, kT, kC});
    check_equal(merged, x, std::string("merge ") + backend_name(be));
  }
}

TEST_CASE("permute: numerical gradients in double") {
  Context ref(Backend::Ref);
  Rng rng(3);
  for (const std::vector<int64_t>& order : {std::vector<int64_t>{0, 2, 1, 3},
                                            std::vector<int64_t>{3, 0, 2, 1}}) {
    Tensor x = random_tensor({2, 3, 4, 2}, rng, DType::F64);
    gradcheck(
        "permute " + shape_str(order),
        [&](const std::vector<Tensor>& in) { return permute_copy(ref, in[0], order); },
        [&](const std::vector<Tensor>&, const Tensor& d) {
          return std::vector<Tensor>{permute_backward(ref, d, order)};
        },
        {x});
  }
  CHECK(inverse_permutation({2, 0, 3, 1}) == std::vector<int64_t>{1, 3, 0, 2});
}

TEST_CASE("permute: misuse names the op and the shapes") {
  Context ctx;
  Tensor x = Tensor::zeros({2, 3, 4});
  check_throws_with([&] { permute_copy(ctx, x, {0, 1}); }, {"permute", "[0, 1]", "[2, 3, 4]"});
  check_throws_with([&] { permute_copy(ctx, x, {0, 1, 1}); }, {"permute", "[0, 1, 1]", "[2, 3, 4]"});
  check_throws_with([&] { permute_copy(ctx, x, {0, 1, 3}); }, {"permute", "[0, 1, 3]", "[2, 3, 4]"});
  check_throws_with([&] { permute_backward(ctx, x, {2, 0}); },
                    {"permute_backward", "[2, 0]", "[2, 3, 4]"});
  check_throws_with([&] { permute_copy(ctx, Tensor(), {}); }, {"permute", "undefined"});
  check_throws_with([&] { inverse_permutation({1, 1}); }, {"[1, 1]", "not a permutation"});
}
}
