// The search space: JSON parsing and its errors, the default space, validity, the controller's
// encoding, string round trips, sampling and parameter counts.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "nas/space.h"
#include "tests/nas/tiny_teacher.h"
#include "tests/test_util.h"
#include "transformer/encoder.h"

using namespace kdnas;
using namespace kdnas::test;

TEST_SUITE("nas") {
  TEST_CASE("space: the default space is KDNAS.md's") {
    const SearchSpace s = SearchSpace::default_space();
    CHECK(s.choices(0) == std::vector<int64_t>{2, 3, 4, 5, 6, 8, 10, 12});
    CHECK(s.choices(1) == std::vector<int64_t>{128, 192, 256, 320, 384, 448, 512, 576, 640, 768});
    CHECK(s.choices(2) == std::vector<int64_t>{2, 4, 6, 8, 12});
    CHECK(s.choices(3) == std::vector<int64_t>{256, 512, 768, 1024, 1536, 2048, 3072});
    CHECK(s.max_parameters == 0);
    CHECK(s.max_latency_ms == 0);
    CHECK(std::string(SearchSpace::dim_name(0)) == "layers");
    CHECK(std::string(SearchSpace::dim_name(3)) == "ffn");
    check_throws_with([] { SearchSpace::dim_name(4); }, {"dimension 4"});
    // (hidden, heads) pairs with hidden % heads == 0: 10 for heads 2, 4 and 8, 4 for 6 and 12
    // (192, 384, 576, 768), so 38 pairs x 8 depths x 7 FFN widths.
    CHECK(s.size(xlmr_base()) == 38 * 8 * 7);
  }

  TEST_CASE("space: JSON round trip, sorting and defaults for missing dimensions") {
    const SearchSpace s = SearchSpace::from_json(
        R"({"layers": [4, 2], "hidden": [256, 128], "heads": [4, 2], "ffn": [512],
          "max_parameters": 50000000, "max_latency_ms": 12.5})");
    CHECK(s.choices(0) == std::vector<int64_t>{2, 4});
    CHECK(s.choices(1) == std::vector<int64_t>{128, 256});
    CHECK(s.max_parameters == 50000000);
    CHECK(s.max_latency_ms == 12.5);
    const SearchSpace r = SearchSpace::from_json(s.to_json());
    for (int d = 0; d < SearchSpace::kDims; ++d) CHECK(r.choices(d) == s.choices(d));
    CHECK(r.max_parameters == s.max_parameters);
    CHECK(r.max_latency_ms == s.max_latency_ms);

    const SearchSpace partial = SearchSpace::from_json(R"({"layers": [3]})");
    CHECK(partial.choices(0) == std::vector<int64_t>{3});
    CHECK(partial.choices(1) == SearchSpace::default_space().choices(1));

    const SearchSpace d = SearchSpace::from_json(SearchSpace::default_space().to_json());
    CHECK(d.size(xlmr_base()) == SearchSpace::default_space().size(xlmr_base()));
  }

  TEST_CASE("space: load names the file; every validation error names the key and value") {
    TempDir dir;
    const std::string path = dir.file("space.json");
    { std::ofstream(path) << R"({"layers": [2, 4], "heads": [2]})"; }
    CHECK(SearchSpace::load(path).choices(0) == std::vector<int64_t>{2, 4});
    check_throws_with([&] { SearchSpace::load(dir.file("missing.json")); },
                      {"cannot open", "missing.json"});
    { std::ofstream(path) << R"({"layer": [2, 4]})"; }
    check_throws_with([&] { SearchSpace::load(path); }, {path, "unknown key 'layer'"});

    auto bad = [](const std::string& json, const std::vector<std::string>& parts) {
      check_throws_with([&] { SearchSpace::from_json(json, "my.json"); }, parts);
    };
    bad("{", {"my.json", "not valid JSON"});
    bad("[1, 2]", {"my.json", "JSON object", "array"});
    bad(R"({"hidden": []})", {"'hidden'", "empty list"});
    bad(R"({"ffn": [256, 0]})", {"'ffn'", "0", "positive"});
    bad(R"({"layers": [-2]})", {"'layers'", "-2"});
    bad(R"({"heads": [4, 2, 4]})", {"'heads'", "lists 4 twice"});
    bad(R"({"layers": 4})", {"'layers'", "list", "number 4"});
    bad(R"({"layers": ["4"]})", {"'layers'", "integers", "string \"4\""});
    bad(R"({"hidden": [128.5]})", {"'hidden'", "integers", "128.5"});
    bad(R"({"hidden": [99999999999]})", {"'hidden'", "99999999999"});
    bad(R"({"max_parameters": -1})", {"'max_parameters'", "-1"});
    bad(R"({"max_parameters": 1.5})", {"'max_parameters'", "1.5"});
    bad(R"({"max_latency_ms": "fast"})", {"'max_latency_ms'", "\"fast\""});
    bad(R"({"max_latency_ms": -3})", {"'max_latency_ms'", "-3"});
    bad(R"({"hidden": [7, 11], "heads": [2, 4]})", {"my.json", "divisible", "empty"});
  }

  TEST_CASE("space: validity: choices, hidden % heads, max_parameters") {
    const EncoderConfig t = xlmr_base();
    SearchSpace s = SearchSpace::default_space();
    std::string why;
    CHECK(s.valid({4, 256, 4, 1024}, t, &why));
    CHECK_FALSE(s.valid({4, 256, 6, 1024}, t, &why));
    CHECK(why.find("not divisible by heads 6") != std::string::npos);
    CHECK_FALSE(s.valid({7, 256, 4, 1024}, t, &why));
    CHECK(why.find("layers 7") != std::string::npos);
    CHECK_FALSE(s.valid({4, 256, 4, 1000}, t, &why));
    CHECK(why.find("ffn 1000") != std::string::npos);
    CHECK_FALSE(s.valid(Arch{}, t));

    // max_parameters counts embeddings at the teacher's vocabulary: 250k x 256 alone is 64M.
    const Arch small{2, 128, 2, 256}, big{12, 768, 12, 3072};
    Rng rng(3);
    s.max_parameters = arch_parameters(Arch{4, 256, 4, 1024}, t).total;
    const int64_t n = s.size(t);
    CHECK(n > 3);
    CHECK(n < SearchSpace::default_space().size(t));
    for (int i = 0; i < 50; ++i)
      CHECK(arch_parameters(s.sample(rng, t), t).total <= s.max_parameters);
    s.max_parameters = arch_parameters(small, t).total;
    CHECK(s.valid(small, t));
    CHECK_FALSE(s.valid(big, t, &why));
    CHECK(why.find("max_parameters") != std::string::npos);
    // Only the smallest sizes are left, with heads 2, 4 or 8 (heads add no parameters): 3 of 2128.
    CHECK(s.size(t) == 3);
    std::set<int64_t> heads;
    for (int i = 0; i < 60; ++i) {
      const Arch a = s.sample(rng, t);
      CHECK(a == Arch{2, 128, a.heads, 256});
      heads.insert(a.heads);
    }
    CHECK(heads == std::set<int64_t>{2, 4, 8});
    s.max_parameters = 1;
    CHECK(s.size(t) == 0);
    check_throws_with([&] { s.sample(rng, t); }, {"no architecture is valid", "at most 1"});
  }

  TEST_CASE("space: encode / decode round trip and errors") {
    const SearchSpace s = SearchSpace::default_space();
    const Arch a{4, 256, 8, 1024};
    const std::vector<int64_t> idx = s.encode(a);
    CHECK(idx == std::vector<int64_t>{2, 2, 3, 3});
    CHECK(s.decode(idx) == a);
    for (int64_t l = 0; l < 8; ++l)
      for (int64_t f = 0; f < 7; ++f) {
        const std::vector<int64_t> i{l, 9, 4, f};
        CHECK(s.encode(s.decode(i)) == i);
      }
    check_throws_with([&] { s.encode({4, 250, 8, 1024}); }, {"4,250,8,1024", "hidden 250"});
    check_throws_with([&] { s.decode({0, 0, 5, 0}); }, {"heads index 5"});
    check_throws_with([&] { s.decode({0, 0, 0}); }, {"4 indices", "got 3"});
  }

  TEST_CASE("space: arch_to_string / arch_from_string") {
    const Arch a{6, 384, 12, 1536};
    CHECK(arch_to_string(a) == "6,384,12,1536");
    CHECK(arch_from_string("6,384,12,1536") == a);
    CHECK(arch_from_string(arch_to_string({1, 2, 3, 4})) == Arch{1, 2, 3, 4});
    for (const char* s :
         {"", "6,384,12", "6,384,12,1536,1", "6,384,x,1536", "6, 384,12,1536", "6,384,12,0",
          "-6,384,12,1536", "6,,12,1536", "6,384,12,1536,", "99999999999999999999,1,1,1"})
      check_throws_with([&] { arch_from_string(s); }, {std::string("'") + s + "'", "L,H,A,F"});
  }

  TEST_CASE("space: sample() gives only valid architectures and covers the space uniformly") {
    const EncoderConfig t = xlmr_base();
    const SearchSpace d = SearchSpace::default_space();
    Rng rng(7);
    std::set<int64_t> heads_seen;
    for (int i = 0; i < 500; ++i) {
      const Arch a = d.sample(rng, t);
      CHECK(d.valid(a, t));
      heads_seen.insert(a.heads);
    }
    CHECK(heads_seen.size() == 5);

    // 2 depths x {(6, 2), (6, 3), (8, 2)} x 1 width = 6 architectures, about 100 draws each.
    const SearchSpace s =
        SearchSpace::from_json(R"({"layers": [1, 2], "hidden": [6, 8], "heads": [2, 3],
                                 "ffn": [4]})");
    CHECK(s.size(t) == 6);
    std::map<Arch, int> count;
    for (int i = 0; i < 600; ++i) ++count[s.sample(rng, t)];
    CHECK(count.size() == 6);
    for (const auto& [a, c] : count) {
      INFO(arch_to_string(a) << " drawn " << c << " times");
      CHECK(c > 50);
      CHECK(c < 150);
    }
    // The same seed, the same draws.
    Rng r1(11), r2(11);
    for (int i = 0; i < 20; ++i) CHECK(d.sample(r1, t) == d.sample(r2, t));
  }

  TEST_CASE("space: arch_parameters matches the Encoder's parameter count") {
    const EncoderConfig t = tiny_teacher();
    for (const Arch& a : {Arch{2, 64, 4, 128}, Arch{1, 32, 2, 48}, Arch{3, 96, 6, 200}}) {
      INFO(arch_to_string(a));
      const EncoderConfig c = arch_config(a, t);
      CHECK(c.num_hidden_layers == a.layers);
      CHECK(c.hidden_size == a.hidden);
      CHECK(c.num_attention_heads == a.heads);
      CHECK(c.intermediate_size == a.ffn);
      CHECK(c.vocab_size == t.vocab_size);
      CHECK(c.max_position_embeddings == t.max_position_embeddings);
      CHECK(c.layer_norm_eps == t.layer_norm_eps);
      const Encoder e = Encoder::init_random(c, 1);
      const ParamCount p = arch_parameters(a, t);
      CHECK(p.total == e.parameter_count(true));
      CHECK(p.non_embedding == e.parameter_count(false));
    }
    // XLM-R Base itself, as the command-line test counts it (no pooler, no MLM head).
    CHECK(arch_parameters({12, 768, 12, 3072}, xlmr_base()).total == 277453056);
  }
}
