#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/test_util.h"
#include "transformer/config.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// config.json of the published xlm-roberta-base, as on the Hugging Face hub.
const char* kHubXlmrBase = R"({
  "architectures": [
    "XLMRobertaForMaskedLM"
  ],
  "attention_probs_dropout_prob": 0.1,
  "bos_token_id": 0,
  "eos_token_id": 2,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 768,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "layer_norm_eps": 1e-05,
  "max_position_embeddings": 514,
  "model_type": "xlm-roberta",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "output_past": true,
  "pad_token_id": 1,
  "position_embedding_type": "absolute",
  "transformers_version": "4.17.0.dev0",
  "type_vocab_size": 1,
  "use_cache": true,
  "vocab_size": 250002
}
)";

// Parses `text` and CHECKs that it fails with every part in the message.
void check_parse_fails(const std::string& text, const std::vector<std::string>& parts) {
  check_throws_with([&] { parse_config_json(text, "test.json"); }, parts);
}

// Applies `edit` to xlmr_base() and CHECKs that validate() fails with every part.
template <typename F>
void check_invalid(F edit, const std::vector<std::string>& parts) {
  EncoderConfig c = xlmr_base();
  edit(c);
  check_throws_with([&] { c.validate(); }, parts);
}

}  // namespace

TEST_SUITE("transformer") {
TEST_CASE("config: the published xlm-roberta-base config.json") {
  EncoderConfig c = parse_config_json(kHubXlmrBase);
  c.validate();
  EncoderConfig want = xlmr_base();
  want.extra = {{"output_past", "true"}, {"transformers_version", "\"4.17.0.dev0\""}};
  CHECK(c == want);
  CHECK(c.vocab_size == 250002);
  CHECK(c.max_position_embeddings == 514);
  CHECK(c.type_vocab_size == 1);
  CHECK(c.layer_norm_eps == 1e-5);
  CHECK(c.head_size() == 64);
  CHECK(c.torch_dtype == "float32");  // absent in this old file: Hugging Face's default
}

TEST_CASE("config: written files carry every key Hugging Face writes and round-trip") {
  TempDir dir;
  EncoderConfig c = xlmr_base();
  c.num_hidden_layers = 4;
  c.hidden_size = 384;
  c.num_attention_heads = 6;
  c.intermediate_size = 1536;
  c.torch_dtype = "bfloat16";
  c.classifier_dropout = 0.25;
  c.extra["id2label"] = R"({"0":"neg","1":"pos"})";
  write_config(dir.path.string() + "/config.json", c);

  std::ifstream in(dir.file("config.json"));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  for (const char* k :
       {"\"architectures\"", "\"model_type\": \"xlm-roberta\"", "\"torch_dtype\": \"bfloat16\"",
        "\"hidden_act\": \"gelu\"", "\"layer_norm_eps\": 1e-05", "\"position_embedding_type\"",
        "\"use_cache\": true", "\"classifier_dropout\": 0.25", "\"pad_token_id\": 1",
        "\"bos_token_id\": 0", "\"eos_token_id\": 2", "\"type_vocab_size\": 1",
        "\"initializer_range\": 0.02", "\"hidden_dropout_prob\": 0.1",
        "\"attention_probs_dropout_prob\": 0.1", "\"id2label\""}) {
    INFO(k);
    CHECK(text.find(k) != std::string::npos);
  }
  // Keys are sorted, as save_pretrained writes them.
  CHECK(text.find("\"architectures\"") < text.find("\"vocab_size\""));

  // Read back from the directory or from the file: identical.
  CHECK(read_config(dir.path.string()) == c);
  CHECK(read_config(dir.file("config.json")) == c);
  // Hub file -> write -> read keeps the unknown keys.
  EncoderConfig hub = parse_config_json(kHubXlmrBase);
  write_config(dir.file("hub.json"), hub);
  CHECK(read_config(dir.file("hub.json")) == hub);
}

TEST_CASE("config: missing keys take Hugging Face's XLMRobertaConfig defaults") {
  EncoderConfig c = parse_config_json("{}");
  CHECK(c == EncoderConfig{});
  CHECK(c.vocab_size == 30522);
  CHECK(c.max_position_embeddings == 512);
  CHECK(c.type_vocab_size == 2);
  CHECK(c.layer_norm_eps == 1e-12);
  CHECK(!c.classifier_dropout.has_value());
  c.validate();
  // Null is accepted where Hugging Face writes null.
  EncoderConfig n = parse_config_json(R"({"classifier_dropout": null, "torch_dtype": null})");
  CHECK(!n.classifier_dropout.has_value());
  CHECK(n.torch_dtype.empty());
  CHECK(config_to_json(n).find("\"torch_dtype\": null") != std::string::npos);
}

TEST_CASE("config: a key with the wrong JSON type is an error naming the key") {
  check_parse_fails(R"({"hidden_size": "768"})",
                    {"config", "test.json", "key 'hidden_size' must be an integer", "string"});
  check_parse_fails(R"({"hidden_size": 768.5})", {"key 'hidden_size' must be an integer"});
  check_parse_fails(R"({"num_hidden_layers": true})",
                    {"key 'num_hidden_layers' must be an integer"});
  check_parse_fails(R"({"vocab_size": 18446744073709551615})",
                    {"key 'vocab_size' is out of range"});
  check_parse_fails(R"({"layer_norm_eps": "1e-5"})", {"key 'layer_norm_eps' must be a number"});
  check_parse_fails(R"({"layer_norm_eps": 1e999})", {"not valid JSON", "1e999"});
  check_parse_fails(R"({"hidden_act": 5})", {"key 'hidden_act' must be a string"});
  check_parse_fails(R"({"use_cache": 1})", {"key 'use_cache' must be true or false"});
  check_parse_fails(R"({"architectures": "XLMRobertaModel"})",
                    {"key 'architectures' must be a list of strings"});
  check_parse_fails(R"({"architectures": [1]})", {"key 'architectures' must be a list of strings"});
  check_parse_fails(R"({"classifier_dropout": "0.1"})",
                    {"key 'classifier_dropout' must be a number or null"});
  check_parse_fails(R"({"model_type": null})", {"key 'model_type' must be a string"});
  check_parse_fails("[1, 2]", {"test.json", "must hold a JSON object"});
  check_parse_fails(R"({"hidden_size": )", {"test.json", "not valid JSON"});
  check_parse_fails("{\"a\": \"\xff\"}", {"not valid JSON"});
  check_parse_fails("{\"a\": " + std::string(100, '[') + std::string(100, ']') + "}",
                    {"nests deeper than"});
}

TEST_CASE("config: validate() names the broken field") {
  xlmr_base().validate();
  check_invalid([](EncoderConfig& c) { c.hidden_size = 770; },
                {"config", "hidden_size 770 is not divisible by num_attention_heads 12"});
  check_invalid([](EncoderConfig& c) { c.num_hidden_layers = 0; }, {"num_hidden_layers", "got 0"});
  check_invalid([](EncoderConfig& c) { c.vocab_size = -5; }, {"vocab_size", "got -5"});
  check_invalid([](EncoderConfig& c) { c.num_attention_heads = 0; }, {"num_attention_heads"});
  check_invalid([](EncoderConfig& c) { c.intermediate_size = int64_t(1) << 40; },
                {"intermediate_size"});
  check_invalid([](EncoderConfig& c) { c.type_vocab_size = 0; }, {"type_vocab_size"});
  check_invalid([](EncoderConfig& c) { c.hidden_act = "relu"; },
                {"hidden_act 'relu' is not supported", "gelu"});
  check_invalid([](EncoderConfig& c) { c.position_embedding_type = "relative_key"; },
                {"position_embedding_type 'relative_key'"});
  check_invalid([](EncoderConfig& c) { c.model_type = "bert"; }, {"model_type 'bert'"});
  check_invalid([](EncoderConfig& c) { c.max_position_embeddings = 2; },
                {"max_position_embeddings 2 must exceed pad_token_id + 1 = 2"});
  check_invalid([](EncoderConfig& c) { c.pad_token_id = 250002; },
                {"pad_token_id 250002 is outside the vocabulary [0, 250002)"});
  check_invalid([](EncoderConfig& c) { c.eos_token_id = -1; }, {"eos_token_id -1"});
  check_invalid([](EncoderConfig& c) { c.layer_norm_eps = 0; }, {"layer_norm_eps"});
  check_invalid([](EncoderConfig& c) { c.hidden_dropout_prob = 1.0; },
                {"hidden_dropout_prob 1 must be in [0, 1)"});
  check_invalid([](EncoderConfig& c) { c.attention_probs_dropout_prob = -0.1; },
                {"attention_probs_dropout_prob"});
  check_invalid([](EncoderConfig& c) { c.classifier_dropout = 2.0; }, {"classifier_dropout"});
  check_invalid([](EncoderConfig& c) { c.initializer_range = 0; }, {"initializer_range"});
  check_invalid([](EncoderConfig& c) { c.torch_dtype = "int8"; }, {"torch_dtype 'int8'"});
}

TEST_CASE("config: reading and writing files") {
  TempDir dir;
  check_throws_with([&] { read_config(dir.file("missing.json")); },
                    {"config", "cannot open", "missing.json"});
  // read_config validates, and says which file was wrong.
  std::ofstream(dir.file("bad.json")) << R"({"hidden_size": 770, "num_attention_heads": 12})";
  check_throws_with([&] { read_config(dir.file("bad.json")); },
                    {"hidden_size 770 is not divisible", "bad.json"});
  // write_config refuses an invalid config and leaves nothing behind.
  EncoderConfig c = xlmr_base();
  c.hidden_act = "tanh";
  check_throws_with([&] { write_config(dir.file("out.json"), c); }, {"hidden_act 'tanh'"});
  CHECK(!std::filesystem::exists(dir.file("out.json")));
  // An extra key with broken JSON text is caught at write time.
  EncoderConfig e = xlmr_base();
  e.extra["oops"] = "{not json";
  check_throws_with([&] { write_config(dir.file("out.json"), e); }, {"extra key 'oops'"});
}
}
