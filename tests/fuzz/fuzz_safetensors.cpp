// libFuzzer target: the safetensors header parser on arbitrary bytes (a whole "file").
//
// Any input must either parse or throw kdnas::Error; a crash, a sanitizer report or a broken
// invariant below is a bug. For headers that parse, the writer must reproduce a file that
// parses to the same tensors: the reader and the writer agree on the format.
#include <cstdint>
#include <cstring>

#include "transformer/safetensors.h"

using namespace kdnas;

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// A parsed header's promises: the entries tile the data exactly, with matching byte counts.
void check_invariants(const SafetensorsHeader& h, size_t size) {
  check(h.data_start == 8 + h.header_len && h.data_start + h.data_size == size);
  uint64_t pos = 0;
  for (const TensorInfo& t : h.tensors) {
    check(t.begin == pos && t.end >= t.begin);
    uint64_t n = safetensors_dtype_size(t.dtype_name);
    check(n != 0);
    for (int64_t d : t.shape) n *= uint64_t(d);  // cannot overflow: the parser checked
    check(n == t.end - t.begin);
    pos = t.end;
  }
  check(pos == h.data_size);
}

// Rebuilds the tensors kdnas can hold from the input and writes them back; the result must
// parse to the same names, dtypes and shapes.
void check_rewrite(const SafetensorsHeader& h, const uint8_t* data) {
  std::vector<std::pair<std::string, Tensor>> ts;
  for (const TensorInfo& t : h.tensors) {
    if (!t.supported) continue;
    Tensor x = Tensor::empty(t.shape, t.dtype);
    if (t.end > t.begin) std::memcpy(x.raw_data(), data + h.data_start + t.begin, t.end - t.begin);
    ts.push_back({t.name, x});
  }
  std::string bytes = safetensors_header_bytes(ts, h.metadata);
  for (const auto& [name, x] : ts) bytes.append(static_cast<const char*>(x.raw_data()), x.nbytes());
  SafetensorsHeader again = parse_safetensors_header(bytes.data(), bytes.size(), "rewrite");
  check(again.tensors.size() == ts.size() && again.metadata == h.metadata);
  check(again.header_len % 8 == 0);
  for (const TensorInfo& t : again.tensors) {
    bool found = false;
    for (const auto& [name, x] : ts)
      if (name == t.name) found = t.shape == x.shape() && t.dtype == x.dtype();
    check(found);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  SafetensorsHeader h;
  try {
    h = parse_safetensors_header(data, size, "fuzz");
  } catch (const Error&) {
    return 0;  // rejected cleanly: the expected outcome for almost every input
  }
  check_invariants(h, size);
  check_rewrite(h, data);  // must not throw: a valid file always rewrites
  return 0;
}
