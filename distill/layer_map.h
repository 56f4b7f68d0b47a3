// Which teacher layers each student layer learns from (KDNAS.md, "Multi-layer hidden-state
// distillation").
//
// Layers are counted from 0 and exclude the embeddings: student layer i is the hidden state after
// the student's (i+1)-th encoder layer, EncoderOutput::hidden[i + 1]; teacher layer t likewise is
// the teacher's hidden[t + 1].
//
//   uniform       u(i) = min(floor(i * L_T / L_S), L_T - 1)
//   last          l(i) = L_T - L_S + i              (when L_S > L_T: max(0, ·), clamped)
//   uniform+last  both: the target is concat(H_T[u(i)], H_T[l(i)]) of width 2 * C_T  (default)
//   explicit      one teacher layer per student layer, e.g. "3,7,11" for a 3-layer student
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kdnas {

enum class LayerMapKind { Uniform, Last, UniformLast, Explicit };

struct LayerMap {
  LayerMapKind kind = LayerMapKind::UniformLast;
  // targets[i]: the teacher layers (0-based, embeddings excluded) whose hidden states,
  // concatenated along C in this order, are student layer i's target. Every entry has the same
  // length (1, or 2 for uniform+last).
  std::vector<std::vector<int64_t>> targets;
  int64_t student_layers() const { return static_cast<int64_t>(targets.size()); }
  int64_t targets_per_layer() const { return targets.empty() ? 0 : targets[0].size(); }
};

// The map of a kind for any depths (student_layers, teacher_layers >= 1); errors name the values.
LayerMap make_layer_map(LayerMapKind kind, int64_t student_layers, int64_t teacher_layers);
// "uniform", "last", "uniform+last", or an explicit comma-separated list with one teacher layer
// per student layer; a bad name, a wrong count or a layer outside [0, teacher_layers) is an error
// naming the spec.
LayerMap parse_layer_map(const std::string& spec, int64_t student_layers, int64_t teacher_layers);
// The spec string parse_layer_map accepts for this map (for logs and checkpoints).
std::string layer_map_spec(const LayerMap& map);

}  // namespace kdnas
