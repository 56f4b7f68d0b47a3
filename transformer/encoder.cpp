#include "transformer/encoder.h"

#include <cmath>

#include "autograd/functions.h"

namespace kdnas {
namespace {

// The (name, slot) table behind named_parameters() and from_tensors(): the single place that
// spells Hugging Face's parameter names.
std::vector<std::pair<std::string, Variable*>> layer_slots(EncoderLayer& l, int64_t i) {
  const std::string p = "encoder.layer." + std::to_string(i) + ".";
  return {
      {p + "attention.self.query.weight", &l.query_w},
      {p + "attention.self.query.bias", &l.query_b},
      {p + "attention.self.key.weight", &l.key_w},
      {p + "attention.self.key.bias", &l.key_b},
      {p + "attention.self.value.weight", &l.value_w},
      {p + "attention.self.value.bias", &l.value_b},
      {p + "attention.output.dense.weight", &l.attn_out_w},
      {p + "attention.output.dense.bias", &l.attn_out_b},
      {p + "attention.output.LayerNorm.weight", &l.attn_ln_w},
      {p + "attention.output.LayerNorm.bias", &l.attn_ln_b},
      {p + "intermediate.dense.weight", &l.inter_w},
      {p + "intermediate.dense.bias", &l.inter_b},
      {p + "output.dense.weight", &l.out_w},
      {p + "output.dense.bias", &l.out_b},
      {p + "output.LayerNorm.weight", &l.out_ln_w},
      {p + "output.LayerNorm.bias", &l.out_ln_b},
  };
}

std::vector<std::pair<std::string, Variable*>> all_slots(Encoder& e) {
  std::vector<std::pair<std::string, Variable*>> s = {
      {"embeddings.word_embeddings.weight", &e.word_embeddings},
      {"embeddings.position_embeddings.weight", &e.position_embeddings},
      {"embeddings.token_type_embeddings.weight", &e.token_type_embeddings},
      {"embeddings.LayerNorm.weight", &e.emb_ln_w},
      {"embeddings.LayerNorm.bias", &e.emb_ln_b},
  };
  for (size_t i = 0; i < e.layers.size(); ++i)
    for (auto& slot : layer_slots(e.layers[i], int64_t(i))) s.push_back(slot);
  return s;
}

// The shape every parameter must have under cfg, by the last part of its name.
Shape expected_shape(const EncoderConfig& cfg, const std::string& name) {
  const int64_t C = cfg.hidden_size, FF = cfg.intermediate_size;
  auto ends = [&](const char* s) {
    const std::string suf(s);
    return name.size() >= suf.size() &&
           name.compare(name.size() - suf.size(), suf.size(), suf) == 0;
  };
  if (ends("word_embeddings.weight")) return {cfg.vocab_size, C};
  if (ends("position_embeddings.weight")) return {cfg.max_position_embeddings, C};
  if (ends("token_type_embeddings.weight")) return {cfg.type_vocab_size, C};
  if (ends("intermediate.dense.weight")) return {FF, C};
  if (ends("intermediate.dense.bias")) return {FF};
  if (ends("output.dense.weight") && !ends("attention.output.dense.weight")) return {C, FF};
  if (ends(".weight") && name.find("LayerNorm") == std::string::npos) return {C, C};
  return {C};
}

}  // namespace

Encoder Encoder::init_random(const EncoderConfig& cfg, uint64_t seed) {
  cfg.validate();
  Encoder e;
  e.cfg_ = cfg;
  e.layers.resize(size_t(cfg.num_hidden_layers));
  Rng rng(seed);
  for (auto& [name, slot] : all_slots(e)) {
    Tensor t = Tensor::zeros(expected_shape(cfg, name));
    const bool is_ln = name.find("LayerNorm") != std::string::npos;
    if (is_ln && name.ends_with(".weight"))
      t.fill_(1.0);
    else if (!is_ln && name.ends_with(".weight"))
      rng.fill_normal(t, 0.f, float(cfg.initializer_range));
    *slot = Variable::parameter(t, name);
  }
  // Hugging Face zeroes the padding row of the embedding tables (nn.Embedding padding_idx).
  for (Variable* table : {&e.word_embeddings, &e.position_embeddings}) {
    Tensor t = table->value();
    if (cfg.pad_token_id >= 0 && cfg.pad_token_id < t.size(0))
      t.select(0, cfg.pad_token_id).fill_(0.0);
  }
  return e;
}

Encoder Encoder::from_tensors(const EncoderConfig& cfg,
                              const std::vector<std::pair<std::string, Tensor>>& tensors) {
  cfg.validate();
  Encoder e;
  e.cfg_ = cfg;
  e.layers.resize(size_t(cfg.num_hidden_layers));
  for (auto& [name, slot] : all_slots(e)) {
    const Tensor* found = nullptr;
    for (const auto& [n, t] : tensors)
      if (n == name) found = &t;
    KDNAS_CHECK(found != nullptr, "model: tensor '", name, "' is missing");
    const Shape want = expected_shape(cfg, name);
    KDNAS_CHECK(found->shape() == want, "model: tensor '", name, "' has shape ", found->shape(),
                " but the config needs ", want);
    *slot = Variable::parameter(found->to(DType::F32).contiguous(), name);
  }
  return e;
}

std::vector<std::pair<std::string, Variable>> Encoder::named_parameters() const {
  std::vector<std::pair<std::string, Variable>> out;
  for (auto& [name, slot] : all_slots(const_cast<Encoder&>(*this))) out.emplace_back(name, *slot);
  return out;
}

int64_t Encoder::parameter_count(bool include_embeddings) const {
  int64_t n = 0;
  for (const auto& [name, v] : named_parameters())
    if (include_embeddings || name.rfind("embeddings.", 0) != 0) n += v.numel();
  return n;
}

void move_parameters(const std::vector<std::pair<std::string, Variable>>& params, Device device) {
  for (const auto& [name, v] : params)
    if (v.defined() && !(v.value().device() == device)) v.set_value(v.value().to(device));
}

void Encoder::to(Device device) {
  move_parameters(named_parameters(), device);
}

Tensor roberta_position_ids(const Tensor& ids, int64_t pad_id) {
  KDNAS_CHECK(ids.dtype() == DType::I64 && ids.dim() == 2, "encoder: ids must be i64 [B, T], got ",
              dtype_name(ids.dtype()), " ", ids.shape());
  Tensor c = ids.contiguous();
  Tensor pos = Tensor::empty(ids.shape(), DType::I64);
  const int64_t B = ids.size(0), T = ids.size(1);
  const int64_t* ip = c.data<int64_t>();
  int64_t* pp = pos.data<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    int64_t count = 0;
    for (int64_t t = 0; t < T; ++t) {
      const bool real = ip[b * T + t] != pad_id;
      count += real;
      pp[b * T + t] = real ? count + pad_id : pad_id;
    }
  }
  return pos;
}

Tensor additive_attention_mask(const Tensor& attention_mask) {
  KDNAS_CHECK(attention_mask.dim() == 2, "encoder: attention_mask must be [B, T], got ",
              attention_mask.shape());
  const int64_t B = attention_mask.size(0), T = attention_mask.size(1);
  Tensor m = attention_mask.to(DType::I64).contiguous();
  Tensor add = Tensor::empty({B, 1, 1, T});
  const int64_t* mp = m.data<int64_t>();
  float* ap = add.data<float>();
  for (int64_t i = 0; i < B * T; ++i) ap[i] = mp[i] != 0 ? 0.f : kMaskedScore;
  return add;
}

EncoderOutput Encoder::forward(Context& ctx, const Tensor& ids, const Tensor& attention_mask,
                               const ForwardOptions& opt) const {
  const EncoderConfig& cfg = cfg_;
  KDNAS_CHECK(ids.dtype() == DType::I64 && ids.dim() == 2, "encoder: ids must be i64 [B, T], got ",
              dtype_name(ids.dtype()), " ", ids.shape());
  const int64_t B = ids.size(0), T = ids.size(1), C = cfg.hidden_size;
  const int64_t NH = cfg.num_attention_heads, HS = C / NH;
  KDNAS_CHECK(T + cfg.pad_token_id < cfg.max_position_embeddings, "encoder: sequence length ", T,
              " is too long for max_position_embeddings ", cfg.max_position_embeddings);
  KDNAS_CHECK(!opt.train || opt.rng != nullptr,
              "encoder: training forward needs an Rng for dropout");
  Tensor mask = attention_mask.defined() ? attention_mask : Tensor::ones({B, T}, DType::I64);
  KDNAS_CHECK(mask.shape() == ids.shape(), "encoder: attention_mask is ", mask.shape(),
              " but ids are ", ids.shape());
  // The position ids and the additive mask are computed on the host (from host copies of ids
  // and mask, which may live on either device), then everything the ops read goes where the
  // parameters are. On the CPU every .to() below returns its argument.
  const Device dev = device();
  const Tensor ids_host = ids.to(cpu_device());
  const Tensor ids_dev = ids.to(dev);
  const Tensor add_mask = additive_attention_mask(mask.to(cpu_device())).to(dev);
  Rng dummy(0);
  Rng& rng = opt.rng ? *opt.rng : dummy;
  const double hp = cfg.hidden_dropout_prob, ap = cfg.attention_probs_dropout_prob;

  // Embeddings: word + position + token type 0 (every token has type 0 in XLM-R), then LN.
  // The pad rows get no gradient, as nn.Embedding(padding_idx = pad) in Hugging Face.
  const int64_t pad = cfg.pad_token_id;
  Variable x = embedding(ctx, ids_dev, word_embeddings, pad);
  x = add(ctx, x,
          embedding(ctx, roberta_position_ids(ids_host, pad).to(dev), position_embeddings, pad));
  x = add(ctx, x, narrow(ctx, token_type_embeddings, 0, 0, 1));  // [1, C] broadcasts
  x = layer_norm(ctx, x, emb_ln_w, emb_ln_b, cfg.layer_norm_eps);
  x = dropout(ctx, x, hp, rng, opt.train);

  EncoderOutput out;
  out.attention_mask = mask;
  out.hidden.push_back(x);
  const double score_scale = 1.0 / std::sqrt(double(HS));
  for (const EncoderLayer& l : layers) {
    // [B, T, C] -> [B, NH, T, HS]: each head attends over its own HS-wide slice.
    auto heads = [&](const Variable& v) {
      return permute(ctx, view(ctx, v, {B, T, NH, HS}), {0, 2, 1, 3});
    };
    Variable q = heads(linear(ctx, x, l.query_w, l.query_b));
    Variable k = heads(linear(ctx, x, l.key_w, l.key_b));
    Variable v = heads(linear(ctx, x, l.value_w, l.value_b));
    // softmax(q k^T / sqrt(HS) + mask): the scale and the padding mask are fused into softmax.
    Variable probs = softmax(ctx, matmul(ctx, q, transpose(ctx, k, -1, -2)), add_mask, score_scale);
    if (opt.return_attention) out.attention.push_back({q, k, v, probs});
    Variable ctxv = matmul(ctx, dropout(ctx, probs, ap, rng, opt.train), v);  // [B, NH, T, HS]
    ctxv = reshape(ctx, permute(ctx, ctxv, {0, 2, 1, 3}), {B, T, C});
    Variable a = dropout(ctx, linear(ctx, ctxv, l.attn_out_w, l.attn_out_b), hp, rng, opt.train);
    Variable h1 = layer_norm(ctx, add(ctx, x, a), l.attn_ln_w, l.attn_ln_b, cfg.layer_norm_eps);
    Variable f = gelu(ctx, linear(ctx, h1, l.inter_w, l.inter_b));
    f = dropout(ctx, linear(ctx, f, l.out_w, l.out_b), hp, rng, opt.train);
    x = layer_norm(ctx, add(ctx, h1, f), l.out_ln_w, l.out_ln_b, cfg.layer_norm_eps);
    out.hidden.push_back(x);
  }
  return out;
}

}  // namespace kdnas
