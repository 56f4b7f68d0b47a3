// safetensors: the checkpoint format of Hugging Face models (model.safetensors).
//
// Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data.
//   {"__metadata__": {"k": "v"},                        optional string -> string map
//    "attn.0": {"dtype": "F32", "shape": [1, 2, 3], "data_offsets": [0, 24]}, ...}
// Offsets are relative to the start of the data (byte 8 + N). A file is valid only when
// N <= 100 000 000 and lies within the file; the header is a UTF-8 JSON object without
// duplicate keys; the entries tile the data exactly (sorted by offset: first begin 0, each
// begin = previous end, last end = data size); end - begin = numel * dtype size; the dtype is
// one of BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 F16 BF16 I32 U32 F32 F64 I64 U64. Every violation
// is a kdnas::Error that names the file and the rule. Data is little-endian, row-major.
//
// The reader mmaps the file: a tensor whose bytes are aligned for its dtype is a zero-copy view
// of the mapping (the tensor keeps the mapping alive); an unaligned one is copied. The writer
// pads the header with spaces to a multiple of 8 and orders tensors by descending alignment,
// then name, so that every tensor of a file it writes is aligned, and writes atomically.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace kdnas {

// Largest header a reader accepts (the limit of the reference implementation).
constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

// One entry of the header.
struct TensorInfo {
  std::string name;
  std::string dtype_name;    // as spelled in the file: "F32", "BF16", "U16", ...
  bool supported = false;    // kdnas has a DType for it (F32 F64 BF16 F16 I32 I64 I8 U8)
  DType dtype = DType::F32;  // meaningful only when supported
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the start of the data
};

// A parsed and validated header.
struct SafetensorsHeader {
  uint64_t header_len = 0;          // N
  uint64_t data_start = 0;          // 8 + N: file offset of the data
  uint64_t data_size = 0;           // file size - data_start
  std::vector<TensorInfo> tensors;  // in the order of their data offsets
  std::map<std::string, std::string> metadata;
};

// Parses and validates the first `size` bytes of a whole safetensors file (header length, JSON
// header and the data size implied by `size`). `what` names the file in error messages. Never
// reads outside [bytes, bytes + size): this is the fuzzer's entry point.
SafetensorsHeader parse_safetensors_header(const void* bytes, size_t size,
                                           const std::string& what = "<memory>");

// safetensors dtype name ("F32") of a kdnas DType, and the element size of any safetensors
// dtype name (0 when unknown).
const char* safetensors_dtype_name(DType t);
size_t safetensors_dtype_size(const std::string& name);

class SafetensorsFile {
 public:
  // Maps and validates the file; throws kdnas::Error naming the file and the broken rule.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws when absent
  // The tensor, zero-copy when aligned for its dtype (writes go to a private copy-on-write
  // page, never to the file); throws for an absent name or a dtype kdnas cannot hold.
  Tensor get(const std::string& name) const;
  // True when get(name) returns a view of the mapping rather than a copy.
  bool is_zero_copy(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const SafetensorsHeader& header() const { return header_; }

 private:
  std::string path_;
  std::shared_ptr<void> mapping_;  // owns the mmap; shared with every zero-copy tensor
  const uint8_t* base_ = nullptr;  // start of the mapping
  SafetensorsHeader header_;
  std::map<std::string, size_t> index_;  // name -> position in header_.tensors

  const uint8_t* data_of(const TensorInfo& ti) const {
    return base_ + header_.data_start + ti.begin;
  }
};

// Writes `tensors` (any dtype kdnas has, any device, any strides) as a safetensors file:
// header padded with spaces to a multiple of 8, data ordered by descending alignment then name.
// Atomic: the bytes go to a temporary file in the same directory, which is fsynced and renamed
// over `path`, so a reader never sees a half-written checkpoint, even after a crash.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The header bytes write_safetensors would write (8-byte length + padded JSON), for tests.
std::string safetensors_header_bytes(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                     const std::map<std::string, std::string>& metadata = {});

// Writes byte chunks to `path` atomically (temporary file in the same directory, fsync,
// rename, fsync of the directory). `op` prefixes error messages ("safetensors", "config").
void write_file_atomically(const std::string& path,
                           const std::vector<std::pair<const void*, size_t>>& chunks,
                           const std::string& op);

// True when s is well-formed UTF-8 (no overlong forms, surrogates or code points > U+10FFFF).
bool is_valid_utf8(const char* s, size_t n);

}  // namespace kdnas
