#include "transformer/config.h"

#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tensor/check.h"
#include "transformer/safetensors.h"

namespace kdnas {

namespace {

using json = nlohmann::json;

// Nesting deeper than this is refused: dump() recurses, so an unknown key holding
// "[[[[...]]]]" a million levels deep would otherwise overflow the stack on write.
constexpr int kMaxJsonDepth = 64;

// Sizes are held in int64, and products like V * C must stay far from overflow.
constexpr int64_t kMaxSize = (int64_t(1) << 31) - 1;

json parse_json(const std::string& text, const std::string& prefix) {
  int depth = 0;
  auto cb = [&](int, json::parse_event_t ev, json&) {
    if (ev == json::parse_event_t::object_start || ev == json::parse_event_t::array_start)
      KDNAS_CHECK(++depth <= kMaxJsonDepth, prefix, "JSON nests deeper than ", kMaxJsonDepth,
                  " levels");
    if (ev == json::parse_event_t::object_end || ev == json::parse_event_t::array_end) --depth;
    return true;
  };
  try {
    return json::parse(text, cb);
  } catch (const json::exception& e) {
    detail::fail(detail::concat(prefix, "not valid JSON (", e.what(), ")"));
  }
}

// Typed readers: each consumes its key from `rest` (what is left over becomes `extra`).
class Reader {
 public:
  Reader(json j, std::string prefix) : rest_(std::move(j)), prefix_(std::move(prefix)) {}

  void integer(const char* key, int64_t* out) {
    if (const json* v = take(key)) {
      KDNAS_CHECK(v->is_number_integer(), prefix_, "key '", key, "' must be an integer, got ",
                  describe(*v));
      // Unsigned values beyond int64 are rejected rather than wrapped around.
      KDNAS_CHECK(!v->is_number_unsigned() || v->get<uint64_t>() <= uint64_t(INT64_MAX), prefix_,
                  "key '", key, "' is out of range: ", v->dump());
      *out = v->get<int64_t>();
    }
  }
  void number(const char* key, double* out) {
    if (const json* v = take(key)) {
      KDNAS_CHECK(v->is_number(), prefix_, "key '", key, "' must be a number, got ", describe(*v));
      *out = finite(key, *v);
    }
  }
  void optional_number(const char* key, std::optional<double>* out) {
    if (const json* v = take(key)) {
      KDNAS_CHECK(v->is_number() || v->is_null(), prefix_, "key '", key,
                  "' must be a number or null, got ", describe(*v));
      *out = v->is_null() ? std::nullopt : std::optional<double>(finite(key, *v));
    }
  }
  void string(const char* key, std::string* out, bool nullable = false) {
    if (const json* v = take(key)) {
      KDNAS_CHECK(v->is_string() || (nullable && v->is_null()), prefix_, "key '", key,
                  "' must be a string", nullable ? " or null" : "", ", got ", describe(*v));
      *out = v->is_null() ? std::string() : v->get<std::string>();
    }
  }
  void boolean(const char* key, bool* out) {
    if (const json* v = take(key)) {
      KDNAS_CHECK(v->is_boolean(), prefix_, "key '", key, "' must be true or false, got ",
                  describe(*v));
      *out = v->get<bool>();
    }
  }
  void strings(const char* key, std::vector<std::string>* out) {
    if (const json* v = take(key)) {
      out->clear();
      if (v->is_null()) return;
      KDNAS_CHECK(v->is_array(), prefix_, "key '", key, "' must be a list of strings, got ",
                  describe(*v));
      for (const json& s : *v) {
        KDNAS_CHECK(s.is_string(), prefix_, "key '", key, "' must be a list of strings, but holds ",
                    describe(s));
        out->push_back(s.get<std::string>());
      }
    }
  }
  // Whatever no typed reader asked for, as key -> compact JSON text.
  std::map<std::string, std::string> leftovers() const {
    std::map<std::string, std::string> m;
    for (auto it = rest_.begin(); it != rest_.end(); ++it) m[it.key()] = it.value().dump();
    return m;
  }

 private:
  json rest_;
  std::string prefix_;
  json taken_;  // holds the value of the last key taken

  const json* take(const char* key) {
    auto it = rest_.find(key);
    if (it == rest_.end()) return nullptr;
    taken_ = std::move(*it);
    rest_.erase(it);
    return &taken_;
  }
  // JSON has no infinity; nlohmann refuses 1e999 at parse time, and this guard keeps a
  // non-finite value from ever reaching the config (it would be written back as null).
  double finite(const char* key, const json& v) const {
    const double d = v.get<double>();
    KDNAS_CHECK(std::isfinite(d), prefix_, "key '", key, "' is out of range: ", describe(v));
    return d;
  }
  static std::string describe(const json& v) {
    std::string s = v.dump();
    if (s.size() > 40) s = s.substr(0, 40) + "...";
    return std::string(v.type_name()) + " " + s;
  }
};

bool known_torch_dtype(const std::string& s) {
  return s.empty() || s == "float32" || s == "float16" || s == "bfloat16";
}

}  // namespace

void EncoderConfig::validate() const {
  auto size_ok = [](int64_t v) { return v > 0 && v <= kMaxSize; };
  const std::pair<const char*, int64_t> sizes[] = {
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"intermediate_size", intermediate_size},
      {"max_position_embeddings", max_position_embeddings},
      {"type_vocab_size", type_vocab_size}};
  for (const auto& [name, v] : sizes)
    KDNAS_CHECK(size_ok(v), "config: ", name, " must be in [1, ", kMaxSize, "], got ", v);
  KDNAS_CHECK(hidden_size % num_attention_heads == 0, "config: hidden_size ", hidden_size,
              " is not divisible by num_attention_heads ", num_attention_heads);
  KDNAS_CHECK(hidden_act == "gelu", "config: hidden_act '", hidden_act,
              "' is not supported (kdnas implements \"gelu\", the erf form XLM-R uses)");
  KDNAS_CHECK(position_embedding_type == "absolute", "config: position_embedding_type '",
              position_embedding_type, "' is not supported (only \"absolute\")");
  KDNAS_CHECK(model_type == "xlm-roberta" || model_type == "roberta", "config: model_type '",
              model_type, "' is not an XLM-R/RoBERTa encoder");
  const std::pair<const char*, int64_t> ids[] = {{"pad_token_id", pad_token_id},
                                                 {"bos_token_id", bos_token_id},
                                                 {"eos_token_id", eos_token_id}};
  for (const auto& [name, v] : ids)
    KDNAS_CHECK(v >= 0 && v < vocab_size, "config: ", name, " ", v,
                " is outside the vocabulary [0, ", vocab_size, ")");
  // RoBERTa position ids start at pad + 1 (DATA.md), so a table of pad + 1 rows or fewer has
  // no room for a single token.
  KDNAS_CHECK(max_position_embeddings > pad_token_id + 1, "config: max_position_embeddings ",
              max_position_embeddings, " must exceed pad_token_id + 1 = ", pad_token_id + 1,
              " (position ids start after the padding index)");
  KDNAS_CHECK(std::isfinite(layer_norm_eps) && layer_norm_eps > 0, "config: layer_norm_eps ",
              layer_norm_eps, " must be positive");
  const std::pair<const char*, double> probs[] = {
      {"hidden_dropout_prob", hidden_dropout_prob},
      {"attention_probs_dropout_prob", attention_probs_dropout_prob},
      {"classifier_dropout", classifier_dropout.value_or(0.0)}};
  for (const auto& [name, p] : probs)
    KDNAS_CHECK(p >= 0 && p < 1, "config: ", name, " ", p, " must be in [0, 1)");
  KDNAS_CHECK(std::isfinite(initializer_range) && initializer_range > 0,
              "config: initializer_range ", initializer_range, " must be positive");
  KDNAS_CHECK(known_torch_dtype(torch_dtype), "config: torch_dtype '", torch_dtype,
              "' is not one of float32, float16, bfloat16");
}

EncoderConfig xlmr_base() {
  EncoderConfig c;
  c.vocab_size = 250002;
  c.hidden_size = 768;
  c.num_hidden_layers = 12;
  c.num_attention_heads = 12;
  c.intermediate_size = 3072;
  c.hidden_act = "gelu";
  c.max_position_embeddings = 514;
  c.type_vocab_size = 1;
  c.layer_norm_eps = 1e-5;
  c.pad_token_id = 1;
  c.bos_token_id = 0;
  c.eos_token_id = 2;
  c.architectures = {"XLMRobertaForMaskedLM"};
  return c;
}

EncoderConfig parse_config_json(const std::string& text, const std::string& what) {
  const std::string prefix = "config: " + what + ": ";
  json j = parse_json(text, prefix);
  KDNAS_CHECK(j.is_object(), prefix, "config.json must hold a JSON object, got ", j.type_name());
  EncoderConfig c;
  Reader r(std::move(j), prefix);
  r.integer("vocab_size", &c.vocab_size);
  r.integer("hidden_size", &c.hidden_size);
  r.integer("num_hidden_layers", &c.num_hidden_layers);
  r.integer("num_attention_heads", &c.num_attention_heads);
  r.integer("intermediate_size", &c.intermediate_size);
  r.string("hidden_act", &c.hidden_act);
  r.integer("max_position_embeddings", &c.max_position_embeddings);
  r.integer("type_vocab_size", &c.type_vocab_size);
  r.number("layer_norm_eps", &c.layer_norm_eps);
  r.integer("pad_token_id", &c.pad_token_id);
  r.integer("bos_token_id", &c.bos_token_id);
  r.integer("eos_token_id", &c.eos_token_id);
  r.number("hidden_dropout_prob", &c.hidden_dropout_prob);
  r.number("attention_probs_dropout_prob", &c.attention_probs_dropout_prob);
  r.number("initializer_range", &c.initializer_range);
  r.optional_number("classifier_dropout", &c.classifier_dropout);
  r.string("position_embedding_type", &c.position_embedding_type);
  r.boolean("use_cache", &c.use_cache);
  r.string("model_type", &c.model_type);
  r.strings("architectures", &c.architectures);
  r.string("torch_dtype", &c.torch_dtype, /*nullable=*/true);
  c.extra = r.leftovers();
  return c;
}

std::string config_to_json(const EncoderConfig& c) {
  json j = json::object();  // std::map underneath: keys come out sorted, as HF sorts them
  for (const auto& [k, v] : c.extra) {
    try {
      j[k] = json::parse(v);
    } catch (const json::exception& e) {
      detail::fail(
          detail::concat("config: extra key '", k, "' does not hold valid JSON (", e.what(), ")"));
    }
  }
  // Known fields are written after the extras so that they win over a stray duplicate.
  j["architectures"] = c.architectures;
  j["attention_probs_dropout_prob"] = c.attention_probs_dropout_prob;
  j["bos_token_id"] = c.bos_token_id;
  j["classifier_dropout"] = c.classifier_dropout ? json(*c.classifier_dropout) : json(nullptr);
  j["eos_token_id"] = c.eos_token_id;
  j["hidden_act"] = c.hidden_act;
  j["hidden_dropout_prob"] = c.hidden_dropout_prob;
  j["hidden_size"] = c.hidden_size;
  j["initializer_range"] = c.initializer_range;
  j["intermediate_size"] = c.intermediate_size;
  j["layer_norm_eps"] = c.layer_norm_eps;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["model_type"] = c.model_type;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["pad_token_id"] = c.pad_token_id;
  j["position_embedding_type"] = c.position_embedding_type;
  j["torch_dtype"] = c.torch_dtype.empty() ? json(nullptr) : json(c.torch_dtype);
  j["type_vocab_size"] = c.type_vocab_size;
  j["use_cache"] = c.use_cache;
  j["vocab_size"] = c.vocab_size;
  try {
    return j.dump(2) + "\n";
  } catch (const json::exception& e) {  // a string that is not UTF-8
    detail::fail(detail::concat("config: cannot write JSON (", e.what(), ")"));
  }
}

EncoderConfig read_config(const std::string& path) {
  struct stat st;
  const bool is_dir = stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  const std::string file = is_dir ? path + "/config.json" : path;
  std::ifstream in(file, std::ios::binary);
  KDNAS_CHECK(in, "config: cannot open '", file, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  EncoderConfig c = parse_config_json(ss.str(), file);
  try {
    c.validate();
  } catch (const Error& e) {
    detail::fail(detail::concat(e.what(), " (in ", file, ")"));
  }
  return c;
}

void write_config(const std::string& path, const EncoderConfig& cfg) {
  cfg.validate();
  const std::string text = config_to_json(cfg);
  write_file_atomically(path, {{text.data(), text.size()}}, "write_config");
}

}  // namespace kdnas
