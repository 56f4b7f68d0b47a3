// Latency: measurement on a tiny architecture (no timing assertions, only sanity), the cache
// table's JSON round trip and caching, and the latency model's fit and error.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "kernels/context.h"
#include "nas/latency.h"
#include "tests/nas/tiny_teacher.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

LatencySettings tiny_settings() {
  LatencySettings s;
  s.seq = 16;
  s.threads = 1;
  s.warmup = 1;
  s.runs = 5;
  s.retries = 0;  // a shared test machine is often busy; contention handling is not under test
  return s;
}

LatencyMeasurement fake(double median) {
  LatencyMeasurement m;
  m.median_ms = median;
  m.min_ms = 0.9 * median;
  m.max_ms = 1.5 * median;
  m.busy_fraction = 0.25;
  m.contended = true;
  return m;
}

// Synthetic latencies from the model's own feature formula with known weights.
const std::vector<double> kTrueWeights{0.3, 2e-9, 5e-9, 1e-7, 0.05};
double synthetic_ms(const Arch& a, const LatencySettings& s) {
  const std::vector<double> x = LatencyModel::features(a, s);
  double y = 0;
  for (size_t j = 0; j < x.size(); ++j) y += kTrueWeights[j] * x[j];
  return y;
}

}  // namespace

TEST_SUITE("nas") {
  TEST_CASE("latency: measuring a tiny architecture gives ordered, positive numbers") {
    const EncoderConfig t = tiny_teacher();
    for (const char* dtype : {"f32", "bf16"}) {
      INFO(dtype);
      LatencySettings s = tiny_settings();
      s.dtype = dtype;
      const LatencyMeasurement m = measure_latency({1, 32, 2, 64}, t, s);
      CHECK(m.median_ms > 0);
      CHECK(m.min_ms <= m.median_ms);
      CHECK(m.median_ms <= m.max_ms);
      CHECK(m.busy_fraction >= 0);
      CHECK(m.busy_fraction <= 1);
    }
    // Timing at 1 thread leaves the process's OpenMP thread count as it found it.
    const int threads = Context(Backend::Ref, 0).threads();
    measure_latency({1, 32, 2, 64}, t, tiny_settings());
    CHECK(Context(Backend::Ref, 0).threads() == threads);
    LatencySettings s = tiny_settings();
    s.runs = 4;  // an even count: the median is the mean of the middle two
    s.retries = 1;
    const LatencyMeasurement m = measure_config_latency(arch_config({2, 64, 4, 128}, t), s);
    CHECK(m.min_ms > 0);
    CHECK(m.min_ms <= m.median_ms);
    CHECK(m.median_ms <= m.max_ms);
  }

  TEST_CASE("latency: the contention rule") {
    // Two cores timed with two threads: any real other work contends.
    CHECK_FALSE(latency_contended(0.0, 2, 2, 0.1));
    CHECK_FALSE(latency_contended(0.04, 2, 2, 0.1));  // 0.08 cores of ours: noise
    CHECK(latency_contended(0.5, 2, 2, 0.1));         // one whole core
    // Sixteen cores timed with two: four busy cores fit in the fourteen we leave idle.
    CHECK_FALSE(latency_contended(0.25, 16, 2, 0.1));
    CHECK(latency_contended(0.95, 16, 2, 0.1));  // 15.2 busy cores: 1.2 of ours
    CHECK(latency_contended(1.0, 1, 4, 0.1));    // more threads than cores
  }

  TEST_CASE("latency: bad settings are errors naming the value") {
    const EncoderConfig t = tiny_teacher();
    LatencySettings s = tiny_settings();
    s.dtype = "f16";
    check_throws_with([&] { measure_latency({1, 32, 2, 64}, t, s); }, {"dtype 'f16'"});
    s = tiny_settings();
    s.seq = 200;
    check_throws_with(
        [&] {
          measure_latency({1, 32, 2, 64}, t, s);
        },
        {"seq 200", "max_position_embeddings 130"});
    s = tiny_settings();
    s.runs = 0;
    check_throws_with([&] { measure_latency({1, 32, 2, 64}, t, s); }, {"runs 0"});
    check_throws_with([&] { measure_latency({1, 30, 4, 64}, t, tiny_settings()); }, {"30"});
  }

  TEST_CASE("latency: the settings key") {
    LatencySettings s;
    CHECK(s.key() == "b1.t128.th2.f32|" + build_id());
    CHECK(build_id().find("kdnas") == 0);
    LatencySettings b = s;
    b.dtype = "bf16";
    CHECK(b.key() != s.key());
    b = s;
    b.threads = 4;
    CHECK(b.key() != s.key());
    b = s;
    b.runs = 50;  // how carefully it is measured is not what is measured
    b.max_busy = 0.5;
    CHECK(b.key() == s.key());
  }

  TEST_CASE("latency: table save / load round trip") {
    TempDir dir;
    const std::string path = dir.file("latency.json");
    LatencyTable empty = LatencyTable::load(path);  // missing: empty
    const LatencySettings s = tiny_settings();
    LatencySettings s2 = s;
    s2.threads = 2;
    CHECK(empty.find({1, 32, 2, 64}, s) == nullptr);
    CHECK(empty.entries(s).empty());

    LatencyTable t;
    t.put({1, 32, 2, 64}, s, fake(1.5));
    t.put({2, 64, 4, 128}, s, fake(3.25));
    t.put({2, 64, 4, 128}, s2, fake(2.0));
    t.save(path);
    const LatencyTable r = LatencyTable::load(path);
    const LatencyMeasurement* m = r.find({2, 64, 4, 128}, s);
    REQUIRE(m != nullptr);
    CHECK(m->median_ms == 3.25);
    CHECK(m->min_ms == 0.9 * 3.25);
    CHECK(m->max_ms == 1.5 * 3.25);
    CHECK(m->busy_fraction == 0.25);
    CHECK(m->contended);
    REQUIRE(r.find({2, 64, 4, 128}, s2) != nullptr);
    CHECK(r.find({2, 64, 4, 128}, s2)->median_ms == 2.0);
    CHECK(r.find({3, 64, 4, 128}, s) == nullptr);
    auto e = r.entries(s);
    REQUIRE(e.size() == 2);
    CHECK(e[0] == std::pair<Arch, double>{{1, 32, 2, 64}, 1.5});
    CHECK(e[1] == std::pair<Arch, double>{{2, 64, 4, 128}, 3.25});
    CHECK(r.entries(s2).size() == 1);
    // Saving over an existing file replaces it (and leaves no temporary behind).
    t.put({1, 32, 2, 64}, s, fake(9.0));
    t.save(path);
    CHECK(LatencyTable::load(path).find({1, 32, 2, 64}, s)->median_ms == 9.0);
    int files = 0;
    for (const auto& f : std::filesystem::directory_iterator(dir.path)) files += !f.is_directory();
    CHECK(files == 1);
  }

  TEST_CASE("latency: table load errors name the file and the entry") {
    TempDir dir;
    const std::string path = dir.file("latency.json");
    auto write = [&](const char* text) { std::ofstream(path) << text; };
    write("{not json");
    check_throws_with([&] { LatencyTable::load(path); }, {path, "not valid JSON"});
    write(R"({"k": {"1,2,3": {"median_ms": 1}}})");
    check_throws_with([&] { LatencyTable::load(path); }, {"'1,2,3'", "L,H,A,F"});
    write(R"({"k": {"1,32,2,64": {"min_ms": 1}}})");
    check_throws_with([&] { LatencyTable::load(path); },
                      {path, "1,32,2,64", "missing 'median_ms'"});
    write(R"({"k": {"1,32,2,64": {"median_ms": "fast"}}})");
    check_throws_with([&] { LatencyTable::load(path); }, {"'median_ms'", "\"fast\""});
    write(R"({"k": {"1,32,2,64": {"median_ms": 0}}})");
    check_throws_with([&] { LatencyTable::load(path); }, {"median_ms must be positive"});
    write(R"({"k": [1, 2]})");
    check_throws_with([&] { LatencyTable::load(path); }, {"'k'", "object"});
    LatencyTable t;
    check_throws_with(
        [&] {
          t.put({1, 32, 2, 64}, tiny_settings(), fake(-1));
        },
        {"1,32,2,64", "-1"});
  }

  TEST_CASE("latency: interleaved measurement of several architectures") {
    const EncoderConfig t = tiny_teacher();
    LatencySettings s = tiny_settings();
    s.runs = 3;
    const std::vector<Arch> archs = {{1, 32, 2, 64}, {8, 128, 4, 512}, {1, 32, 2, 64}};
    const int threads = Context(Backend::Ref, 0).threads();
    const std::vector<LatencyMeasurement> m = measure_latencies_interleaved(archs, t, s, 3);
    CHECK(Context(Backend::Ref, 0).threads() == threads);
    REQUIRE(m.size() == archs.size());
    for (const LatencyMeasurement& x : m) {
      CHECK(x.min_ms > 0);
      CHECK(x.min_ms <= x.median_ms);
      CHECK(x.median_ms <= x.max_ms);
      CHECK(x.busy_fraction >= 0);
      CHECK(x.busy_fraction <= 1);
    }
    // Results come back in the order asked for: 8 layers of width 128 do far more work (~100x
    // the GEMM flops) than 1 layer of width 32, timed in the same rounds.
    CHECK(m[1].median_ms > m[0].median_ms);
    CHECK(m[1].median_ms > m[2].median_ms);
    CHECK(measure_latencies_interleaved({}, t, s).empty());
    CHECK_THROWS_WITH(measure_latencies_interleaved(archs, t, s, 0),
                      doctest::Contains("rounds is 0"));
    s.runs = 0;
    CHECK_THROWS_WITH(measure_latencies_interleaved(archs, t, s), doctest::Contains("runs 0"));
  }

  TEST_CASE("latency: get_or_measure measures once, then returns the cached value") {
    const EncoderConfig teacher = tiny_teacher();
    const LatencySettings s = tiny_settings();
    LatencyTable t;
    // A stored value comes back as it is (a real measurement of this arch is nowhere near 1000 s).
    t.put({1, 32, 2, 64}, s, fake(1e6));
    CHECK(t.get_or_measure({1, 32, 2, 64}, teacher, s).median_ms == 1e6);
    // An absent one is measured and stored; asking again returns the stored copy exactly.
    REQUIRE(t.find({1, 64, 4, 64}, s) == nullptr);
    const LatencyMeasurement m = t.get_or_measure({1, 64, 4, 64}, teacher, s);
    CHECK(m.median_ms > 0);
    REQUIRE(t.find({1, 64, 4, 64}, s) != nullptr);
    CHECK(t.find({1, 64, 4, 64}, s)->median_ms == m.median_ms);
    CHECK(t.get_or_measure({1, 64, 4, 64}, teacher, s).median_ms == m.median_ms);
    CHECK(t.entries(s).size() == 2);
  }

  TEST_CASE("latency: the model recovers known weights from exact synthetic latencies") {
    const SearchSpace space = SearchSpace::default_space();
    const EncoderConfig teacher = xlmr_base();
    LatencySettings s;  // B 1, T 128
    Rng rng(5);
    std::vector<std::pair<Arch, double>> data;
    while (data.size() < 30) {
      const Arch a = space.sample(rng, teacher);
      data.emplace_back(a, synthetic_ms(a, s));
    }
    LatencyModel m;
    CHECK_FALSE(m.fitted());
    m.fit(data, s);
    REQUIRE(m.fitted());
    REQUIRE(m.weights().size() == kTrueWeights.size());
    for (size_t j = 0; j < kTrueWeights.size(); ++j) {
      INFO("weight " << j << ": " << m.weights()[j] << " vs " << kTrueWeights[j]);
      CHECK(std::abs(m.weights()[j] - kTrueWeights[j]) <= 1e-6 * std::abs(kTrueWeights[j]));
    }
    const Arch held{6, 512, 8, 2048};
    CHECK(m.predict_ms(held) == doctest::Approx(synthetic_ms(held, s)).epsilon(1e-9));
    const LatencyModel::Error e = m.error(data);
    CHECK(e.points == 30);
    CHECK(e.mape < 1e-6);
    CHECK(e.loo_mape < 1e-6);
  }

  TEST_CASE("latency: the model's error on noisy data is sensible") {
    const SearchSpace space = SearchSpace::default_space();
    const EncoderConfig teacher = xlmr_base();
    LatencySettings s;
    Rng rng(9);
    std::vector<std::pair<Arch, double>> data;
    while (data.size() < 40) {
      const Arch a = space.sample(rng, teacher);
      data.emplace_back(a, synthetic_ms(a, s) * (1.0 + 0.1 * (rng.uniform() - 0.5)));  // +-5%
    }
    LatencyModel m;
    m.fit(data, s);
    const LatencyModel::Error e = m.error(data);
    MESSAGE("noisy (+-5%) fit: MAPE " << e.mape << "%, leave-one-out " << e.loo_mape << "%");
    CHECK(e.mape > 0.5);
    CHECK(e.mape < 5.0);
    CHECK(e.loo_mape >= e.mape);
    CHECK(e.loo_mape < 8.0);
  }

  TEST_CASE("latency: the model keeps every weight non-negative") {
    // Latencies that fall with depth (noise, in a real run): an unconstrained fit would give the
    // per-layer terms negative weights and predict negative latencies for deep small students.
    LatencySettings s;
    std::vector<std::pair<Arch, double>> data;
    for (int64_t L : {1, 2, 3, 4, 6, 8})
      for (int64_t H : {64, 128, 256}) data.emplace_back(Arch{L, H, 2, 4 * H}, 10.0 / double(L));
    LatencyModel m;
    m.fit(data, s);
    for (double w : m.weights()) CHECK(w >= 0);
    for (const auto& [a, ms] : data) CHECK(m.predict_ms(a) >= 0);
    CHECK(m.predict_ms({12, 64, 2, 256}) >= 0);
  }

  TEST_CASE("latency: the model with few points falls back to the flop term; errors") {
    LatencySettings s;
    LatencyModel m;
    check_throws_with([&] { m.predict_ms({2, 128, 2, 256}); }, {"before fit"});
    check_throws_with([&] { m.fit({}, s); }, {"no measured points"});
    check_throws_with([&] { m.fit({{{2, 128, 2, 256}, 0.0}}, s); }, {"2,128,2,256", "0 ms"});
    // Latency exactly proportional to the GEMM term: the one-feature fit is exact.
    std::vector<std::pair<Arch, double>> data;
    for (const Arch& a : {Arch{2, 128, 2, 256}, Arch{4, 256, 4, 1024}, Arch{6, 384, 6, 1536}})
      data.emplace_back(a, 3e-9 * LatencyModel::features(a, s)[1]);
    m.fit(data, s);
    CHECK(m.weights()[0] == 0);
    CHECK(m.weights()[1] == doctest::Approx(3e-9).epsilon(1e-12));
    CHECK(m.predict_ms({12, 768, 12, 3072}) ==
          doctest::Approx(3e-9 * LatencyModel::features({12, 768, 12, 3072}, s)[1]));
    const LatencyModel::Error e = m.error(data);
    CHECK(e.mape < 1e-9);
    CHECK(e.loo_mape < 1e-9);
    LatencyModel one;
    one.fit({data[0]}, s);
    CHECK(one.error({data[0]}).loo_mape == 0);
  }
}
