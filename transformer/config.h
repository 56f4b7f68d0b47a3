// EncoderConfig: the Hugging Face XLMRobertaConfig, read from and written to config.json.
//
// Field names, meanings and defaults are those of transformers' XLMRobertaConfig, so a key a
// file leaves out means what it means to Hugging Face (e.g. a missing layer_norm_eps is 1e-12,
// not XLM-R's 1e-5). Keys kdnas does not model (id2label, output_past, transformers_version,
// ...) are kept verbatim and written back, so a directory survives a read/write round trip.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kdnas {

struct EncoderConfig {
  int64_t vocab_size = 30522;             // V
  int64_t hidden_size = 768;              // C
  int64_t num_hidden_layers = 12;         // L
  int64_t num_attention_heads = 12;       // NH (head size HS = C / NH)
  int64_t intermediate_size = 3072;       // FF
  std::string hidden_act = "gelu";        // Hugging Face "gelu" is the exact (erf) form
  int64_t max_position_embeddings = 512;  // rows of the position table (pad + 1 + max T)
  int64_t type_vocab_size = 2;            // rows of the token type table (XLM-R: 1)
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 1;
  int64_t bos_token_id = 0;
  int64_t eos_token_id = 2;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  double initializer_range = 0.02;
  std::optional<double> classifier_dropout;  // null: the head uses hidden_dropout_prob
  std::string position_embedding_type = "absolute";
  bool use_cache = true;
  std::string model_type = "xlm-roberta";
  std::vector<std::string> architectures{"XLMRobertaModel"};
  std::string torch_dtype = "float32";  // dtype of the weights in model.safetensors
  // Keys kdnas does not model: key -> its JSON text, written back unchanged.
  std::map<std::string, std::string> extra;

  int64_t head_size() const { return hidden_size / num_attention_heads; }

  // Throws kdnas::Error naming the field for an unusable config (non-positive sizes, hidden
  // size not divisible by heads, an activation other than gelu, a position table too small to
  // hold even one token after the padding offset, token ids outside the vocabulary, ...).
  void validate() const;

  bool operator==(const EncoderConfig&) const = default;
};

// The published xlm-roberta-base configuration (DATA.md).
EncoderConfig xlmr_base();

// Parses config.json text. Missing keys take Hugging Face's defaults, unknown keys go to
// `extra`, a known key with the wrong JSON type is an error naming the key. Does not
// validate(); `what` names the source in error messages. The fuzzer's entry point.
EncoderConfig parse_config_json(const std::string& text, const std::string& what = "<memory>");
// Every key Hugging Face writes for XLM-R, plus `extra`, as pretty-printed JSON (sorted keys,
// two-space indent, as save_pretrained writes it).
std::string config_to_json(const EncoderConfig& cfg);

// Reads and validates dir/config.json or a path to the file itself.
EncoderConfig read_config(const std::string& path);
// Validates, then writes atomically.
void write_config(const std::string& path, const EncoderConfig& cfg);

}  // namespace kdnas
