// The per-op profiler (kernels/profiler.h): events per op with their FLOPs and bytes, a valid
// Chrome trace, a summary whose shares add up, nothing recorded when off, clear errors.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "kernels/binary.h"
#include "kernels/layer_norm.h"
#include "kernels/matmul.h"
#include "kernels/profiler.h"
#include "kernels/softmax.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// A scratch file path that is removed when the test ends.
struct TempPath {
  std::string path;
  explicit TempPath(const char* name)
      : path(std::string("/tmp/kdnas_test_profiler_") + name + ".json") {}
  ~TempPath() { std::remove(path.c_str()); }
};

// A few ops of an encoder layer: GEMM, softmax, add, layer_norm.
//   x [M, K], w [N, K] -> linear [M, N] -> softmax -> + itself -> layer_norm
void run_ops(Context& ctx, int64_t M, int64_t K, int64_t N) {
  Rng rng(1);
  Tensor x = random_tensor({M, K}, rng), w = random_tensor({N, K}, rng);
  Tensor y = linear_forward(ctx, x, w);
  Tensor p = softmax_forward(ctx, y, Tensor(), 1.0);
  Tensor s = add(ctx, p, p);
  layer_norm_forward(ctx, s, Tensor::ones({N}), Tensor::zeros({N}), 1e-5);
}

const ProfileEvent* find_event(const std::vector<ProfileEvent>& es, const std::string& name,
                               int depth = 0) {
  for (const ProfileEvent& e : es)
    if (e.name == name && e.depth == depth) return &e;
  return nullptr;
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("profiler: one event per op with its name, FLOPs and bytes") {
    const int64_t M = 7, K = 13, N = 33;
    for (Backend b : compiled_cpu_backends()) {
      CAPTURE(backend_name(b));
      Context ctx(b);
      auto prof = std::make_shared<Profiler>("");
      ctx.set_profiler(prof);
      run_ops(ctx, M, K, N);
      const std::vector<ProfileEvent> es = prof->events();
      // The outermost calls, in order; linear's GEMM is a matmul event nested inside it.
      std::vector<std::string> top;
      for (const ProfileEvent& e : es)
        if (e.depth == 0) top.push_back(e.name);
      // Events are recorded when a scope closes: inner ones first.
      CHECK(top == std::vector<std::string>{"linear", "softmax", "add", "layer_norm"});
      const ProfileEvent* lin = find_event(es, "linear");
      REQUIRE(lin != nullptr);
      CHECK(lin->flops == doctest::Approx(2.0 * M * N * K));
      CHECK(lin->bytes == doctest::Approx(4.0 * (M * K + N * K + M * N)));
      CHECK(lin->shape == "[7, 13] x [33, 13]");
      CHECK(std::string(lin->dtype) == "f32");
      CHECK(std::string(lin->route) == backend_name(b));
      CHECK(lin->dur_us >= 0);
      const ProfileEvent* mm = find_event(es, "matmul", 1);
      REQUIRE(mm != nullptr);  // nested: linear runs matmul_forward
      CHECK(mm->flops == doctest::Approx(2.0 * M * N * K));
      CHECK(mm->ts_us >= lin->ts_us);
      CHECK(mm->ts_us + mm->dur_us <= lin->ts_us + lin->dur_us + 1e-3);
      const ProfileEvent* sm = find_event(es, "softmax");
      REQUIRE(sm != nullptr);
      CHECK(sm->flops == 0);
      CHECK(sm->bytes == doctest::Approx(2.0 * 4 * M * N));
      const ProfileEvent* ad = find_event(es, "add");
      REQUIRE(ad != nullptr);
      CHECK(ad->bytes == doctest::Approx(3.0 * 4 * M * N));
      const ProfileEvent* ln = find_event(es, "layer_norm");
      REQUIRE(ln != nullptr);
      // x and gamma, beta read; out and the per-row mean and rstd written.
      CHECK(ln->bytes == doctest::Approx(4.0 * (2 * M * N + 2 * N + 2 * M)));
    }
  }

  TEST_CASE("profiler: the summary counts outermost calls and its shares sum to 100%") {
    Context ctx(best_cpu_backend());
    auto prof = std::make_shared<Profiler>("");
    ctx.set_profiler(prof);
    for (int i = 0; i < 3; ++i) run_ops(ctx, 16, 64, 48);
    const std::vector<ProfileRow> rows = prof->summary();
    REQUIRE(rows.size() == 4);
    double share = 0;
    for (const ProfileRow& r : rows) {
      CAPTURE(r.name);
      CHECK(r.calls == 3);
      share += r.share;
      CHECK(r.mean_us == doctest::Approx(r.total_ms * 1e3 / 3));
    }
    CHECK(share == doctest::Approx(100.0).epsilon(1e-9));
    for (size_t i = 1; i < rows.size(); ++i) CHECK(rows[i - 1].total_ms >= rows[i].total_ms);
    const ProfileRow* lin = nullptr;
    for (const ProfileRow& r : rows)
      if (r.name == "linear") lin = &r;
    REQUIRE(lin != nullptr);
    CHECK(lin->flops == doctest::Approx(3 * 2.0 * 16 * 48 * 64));
    if (lin->total_ms > 0)
      CHECK(lin->gflops == doctest::Approx(lin->flops / (lin->total_ms * 1e-3) / 1e9));
    // The nested GEMMs are in their own table, not in the shares.
    const std::vector<ProfileRow> nested = prof->nested_summary();
    REQUIRE(nested.size() == 1);
    CHECK(nested[0].name == "matmul");
    CHECK(nested[0].calls == 3);
    const std::string table = prof->summary_table();
    CHECK(table.find("linear") != std::string::npos);
    CHECK(table.find("GFLOP/s") != std::string::npos);
    CHECK(table.find("12 op calls") != std::string::npos);
  }

  TEST_CASE("profiler: the trace file is valid Chrome-trace JSON") {
    TempPath tmp("trace");
    {
      Context ctx(best_cpu_backend());
      auto prof = std::make_shared<Profiler>(tmp.path);
      ctx.set_profiler(prof);
      run_ops(ctx, 5, 9, 11);
      prof->finish();
      prof->finish();  // once only
    }
    std::ifstream in(tmp.path);
    REQUIRE(in.good());
    const nlohmann::json j = nlohmann::json::parse(in);  // throws on invalid JSON
    REQUIRE(j.contains("traceEvents"));
    const auto& evs = j["traceEvents"];
    REQUIRE(evs.is_array());
    int complete = 0, linear = 0;
    for (const auto& e : evs) {
      if (e["ph"] != "X") continue;
      ++complete;
      CHECK(e.contains("ts"));
      CHECK(e["dur"].get<double>() >= 0);
      CHECK(e.contains("pid"));
      CHECK(e.contains("tid"));
      CHECK(e["cat"] == "op");
      if (e["name"] == "linear") {
        ++linear;
        CHECK(e["args"]["flops"].get<double>() == doctest::Approx(2.0 * 5 * 9 * 11));
        CHECK(e["args"]["shape"] == "[5, 9] x [11, 9]");
        CHECK(e["args"]["dtype"] == "f32");
        CHECK(e["args"].contains("bytes"));
        CHECK(e["args"].contains("route"));
      }
    }
    CHECK(complete == 5);  // linear (+ its matmul), softmax, add, layer_norm
    CHECK(linear == 1);
  }

  TEST_CASE("profiler: off records nothing, and a failing op records nothing") {
    Context ctx(best_cpu_backend());
    CHECK(ctx.profiler() == Profiler::from_env().get());  // a new Context takes KDNAS_PROFILE's
    ctx.set_profiler(nullptr);
    run_ops(ctx, 3, 4, 5);  // no profiler, nothing to record into, nothing to crash
    auto prof = std::make_shared<Profiler>("");
    ctx.set_profiler(prof);
    ctx.set_profiler(nullptr);
    run_ops(ctx, 3, 4, 5);
    CHECK(prof->events().empty());
    CHECK(prof->summary().empty());
    ctx.set_profiler(prof);
    Rng rng(2);
    CHECK_THROWS(matmul_forward(ctx, random_tensor({2, 3}, rng), random_tensor({4, 5}, rng)));
    CHECK(prof->events().empty());
  }

  TEST_CASE("profiler: a path that cannot be written is a clear error") {
    try {
      Profiler p("/nonexistent-dir/kdnas/p.json");
      FAIL("no error");
    } catch (const Error& e) {
      const std::string msg = e.what();
      CHECK(msg.find("profile: cannot write the trace to '/nonexistent-dir/kdnas/p.json'") !=
            std::string::npos);
      CHECK(msg.find("No such file or directory") != std::string::npos);
    }
  }
}
