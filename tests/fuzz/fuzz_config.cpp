// libFuzzer target: the config.json parser on arbitrary text.
//
// Any input must either parse or throw kdnas::Error. A config that parses must write back to
// JSON that parses to an equal config (unknown keys included), whether or not it validates.
#include <cstdint>
#include <string>

#include "tensor/check.h"
#include "transformer/config.h"

using namespace kdnas;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  EncoderConfig cfg;
  try {
    cfg = parse_config_json(text, "fuzz");
  } catch (const Error&) {
    return 0;
  }
  try {
    cfg.validate();
  } catch (const Error&) {
    // Invalid configs must still round-trip: a user may want to read, fix and rewrite one.
  }
  // Neither call may throw for a config that parsed.
  const EncoderConfig again = parse_config_json(config_to_json(cfg), "round trip");
  if (!(again == cfg)) __builtin_trap();
  return 0;
}
