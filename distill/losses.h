// The distillation losses (KDNAS.md): multi-layer hidden-state MSE through trainable
// projections, MiniLMv2-style self-attention relations, and a logit KL with temperature.
//
// Shapes: B batch, T tokens, C_S / C_T student / teacher hidden, L_S / L_T layers, R relation
// heads. Every term averages over non-padding tokens only (attention_mask i64 [B, T], 1 = token).
//
//   hidden-state  for each student layer i:  MSE( H_S[i] P_i^T + b_i ,  concat_t H_T[t] )
//                 P_i [k * C_T, C_S] (k targets per layer, see LayerMap); averaged over layers.
//                 One projection per student layer (default) or one shared by all.
//   attention     MiniLMv2: for X in {Q, K, V} of the student's last layer and one teacher layer,
//                 split X [B, T, C] into R relation heads of C / R, rel_X = softmax(X_r X_r^T /
//                 sqrt(C / R) + key mask) [B, R, T, T]; KL(rel_X^teacher || rel_X^student) per
//                 query row, averaged over real query rows, heads and the three relations.
//   logits        T^2 * KL(softmax(z_T / T) || softmax(z_S / T)) over real tokens (MLM logits).
//
// Each term is 0 when the student is the teacher and each projection is the identity (tested).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/variable.h"
#include "distill/layer_map.h"
#include "kernels/context.h"
#include "tensor/tensor.h"
#include "transformer/config.h"
#include "transformer/encoder.h"

namespace kdnas {

struct DistillLossOptions {
  bool use_hidden = true;      // "hs"
  bool use_attention = false;  // "attn"
  bool use_logits = false;     // "logits" (needs the teacher's and the student's MLM logits)
  double hidden_weight = 1.0, attention_weight = 1.0, logits_weight = 1.0;
  bool shared_projection = false;        // one projection for every student layer
  int64_t relation_heads = 12;           // R: must divide both C_S and C_T
  int64_t teacher_attention_layer = -1;  // 0-based; -1 = the teacher's last layer
  double temperature = 2.0;              // logits term
};

// Parses "hs,attn,logits" (any non-empty subset, any order) into the use_* flags of opt.
void parse_loss_terms(const std::string& spec, DistillLossOptions& opt);

// What the teacher contributes to one batch, as constants (no gradient).
struct TeacherTargets {
  std::vector<Tensor> hidden;  // L_T + 1 states, f32 [B, T, C_T] (embeddings first)
  Tensor q, k, v;              // teacher_attention_layer's, f32 [B, NH_T, T, HS_T]; for "attn"
  Tensor logits;               // f32 [B, T, V]; for "logits"
};

struct DistillLossTerms {
  Variable total;  // the weighted sum of the terms in use: what backward() is called on
  Variable hidden, attention, logits;  // each 0-dim, undefined when not in use
};

class DistillLoss {
 public:
  // Projections (f32; none unless "hs" is in use) are initialised N(0, 0.02) with zero bias
  // from seed. Errors name the values: a map built for another student depth or a shallower
  // teacher, relation heads that do not divide both widths, a teacher attention layer out of
  // range, no term selected, a negative weight, a temperature <= 0, different vocabularies.
  DistillLoss(const EncoderConfig& student, const EncoderConfig& teacher, LayerMap map,
              const DistillLossOptions& opt, uint64_t seed);

  const DistillLossOptions& options() const { return opt_; }
  const LayerMap& layer_map() const { return map_; }

  // The projections, trained with the student: "distill.proj.{i}.weight" / ".bias" (i = 0 alone
  // when shared). Saved in the training state, never in the student model directory.
  std::vector<std::pair<std::string, Variable>> named_parameters() const;
  // Sets every projection to the identity (zero bias); needs k * C_T == C_S. For tests.
  void set_identity_projections();
  // Converts the projections to dtype, keeping their values: f64 for gradient checks in double
  // (the student's states and the projections must share a dtype). Replaces the Variables, so
  // call named_parameters() again afterwards.
  void set_projection_dtype(DType dtype);

  // student: the student's forward pass (with return_attention when "attn" is in use);
  // student_logits: [B, T, V] when "logits" is in use, else undefined.
  DistillLossTerms compute(Context& ctx, const EncoderOutput& student,
                           const Variable& student_logits, const TeacherTargets& teacher,
                           const Tensor& attention_mask) const;

 private:
  EncoderConfig student_, teacher_;
  LayerMap map_;
  DistillLossOptions opt_;
  std::vector<Variable> proj_w_, proj_b_;
};

}  // namespace kdnas
