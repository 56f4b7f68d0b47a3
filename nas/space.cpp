// The search space: JSON I/O with validation, the validity rule, the controller's encoding and
// uniform sampling. Spaces are small (the default grid has 2 800 points), so counting and the
// sampler's fallback simply enumerate the grid.
#include "nas/space.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tensor/check.h"

namespace kdnas {

using json = nlohmann::json;

namespace {

// Sizes beyond this are certainly typos, and keeping them small keeps every parameter count
// (V * C, L * C * FF) far from int64 overflow.
constexpr int64_t kMaxChoice = int64_t(1) << 20;

const char* const kDimNames[SearchSpace::kDims] = {"layers", "hidden", "heads", "ffn"};

int64_t arch_dim(const Arch& a, int d) {
  switch (d) {
    case 0:
      return a.layers;
    case 1:
      return a.hidden;
    case 2:
      return a.heads;
    default:
      return a.ffn;
  }
}

// "a positive integer" for messages about what a JSON value was.
std::string describe(const json& v) {
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return std::string(v.type_name()) + " " + s;
}

// A strict decimal integer: digits only (no sign, spaces or suffix), no overflow.
bool parse_positive(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  int64_t x = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    x = x * 10 + (c - '0');
  }
  *out = x;
  return x > 0;
}

}  // namespace

std::string arch_to_string(const Arch& a) {
  std::ostringstream os;
  os << a.layers << ',' << a.hidden << ',' << a.heads << ',' << a.ffn;
  return os.str();
}

Arch arch_from_string(const std::string& s) {
  std::vector<int64_t> v;
  size_t start = 0;
  bool ok = true;
  while (ok) {
    const size_t comma = s.find(',', start);
    int64_t x = 0;
    ok = parse_positive(s.substr(start, comma == std::string::npos ? comma : comma - start), &x);
    v.push_back(x);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  KDNAS_CHECK(ok && v.size() == 4, "arch: '", s,
              "' is not L,H,A,F (four positive integers: layers, hidden, heads, FFN), e.g. "
              "4,256,4,1024");
  return Arch{v[0], v[1], v[2], v[3]};
}

EncoderConfig arch_config(const Arch& a, const EncoderConfig& teacher) {
  EncoderConfig c = teacher;
  c.num_hidden_layers = a.layers;
  c.hidden_size = a.hidden;
  c.num_attention_heads = a.heads;
  c.intermediate_size = a.ffn;
  c.architectures = {"XLMRobertaModel"};  // a student is a plain encoder (as distill writes it)
  return c;
}

ParamCount arch_parameters(const Arch& a, const EncoderConfig& teacher) {
  const int64_t C = a.hidden, FF = a.ffn;
  // Embeddings: word [V, C], position [P, C], token type [TV, C], LayerNorm weight + bias.
  const int64_t emb =
      (teacher.vocab_size + teacher.max_position_embeddings + teacher.type_vocab_size + 2) * C;
  // One layer: Q, K, V, attention output ([C, C] + [C] each), two LayerNorms (2C each),
  // intermediate [FF, C] + [FF], output [C, FF] + [C].
  const int64_t layer = 4 * (C * C + C) + 2 * 2 * C + (FF * C + FF) + (C * FF + C);
  ParamCount p;
  p.non_embedding = a.layers * layer;
  p.total = emb + p.non_embedding;
  return p;
}

SearchSpace SearchSpace::default_space() {
  SearchSpace s;
  s.dims_[0] = {2, 3, 4, 5, 6, 8, 10, 12};
  s.dims_[1] = {128, 192, 256, 320, 384, 448, 512, 576, 640, 768};
  s.dims_[2] = {2, 4, 6, 8, 12};
  s.dims_[3] = {256, 512, 768, 1024, 1536, 2048, 3072};
  return s;
}

SearchSpace SearchSpace::from_json(const std::string& text, const std::string& what) {
  const std::string prefix = "space: " + what + ": ";
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    detail::fail(detail::concat(prefix, "not valid JSON (", e.what(), ")"));
  }
  KDNAS_CHECK(j.is_object(), prefix, "a search space must be a JSON object, got ", j.type_name());
  for (const auto& [key, value] : j.items()) {
    bool known = key == "max_parameters" || key == "max_latency_ms";
    for (const char* name : kDimNames) known = known || key == name;
    KDNAS_CHECK(known, prefix, "unknown key '", key,
                "' (known: layers, hidden, heads, ffn, max_parameters, max_latency_ms)");
  }
  SearchSpace s = default_space();
  for (int d = 0; d < kDims; ++d) {
    const char* key = kDimNames[d];
    if (!j.contains(key)) continue;  // a missing dimension keeps the default choices
    const json& list = j[key];
    KDNAS_CHECK(list.is_array(), prefix, "key '", key,
                "' must be a list of positive integers, got ", describe(list));
    KDNAS_CHECK(!list.empty(), prefix, "key '", key, "' is an empty list");
    std::vector<int64_t> v;
    for (const json& x : list) {
      KDNAS_CHECK(x.is_number_integer(), prefix, "key '", key,
                  "' must hold positive integers, got ", describe(x));
      KDNAS_CHECK(x.is_number_unsigned() && x.get<uint64_t>() <= uint64_t(kMaxChoice), prefix,
                  "key '", key, "' holds ", x.dump(), ": sizes must be in [1, ", kMaxChoice, "]");
      KDNAS_CHECK(x.get<int64_t>() > 0, prefix, "key '", key, "' holds ", x.dump(),
                  ": sizes must be positive");
      v.push_back(x.get<int64_t>());
    }
    std::sort(v.begin(), v.end());
    auto dup = std::adjacent_find(v.begin(), v.end());
    KDNAS_CHECK(dup == v.end(), prefix, "key '", key, "' lists ", dup == v.end() ? 0 : *dup,
                " twice");
    s.dims_[d] = std::move(v);
  }
  if (j.contains("max_parameters")) {
    const json& v = j["max_parameters"];
    KDNAS_CHECK(v.is_number_integer(), prefix,
                "key 'max_parameters' must be a non-negative integer, got ", describe(v));
    KDNAS_CHECK(v.is_number_unsigned() && v.get<uint64_t>() <= uint64_t(INT64_MAX), prefix,
                "key 'max_parameters' must be a non-negative integer, got ", v.dump());
    s.max_parameters = v.get<int64_t>();
  }
  if (j.contains("max_latency_ms")) {
    const json& v = j["max_latency_ms"];
    KDNAS_CHECK(v.is_number(), prefix, "key 'max_latency_ms' must be a non-negative number, got ",
                describe(v));
    s.max_latency_ms = v.get<double>();
    KDNAS_CHECK(s.max_latency_ms >= 0 && s.max_latency_ms < std::numeric_limits<double>::max(),
                prefix, "key 'max_latency_ms' must be a non-negative number, got ", v.dump());
  }
  // The divisibility rule does not depend on the teacher: a space it empties is a mistake
  // worth reporting now rather than as a sampler that finds nothing.
  bool any = false;
  for (int64_t h : s.dims_[1])
    for (int64_t a : s.dims_[2]) any = any || h % a == 0;
  KDNAS_CHECK(any, prefix, "no hidden size is divisible by any head count, so the space is empty");
  return s;
}

SearchSpace SearchSpace::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  KDNAS_CHECK(f.good(), "space: cannot open '", path, "'");
  std::stringstream ss;
  ss << f.rdbuf();
  KDNAS_CHECK(!f.bad(), "space: cannot read '", path, "'");
  return from_json(ss.str(), path);
}

std::string SearchSpace::to_json() const {
  // ordered_json keeps the documented key order (dimensions first, then the limits).
  nlohmann::ordered_json j;
  for (int d = 0; d < kDims; ++d) j[kDimNames[d]] = dims_[d];
  j["max_parameters"] = max_parameters;
  j["max_latency_ms"] = max_latency_ms;
  return j.dump(2) + "\n";
}

const char* SearchSpace::dim_name(int d) {
  KDNAS_CHECK(d >= 0 && d < kDims, "space: dimension ", d, " is not in [0, ", kDims, ")");
  return kDimNames[d];
}

const std::vector<int64_t>& SearchSpace::choices(int d) const {
  KDNAS_CHECK(d >= 0 && d < kDims, "space: dimension ", d, " is not in [0, ", kDims, ")");
  return dims_[d];
}

bool SearchSpace::valid(const Arch& a, const EncoderConfig& teacher, std::string* why) const {
  auto fail = [&](const std::string& reason) {
    if (why) *why = reason;
    return false;
  };
  for (int d = 0; d < kDims; ++d) {
    const int64_t x = arch_dim(a, d);
    if (!std::binary_search(dims_[d].begin(), dims_[d].end(), x))
      return fail(detail::concat(arch_to_string(a), ": ", kDimNames[d], " ", x,
                                 " is not one of the choices ", dims_[d]));
  }
  if (a.hidden % a.heads != 0)
    return fail(detail::concat(arch_to_string(a), ": hidden ", a.hidden,
                               " is not divisible by heads ", a.heads));
  if (max_parameters > 0) {
    const int64_t n = arch_parameters(a, teacher).total;
    if (n > max_parameters)
      return fail(detail::concat(arch_to_string(a), ": ", n, " parameters exceed max_parameters ",
                                 max_parameters));
  }
  return true;
}

std::vector<int64_t> SearchSpace::encode(const Arch& a) const {
  std::vector<int64_t> index(kDims);
  for (int d = 0; d < kDims; ++d) {
    const int64_t x = arch_dim(a, d);
    auto it = std::lower_bound(dims_[d].begin(), dims_[d].end(), x);
    KDNAS_CHECK(it != dims_[d].end() && *it == x, "space: architecture ", arch_to_string(a),
                " is outside the space: ", kDimNames[d], " ", x, " is not one of ", dims_[d]);
    index[d] = int64_t(it - dims_[d].begin());
  }
  return index;
}

Arch SearchSpace::decode(const std::vector<int64_t>& index) const {
  KDNAS_CHECK(index.size() == size_t(kDims), "space: decode needs ", kDims, " indices, got ",
              index.size());
  int64_t v[kDims];
  for (int d = 0; d < kDims; ++d) {
    KDNAS_CHECK(index[d] >= 0 && index[d] < int64_t(dims_[d].size()),
                "space: decode: ", kDimNames[d], " index ", index[d], " is not in [0, ",
                dims_[d].size(), ")");
    v[d] = dims_[d][size_t(index[d])];
  }
  return Arch{v[0], v[1], v[2], v[3]};
}

Arch SearchSpace::sample(Rng& rng, const EncoderConfig& teacher) const {
  // Rejection sampling over the grid is uniform over the valid points; when a tight
  // max_parameters leaves few of them, fall back to drawing from the enumerated list (also
  // uniform), which also tells an empty space apart from an unlucky streak.
  for (int attempt = 0; attempt < 1000; ++attempt) {
    Arch a;
    a.layers = dims_[0][rng.below(dims_[0].size())];
    a.hidden = dims_[1][rng.below(dims_[1].size())];
    a.heads = dims_[2][rng.below(dims_[2].size())];
    a.ffn = dims_[3][rng.below(dims_[3].size())];
    if (valid(a, teacher)) return a;
  }
  std::vector<Arch> all;
  for (int64_t l : dims_[0])
    for (int64_t h : dims_[1])
      for (int64_t n : dims_[2])
        for (int64_t f : dims_[3])
          if (Arch a{l, h, n, f}; valid(a, teacher)) all.push_back(a);
  KDNAS_CHECK(!all.empty(), "space: no architecture is valid (hidden % heads == 0",
              max_parameters > 0 ? detail::concat(", at most ", max_parameters, " parameters")
                                 : std::string(),
              ")");
  return all[rng.below(all.size())];
}

int64_t SearchSpace::size(const EncoderConfig& teacher) const {
  int64_t n = 0;
  for (int64_t l : dims_[0])
    for (int64_t h : dims_[1])
      for (int64_t a : dims_[2])
        for (int64_t f : dims_[3]) n += valid(Arch{l, h, a, f}, teacher);
  return n;
}

}  // namespace kdnas
