#include <doctest/doctest.h>

#include <cstring>

#include "kernels/embedding.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

constexpr Tol kExact{0, 0};

// A gather and an in-order sum: the fast kernels must give the reference's bits. Compared with
// memcmp (the XLM-R-sized gradient has 23M elements); the element-wise report on a mismatch.
void check_same_bits(const Tensor& got, const Tensor& want, const std::string& what) {
  REQUIRE_MESSAGE(got.shape() == want.shape(), what << ": shape " << shape_str(got.shape())
                                                    << " vs " << shape_str(want.shape()));
  Tensor g = got.contiguous(), w = want.contiguous();
  if (std::memcmp(g.raw_data(), w.raw_data(), g.nbytes()) == 0) return;
  KDNAS_CHECK_CLOSE(g, w, kExact, what);
  FAIL(what << ": bits differ");
}

// Ids in [0, V) where roughly one in four positions repeats one of the first `hot` ids, so
// the scatter-add must accumulate.
Tensor random_ids(const Shape& shape, int64_t V, Rng& rng, DType dtype = DType::I64) {
  Tensor ids = Tensor::empty(shape, DType::I64);
  int64_t* p = ids.data<int64_t>();
  const int64_t hot = std::max<int64_t>(1, V / 100);
  for (int64_t i = 0; i < ids.numel(); ++i)
    p[i] = int64_t(rng.below(4) == 0 ? rng.below(uint64_t(hot)) : rng.below(uint64_t(V)));
  return ids.to(dtype);
}

// Strided (non-contiguous) copy of an integer tensor: every other element of a wider buffer.
Tensor strided_ids(const Tensor& ids) {
  if (ids.dim() == 0) return ids;
  Shape big = ids.shape();
  big.back() *= 2;
  Tensor buf = Tensor::full(big, -7, ids.dtype());  // poison: an out-of-range id if read
  Tensor view = buf.slice(-1, 0, big.back(), 2);
  view.copy_(ids);
  return view;
}

struct Case {
  int64_t V, C;
  Shape ids;
};

// Odd sizes, then XLM-R-like: a 30000-row vocabulary, C = 768, ids [B, T] = [8, 128].
std::vector<Case> cases() {
  return {{1, 1, {1}},      {7, 13, {7}},       {13, 33, {33}},       {33, 769, {13}},
          {769, 7, {3, 5}}, {5, 17, {2, 3, 4}}, {30000, kC, {kB, kT}}};
}

}  // namespace

TEST_SUITE("kernels") {
TEST_CASE("embedding forward and backward match the reference bit for bit on every backend") {
  Context ref(Backend::Ref);
  Rng rng(11);
  for (const Case& k : cases()) {
    Tensor table = random_tensor({k.V, k.C}, rng);
    Tensor table_strided = noncontiguous(table);
    Shape os = k.ids;
    os.push_back(k.C);
    Tensor dout = random_tensor(os, rng);
    Tensor dout_strided = noncontiguous(dout);
    for (DType id_dtype : {DType::I64, DType::I32}) {
      Tensor ids = random_ids(k.ids, k.V, rng, id_dtype);
      Tensor out_ref = embedding_forward(ref, ids, table);
      Tensor dtab_ref = embedding_backward(ref, dout, ids, k.V);
      for (Backend be : fast_backends()) {
        Context ctx(be);
        for (bool strided : {false, true}) {
          std::string what = std::string("embedding ") + backend_name(be) +
                             " V=" + std::to_string(k.V) + " C=" + std::to_string(k.C) + " ids " +
                             shape_str(k.ids) + " " + dtype_name(id_dtype) +
                             (strided ? " strided" : "");
          Tensor i = strided ? strided_ids(ids) : ids;
          Tensor t = strided ? table_strided : table;
          Tensor d = strided ? dout_strided : dout;
          check_same_bits(embedding_forward(ctx, i, t), out_ref, what);
          check_same_bits(embedding_backward(ctx, d, i, k.V), dtab_ref, what + " backward");
        }
      }
    }
  }
}

TEST_CASE(
    "embedding_backward_accumulate adds to an existing gradient, same bits as the reference") {
  Context ref(Backend::Ref);
  Rng rng(14);
  for (Backend be : fast_backends()) {
    Context ctx(be);
    // The odd sizes (the XLM-R case's scatter is the dense backward's, tested above).
    std::vector<Case> odd = cases();
    odd.pop_back();
    for (const Case& k : odd) {
      Tensor ids = random_ids(k.ids, k.V, rng);
      Shape os = k.ids;
      os.push_back(k.C);
      Tensor dout = random_tensor(os, rng);
      Tensor init = random_tensor({k.V, k.C}, rng);
      std::string what = std::string("embedding_backward_accumulate ") + backend_name(be) +
                         " V=" + std::to_string(k.V) + " C=" + std::to_string(k.C);
      Tensor want = init.clone(), got = init.clone();
      embedding_backward_accumulate(ref, want, dout, ids, 0);
      embedding_backward_accumulate(ctx, got, noncontiguous(dout), ids, 0);
      check_same_bits(got, want, what);
      // Into zeros it is the dense backward, bit for bit.
      Tensor zeros = Tensor::zeros({k.V, k.C});
      embedding_backward_accumulate(ctx, zeros, dout, ids, 0);
      check_same_bits(zeros, embedding_backward(ref, dout, ids, k.V, 0), what + " into zeros");
    }
  }
}

TEST_CASE("embedding reference values, repeated ids accumulate, padding_idx gets no gradient") {
  Context ref(Backend::Ref);
  Tensor table = Tensor::from_vector<float>({0, 1, 10, 11, 20, 21}, {3, 2});
  Tensor ids = Tensor::from_vector<int64_t>({2, 0, 2, 2}, {2, 2});
  Tensor out = embedding_forward(ref, ids, table);
  CHECK(out.shape() == Shape{2, 2, 2});
  CHECK(out.to_vector<float>() == std::vector<float>{20, 21, 0, 1, 20, 21, 20, 21});
  Tensor dout = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  for (Backend be : compiled_cpu_backends()) {
    Context ctx(be);
    INFO("backend " << backend_name(be));
    // Row 2 is hit at positions 0, 2, 3: (1 + 5 + 7, 2 + 6 + 8); row 1 never.
    CHECK(embedding_backward(ctx, dout, ids, 3).to_vector<float>() ==
          std::vector<float>{3, 4, 0, 0, 13, 16});
    CHECK(embedding_backward(ctx, dout, ids, 3, /*padding_idx=*/2).to_vector<float>() ==
          std::vector<float>{3, 4, 0, 0, 0, 0});
  }
}

TEST_CASE("embedding backward is the same for 1 and 2 threads") {
  Rng rng(12);
  const int64_t V = 500, C = 100;  // C not a multiple of the 16-float column block
  Tensor ids = random_ids({kB, kT}, V, rng);
  Tensor dout = random_tensor({kB, kT, C}, rng);
  Context ref(Backend::Ref);
  Tensor want = embedding_backward(ref, dout, ids, V, 3);
  for (int threads : {1, 2}) {
    Context ctx(Backend::Omp, threads);
    check_same_bits(embedding_backward(ctx, dout, ids, V, 3), want,
                    "embedding_backward with " + std::to_string(threads) + " threads");
  }
}

TEST_CASE("embedding: numerical gradient of the table in double") {
  Context ref(Backend::Ref);
  Rng rng(13);
  const int64_t V = 5;
  Tensor ids = Tensor::from_vector<int64_t>({4, 1, 4, 0, 4, 2}, {2, 3});  // 3 never occurs
  Tensor table = random_tensor({V, 3}, rng, DType::F64);
  gradcheck(
      "embedding",
      [&](const std::vector<Tensor>& in) { return embedding_forward(ref, ids, in[0]); },
      [&](const std::vector<Tensor>& in, const Tensor& dout) {
        return std::vector<Tensor>{embedding_backward(ref, dout, ids, V)};
      },
      {table});
}

TEST_CASE("embedding misuse names the op, the id, its position and the shapes") {
  Context ctx;
  Tensor table = Tensor::zeros({5, 3});
  Tensor ids = Tensor::from_vector<int64_t>({0, 1, 2, 3, 4, 7}, {2, 3});
  check_throws_with([&] { embedding_forward(ctx, ids, table); },
                    {"embedding", "id 7", "[1, 2]", "[2, 3]", "V = 5"});
  Tensor neg = Tensor::from_vector<int32_t>({0, -1}, {2});
  check_throws_with([&] { embedding_forward(ctx, neg, table); }, {"embedding", "id -1", "[1]"});
  check_throws_with(
      [&] {
        embedding_backward(ctx, Tensor::zeros({2, 3, 3}), ids, 5);
      },
      {"embedding_backward", "id 7", "[1, 2]", "V = 5"});
  check_throws_with([&] { embedding_forward(ctx, Tensor::zeros({2}), table); },
                    {"embedding", "ids", "f32"});
  check_throws_with(
      [&] {
        embedding_forward(ctx, Tensor::zeros({2}, DType::I64), Tensor::zeros({5, 3}, DType::I32));
      },
      {"embedding", "table", "i32"});
  check_throws_with(
      [&] { embedding_forward(ctx, Tensor::zeros({2}, DType::I64), Tensor::zeros({15})); },
      {"embedding", "table", "2 dims", "[15]"});
  Tensor ok_ids = Tensor::zeros({2, 3}, DType::I64);
  check_throws_with(
      [&] {
        embedding_backward(ctx, Tensor::zeros({2, 4, 3}), ok_ids, 5);
      },
      {"embedding_backward", "[2, 4, 3]", "[2, 3]"});
  check_throws_with(
      [&] {
        embedding_backward(ctx, Tensor::zeros({2, 3, 3}), ok_ids, 5, 5);
      },
      {"embedding_backward", "padding_idx 5", "V = 5"});
  check_throws_with(
      [&] {
        embedding_backward(ctx, Tensor::zeros({2, 3, 3}), ok_ids, 0);
      },
      {"embedding_backward", "V must be positive"});
  const char* acc = "embedding_backward_accumulate";
  check_throws_with(
      [&] {
        embedding_backward_accumulate(ctx, Tensor::zeros({5, 4}), Tensor::zeros({2, 3, 3}),
                                      ok_ids);
      },
      {acc, "[2, 3, 3]", "[5, 4]"});
  check_throws_with(
      [&] {
        embedding_backward_accumulate(ctx, Tensor::zeros({3, 5}).transpose(0, 1),
                                      Tensor::zeros({2, 3, 3}), ok_ids);
      },
      {acc, "[5, 3]", "contiguous"});
  check_throws_with(
      [&] {
        embedding_backward_accumulate(ctx, Tensor::zeros({5, 3}, DType::F64),
                                      Tensor::zeros({2, 3, 3}), ok_ids);
      },
      {acc, "dtable", "f64"});
  check_throws_with(
      [&] {
        embedding_backward_accumulate(ctx, Tensor::zeros({5, 3}), Tensor::zeros({2, 3, 3}), ids);
      },
      {acc, "id 7", "[1, 2]", "V = 5"});
}
}
