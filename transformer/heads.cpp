#include "transformer/heads.h"

#include "autograd/functions.h"

namespace kdnas {
namespace {
Variable normal_param(const Shape& s, double std, Rng& rng, const std::string& name) {
  Tensor t = Tensor::empty(s);
  rng.fill_normal(t, 0.f, float(std));
  return Variable::parameter(t, name);
}
Variable const_param(const Shape& s, double v, const std::string& name) {
  return Variable::parameter(Tensor::full(s, v), name);
}
}  // namespace

MlmHead MlmHead::init_random(int64_t C, int64_t V, double init_range, double ln_eps, Rng& rng) {
  MlmHead h;
  h.dense_w = normal_param({C, C}, init_range, rng, "lm_head.dense.weight");
  h.dense_b = const_param({C}, 0.0, "lm_head.dense.bias");
  h.ln_w = const_param({C}, 1.0, "lm_head.layer_norm.weight");
  h.ln_b = const_param({C}, 0.0, "lm_head.layer_norm.bias");
  h.bias = const_param({V}, 0.0, "lm_head.bias");
  h.ln_eps = ln_eps;
  return h;
}

Variable MlmHead::forward(Context& ctx, const Variable& x, const Variable& word_embeddings) const {
  Variable h = gelu(ctx, linear(ctx, x, dense_w, dense_b));
  h = layer_norm(ctx, h, ln_w, ln_b, ln_eps);
  return linear(ctx, h, word_embeddings, bias);  // tied decoder: E is [V, C], like a Linear weight
}

std::vector<std::pair<std::string, Variable>> MlmHead::named_parameters() const {
  return {{"lm_head.dense.weight", dense_w},
          {"lm_head.dense.bias", dense_b},
          {"lm_head.layer_norm.weight", ln_w},
          {"lm_head.layer_norm.bias", ln_b},
          {"lm_head.bias", bias}};
}

ClassificationHead ClassificationHead::init_random(int64_t C, int64_t num_labels, double init_range,
                                                   Rng& rng) {
  ClassificationHead h;
  h.dense_w = normal_param({C, C}, init_range, rng, "classifier.dense.weight");
  h.dense_b = const_param({C}, 0.0, "classifier.dense.bias");
  h.out_w = normal_param({num_labels, C}, init_range, rng, "classifier.out_proj.weight");
  h.out_b = const_param({num_labels}, 0.0, "classifier.out_proj.bias");
  return h;
}

Variable ClassificationHead::forward(Context& ctx, const Variable& x, double dropout_p, Rng* rng,
                                     bool train) const {
  KDNAS_CHECK(!train || rng != nullptr, "classifier: training forward needs an Rng for dropout");
  Rng dummy(0);
  Rng& r = rng ? *rng : dummy;
  const int64_t B = x.shape()[0], C = x.shape()[2];
  Variable first = reshape(ctx, narrow(ctx, x, 1, 0, 1), {B, C});  // the <s> token
  Variable h = tanh(ctx, linear(ctx, dropout(ctx, first, dropout_p, r, train), dense_w, dense_b));
  return linear(ctx, dropout(ctx, h, dropout_p, r, train), out_w, out_b);
}

std::vector<std::pair<std::string, Variable>> ClassificationHead::named_parameters() const {
  return {{"classifier.dense.weight", dense_w},
          {"classifier.dense.bias", dense_b},
          {"classifier.out_proj.weight", out_w},
          {"classifier.out_proj.bias", out_b}};
}

}  // namespace kdnas
