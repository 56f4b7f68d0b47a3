#include "distill/layer_map.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "tensor/check.h"

namespace kdnas {
namespace {

const char* kind_name(LayerMapKind kind) {
  switch (kind) {
    case LayerMapKind::Uniform:
      return "uniform";
    case LayerMapKind::Last:
      return "last";
    case LayerMapKind::UniformLast:
      return "uniform+last";
    case LayerMapKind::Explicit:
      return "explicit";
  }
  return "?";
}

void check_depths(const char* what, int64_t student_layers, int64_t teacher_layers) {
  KDNAS_CHECK(student_layers >= 1 && teacher_layers >= 1, what,
              ": layer counts must be >= 1, got student_layers ", student_layers,
              " and teacher_layers ", teacher_layers);
}

// Student layer i spread evenly over the teacher: 0, L_T / L_S, 2 L_T / L_S, ... (floor). When
// the student is deeper than the teacher, neighbours share a teacher layer.
int64_t uniform_target(int64_t i, int64_t student_layers, int64_t teacher_layers) {
  return std::min(i * teacher_layers / student_layers, teacher_layers - 1);
}

// The teacher's top L_S layers, aligned at the end; a student deeper than the teacher repeats
// teacher layer 0 for its first L_S - L_T layers.
int64_t last_target(int64_t i, int64_t student_layers, int64_t teacher_layers) {
  return std::max<int64_t>(teacher_layers - student_layers + i, 0);
}

// One explicit entry: a base-10 integer and nothing else ("3", not "3x", " 3" or "").
bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && p == end;
}

}  // namespace

LayerMap make_layer_map(LayerMapKind kind, int64_t student_layers, int64_t teacher_layers) {
  check_depths("make_layer_map", student_layers, teacher_layers);
  KDNAS_CHECK(kind != LayerMapKind::Explicit,
              "make_layer_map: an explicit map needs its list of teacher layers (use "
              "parse_layer_map with e.g. \"3,7,11\")");
  LayerMap map;
  map.kind = kind;
  map.targets.resize(size_t(student_layers));
  for (int64_t i = 0; i < student_layers; ++i) {
    std::vector<int64_t>& t = map.targets[size_t(i)];
    if (kind == LayerMapKind::Uniform || kind == LayerMapKind::UniformLast)
      t.push_back(uniform_target(i, student_layers, teacher_layers));
    if (kind == LayerMapKind::Last || kind == LayerMapKind::UniformLast)
      t.push_back(last_target(i, student_layers, teacher_layers));
  }
  return map;
}

LayerMap parse_layer_map(const std::string& spec, int64_t student_layers, int64_t teacher_layers) {
  check_depths("layer map", student_layers, teacher_layers);
  for (LayerMapKind kind : {LayerMapKind::Uniform, LayerMapKind::Last, LayerMapKind::UniformLast})
    if (spec == kind_name(kind)) return make_layer_map(kind, student_layers, teacher_layers);

  // An explicit list: one teacher layer per student layer.
  KDNAS_CHECK(
      !spec.empty() && (std::isdigit(static_cast<unsigned char>(spec[0])) || spec[0] == '-'),
      "layer map '", spec,
      "': expected uniform, last, uniform+last or a comma-separated list of teacher layers "
      "such as 3,7,11");
  LayerMap map;
  map.kind = LayerMapKind::Explicit;
  size_t start = 0;
  while (true) {
    const size_t comma = spec.find(',', start);
    const std::string item =
        spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    int64_t layer = 0;
    KDNAS_CHECK(parse_int(item, layer), "layer map '", spec, "': entry ", map.targets.size(), " ('",
                item, "') is not an integer");
    KDNAS_CHECK(layer >= 0 && layer < teacher_layers, "layer map '", spec, "': teacher layer ",
                layer, " is outside [0, ", teacher_layers,
                ") (layers are 0-based, embeddings excluded)");
    map.targets.push_back({layer});
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  KDNAS_CHECK(map.student_layers() == student_layers, "layer map '", spec, "' lists ",
              map.student_layers(), " teacher layers but the student has ", student_layers,
              " layers (one entry per student layer)");
  return map;
}

std::string layer_map_spec(const LayerMap& map) {
  if (map.kind != LayerMapKind::Explicit) return kind_name(map.kind);
  std::string s;
  for (size_t i = 0; i < map.targets.size(); ++i) {
    KDNAS_CHECK(map.targets[i].size() == 1, "layer_map_spec: explicit map entry ", i, " has ",
                map.targets[i].size(), " teacher layers, expected 1");
    if (i) s += ',';
    s += std::to_string(map.targets[i][0]);
  }
  return s;
}

}  // namespace kdnas
