#include <doctest/doctest.h>

#include "kernels/concat.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

const Tol kExact{0, 0};  // a byte move: bit-identical results

// Compares element values of any dtype (bf16 via f32, which holds every bf16 exactly).
void check_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  auto f = [](const Tensor& t) { return t.dtype() == DType::BF16 ? t.to(DType::F32) : t; };
  CHECK(got.dtype() == want.dtype());
  KDNAS_CHECK_CLOSE(f(got), f(want), kExact, what);
}

Tensor random_of(const Shape& s, Rng& rng, DType dt) {
  const bool integer = dt == DType::I64 || dt == DType::U8;
  return random_tensor(s, rng, dt, integer ? 0.f : -1.f, integer ? 250.f : 1.f);
}

struct Case {
  std::vector<Shape> shapes;
  int64_t dim;
};

// Along the first, a middle and the last dim; odd sizes; an empty piece; XLM-R's q, k, v.
std::vector<Case> cases() {
  std::vector<Case> v;
  for (int64_t n : kOddSizes) v.push_back({{{n}, {13}, {n}}, 0});
  v.push_back({{{7, 13}, {7, 1}, {7, 33}}, 1});
  v.push_back({{{7, 13}, {1, 13}, {33, 13}}, -2});
  v.push_back({{{3, 5, 7}, {3, 0, 7}, {3, 769, 7}}, 1});
  v.push_back({{{3, 0, 7}, {3, 5, 7}, {3, 0, 7}}, -2});
  v.push_back({{{kB, kT, kC}, {kB, kT, kC}, {kB, kT, kC}}, -1});
  v.push_back({{{kB, kT, kC}, {kB, kT, kC}}, 0});
  v.push_back({{{5, 3}}, 1});
  return v;
}

}  // namespace

TEST_SUITE("kernels") {
TEST_CASE("concat and split match the reference on every backend, for every element size") {
  Context ref(Backend::Ref);
  Rng rng(1);
  for (Backend be : fast_backends()) {
    Context ctx(be);
    for (DType dt : {DType::F32, DType::BF16, DType::F64, DType::I64, DType::U8}) {
      for (const Case& c : cases()) {
        if (dt != DType::F32 && c.shapes[0].size() == 3 && c.shapes[0][2] == kC) continue;
        std::vector<Tensor> xs, strided;
        std::vector<int64_t> sizes;
        for (const Shape& s : c.shapes) {
          xs.push_back(random_of(s, rng, dt));
          strided.push_back(noncontiguous(xs.back()));
          sizes.push_back(s[size_t(c.dim < 0 ? c.dim + int64_t(s.size()) : c.dim)]);
        }
        std::string what = std::string(backend_name(be)) + " " + dtype_name(dt) + " " +
                           shape_str(c.shapes[0]) + "... dim " + std::to_string(c.dim);
        Tensor y_ref = concat(ref, xs, c.dim);
        check_equal(concat(ctx, xs, c.dim), y_ref, "concat " + what);
        check_equal(concat(ctx, strided, c.dim), y_ref, "concat strided " + what);
        // Independent of the reference: each input sits in its slice of the output.
        int64_t off = 0;
        for (size_t k = 0; k < xs.size(); ++k) {
          check_equal(y_ref.narrow(c.dim, off, sizes[k]).contiguous(), xs[k], "slice " + what);
          off += sizes[k];
        }
        std::vector<Tensor> parts_ref = split(ref, y_ref, c.dim, sizes);
        std::vector<Tensor> parts = split(ctx, noncontiguous(y_ref), c.dim, sizes);
        std::vector<Tensor> dparts = concat_backward(ctx, y_ref, sizes, c.dim);
        REQUIRE(parts.size() == xs.size());
        for (size_t k = 0; k < xs.size(); ++k) {
          check_equal(parts_ref[k], xs[k], "split ref " + what);
          check_equal(parts[k], xs[k], "split " + what);
          check_equal(dparts[k], xs[k], "concat_backward " + what);
          // (Tensor::is_contiguous() says false for a fresh [3, 0, 7]: empty pieces are skipped.)
          CHECK((parts[k].is_contiguous() || parts[k].numel() == 0));
        }
      }
    }
  }
}

TEST_CASE("concat and split: numerical gradients in double") {
  Context ref(Backend::Ref);
  Rng rng(2);
  const std::vector<int64_t> sizes{2, 1, 3};
  std::vector<Tensor> xs;
  for (int64_t s : sizes) xs.push_back(random_tensor({4, s, 3}, rng, DType::F64));
  gradcheck(
      "concat", [&](const std::vector<Tensor>& in) { return concat(ref, in, 1); },
      [&](const std::vector<Tensor>&, const Tensor& d) {
        return concat_backward(ref, d, sizes, 1);
      },
      xs);
  // split's backward is concat: piece k's gradient in its slot, zeros in the others.
  Tensor x = random_tensor({4, 6, 3}, rng, DType::F64);
  for (size_t k = 0; k < sizes.size(); ++k) {
    gradcheck(
        "split piece " + std::to_string(k),
        [&](const std::vector<Tensor>& in) { return split(ref, in[0], 1, sizes)[k]; },
        [&](const std::vector<Tensor>&, const Tensor& d) {
          std::vector<Tensor> dparts;
          for (size_t j = 0; j < sizes.size(); ++j)
            dparts.push_back(j == k ? d : Tensor::zeros({4, sizes[j], 3}, DType::F64));
          return std::vector<Tensor>{concat(ref, dparts, 1)};
        },
        {x});
  }
}

TEST_CASE("concat and split: misuse names the op and the shapes") {
  Context ctx;
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({2, 4, 1});
  check_throws_with([&] { concat(ctx, {a, b}, 1); }, {"concat", "[2, 3]", "[2, 4, 1]"});
  check_throws_with([&] { concat(ctx, {a, Tensor::zeros({3, 3})}, 1); },
                    {"concat", "[2, 3]", "[3, 3]", "dim 1"});
  check_throws_with([&] { concat(ctx, {a, Tensor::zeros({2, 3}, DType::F64)}, 0); },
                    {"concat", "f32", "f64"});
  check_throws_with([&] { concat(ctx, {a, a}, 2); }, {"concat", "dim 2", "[2, 3]"});
  check_throws_with([&] { concat(ctx, {}, 0); }, {"concat", "no tensors"});
  check_throws_with([&] { split(ctx, a, 1, {2, 2}); }, {"split", "[2, 2]", "4", "[2, 3]"});
  check_throws_with([&] { split(ctx, a, 1, {4, -1}); }, {"split", "[4, -1]", "negative"});
  check_throws_with([&] { split(ctx, a, -3, {1, 1}); }, {"split", "dim -3", "[2, 3]"});
  check_throws_with([&] { concat_backward(ctx, a, {1, 1}, 1); },
                    {"concat_backward", "[1, 1]", "[2, 3]"});
}
}
