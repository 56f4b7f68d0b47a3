// Layer maps (distill/layer_map.h): the formulas for several depth pairs, the spec parser, its
// inverse, and every parse error.
#include <doctest/doctest.h>

#include "distill/layer_map.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

using Targets = std::vector<std::vector<int64_t>>;

// The one-target-per-layer list as targets.
Targets single(const std::vector<int64_t>& layers) {
  Targets t;
  for (int64_t l : layers) t.push_back({l});
  return t;
}

// uniform+last from the two lists.
Targets pairs(const std::vector<int64_t>& u, const std::vector<int64_t>& l) {
  Targets t;
  for (size_t i = 0; i < u.size(); ++i) t.push_back({u[i], l[i]});
  return t;
}

struct Case {
  int64_t LS, LT;
  std::vector<int64_t> uniform, last;
};

}  // namespace

TEST_SUITE("distill") {
  TEST_CASE("layer map: uniform, last and uniform+last for several depths") {
    const std::vector<Case> cases = {
        {4, 12, {0, 3, 6, 9}, {8, 9, 10, 11}},
        {3, 12, {0, 4, 8}, {9, 10, 11}},
        {5, 12, {0, 2, 4, 7, 9}, {7, 8, 9, 10, 11}},
        {6, 6, {0, 1, 2, 3, 4, 5}, {0, 1, 2, 3, 4, 5}},                     // L_S == L_T
        {1, 12, {0}, {11}},                                                 // L_S = 1
        {1, 1, {0}, {0}},                                                   // both 1
        {6, 4, {0, 0, 1, 2, 2, 3}, {0, 0, 0, 1, 2, 3}},                     // L_S > L_T: clamped
        {12, 1, std::vector<int64_t>(12, 0), std::vector<int64_t>(12, 0)},  // a 1-layer teacher
    };
    for (const Case& c : cases) {
      INFO("L_S = " << c.LS << ", L_T = " << c.LT);
      const LayerMap u = make_layer_map(LayerMapKind::Uniform, c.LS, c.LT);
      const LayerMap l = make_layer_map(LayerMapKind::Last, c.LS, c.LT);
      const LayerMap ul = make_layer_map(LayerMapKind::UniformLast, c.LS, c.LT);
      CHECK(u.targets == single(c.uniform));
      CHECK(l.targets == single(c.last));
      CHECK(ul.targets == pairs(c.uniform, c.last));
      CHECK(u.kind == LayerMapKind::Uniform);
      CHECK(l.kind == LayerMapKind::Last);
      CHECK(ul.kind == LayerMapKind::UniformLast);
      CHECK(u.student_layers() == c.LS);
      CHECK(u.targets_per_layer() == 1);
      CHECK(ul.targets_per_layer() == 2);
      // parse_layer_map of each name gives the same map, and layer_map_spec gives the name back.
      for (const LayerMap* m : {&u, &l, &ul}) {
        const std::string spec = layer_map_spec(*m);
        const LayerMap p = parse_layer_map(spec, c.LS, c.LT);
        CHECK(p.kind == m->kind);
        CHECK(p.targets == m->targets);
      }
    }
    CHECK(layer_map_spec(make_layer_map(LayerMapKind::Uniform, 2, 4)) == "uniform");
    CHECK(layer_map_spec(make_layer_map(LayerMapKind::Last, 2, 4)) == "last");
    CHECK(layer_map_spec(make_layer_map(LayerMapKind::UniformLast, 2, 4)) == "uniform+last");
    // The default kind of a LayerMap is the method's default.
    CHECK(LayerMap{}.kind == LayerMapKind::UniformLast);
    CHECK(LayerMap{}.targets_per_layer() == 0);
  }

  TEST_CASE("layer map: explicit lists and their specs") {
    LayerMap m = parse_layer_map("3,7,11", 3, 12);
    CHECK(m.kind == LayerMapKind::Explicit);
    CHECK(m.targets == single({3, 7, 11}));
    CHECK(m.targets_per_layer() == 1);
    CHECK(layer_map_spec(m) == "3,7,11");
    // Repeats and any order are allowed; the bounds are inclusive of 0 and L_T - 1.
    m = parse_layer_map("11,0,0,5", 4, 12);
    CHECK(m.targets == single({11, 0, 0, 5}));
    CHECK(layer_map_spec(m) == "11,0,0,5");
    m = parse_layer_map("0", 1, 1);
    CHECK(m.targets == single({0}));
    // A student deeper than the teacher.
    m = parse_layer_map("0,1,1,2,3,3", 6, 4);
    CHECK(m.targets == single({0, 1, 1, 2, 3, 3}));
    CHECK(parse_layer_map(layer_map_spec(m), 6, 4).targets == m.targets);
  }

  TEST_CASE("layer map: every parse error names the spec") {
    // Names.
    check_throws_with([] { parse_layer_map("", 3, 12); }, {"layer map ''", "uniform+last"});
    check_throws_with([] { parse_layer_map("unifrom", 3, 12); }, {"'unifrom'", "uniform"});
    check_throws_with([] { parse_layer_map("Uniform", 3, 12); }, {"'Uniform'"});
    check_throws_with([] { parse_layer_map("last+uniform", 3, 12); }, {"'last+uniform'"});
    check_throws_with([] { parse_layer_map(" 3,7,11", 3, 12); }, {"' 3,7,11'"});
    // Entries that are not integers.
    check_throws_with([] { parse_layer_map("3,,11", 3, 12); }, {"'3,,11'", "entry 1", "integer"});
    check_throws_with([] { parse_layer_map("3,7,11,", 3, 12); }, {"'3,7,11,'", "entry 3"});
    check_throws_with([] { parse_layer_map("3,x,11", 3, 12); }, {"'3,x,11'", "'x'"});
    check_throws_with([] { parse_layer_map("3,7.5,11", 3, 12); }, {"'3,7.5,11'", "'7.5'"});
    check_throws_with([] { parse_layer_map("3, 7,11", 3, 12); }, {"'3, 7,11'", "' 7'"});
    check_throws_with([] { parse_layer_map("3,99999999999999999999,1", 3, 12); },
                      {"99999999999999999999", "not an integer"});
    // Wrong count.
    check_throws_with([] { parse_layer_map("3,7", 3, 12); }, {"'3,7'", "lists 2", "has 3"});
    check_throws_with([] { parse_layer_map("1,2,3,4", 3, 12); }, {"'1,2,3,4'", "lists 4", "has 3"});
    // Outside [0, L_T).
    check_throws_with([] { parse_layer_map("3,7,12", 3, 12); },
                      {"'3,7,12'", "teacher layer 12", "[0, 12)"});
    check_throws_with([] { parse_layer_map("3,-1,11", 3, 12); },
                      {"'3,-1,11'", "teacher layer -1", "[0, 12)"});
    check_throws_with([] { parse_layer_map("-1", 1, 12); }, {"'-1'", "teacher layer -1"});
    // Depths.
    check_throws_with([] { parse_layer_map("uniform", 0, 12); }, {"student_layers 0"});
    check_throws_with([] { parse_layer_map("last", 3, 0); }, {"teacher_layers 0"});
    check_throws_with([] { make_layer_map(LayerMapKind::Uniform, -1, 12); }, {"student_layers -1"});
    check_throws_with([] { make_layer_map(LayerMapKind::Explicit, 3, 12); },
                      {"explicit", "parse_layer_map"});
  }
}  // TEST_SUITE("distill")
