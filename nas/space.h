// The KD-NAS search space (KDNAS.md, "Search space"): uniform students, every layer the same, so
// a student is a plain XLM-R config that Hugging Face loads.
//
// A space is a JSON file:
//   {
//     "layers": [2, 3, 4, 5, 6, 8, 10, 12],
//     "hidden": [128, 192, 256, 320, 384, 448, 512, 576, 640, 768],
//     "heads":  [2, 4, 6, 8, 12],
//     "ffn":    [256, 512, 768, 1024, 1536, 2048, 3072],
//     "max_parameters": 0,        optional; > 0: architectures with more parameters (embeddings
//                                 included, at the teacher's vocabulary) are invalid
//     "max_latency_ms": 0         optional; > 0: candidates measured slower are rejected
//   }
// Constraint always applied: hidden % heads == 0. Every list non-empty, positive, no duplicates
// (sorted on load); unknown keys are errors (a typo must not silently widen the search). A
// dimension the file leaves out keeps the default choices; a space where no hidden size is
// divisible by any head count is an error at load.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/rng.h"
#include "transformer/config.h"

namespace kdnas {

struct Arch {
  int64_t layers = 0, hidden = 0, heads = 0, ffn = 0;
  bool operator==(const Arch&) const = default;
  auto operator<=>(const Arch&) const = default;
};

// "L,H,A,F" (the `kdnas distill --arch` syntax) and back; errors name the string.
std::string arch_to_string(const Arch& a);
Arch arch_from_string(const std::string& s);

// The student's config: the teacher's config (vocabulary, positions, special ids, eps,
// dropout) with the four sizes replaced.
EncoderConfig arch_config(const Arch& a, const EncoderConfig& teacher);
// Parameters of the student at that vocabulary: {with embeddings, without embeddings}.
struct ParamCount {
  int64_t total = 0, non_embedding = 0;
};
ParamCount arch_parameters(const Arch& a, const EncoderConfig& teacher);

class SearchSpace {
 public:
  static SearchSpace default_space();
  static SearchSpace from_json(const std::string& json, const std::string& what = "space");
  static SearchSpace load(const std::string& path);  // errors name the file
  std::string to_json() const;

  // The four dimensions in the fixed order layers, hidden, heads, ffn.
  static constexpr int kDims = 4;
  static const char* dim_name(int d);
  const std::vector<int64_t>& choices(int d) const;

  int64_t max_parameters = 0;
  double max_latency_ms = 0;

  // Valid: every size is one of the choices, hidden % heads == 0, within max_parameters (at the
  // teacher's vocabulary). why, when given, receives the first reason it is not.
  bool valid(const Arch& a, const EncoderConfig& teacher, std::string* why = nullptr) const;
  // Choice indices [4] of an architecture in this space (encoding for the controller) and back;
  // an architecture outside the space is an error naming it. Both work on the grid of choices:
  // neither checks hidden % heads or max_parameters (that is valid()'s job).
  std::vector<int64_t> encode(const Arch& a) const;
  Arch decode(const std::vector<int64_t>& index) const;
  // A uniformly random valid architecture (rejection sampling; an error if none exists).
  Arch sample(Rng& rng, const EncoderConfig& teacher) const;
  // Number of valid architectures.
  int64_t size(const EncoderConfig& teacher) const;

 private:
  std::vector<int64_t> dims_[kDims];
};

}  // namespace kdnas
