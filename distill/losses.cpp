#include "distill/losses.h"

#include <cmath>

#include "autograd/functions.h"
#include "tensor/check.h"
#include "tensor/rng.h"

namespace kdnas {
namespace {

// Splits "hs,attn,logits" at commas (an empty piece stays, so "hs,,attn" is caught).
std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// The attention mask as i64 on the CPU, after checking it is [B, T] like the student's states.
Tensor host_mask(const Tensor& attention_mask, int64_t B, int64_t T) {
  KDNAS_CHECK(
      attention_mask.defined(),
      "distill loss: attention_mask is undefined (pass the batch's i64 [B, T] mask, 1 = token)");
  KDNAS_CHECK(
      attention_mask.dim() == 2 && attention_mask.size(0) == B && attention_mask.size(1) == T,
      "distill loss: attention_mask is ", attention_mask.shape(),
      " but the student's states need [", B, ", ", T, "]");
  return attention_mask.to(cpu_device()).to(DType::I64).contiguous();
}

// A row mask for the loss kernels: u8 [B, R, T] holding mask[b, t] (0 or 1) for every r, reshaped
// to `shape` and moved to `device`. R = 1 gives the token mask itself.
Tensor token_rows(const Tensor& mask, int64_t R, const Shape& shape, Device device) {
  const int64_t B = mask.size(0), T = mask.size(1);
  Tensor rows = Tensor::empty({B, R, T}, DType::U8);
  const int64_t* m = mask.data<int64_t>();
  uint8_t* r = rows.data<uint8_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < R; ++h)
      for (int64_t t = 0; t < T; ++t) r[(b * R + h) * T + t] = m[b * T + t] != 0;
  return rows.reshape(shape).to(device);
}

// MiniLMv2 relation logits of one of Q, K, V: x [B, NH, T, HS] (C = NH * HS) regrouped into R
// relation heads of D = C / R, then x_r x_r^T / sqrt(D) + mask, flattened to rows [B * R * T, T]
// (one row per query) for kl_div. add_mask [B, 1, 1, T] is 0 at tokens and kMaskedScore at
// padding keys: finite, so a masked key has probability exactly 0 on both sides and adds
// p (log p - log q) = 0 * (finite) = 0 to the KL, and gets a zero gradient (q - p = 0).
Variable relation_logits(Context& ctx, const Variable& x, int64_t R, const Tensor& add_mask) {
  const int64_t B = x.shape()[0], NH = x.shape()[1], T = x.shape()[2], HS = x.shape()[3];
  const int64_t C = NH * HS, D = C / R;
  Variable xr = x;
  if (R != NH) {
    // Merge the attention heads back to [B, T, C], then split C into R relation heads.
    Variable merged = reshape(ctx, permute(ctx, x, {0, 2, 1, 3}), {B, T, C});
    xr = permute(ctx, reshape(ctx, merged, {B, T, R, D}), {0, 2, 1, 3});  // [B, R, T, D]
  }
  Variable scores = matmul(ctx, xr, transpose(ctx, xr, -1, -2));  // [B, R, T, T]
  scores = add(ctx, scale(ctx, scores, 1.0 / std::sqrt(double(D))), Variable(add_mask));
  return reshape(ctx, scores, {B * R * T, T});
}

void check_qkv(const char* what, const Tensor& x, int64_t B, int64_t T, int64_t C, int64_t R) {
  KDNAS_CHECK(x.defined(), "distill loss (attn): the ", what, " is undefined");
  KDNAS_CHECK(x.dim() == 4 && x.size(0) == B && x.size(2) == T && x.size(1) * x.size(3) == C,
              "distill loss (attn): the ", what, " is ", x.shape(), " but must be [", B, ", NH, ",
              T, ", HS] with NH * HS = ", C);
  KDNAS_ASSERT(C % R == 0);
}

Variable weighted(Context& ctx, const Variable& total, const Variable& term, double w) {
  Variable t = w == 1.0 ? term : scale(ctx, term, w);
  return total.defined() ? add(ctx, total, t) : t;
}

}  // namespace

void parse_loss_terms(const std::string& spec, DistillLossOptions& opt) {
  bool hs = false, attn = false, logits = false;
  for (const std::string& term : split_commas(spec)) {
    if (term == "hs")
      hs = true;
    else if (term == "attn")
      attn = true;
    else if (term == "logits")
      logits = true;
    else
      KDNAS_CHECK(false, "loss terms '", spec, "': unknown term '", term,
                  "' (expected a comma-separated subset of hs, attn, logits)");
  }
  opt.use_hidden = hs;
  opt.use_attention = attn;
  opt.use_logits = logits;
}

DistillLoss::DistillLoss(const EncoderConfig& student, const EncoderConfig& teacher, LayerMap map,
                         const DistillLossOptions& opt, uint64_t seed)
    : student_(student), teacher_(teacher), map_(std::move(map)), opt_(opt) {
  const int64_t LS = student.num_hidden_layers, LT = teacher.num_hidden_layers;
  const int64_t CS = student.hidden_size, CT = teacher.hidden_size;
  KDNAS_CHECK(opt.use_hidden || opt.use_attention || opt.use_logits,
              "distill loss: no term selected (use_hidden, use_attention and use_logits are all "
              "false; pick a subset of hs, attn, logits)");
  KDNAS_CHECK(map_.student_layers() == LS, "distill loss: the layer map '", layer_map_spec(map_),
              "' has ", map_.student_layers(), " student layers but the student has ", LS);
  const size_t k = map_.targets.empty() ? 0 : map_.targets[0].size();
  for (size_t i = 0; i < map_.targets.size(); ++i) {
    KDNAS_CHECK(map_.targets[i].size() == k && k > 0, "distill loss: layer map entry ", i, " has ",
                map_.targets[i].size(), " teacher layers but entry 0 has ", k,
                " (every entry needs the same number, at least 1)");
    for (int64_t t : map_.targets[i])
      KDNAS_CHECK(t >= 0 && t < LT, "distill loss: the layer map '", layer_map_spec(map_),
                  "' targets teacher layer ", t, " but the teacher has ", LT,
                  " layers (0-based, embeddings excluded)");
  }
  for (auto [name, w] : {std::pair{"hidden_weight", opt.hidden_weight},
                         {"attention_weight", opt.attention_weight},
                         {"logits_weight", opt.logits_weight}})
    KDNAS_CHECK(std::isfinite(w) && w >= 0, "distill loss: ", name, " ", w,
                " must be finite and >= 0");
  if (opt.use_attention) {
    const int64_t R = opt.relation_heads;
    KDNAS_CHECK(R >= 1 && CS % R == 0 && CT % R == 0, "distill loss: relation_heads ", R,
                " must divide both the student's hidden size ", CS, " and the teacher's ", CT);
    KDNAS_CHECK(opt.teacher_attention_layer >= -1 && opt.teacher_attention_layer < LT,
                "distill loss: teacher_attention_layer ", opt.teacher_attention_layer,
                " is outside [0, ", LT, ") (or -1 for the last layer)");
  }
  if (opt.use_logits) {
    KDNAS_CHECK(std::isfinite(opt.temperature) && opt.temperature > 0, "distill loss: temperature ",
                opt.temperature, " must be > 0");
    KDNAS_CHECK(
        student.vocab_size == teacher.vocab_size,
        "distill loss: the logits term needs one vocabulary, but the student's vocab_size is ",
        student.vocab_size, " and the teacher's is ", teacher.vocab_size);
  }
  if (!opt.use_hidden) return;
  // P_i [k * C_T, C_S]: the student's state mapped to the concatenated teacher states.
  Rng rng(seed);
  const int64_t n = opt.shared_projection ? 1 : LS;
  for (int64_t i = 0; i < n; ++i) {
    const std::string p = "distill.proj." + std::to_string(i) + ".";
    Tensor w = Tensor::empty({int64_t(k) * CT, CS});
    rng.fill_normal(w, 0.f, 0.02f);
    proj_w_.push_back(Variable::parameter(w, p + "weight"));
    proj_b_.push_back(Variable::parameter(Tensor::zeros({int64_t(k) * CT}), p + "bias"));
  }
}

std::vector<std::pair<std::string, Variable>> DistillLoss::named_parameters() const {
  std::vector<std::pair<std::string, Variable>> out;
  for (size_t i = 0; i < proj_w_.size(); ++i) {
    out.emplace_back(proj_w_[i].name(), proj_w_[i]);
    out.emplace_back(proj_b_[i].name(), proj_b_[i]);
  }
  return out;
}

void DistillLoss::set_identity_projections() {
  for (size_t i = 0; i < proj_w_.size(); ++i) {
    const Shape& s = proj_w_[i].shape();
    KDNAS_CHECK(s[0] == s[1], "distill loss: an identity projection needs k * C_T == C_S, but ",
                proj_w_[i].name(), " is ", s);
    Tensor eye = Tensor::zeros(s, DType::F64);
    for (int64_t j = 0; j < s[0]; ++j) eye.data<double>()[j * s[1] + j] = 1.0;
    proj_w_[i].set_value(eye.to(proj_w_[i].dtype()));
    proj_b_[i].set_value(Tensor::zeros(proj_b_[i].shape(), proj_b_[i].dtype()));
  }
}

void DistillLoss::set_projection_dtype(DType dtype) {
  for (std::vector<Variable>* vs : {&proj_w_, &proj_b_})
    for (Variable& v : *vs) v = Variable::parameter(v.value().to(dtype).contiguous(), v.name());
}

DistillLossTerms DistillLoss::compute(Context& ctx, const EncoderOutput& student,
                                      const Variable& student_logits, const TeacherTargets& teacher,
                                      const Tensor& attention_mask) const {
  const int64_t LS = student_.num_hidden_layers, LT = teacher_.num_hidden_layers;
  const int64_t CS = student_.hidden_size, CT = teacher_.hidden_size;
  KDNAS_CHECK(int64_t(student.hidden.size()) == LS + 1, "distill loss: the student output has ",
              student.hidden.size(), " hidden states but a ", LS, "-layer student has ", LS + 1);
  const Shape& hs = student.hidden[0].shape();
  KDNAS_CHECK(hs.size() == 3 && hs[2] == CS, "distill loss: the student's states are ", hs,
              " but must be [B, T, ", CS, "]");
  const int64_t B = hs[0], T = hs[1];
  const Device dev = student.hidden[0].value().device();
  const DType dtype = student.hidden[0].dtype();
  const Tensor mask = host_mask(attention_mask, B, T);
  DistillLossTerms out;

  if (opt_.use_hidden) {
    // Mean over layers of the MSE over real tokens: a padded row is in neither the sum nor the
    // count, whatever the student or the teacher hold there.
    KDNAS_CHECK(int64_t(teacher.hidden.size()) == LT + 1, "distill loss (hs): the teacher gave ",
                teacher.hidden.size(), " hidden states but a ", LT, "-layer teacher has ", LT + 1);
    const Tensor rows = token_rows(mask, 1, {B, T}, dev);
    Variable sum_layers;
    for (int64_t i = 0; i < LS; ++i) {
      std::vector<Variable> parts;
      for (int64_t t : map_.targets[size_t(i)]) {
        const Tensor& h = teacher.hidden[size_t(t + 1)];
        KDNAS_CHECK(h.defined() && h.shape() == Shape({B, T, CT}),
                    "distill loss (hs): teacher hidden state ", t + 1, " is ", h.shape(),
                    " but must be [", B, ", ", T, ", ", CT, "]");
        parts.emplace_back(h);
      }
      Variable target = parts.size() == 1 ? parts[0] : concat(ctx, parts, -1);  // [B, T, k C_T]
      const size_t p = opt_.shared_projection ? 0 : size_t(i);
      Variable pred = linear(ctx, student.hidden[size_t(i + 1)], proj_w_[p], proj_b_[p]);
      Variable l = mse(ctx, pred, target, rows);
      sum_layers = sum_layers.defined() ? add(ctx, sum_layers, l) : l;
    }
    out.hidden = scale(ctx, sum_layers, 1.0 / double(LS));
  }

  if (opt_.use_attention) {
    KDNAS_CHECK(int64_t(student.attention.size()) == LS,
                "distill loss (attn): the student output has ", student.attention.size(),
                " attention entries but needs ", LS,
                " (run the student's forward with return_attention)");
    const int64_t R = opt_.relation_heads;
    const LayerAttention& sa = student.attention.back();
    // The additive key mask in the scores' dtype, on their device.
    const Tensor add_mask = additive_attention_mask(mask).to(dtype).to(dev);
    const Tensor rows = token_rows(mask, R, {B * R * T}, dev);  // real query rows, every head
    Variable sum_rel;
    const std::pair<const Variable*, const Tensor*> xs[] = {
        {&sa.q, &teacher.q}, {&sa.k, &teacher.k}, {&sa.v, &teacher.v}};
    const char* names[] = {"q", "k", "v"};
    for (int r = 0; r < 3; ++r) {
      const Variable& s = *xs[r].first;
      const Tensor& t = *xs[r].second;
      KDNAS_CHECK(s.defined(), "distill loss (attn): the student's last-layer ", names[r],
                  " is undefined");
      check_qkv((std::string("student's ") + names[r]).c_str(), s.value(), B, T, CS, R);
      check_qkv((std::string("teacher's ") + names[r]).c_str(), t, B, T, CT, R);
      Tensor t_logits;
      {
        NoGradGuard no_grad;  // the teacher's relations are constants
        t_logits = relation_logits(ctx, Variable(t), R, add_mask).value();
      }
      Variable kl = kl_div(ctx, relation_logits(ctx, s, R, add_mask), t_logits, 1.0, rows);
      sum_rel = sum_rel.defined() ? add(ctx, sum_rel, kl) : kl;
    }
    out.attention = scale(ctx, sum_rel, 1.0 / 3.0);
  }

  if (opt_.use_logits) {
    KDNAS_CHECK(student_logits.defined() && student_logits.dim() == 3 &&
                    student_logits.shape()[0] == B && student_logits.shape()[1] == T,
                "distill loss (logits): the student's logits are ",
                student_logits.defined() ? student_logits.shape() : Shape{}, " but must be [", B,
                ", ", T, ", V]");
    const int64_t V = student_logits.shape()[2];
    KDNAS_CHECK(teacher.logits.defined() && teacher.logits.shape() == student_logits.shape(),
                "distill loss (logits): the teacher's logits are ",
                teacher.logits.defined() ? teacher.logits.shape() : Shape{},
                " but the student's are ", student_logits.shape());
    const Tensor rows = token_rows(mask, 1, {B * T}, dev);
    out.logits = kl_div(ctx, reshape(ctx, student_logits, {B * T, V}),
                        teacher.logits.reshape({B * T, V}), opt_.temperature, rows);
  }

  if (out.hidden.defined()) out.total = weighted(ctx, out.total, out.hidden, opt_.hidden_weight);
  if (out.attention.defined())
    out.total = weighted(ctx, out.total, out.attention, opt_.attention_weight);
  if (out.logits.defined()) out.total = weighted(ctx, out.total, out.logits, opt_.logits_weight);
  return out;
}

}  // namespace kdnas
