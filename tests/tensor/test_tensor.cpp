#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "tensor/device.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

using namespace kdnas;

TEST_SUITE("tensor") {
  TEST_CASE("storage is 64-byte aligned and shapes have contiguous strides") {
    Tensor t = Tensor::zeros({3, 5, 7});
    CHECK(reinterpret_cast<uintptr_t>(t.raw_data()) % 64 == 0);
    CHECK(t.strides() == Shape{35, 7, 1});
    CHECK(t.numel() == 105);
    CHECK(t.is_contiguous());
    CHECK(Tensor::empty({0, 4}).numel() == 0);
  }

  TEST_CASE("large host blocks are cached for reuse, within the limit") {
    // The cache is process-wide: start from a known limit and an empty cache, restore after.
    const size_t old_limit = cpu_cache_set_limit(size_t(8) << 20);
    cpu_cache_release();
    const CpuCacheStats s0 = cpu_cache_stats();
    CHECK(s0.limit_bytes == (size_t(8) << 20));
    CHECK(s0.cached_bytes == 0);
    const int64_t n = int64_t(kCpuCacheMinBytes / 4) * 2;  // 512 KiB of floats
    const void* first;
    {
      Tensor t = Tensor::full({n}, 1.5f);
      first = t.raw_data();
      CHECK(reinterpret_cast<uintptr_t>(first) % 64 == 0);
    }
    CHECK(cpu_cache_stats().cached_blocks == 1);
    {
      // Same size: the block freed above, its old contents overwritten as for any new tensor.
      Tensor t = Tensor::zeros({n});
      CHECK(t.raw_data() == first);
      CHECK(t.at({n - 1}) == 0.f);
      CHECK(cpu_cache_stats().hits == s0.hits + 1);
      CHECK(cpu_cache_stats().cached_blocks == 0);
      // Another size is a miss and leaves the cached block alone.
      Tensor u = Tensor::zeros({n * 2});
      CHECK(cpu_cache_stats().misses == s0.misses + 2);
    }
    // Both blocks (512 KiB and 1 MiB) are held now; a block over the limit is not kept.
    CHECK(cpu_cache_stats().cached_bytes == size_t(n) * 4 * 3);
    { Tensor big = Tensor::zeros({int64_t(3) << 20}); }  // 12 MiB > 8 MiB
    CHECK(cpu_cache_stats().cached_bytes == size_t(n) * 4 * 3);
    // Filling past the limit gives back the oldest blocks first.
    {
      std::vector<Tensor> ts;
      for (int i = 0; i < 4; ++i) ts.push_back(Tensor::zeros({int64_t(1) << 19}));  // 2 MiB each
    }
    const CpuCacheStats s1 = cpu_cache_stats();
    CHECK(s1.cached_bytes <= s1.limit_bytes);
    CHECK(s1.cached_blocks == 4);  // the 4 newest 2 MiB blocks; the 512 KiB and 1 MiB ones gone
    CHECK(s1.evictions >= s0.evictions + 2);
    // Small blocks never enter the cache; limit 0 turns it off and empties it.
    { Tensor small = Tensor::zeros({1000}); }
    CHECK(cpu_cache_stats().cached_blocks == 4);
    cpu_cache_set_limit(0);
    CHECK(cpu_cache_stats().cached_bytes == 0);
    { Tensor t = Tensor::zeros({n}); }
    CHECK(cpu_cache_stats().cached_blocks == 0);
    cpu_cache_set_limit(old_limit);
  }

  TEST_CASE("views share storage and index correctly") {
    Tensor t = Tensor::arange(24).view({2, 3, 4});
    CHECK(t.at({1, 2, 3}) == 23);
    Tensor tr = t.transpose(0, 2);  // [4, 3, 2]
    CHECK(tr.shape() == Shape{4, 3, 2});
    CHECK(!tr.is_contiguous());
    CHECK(tr.at({3, 2, 1}) == 23);
    CHECK(tr.at({1, 0, 1}) == 13);
    Tensor p = t.permute({1, 2, 0});  // [3, 4, 2]
    CHECK(p.at({2, 1, 1}) == t.at({1, 2, 1}));
    Tensor n = t.narrow(2, 1, 2);  // [2, 3, 2]
    CHECK(n.at({1, 1, 0}) == 17);
    Tensor s = t.slice(2, 0, 4, 2);  // columns 0 and 2
    CHECK(s.shape() == Shape{2, 3, 2});
    CHECK(s.at({0, 1, 1}) == 6);
    Tensor sel = t.select(1, 2);  // [2, 4]
    CHECK(sel.at({1, 0}) == 20);
    // Writes through a view are seen by the base.
    sel.fill_(-1);
    CHECK(t.at({1, 2, 3}) == -1);
    CHECK(t.at({1, 1, 3}) == 19);
  }

  TEST_CASE("contiguous() copies a view in row-major order") {
    Tensor t = Tensor::arange(6).view({2, 3});
    Tensor c = t.transpose(0, 1).contiguous();
    CHECK(c.is_contiguous());
    CHECK(c.to_vector<float>() == std::vector<float>{0, 3, 1, 4, 2, 5});
    Tensor same = t.contiguous();
    CHECK(same.raw_data() == t.raw_data());  // already contiguous: no copy
  }

  TEST_CASE("view is legal only without a copy; reshape copies when needed") {
    Tensor t = Tensor::arange(24).view({2, 3, 4});
    CHECK(t.view({6, 4}).raw_data() == t.raw_data());
    CHECK(t.view({-1, 12}).shape() == Shape{2, 12});
    CHECK(t.view({2, 3, 2, 2}).at({1, 2, 1, 0}) == 22);
    Tensor tr = t.transpose(1, 2);             // [2, 4, 3]
    CHECK_THROWS_AS(tr.view({8, 3}), Error);   // needs a copy
    CHECK_THROWS_AS(tr.view({2, 12}), Error);  // merging transposed dims needs a copy
    CHECK(tr.view({2, 4, 3, 1}).shape() == Shape{2, 4, 3, 1});  // adding a size-1 dim does not
    Tensor r = tr.reshape({8, 3});
    CHECK(r.is_contiguous());
    CHECK(r.at({1, 0}) == 1);
    CHECK(r.at({1, 1}) == 5);
    // Splitting a dim of a non-contiguous view is legal.
    Tensor tr2 = t.transpose(0, 2);  // [4, 3, 2] strides [1, 4, 12]
    Tensor v = tr2.view({2, 2, 3, 2});
    CHECK(v.at({1, 1, 2, 1}) == tr2.at({3, 2, 1}));
    CHECK_THROWS_AS(t.view({5, 5}), Error);
    CHECK_THROWS_AS(t.view({-1, -1}), Error);
  }

  TEST_CASE("expand broadcasts with stride 0") {
    Tensor b = Tensor::arange(3).view({1, 3});
    Tensor e = b.expand({4, 3});
    CHECK(e.strides() == Shape{0, 1});
    CHECK(e.at({3, 2}) == 2);
    Tensor e2 = Tensor::arange(3).expand({2, 2, 3});
    CHECK(e2.contiguous().to_vector<float>() ==
          std::vector<float>{0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2});
    CHECK_THROWS_AS(b.expand({4, 2}), Error);
  }

  TEST_CASE("dtype conversion through to()") {
    Tensor t = Tensor::from_vector<float>({1.5f, -2.25f, 3.0f, 1e-3f}, {4});
    Tensor h = t.to(DType::BF16);
    CHECK(h.dtype() == DType::BF16);
    std::vector<float> back = h.to(DType::F32).to_vector<float>();
    CHECK(back[0] == 1.5f);
    CHECK(back[1] == -2.25f);
    CHECK(back[3] == doctest::Approx(1e-3f).epsilon(4e-3));
    Tensor i = Tensor::from_vector<float>({1.9f, -2.9f}, {2}).to(DType::I64);
    CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{1, -2});
    CHECK(t.to(DType::F16).to(DType::F64).at({2}) == 3.0);
  }

  TEST_CASE("misuse gives errors that name the shapes") {
    Tensor t = Tensor::zeros({2, 3});
    test::check_throws_with([&] { t.narrow(1, 2, 5); }, {"narrow", "[2, 3]"});
    test::check_throws_with([&] { t.permute({0, 0}); }, {"permute", "repeats"});
    test::check_throws_with([&] { t.data<double>(); }, {"f64", "f32"});
    test::check_throws_with([&] { t.size(5); }, {"dim 5", "[2, 3]"});
    test::check_throws_with([&] { Tensor::zeros({2}).copy_(t); }, {"copy_", "[2, 3]", "[2]"});
    test::check_throws_with(
        [&] {
          Tensor::zeros({2}, DType::F32, Device{DeviceType::CUDA, 0});
        },
        {"cuda"});
  }

  TEST_CASE("RNG is seeded and reproducible; distributions have the right moments") {
    Rng a(42), b(42), c(43);
    CHECK(a.next_u64() == b.next_u64());
    CHECK(a.next_u64() != c.next_u64());
    Rng r(7);
    Tensor u = Tensor::empty({20000});
    r.fill_uniform(u, -1.f, 1.f);
    std::vector<float> uv = u.to_vector<float>();
    double mean = 0, var = 0;
    for (float x : uv) {
      CHECK_UNARY(x >= -1.f);
      CHECK_UNARY(x < 1.f);
      mean += x;
    }
    mean /= double(uv.size());
    CHECK(std::abs(mean) < 0.02);
    Tensor nrm = Tensor::empty({20000});
    r.fill_normal(nrm, 1.f, 2.f);
    mean = 0;
    for (float x : nrm.to_vector<float>()) mean += x;
    mean /= 20000;
    for (float x : nrm.to_vector<float>()) var += (x - mean) * (x - mean);
    var /= 20000;
    CHECK(mean == doctest::Approx(1.0).epsilon(0.05));
    CHECK(std::sqrt(var) == doctest::Approx(2.0).epsilon(0.05));
    Tensor bern = Tensor::empty({20000});
    r.fill_bernoulli(bern, 0.3f);
    double ones = 0;
    for (float x : bern.to_vector<float>()) {
      CHECK_UNARY(x == 0.f || x == 1.f);
      ones += x;
    }
    CHECK(ones / 20000 == doctest::Approx(0.3).epsilon(0.05));
    // State save/restore reproduces the stream.
    RngState s = r.state();
    float x1 = r.uniform();
    r.set_state(s);
    CHECK(r.uniform() == x1);
  }

  TEST_CASE("printing is readable") {
    Tensor t = Tensor::arange(6).view({2, 3});
    std::string s = t.str();
    CHECK(s.find("shape=[2, 3]") != std::string::npos);
    CHECK(s.find("f32") != std::string::npos);
    Tensor big = Tensor::arange(100);
    CHECK(big.str().find("...") != std::string::npos);
  }
}
