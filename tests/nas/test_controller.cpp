// The controllers: exploration schedule, proposals (distinct, valid, deterministic), the LSTM
// predictor learning a synthetic reward, and its state round trip.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "nas/controller.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// A smooth synthetic reward of the architecture alone (the context is ignored): deeper and
// wider FFN is better, hidden has an optimum in the middle, heads matter a little.
double synthetic_reward(const SearchSpace& s, const Arch& a) {
  const std::vector<int64_t> i = s.encode(a);
  const double l = double(i[0]) / 7, h = double(i[1]) / 9, n = double(i[2]) / 4,
               f = double(i[3]) / 6;
  return 0.5 + 0.2 * l - 0.3 * (h - 0.5) * (h - 0.5) + 0.1 * f + 0.03 * n;
}

// Observations of `count` distinct random architectures in a fixed context.
std::vector<Observation> observe(const SearchSpace& s, const EncoderConfig& t, uint64_t seed,
                                 int64_t count, std::set<Arch>& used) {
  Rng rng(seed);
  std::vector<Observation> obs;
  const Arch prev{4, 256, 4, 1024}, best{6, 384, 6, 1536};
  while (int64_t(obs.size()) < count) {
    const Arch a = s.sample(rng, t);
    if (used.insert(a).second) obs.push_back({prev, best, a, synthetic_reward(s, a)});
  }
  return obs;
}

ControllerOptions fast_options() {
  ControllerOptions o;
  o.lr = 1e-2;  // the paper's 1e-4 learns too slowly for a unit test
  o.train_epochs = 20;
  o.seed = 42;
  return o;
}

}  // namespace

TEST_SUITE("nas") {
  TEST_CASE("controller: exploration schedule") {
    const ControllerOptions o;
    CHECK(exploration(o, 0) == 1.0);
    CHECK(exploration(o, 1) == doctest::Approx(0.95));
    CHECK(exploration(o, 10) == doctest::Approx(0.5));
    CHECK(exploration(o, 18) == doctest::Approx(0.1));
    CHECK(exploration(o, 19) == doctest::Approx(0.05));
    CHECK(exploration(o, 40) == 0.05);
    // floor(eps * N) with N = 20, immune to 0.8499999999999999.
    CHECK(random_count(o, 0, 20) == 20);
    CHECK(random_count(o, 1, 20) == 19);
    CHECK(random_count(o, 3, 20) == 17);
    CHECK(random_count(o, 10, 20) == 10);
    CHECK(random_count(o, 19, 20) == 1);
    CHECK(random_count(o, 100, 20) == 1);
    CHECK(random_count(o, 100, 10) == 0);
    // eps * 20 = 20 - e exactly in decimal, floored at 0.05 * 20 = 1.
    for (int64_t e = 0; e < 30; ++e) CHECK(random_count(o, e, 20) == std::max<int64_t>(1, 20 - e));
  }

  TEST_CASE("controller: make_controller errors") {
    const SearchSpace s = SearchSpace::default_space();
    check_throws_with([&] { make_controller("bayes", s, xlmr_base(), {}); },
                      {"unknown kind 'bayes'", "lstm or random"});
    ControllerOptions o;
    o.lr = 0;
    check_throws_with([&] { make_controller("lstm", s, xlmr_base(), o); }, {"lr 0"});
    o = {};
    o.pool = 0;
    check_throws_with([&] { make_controller("lstm", s, xlmr_base(), o); }, {"pool 0"});
    o = {};
    o.eps_start = 1.5;
    check_throws_with([&] { make_controller("random", s, xlmr_base(), o); }, {"eps_start 1.5"});
  }

  TEST_CASE("controller: proposals are distinct, valid and deterministic given the seed") {
    const SearchSpace s = SearchSpace::default_space();
    const EncoderConfig t = xlmr_base();
    for (const char* kind : {"lstm", "random"}) {
      INFO(kind);
      auto a = make_controller(kind, s, t, fast_options());
      auto b = make_controller(kind, s, t, fast_options());
      ControllerOptions other = fast_options();
      other.seed = 43;
      auto c = make_controller(kind, s, t, other);
      CHECK(std::string(a->name()) == kind);
      for (int64_t episode : {0, 5, 12, 30}) {
        const Arch prev{4, 256, 4, 1024}, best{6, 384, 6, 1536};
        const std::vector<Arch> p = a->propose(episode, 20, prev, best);
        REQUIRE(p.size() == 20);
        CHECK(std::set<Arch>(p.begin(), p.end()).size() == 20);
        for (const Arch& x : p) CHECK(s.valid(x, t));
        CHECK(b->propose(episode, 20, prev, best) == p);
        CHECK(c->propose(episode, 20, prev, best) != p);
        CHECK(a->propose(episode + 1, 20, prev, best) != p);
        // Before any best exists the context is Arch{}: still fine.
        CHECK(a->propose(episode, 20, Arch{}, Arch{}).size() == 20);
      }
      CHECK(a->propose(3, 0, Arch{}, Arch{}).empty());
    }
    // A space of 6 architectures: 6 can be proposed (all of them), 7 cannot.
    const SearchSpace tiny = SearchSpace::from_json(
        R"({"layers": [1, 2], "hidden": [6, 8], "heads": [2, 3], "ffn": [4]})");
    for (const char* kind : {"lstm", "random"}) {
      auto ctl = make_controller(kind, tiny, t, fast_options());
      for (int64_t episode : {0, 25}) CHECK(ctl->propose(episode, 6, Arch{}, Arch{}).size() == 6);
      check_throws_with([&] { ctl->propose(25, 7, Arch{}, Arch{}); },
                        {"asked for 7", "only 6 valid"});
    }
  }

  TEST_CASE("controller: the random controller predicts nothing and has no state") {
    auto c = make_controller("random", SearchSpace::default_space(), xlmr_base(), fast_options());
    CHECK(std::isnan(c->predict(Arch{}, Arch{}, {4, 256, 4, 1024})));
    CHECK(c->state().empty());
    c->update({{Arch{}, Arch{}, {4, 256, 4, 1024}, 0.5}});
    c->load_state({});
    check_throws_with(
        [&] {
          c->load_state({{"embed.layers", Tensor::zeros({2})}});
        },
        {"'embed.layers'"});
  }

  TEST_CASE("controller: the LSTM predictor learns a synthetic reward") {
    const SearchSpace s = SearchSpace::default_space();
    const EncoderConfig t = xlmr_base();
    std::set<Arch> used;
    const std::vector<Observation> train = observe(s, t, 1, 200, used);
    const std::vector<Observation> held = observe(s, t, 2, 100, used);
    double mean = 0;
    for (const Observation& o : held) mean += o.reward;
    mean /= double(held.size());
    double var = 0;
    for (const Observation& o : held) var += (o.reward - mean) * (o.reward - mean);
    var /= double(held.size());

    auto ctl = make_controller("lstm", s, t, fast_options());
    auto mse = [&] {
      double e = 0;
      for (const Observation& o : held) {
        const double p = ctl->predict(o.prev_best, o.best_so_far, o.arch);
        REQUIRE(std::isfinite(p));
        e += (p - o.reward) * (p - o.reward);
      }
      return e / double(held.size());
    };
    const double before = mse();
    // Three episodes' worth of updates over a growing history.
    for (int64_t k : {100, 150, 200})
      ctl->update(std::vector<Observation>(train.begin(), train.begin() + k));
    const double after = mse();
    MESSAGE("held-out MSE: untrained " << before << ", trained " << after
                                       << ", predicting the mean " << var);
    CHECK(after < 0.5 * var);
    CHECK(after < before);

    // The exploiting proposals follow the predictor: with no exploration their true reward
    // beats random proposals' clearly.
    ControllerOptions greedy = fast_options();
    greedy.eps_start = greedy.eps_min = 0;
    auto g = make_controller("lstm", s, t, greedy);
    g->load_state(ctl->state());
    auto r = make_controller("random", s, t, greedy);
    double top = 0, rnd = 0;
    const Arch prev{4, 256, 4, 1024}, best{6, 384, 6, 1536};
    for (const Arch& a : g->propose(7, 10, prev, best)) top += synthetic_reward(s, a) / 10;
    for (const Arch& a : r->propose(7, 10, prev, best)) rnd += synthetic_reward(s, a) / 10;
    MESSAGE("mean true reward of 10 proposals: predicted top " << top << ", random " << rnd);
    CHECK(top > rnd + 0.5 * std::sqrt(var));
  }

  TEST_CASE("controller: state() / load_state() round trip") {
    const SearchSpace s = SearchSpace::default_space();
    const EncoderConfig t = xlmr_base();
    std::set<Arch> used;
    const std::vector<Observation> obs = observe(s, t, 3, 60, used);
    ControllerOptions o = fast_options();
    o.train_epochs = 3;
    auto a = make_controller("lstm", s, t, o);
    a->update(obs);
    ControllerOptions o2 = o;
    o2.seed = 7;  // different initial weights: everything must come from the state
    auto b = make_controller("lstm", s, t, o2);
    const Arch prev{4, 256, 4, 1024}, best{6, 384, 6, 1536};
    const Arch probe[] = {{2, 128, 2, 256}, {12, 768, 12, 3072}, {5, 320, 4, 768}};
    CHECK(b->predict(prev, best, probe[0]) != a->predict(prev, best, probe[0]));
    const auto state = a->state();
    bool has_optim = false, has_norm = false;
    for (const auto& [k, v] : state) {
      has_optim = has_optim || k.rfind("optim.", 0) == 0;
      has_norm = has_norm || k == "reward_norm";
    }
    CHECK(has_optim);
    CHECK(has_norm);
    b->load_state(state);
    for (const Arch& p : probe) CHECK(b->predict(prev, best, p) == a->predict(prev, best, p));
    CHECK(b->predict(Arch{}, Arch{}, probe[1]) == a->predict(Arch{}, Arch{}, probe[1]));
    // The optimizer state comes along: with the same seed (which orders the mini-batches), one
    // more update keeps a restored controller identical to the original, and so do proposals.
    auto c = make_controller("lstm", s, t, o);
    c->load_state(state);
    a->update(obs);
    c->update(obs);
    for (const Arch& p : probe) CHECK(c->predict(prev, best, p) == a->predict(prev, best, p));
    CHECK(c->propose(15, 20, prev, best) == a->propose(15, 20, prev, best));
    // Without the optimizer's state the same update lands elsewhere (RMSprop's square averages
    // start from zero): the state really carries it.
    auto d = make_controller("lstm", s, t, o);
    std::vector<std::pair<std::string, Tensor>> weights_only;
    for (const auto& [k, v] : state)
      if (k.rfind("optim.", 0) != 0) weights_only.emplace_back(k, v);
    d->load_state(weights_only);
    d->update(obs);
    CHECK(d->predict(prev, best, probe[0]) != a->predict(prev, best, probe[0]));

    // Errors name the tensor; a failed load changes nothing.
    const double before = b->predict(prev, best, probe[2]);
    auto broken = state;
    broken.emplace_back("lstm.extra", Tensor::zeros({1}));
    check_throws_with([&] { b->load_state(broken); }, {"unknown state tensor 'lstm.extra'"});
    broken = state;
    for (auto& [k, v] : broken)
      if (k == "head.weight") v = Tensor::zeros({1, 16});
    check_throws_with([&] { b->load_state(broken); }, {"'head.weight'", "[1, 16]", "[1, 32]"});
    broken.clear();
    for (const auto& [k, v] : state)
      if (k != "lstm.bias") broken.emplace_back(k, v);
    check_throws_with([&] { b->load_state(broken); }, {"missing 'lstm.bias'"});
    CHECK(b->predict(prev, best, probe[2]) == before);
  }
}
