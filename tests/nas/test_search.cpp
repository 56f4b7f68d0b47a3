// The KD-NAS episode loop and the Pareto front: dominance and ties, well-formed CSV/JSON/SVG,
// and the loop with a fake proxy distillation and a fake latency: it finishes, writes every
// file, reuses cached candidates, and a run interrupted after k candidates and resumed ends
// exactly where an uninterrupted run ends.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "nas/pareto.h"
#include "nas/search.h"
#include "tests/test_util.h"

namespace kdnas {
namespace {
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

size_t count_of(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

// A directory removed at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() /
           ("kdnas_test_search_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::vector<ParetoPoint> hand_points() {
  return {
      {"A", 1, 5, 0.1, 10, 1},                           // fastest
      {"B", 2, 3, 0.2, 20, 2}, {"C", 3, 4, 0.3, 30, 3},  // dominated by B
      {"D", 2, 3, 0.4, 40, 4},                           // the same point as B: a tie, both stay
      {"E", 4, 1, 0.5, 50, 5},                           // lowest loss
      {"F", 1, 6, 0.6, 60, 6},  // same latency as A, higher loss: dominated
  };
}

}  // namespace

TEST_SUITE("nas_search") {
  TEST_CASE("pareto front: dominance and ties and order") {
    const auto pts = hand_points();
    const std::vector<size_t> front = pareto_front(pts);
    CHECK(front == std::vector<size_t>{0, 1, 3, 4});
    CHECK(pareto_front({}).empty());
    CHECK(pareto_front({pts[2]}) == std::vector<size_t>{0});
  }

  TEST_CASE("pareto writers: CSV and JSON and SVG are well formed and hold every point") {
    const auto pts = hand_points();
    const auto front = pareto_front(pts);
    const std::string csv = pareto_csv(pts, front);
    CHECK(count_of(csv, "\n") == front.size() + 1);
    CHECK(csv.rfind("architecture,latency_ms,kd_loss,reward", 0) == 0);
    for (size_t i : front) CHECK(csv.find("\n" + pts[i].name + ",") != std::string::npos);
    // An architecture holds commas: it is quoted.
    std::vector<ParetoPoint> one{{"2,32,2,64", 1.5, 0.25, 0.75, 100, 10}};
    CHECK(pareto_csv(one, {0}).find("\n\"2,32,2,64\",1.5,0.25,0.75,100,10\n") != std::string::npos);

    const auto j = nlohmann::json::parse(pareto_json(pts, front));
    REQUIRE(j.at("front").size() == front.size());
    for (size_t k = 0; k < front.size(); ++k) {
      CHECK(j["front"][k]["architecture"] == pts[front[k]].name);
      CHECK(j["front"][k]["latency_ms"].get<double>() == pts[front[k]].latency_ms);
      CHECK(j["front"][k]["kd_loss"].get<double>() == pts[front[k]].loss);
    }

    ParetoPlot plot;
    plot.title = "a < b & c";  // escaped
    plot.teacher_ms = 7;
    plot.budgets_ms = {2.5, 5};
    const std::string svg = pareto_svg(pts, front, plot);
    CHECK(svg.rfind("<?xml", 0) == 0);
    CHECK(svg.size() > 8);
    CHECK(svg.substr(svg.size() - 7) == "</svg>\n");
    CHECK(count_of(svg, "<circle") == pts.size() + front.size());
    CHECK(count_of(svg, "<g") == count_of(svg, "</g>"));
    CHECK(count_of(svg, "<text") == count_of(svg, "</text>"));
    CHECK(count_of(svg, "<title>") == count_of(svg, "</title>"));
    CHECK(count_of(svg, "<polyline") == 1);
    CHECK(svg.find("a &lt; b &amp; c") != std::string::npos);
    CHECK(svg.find("teacher 7 ms") != std::string::npos);
    CHECK(svg.find("budget 2.5 ms") != std::string::npos);
    CHECK(svg.find("latency (ms)") != std::string::npos);
    for (const ParetoPoint& p : pts) CHECK(svg.find("<title>" + p.name + ":") != std::string::npos);
    // No points at all is still a picture.
    const std::string empty = pareto_svg({}, {}, {});
    CHECK(empty.substr(empty.size() - 7) == "</svg>\n");
  }

  TEST_CASE("nice ticks cover the range with 1-2-5 steps") {
    CHECK(nice_ticks(0, 9.3) == std::vector<double>{0, 2, 4, 6, 8, 10});
    const auto t = nice_ticks(0.31, 0.38);
    CHECK(t.front() <= 0.31);
    CHECK(t.back() >= 0.38);
    CHECK(t.size() >= 2);
    CHECK(nice_ticks(3, 3).size() >= 2);
  }
}

namespace {

EncoderConfig tiny_teacher() {
  EncoderConfig t;
  t.vocab_size = 100;
  t.hidden_size = 64;
  t.num_hidden_layers = 2;
  t.num_attention_heads = 4;
  t.intermediate_size = 128;
  t.max_position_embeddings = 130;
  t.type_vocab_size = 1;
  return t;
}

// Latency and loss as plain functions of the architecture: deterministic, so runs compare.
LatencyMeasurement fake_latency(const Arch& a) {
  LatencyMeasurement m;
  m.median_ms = m.min_ms = m.max_ms =
      0.1 + 1e-4 * double(a.layers) * double(a.hidden) * double(4 * a.hidden + 2 * a.ffn) / 64;
  return m;
}

struct FakeProxy {
  std::shared_ptr<int64_t> calls = std::make_shared<int64_t>(0);
  ProxyFn fn() const {
    auto c = calls;
    return [c](const Arch& a, const std::string& dir) {
      ++*c;
      CHECK(fs::path(dir).filename() == arch_dir_name(a));
      return ProxyResult{0.9 / (1 + 0.002 * double(a.layers * a.hidden)) + 1e-4 * double(a.ffn),
                         0.0};
    };
  }
};

SearchOptions tiny_search(const fs::path& out, const FakeProxy& proxy,
                          const std::string& controller = "lstm") {
  SearchOptions o;
  o.teacher = tiny_teacher();
  o.space = SearchSpace::from_json(
      R"({"layers": [1, 2], "hidden": [16, 32], "heads": [2], "ffn": [32, 64]})");
  o.episodes = 3;
  o.candidates = 4;
  o.top = 2;
  o.controller = controller;
  o.controller_opt.pool = 8;
  o.controller_opt.train_epochs = 5;
  o.controller_opt.seed = 11;
  o.budgets_ms = {0.2, 1.0};
  o.out = out.string();
  o.proxy = proxy.fn();
  o.latency_fn = fake_latency;
  o.progress = false;
  return o;
}

// Every candidate row with its timings zeroed (wall time is the only thing allowed to differ).
std::vector<std::string> rows(const SearchResult& r) {
  std::vector<std::string> out;
  for (Candidate c : r.candidates) {
    c.wall_seconds = 0, c.proxy_seconds = 0;
    out.push_back(candidate_to_json(c));
  }
  return out;
}

}  // namespace

TEST_SUITE("nas_search") {
  TEST_CASE("search: finishes and writes every file and reuses cached candidates") {
    TempDir dir("full");
    FakeProxy proxy;
    const SearchResult r = run_search(tiny_search(dir.path / "run", proxy));
    CHECK(r.finished);
    REQUIRE(r.candidates.size() == 12);  // 3 episodes x 4, in a space of 8 architectures
    std::set<Arch> distinct;
    int64_t cached = 0;
    for (const Candidate& c : r.candidates) {
      CHECK(c.status == CandidateStatus::Ok);
      CHECK(std::isfinite(c.reward));
      CHECK(c.parameters > c.non_embedding);
      distinct.insert(c.arch);
      cached += c.cached;
    }
    // Each distinct architecture is distilled once; every repeat reuses it.
    CHECK(*proxy.calls == int64_t(distinct.size()));
    CHECK(r.proxy_calls == int64_t(distinct.size()));
    CHECK(cached == int64_t(r.candidates.size() - distinct.size()));
    CHECK(cached > 0);
    // The latency model predicts from the second episode on.
    CHECK(std::isnan(r.candidates[0].predicted_ms));
    CHECK(std::isfinite(r.candidates.back().predicted_ms));
    CHECK(r.teacher_ms == doctest::Approx(fake_latency(r.teacher_arch).median_ms));

    const fs::path run = dir.path / "run";
    for (const char* f : {"state.json", "controller.safetensors", "candidates.jsonl",
                          "latency.json", "pareto.csv", "pareto.json", "pareto.svg", "report.md"})
      CHECK_MESSAGE(fs::file_size(run / f) > 0, f);
    const std::string jsonl = slurp(run / "candidates.jsonl");
    CHECK(count_of(jsonl, "\n") == 12);
    std::istringstream lines(jsonl);
    std::string line;
    while (std::getline(lines, line)) {
      const auto j = nlohmann::json::parse(line);
      for (const char* k :
           {"episode", "architecture", "parameters", "non_embedding_parameters", "latency_ms",
            "predicted_latency_ms", "kd_loss", "reward", "wall_seconds"})
        CHECK_MESSAGE(j.contains(k), k);
    }
    const auto state = nlohmann::json::parse(slurp(run / "state.json"));
    CHECK(state["finished"] == true);
    CHECK(state["candidates_done"] == 12);
    CHECK(state["controller_updates"] == 3);
    const auto front = nlohmann::json::parse(slurp(run / "pareto.json"))["front"];
    CHECK(front.size() >= 1);
    CHECK(count_of(slurp(run / "pareto.svg"), "<circle") == distinct.size() + front.size());
    const std::string report = slurp(run / "report.md");
    for (const char* s : {"## Best architecture per budget", "## Latency model", "leave-one-out",
                          "kdnas distill --teacher", "## Top 2 by reward"})
      CHECK_MESSAGE(report.find(s) != std::string::npos, s);

    // Resuming a finished search redoes nothing.
    FakeProxy again;
    SearchOptions o = tiny_search(run, again);
    o.resume = true;
    const SearchResult r2 = run_search(o);
    CHECK(*again.calls == 0);
    CHECK(r2.new_candidates == 0);
    CHECK(rows(r2) == rows(r));
  }

  TEST_CASE("search: interrupted after k candidates and resumed = uninterrupted") {
    TempDir dir("resume");
    for (const std::string controller : {"lstm", "random"}) {
      CAPTURE(controller);
      FakeProxy p0;
      const SearchResult full =
          run_search(tiny_search(dir.path / ("full_" + controller), p0, controller));
      // Stops inside episode 0, at an episode's last candidate (before the update), and
      // inside a later episode.
      const fs::path out = dir.path / ("cut_" + controller);
      FakeProxy p1;
      SearchOptions o = tiny_search(out, p1, controller);
      int64_t done = 0;
      for (int64_t k : {1, 3, 3, 1}) {
        o.stop_after = k;
        const SearchResult part = run_search(o);
        CHECK_FALSE(part.finished);
        done += part.new_candidates;
        CHECK(int64_t(part.candidates.size()) == done);
        o.resume = true;
      }
      o.stop_after = -1;
      const SearchResult resumed = run_search(o);
      CHECK(resumed.finished);
      CHECK(rows(resumed) == rows(full));
      CHECK(*p1.calls == *p0.calls);  // no finished candidate was distilled twice
      CHECK(slurp(out / "pareto.json") == slurp(dir.path / ("full_" + controller) / "pareto.json"));
      CHECK(slurp(out / "pareto.csv") == slurp(dir.path / ("full_" + controller) / "pareto.csv"));
    }
  }

  TEST_CASE("search: the latency model screens and the space limit rejects") {
    TempDir dir("screen");
    FakeProxy proxy;
    SearchOptions o = tiny_search(dir.path / "run", proxy);
    // The largest architecture (2,32,2,64) costs 0.1 + 1e-4 * 2*32*256/64 = 0.1256 ms.
    o.space.max_latency_ms = 0.115;
    o.screen_min_points = 3;
    o.screen_margin = 1.0;
    o.episodes = 4;
    const SearchResult r = run_search(o);
    std::set<std::string> statuses;
    for (const Candidate& c : r.candidates) {
      statuses.insert(candidate_status_name(c.status));
      if (c.status == CandidateStatus::Rejected) CHECK(c.latency_ms > 0.115);
      if (c.status == CandidateStatus::Screened) CHECK(std::isnan(c.latency_ms));
      if (c.status != CandidateStatus::Ok) CHECK(std::isnan(c.reward));
    }
    CHECK(statuses.count("ok"));
    CHECK(statuses.count("rejected"));
    CHECK(statuses.count("screened"));
    // Only scored candidates are distilled.
    std::set<Arch> ok;
    for (const Candidate& c : r.candidates)
      if (c.status == CandidateStatus::Ok) ok.insert(c.arch);
    CHECK(*proxy.calls == int64_t(ok.size()));
  }

  TEST_CASE("search: bad runs are errors") {
    TempDir dir("errors");
    FakeProxy proxy;
    SearchOptions o = tiny_search(dir.path / "run", proxy);
    o.resume = true;
    test::check_throws_with([&] { run_search(o); }, {"holds no search"});
    o.resume = false;
    o.stop_after = 1;
    run_search(o);
    test::check_throws_with([&] { run_search(o); }, {"already holds a search", "--resume"});
    o.resume = true;
    o.candidates = 5;
    test::check_throws_with([&] { run_search(o); }, {"other settings", "candidates"});
    o.candidates = 4;
    o.proxy = nullptr;
    test::check_throws_with([&] { run_search(o); }, {"no proxy"});
    o.proxy = proxy.fn();
    o.budgets_ms = {-1};
    test::check_throws_with([&] { run_search(o); }, {"budget"});
    test::check_throws_with([] { candidate_from_json("{\"episode\": 1}", "row 3"); }, {"row 3"});
  }

  TEST_CASE("search: candidate rows round-trip exactly") {
    Candidate c;
    c.episode = 2, c.index = 3;
    c.arch = {2, 32, 2, 64}, c.prev_best = {1, 16, 2, 32}, c.best_so_far = {2, 16, 2, 64};
    c.parameters = 12345, c.non_embedding = 678;
    c.latency_ms = 1.0 / 3, c.latency_min_ms = 0.3, c.latency_max_ms = 0.4;
    c.predicted_ms = 0.1 + 1e-17;
    c.kd_loss = 0.123456789012345678, c.reward = 0.7;
    c.cached = true;
    const Candidate d = candidate_from_json(candidate_to_json(c));
    CHECK(candidate_to_json(d) == candidate_to_json(c));
    CHECK(d.latency_ms == c.latency_ms);
    CHECK(d.kd_loss == c.kd_loss);
    CHECK(std::isnan(d.predicted_reward));
    CHECK(d.arch == c.arch);
    CHECK(d.best_so_far == c.best_so_far);
  }

  TEST_CASE("search: best per budget and reward curve and comparison report") {
    std::vector<Candidate> cands(3);
    cands[0].arch = {1, 16, 2, 32}, cands[0].latency_ms = 1, cands[0].reward = 0.5;
    cands[1].arch = {2, 32, 2, 64}, cands[1].latency_ms = 3, cands[1].reward = 0.8;
    cands[1].episode = 1;
    cands[2].arch = {2, 16, 2, 64}, cands[2].latency_ms = 2, cands[2].reward = 0.6;
    cands[2].episode = 1;
    CHECK(best_per_budget(cands, {0.5, 1.5, 2.5, 10}) == std::vector<int64_t>{-1, 0, 2, 1});
    const auto curve = best_reward_curve(cands, 2);
    CHECK(curve == std::vector<double>{0.5, 0.8});
    CHECK(chosen_candidates(cands, {1.5}, 2) == std::vector<int64_t>{0, 1, 2});
    SearchResult a, b;
    a.candidates = cands;
    b.candidates = {cands[0]};
    const std::string md = compare_report("lstm", a, "random", b, {1.5, 2.5}, 2);
    CHECK(md.find("| 1 | 0.8000 | 0.5000 |") != std::string::npos);
    CHECK(md.find("`1,16,2,32`") != std::string::npos);
  }
}

}  // namespace kdnas
