// The distillation losses (distill/losses.h): values against a naive re-implementation, zero
// when the student is the teacher, positive otherwise, numerical gradients in double, an
// end-to-end directional-derivative check through a real encoder, padding invariance, misuse.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/functions.h"
#include "distill/losses.h"
#include "tests/autograd/autograd_check.h"
#include "tests/test_util.h"
#include "transformer/heads.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

using In = std::vector<Variable>;

// A tiny XLM-R-like config. The large initializer_range gives relations and logits that differ
// clearly between two random models (at 0.02 every softmax is nearly uniform).
EncoderConfig tiny(int64_t C, int64_t L, int64_t NH, int64_t V = 40) {
  EncoderConfig c;
  c.vocab_size = V;
  c.hidden_size = C;
  c.num_hidden_layers = L;
  c.num_attention_heads = NH;
  c.intermediate_size = 2 * C;
  c.max_position_embeddings = 40;
  c.type_vocab_size = 1;
  c.layer_norm_eps = 1e-5;
  c.hidden_dropout_prob = 0;
  c.attention_probs_dropout_prob = 0;
  c.initializer_range = 0.5;
  return c;
}

// i64 [B, T] masks; row b has lengths[b] tokens, then padding.
Tensor make_mask(const std::vector<int64_t>& lengths, int64_t T) {
  const int64_t B = int64_t(lengths.size());
  Tensor m = Tensor::zeros({B, T}, DType::I64);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < lengths[size_t(b)]; ++t) m.data<int64_t>()[b * T + t] = 1;
  return m;
}

struct Batch {
  Tensor ids, mask;  // i64 [B, T]
};

// B = 3, T = 6: a full row, a row with two padding tokens, a row with a single token.
Batch make_batch(int64_t V, int64_t pad_id, uint64_t seed) {
  const int64_t T = 6;
  Batch b;
  b.mask = make_mask({6, 4, 1}, T);
  b.ids = Tensor::empty({3, T}, DType::I64);
  Rng rng(seed);
  for (int64_t i = 0; i < 3 * T; ++i)
    b.ids.data<int64_t>()[i] =
        b.mask.data<int64_t>()[i] ? 3 + int64_t(rng.below(uint64_t(V - 3))) : pad_id;
  return b;
}

// A model with its MLM head (for the logits term).
struct Model {
  Encoder enc;
  MlmHead head;
  Model(const EncoderConfig& cfg, uint64_t seed) : enc(Encoder::init_random(cfg, seed)) {
    Rng rng(seed + 1000);
    head = MlmHead::init_random(cfg.hidden_size, cfg.vocab_size, cfg.initializer_range,
                                cfg.layer_norm_eps, rng);
  }
  EncoderOutput forward(Context& ctx, const Batch& b) const {
    ForwardOptions fo;
    fo.return_attention = true;
    return enc.forward(ctx, b.ids, b.mask, fo);
  }
  Variable logits(Context& ctx, const EncoderOutput& out) const {
    return head.forward(ctx, out.hidden.back(), enc.word_embeddings);
  }
};

// What a teacher contributes for one batch; attn_layer 0-based (-1: the last).
TeacherTargets teacher_targets(Context& ctx, const Model& m, const Batch& b, int64_t attn_layer) {
  NoGradGuard no_grad;
  EncoderOutput out = m.forward(ctx, b);
  TeacherTargets t;
  for (const Variable& h : out.hidden) t.hidden.push_back(h.value());
  const size_t l = attn_layer < 0 ? out.attention.size() - 1 : size_t(attn_layer);
  t.q = out.attention[l].q.value();
  t.k = out.attention[l].k.value();
  t.v = out.attention[l].v.value();
  t.logits = m.logits(ctx, out).value();
  return t;
}

DistillLossOptions all_terms(int64_t R) {
  DistillLossOptions o;
  o.use_hidden = o.use_attention = o.use_logits = true;
  o.relation_heads = R;
  return o;
}

DistillLossOptions only(const std::string& terms, int64_t R = 2) {
  DistillLossOptions o;
  o.relation_heads = R;
  parse_loss_terms(terms, o);
  return o;
}

// ---- synthetic student outputs and teacher targets (any dtype), for gradient checks --------

struct Synthetic {
  EncoderOutput student;  // hidden[0..L_S] and attention.back() q, k, v are leaves
  Variable logits;        // a leaf [B, T, V]
  TeacherTargets teacher;
  Tensor mask;
};

Synthetic make_synthetic(const EncoderConfig& s, const EncoderConfig& t, const Tensor& mask,
                         DType dtype, uint64_t seed) {
  Rng rng(seed);
  const int64_t B = mask.size(0), T = mask.size(1), V = s.vocab_size;
  auto leaf = [&](const Shape& shape) {
    return Variable::parameter(random_tensor(shape, rng, dtype, -1.5f, 1.5f), "");
  };
  auto constant = [&](const Shape& shape) { return random_tensor(shape, rng, dtype, -1.5f, 1.5f); };
  Synthetic x;
  x.mask = mask;
  for (int64_t i = 0; i <= s.num_hidden_layers; ++i)
    x.student.hidden.push_back(leaf({B, T, s.hidden_size}));
  x.student.attention.resize(size_t(s.num_hidden_layers));
  const Shape qs = {B, s.num_attention_heads, T, s.head_size()};
  x.student.attention.back() = {leaf(qs), leaf(qs), leaf(qs), Variable()};
  x.student.attention_mask = mask;
  x.logits = leaf({B, T, V});
  for (int64_t i = 0; i <= t.num_hidden_layers; ++i)
    x.teacher.hidden.push_back(constant({B, T, t.hidden_size}));
  const Shape qt = {B, t.num_attention_heads, T, t.head_size()};
  x.teacher.q = constant(qt);
  x.teacher.k = constant(qt);
  x.teacher.v = constant(qt);
  x.teacher.logits = constant({B, T, V});
  return x;
}

// Overwrites every element of x (contiguous, any float dtype) at a padded token with a random
// value; tdim is x's token dim, dim 0 its batch dim.
void scramble_padding(const Tensor& x, int64_t tdim, const Tensor& mask, Rng& rng) {
  REQUIRE(x.is_contiguous());
  const int64_t T = mask.size(1);
  char* p = static_cast<char*>(x.raw_data());
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t b = i / x.stride(0), t = (i / x.stride(tdim)) % x.size(tdim);
    if (mask.data<int64_t>()[b * T + t] == 0)
      store_from_double(p + i * int64_t(x.element_size()), x.dtype(), rng.uniform(-50.f, 50.f));
  }
}

// ---- naive re-implementations, in double, straight from the formulas in losses.h -----------

double at4(const Tensor& x, int64_t a, int64_t b, int64_t c, int64_t d) {
  return x.at({a, b, c, d});
}

// Row i of softmax(scores) over the real keys only (padded keys have probability 0).
std::vector<double> masked_softmax(const std::vector<double>& s, const std::vector<bool>& real) {
  double mx = -INFINITY, z = 0;
  for (size_t j = 0; j < s.size(); ++j)
    if (real[j]) mx = std::max(mx, s[j]);
  std::vector<double> p(s.size(), 0.0);
  for (size_t j = 0; j < s.size(); ++j)
    if (real[j]) z += p[j] = std::exp(s[j] - mx);
  for (double& v : p) v /= z;
  return p;
}

double naive_relation_kl(const Tensor& xs, const Tensor& xt, const Tensor& mask, int64_t R) {
  const int64_t B = mask.size(0), T = mask.size(1);
  // Element c of the merged [B, T, C] view of x [B, NH, T, HS].
  auto merged = [](const Tensor& x, int64_t b, int64_t t, int64_t c) {
    const int64_t HS = x.size(3);
    return at4(x, b, c / HS, t, c % HS);
  };
  auto rel_row = [&](const Tensor& x, int64_t b, int64_t r, int64_t i,
                     const std::vector<bool>& real) {
    const int64_t D = x.size(1) * x.size(3) / R;
    std::vector<double> s(static_cast<size_t>(T));
    for (int64_t j = 0; j < T; ++j) {
      double dot = 0;
      for (int64_t d = 0; d < D; ++d)
        dot += merged(x, b, i, r * D + d) * merged(x, b, j, r * D + d);
      s[size_t(j)] = dot / std::sqrt(double(D));
    }
    return masked_softmax(s, real);
  };
  double sum = 0;
  int64_t rows = 0;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<bool> real(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) real[size_t(t)] = mask.at({b, t}) != 0;
    for (int64_t r = 0; r < R; ++r)
      for (int64_t i = 0; i < T; ++i) {
        if (!real[size_t(i)]) continue;
        const std::vector<double> p = rel_row(xt, b, r, i, real), q = rel_row(xs, b, r, i, real);
        for (int64_t j = 0; j < T; ++j)
          if (real[size_t(j)]) sum += p[size_t(j)] * std::log(p[size_t(j)] / q[size_t(j)]);
        ++rows;
      }
  }
  return sum / double(rows);
}

double naive_hidden(const Synthetic& x, const DistillLoss& loss) {
  const auto params = loss.named_parameters();
  const LayerMap& map = loss.layer_map();
  const int64_t B = x.mask.size(0), T = x.mask.size(1);
  double total = 0;
  for (int64_t i = 0; i < map.student_layers(); ++i) {
    const size_t p = loss.options().shared_projection ? 0 : size_t(i);
    const Tensor& w = params[2 * p].second.value();
    const Tensor& bias = params[2 * p + 1].second.value();
    const Tensor& h = x.student.hidden[size_t(i + 1)].value();
    double s = 0;
    int64_t rows = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        if (x.mask.at({b, t}) == 0) continue;
        ++rows;
        int64_t n = 0;
        for (int64_t tl : map.targets[size_t(i)]) {
          const Tensor& ht = x.teacher.hidden[size_t(tl + 1)];
          for (int64_t c = 0; c < ht.size(2); ++c, ++n) {
            double pred = bias.at({n});
            for (int64_t k = 0; k < h.size(2); ++k) pred += w.at({n, k}) * h.at({b, t, k});
            const double d = pred - ht.at({b, t, c});
            s += d * d;
          }
        }
        REQUIRE(n == w.size(0));
      }
    total += s / double(rows * w.size(0));
  }
  return total / double(map.student_layers());
}

double naive_logits(const Synthetic& x, double tau) {
  const int64_t B = x.mask.size(0), T = x.mask.size(1), V = x.logits.shape()[2];
  const std::vector<bool> all(static_cast<size_t>(V), true);
  double sum = 0;
  int64_t rows = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      if (x.mask.at({b, t}) == 0) continue;
      std::vector<double> zs(static_cast<size_t>(V)), zt(static_cast<size_t>(V));
      for (int64_t v = 0; v < V; ++v) {
        zs[size_t(v)] = x.logits.value().at({b, t, v}) / tau;
        zt[size_t(v)] = x.teacher.logits.at({b, t, v}) / tau;
      }
      const std::vector<double> p = masked_softmax(zt, all), q = masked_softmax(zs, all);
      for (int64_t v = 0; v < V; ++v) sum += p[size_t(v)] * std::log(p[size_t(v)] / q[size_t(v)]);
      ++rows;
    }
  return tau * tau * sum / double(rows);
}

double value(const Variable& v) {
  return v.value().item();
}

}  // namespace

TEST_SUITE("distill") {
  TEST_CASE("distill losses: parse_loss_terms") {
    DistillLossOptions o;
    parse_loss_terms("hs,attn,logits", o);
    CHECK((o.use_hidden && o.use_attention && o.use_logits));
    parse_loss_terms("logits,hs", o);
    CHECK((o.use_hidden && !o.use_attention && o.use_logits));
    parse_loss_terms("attn", o);
    CHECK((!o.use_hidden && o.use_attention && !o.use_logits));
    check_throws_with([&] { parse_loss_terms("", o); }, {"loss terms ''", "hs, attn, logits"});
    check_throws_with([&] { parse_loss_terms("hs,foo", o); }, {"'hs,foo'", "unknown term 'foo'"});
    check_throws_with([&] { parse_loss_terms("hs,,attn", o); }, {"'hs,,attn'", "unknown term ''"});
    check_throws_with([&] { parse_loss_terms("HS", o); }, {"'HS'"});
    check_throws_with([&] { parse_loss_terms("hs, attn", o); }, {"' attn'"});
  }

  TEST_CASE("distill losses: projections are named, shaped and initialised as documented") {
    const EncoderConfig s = tiny(8, 2, 2), t = tiny(16, 4, 4);
    DistillLoss per_layer(s, t, make_layer_map(LayerMapKind::UniformLast, 2, 4), only("hs"), 7);
    auto ps = per_layer.named_parameters();
    REQUIRE(ps.size() == 4);
    CHECK(ps[0].first == "distill.proj.0.weight");
    CHECK(ps[1].first == "distill.proj.0.bias");
    CHECK(ps[2].first == "distill.proj.1.weight");
    CHECK(ps[3].first == "distill.proj.1.bias");
    for (size_t i = 0; i < ps.size(); i += 2) {
      CHECK(ps[i].second.shape() == Shape({32, 8}));  // [k * C_T, C_S], k = 2
      CHECK(ps[i + 1].second.shape() == Shape({32}));
      CHECK(ps[i].second.requires_grad());
      CHECK(ps[i].second.name() == ps[i].first);
      CHECK(ps[i].second.dtype() == DType::F32);
      const std::vector<float> w = ps[i].second.value().to_vector<float>();
      double m2 = 0;
      for (float v : w) m2 += double(v) * v;
      CHECK(std::sqrt(m2 / double(w.size())) == doctest::Approx(0.02).epsilon(0.2));
      for (float v : ps[i + 1].second.value().to_vector<float>()) CHECK(v == 0.f);
    }
    // Same seed, same values; another seed, others.
    DistillLoss again(s, t, make_layer_map(LayerMapKind::UniformLast, 2, 4), only("hs"), 7);
    DistillLoss other(s, t, make_layer_map(LayerMapKind::UniformLast, 2, 4), only("hs"), 8);
    CHECK(again.named_parameters()[0].second.value().to_vector<float>() ==
          ps[0].second.value().to_vector<float>());
    CHECK(other.named_parameters()[0].second.value().to_vector<float>() !=
          ps[0].second.value().to_vector<float>());

    DistillLossOptions shared = only("hs");
    shared.shared_projection = true;
    DistillLoss one(s, t, make_layer_map(LayerMapKind::Last, 2, 4), shared, 7);
    ps = one.named_parameters();
    REQUIRE(ps.size() == 2);
    CHECK(ps[0].first == "distill.proj.0.weight");
    CHECK(ps[0].second.shape() == Shape({16, 8}));  // k = 1
    // Without the hidden-state term there is nothing to project.
    CHECK(DistillLoss(s, t, make_layer_map(LayerMapKind::Last, 2, 4), only("attn", 4), 7)
              .named_parameters()
              .empty());
    // set_projection_dtype keeps values and names.
    const std::vector<float> w0 = ps[0].second.value().to_vector<float>();
    one.set_projection_dtype(DType::F64);
    ps = one.named_parameters();
    CHECK(ps[0].second.dtype() == DType::F64);
    CHECK(ps[0].second.requires_grad());
    CHECK(ps[0].first == "distill.proj.0.weight");
    const std::vector<double> w1 = ps[0].second.value().to_vector<double>();
    for (size_t i = 0; i < w0.size(); ++i) CHECK(w1[i] == double(w0[i]));
  }

  TEST_CASE("distill losses: each term matches a naive re-implementation") {
    Context ctx(Backend::Ref);
    const EncoderConfig s = tiny(8, 2, 2, 7), t = tiny(12, 3, 2, 7);
    const Tensor mask = make_mask({4, 3}, 4);
    for (const char* spec : {"uniform+last", "uniform", "last", "2,0"})
      for (bool shared : {false, true})
        for (int64_t R : {2, 4}) {
          INFO("map " << spec << (shared ? " shared" : "") << ", R = " << R);
          DistillLossOptions o = all_terms(R);
          o.shared_projection = shared;
          o.temperature = 1.7;
          o.hidden_weight = 0.5;
          o.attention_weight = 2;
          o.logits_weight = 3;
          DistillLoss loss(s, t, parse_layer_map(spec, 2, 3), o, 3);
          loss.set_projection_dtype(DType::F64);
          const Synthetic x = make_synthetic(s, t, mask, DType::F64, 11);
          const DistillLossTerms terms = loss.compute(ctx, x.student, x.logits, x.teacher, mask);
          const double h = naive_hidden(x, loss);
          const LayerAttention& sa = x.student.attention.back();
          const double a = (naive_relation_kl(sa.q.value(), x.teacher.q, mask, R) +
                            naive_relation_kl(sa.k.value(), x.teacher.k, mask, R) +
                            naive_relation_kl(sa.v.value(), x.teacher.v, mask, R)) /
                           3;
          const double l = naive_logits(x, 1.7);
          CHECK(value(terms.hidden) == doctest::Approx(h).epsilon(1e-12));
          CHECK(value(terms.attention) == doctest::Approx(a).epsilon(1e-12));
          CHECK(value(terms.logits) == doctest::Approx(l).epsilon(1e-12));
          CHECK(value(terms.total) == doctest::Approx(0.5 * h + 2 * a + 3 * l).epsilon(1e-12));
          CHECK(h > 0);
          CHECK(a > 0);
          CHECK(l > 0);
        }
  }

  TEST_CASE("distill losses: every term is 0 when the student is the teacher") {
    const EncoderConfig cfg = tiny(8, 2, 2);
    const Model m(cfg, 5);
    const Batch batch = make_batch(cfg.vocab_size, cfg.pad_token_id, 9);
    for (Backend backend : {Backend::Ref, best_cpu_backend()})
      for (int64_t R : {2, 4, 8})  // R = NH, and relation heads regrouped across attention heads
        for (bool shared : {false, true}) {
          INFO(std::string(backend_name(backend))
               << ", R = " << R << (shared ? ", shared projection" : ""));
          Context ctx(backend);
          const TeacherTargets teacher = teacher_targets(ctx, m, batch, -1);
          DistillLossOptions o = all_terms(R);
          o.shared_projection = shared;
          // "last" with L_S == L_T: student layer i learns teacher layer i, k * C_T == C_S.
          DistillLoss loss(cfg, cfg, parse_layer_map("last", 2, 2), o, 1);
          loss.set_identity_projections();
          const EncoderOutput out = m.forward(ctx, batch);
          const DistillLossTerms terms =
              loss.compute(ctx, out, m.logits(ctx, out), teacher, batch.mask);
          CHECK(std::abs(value(terms.hidden)) <= 1e-7);
          CHECK(std::abs(value(terms.attention)) <= 1e-7);
          CHECK(std::abs(value(terms.logits)) <= 1e-7);
          CHECK(std::abs(value(terms.total)) <= 1e-7);
          // The zero is a minimum: the gradients vanish too (up to rounding).
          terms.total.backward();
          for (const auto& [name, p] : loss.named_parameters()) {
            REQUIRE(p.has_grad());
            for (float g : p.grad().to_vector<float>()) CHECK(std::abs(g) <= 1e-5);
          }
          for (const auto& [name, p] : m.enc.named_parameters()) p.zero_grad();
          for (const auto& [name, p] : m.head.named_parameters()) p.zero_grad();
        }
  }

  TEST_CASE("distill losses: every term is positive for a different student") {
    const EncoderConfig sc = tiny(8, 2, 2), tc = tiny(16, 4, 4);
    const Model student(sc, 21), teacher(tc, 22);
    const Batch batch = make_batch(sc.vocab_size, sc.pad_token_id, 23);
    for (Backend backend : {Backend::Ref, best_cpu_backend()})
      for (int64_t attn_layer : {-1, 1}) {
        INFO(std::string(backend_name(backend)) << ", teacher attention layer " << attn_layer);
        Context ctx(backend);
        const TeacherTargets targets = teacher_targets(ctx, teacher, batch, attn_layer);
        DistillLossOptions o = all_terms(4);
        o.teacher_attention_layer = attn_layer;
        o.hidden_weight = 0.5;
        o.attention_weight = 2;
        o.logits_weight = 3;
        DistillLoss loss(sc, tc, make_layer_map(LayerMapKind::UniformLast, 2, 4), o, 1);
        const EncoderOutput out = student.forward(ctx, batch);
        const DistillLossTerms terms =
            loss.compute(ctx, out, student.logits(ctx, out), targets, batch.mask);
        for (const Variable* v : {&terms.hidden, &terms.attention, &terms.logits}) {
          CHECK(v->shape() == Shape{});
          CHECK(std::isfinite(value(*v)));
          CHECK(value(*v) > 1e-3);
        }
        CHECK(value(terms.total) ==
              doctest::Approx(0.5 * value(terms.hidden) + 2 * value(terms.attention) +
                              3 * value(terms.logits))
                  .epsilon(1e-6));
        // Gradients reach the projections and every student layer, finite.
        terms.total.backward();
        std::vector<std::pair<std::string, Variable>> ps = loss.named_parameters();
        for (const auto& p : student.enc.named_parameters()) ps.push_back(p);
        for (const auto& [name, p] : ps) {
          INFO(name);
          REQUIRE(p.has_grad());
          double n2 = 0;
          for (float g : p.grad().to_vector<float>()) n2 += double(g) * g;
          CHECK(std::isfinite(n2));
          CHECK(n2 > 0);
          p.zero_grad();
        }
        for (const auto& [name, p] : student.head.named_parameters()) p.zero_grad();
      }
  }

  TEST_CASE("distill losses: numerical gradients in double of each term") {
    Context ctx(Backend::Ref);
    const EncoderConfig s = tiny(8, 2, 2, 5), t = tiny(12, 3, 2, 5);
    const Tensor mask = make_mask({4, 3}, 4);  // the second sequence ends in padding
    for (int64_t R : {2, 4})
      for (bool shared : {false, true}) {
        INFO("R = " << R << (shared ? ", shared projection" : ""));
        DistillLossOptions o = all_terms(R);
        o.shared_projection = shared;
        o.hidden_weight = 0.7;
        o.attention_weight = 1.3;
        o.logits_weight = 0.4;
        o.temperature = 1.5;
        DistillLoss loss(s, t, make_layer_map(LayerMapKind::UniformLast, 2, 3), o, 4);
        loss.set_projection_dtype(DType::F64);
        Synthetic x = make_synthetic(s, t, mask, DType::F64, 12);
        const LayerAttention& sa = x.student.attention.back();
        // f(student states) -> the chosen term; the projections are perturbed in place.
        auto term = [&](const char* which) {
          return [&, which](const In&) {
            DistillLossTerms r = loss.compute(ctx, x.student, x.logits, x.teacher, mask);
            const std::string w = which;
            return w == "hs"       ? r.hidden
                   : w == "attn"   ? r.attention
                   : w == "logits" ? r.logits
                                   : r.total;
          };
        };
        In proj;
        for (const auto& [name, p] : loss.named_parameters()) proj.push_back(p);
        In hs = {x.student.hidden[1], x.student.hidden[2]};
        hs.insert(hs.end(), proj.begin(), proj.end());
        check_autograd("hidden-state term", ctx, term("hs"), hs);
        check_autograd("attention term", ctx, term("attn"), {sa.q, sa.k, sa.v});
        check_autograd("logits term", ctx, term("logits"), {x.logits});
        In all = hs;
        for (const Variable& v : {sa.q, sa.k, sa.v, x.logits}) all.push_back(v);
        check_autograd("total", ctx, term("total"), all);
      }
  }

  TEST_CASE("distill losses: directional derivative through a real encoder (f32)") {
    // The encoder runs in f32 only (its additive mask is f32), so the end-to-end check is a
    // central difference of each term along its own gradient, restricted to a few student
    // parameters and the projections: (L(p + e g/|g|) - L(p - e g/|g|)) / 2e must equal |g|.
    Context ctx(Backend::Ref);
    const EncoderConfig sc = tiny(8, 2, 2), tc = tiny(16, 3, 4);
    const Model student(sc, 31), teacher(tc, 32);
    const Batch batch = make_batch(sc.vocab_size, sc.pad_token_id, 33);
    const TeacherTargets targets = teacher_targets(ctx, teacher, batch, -1);
    for (const char* spec : {"hs", "attn", "logits"}) {
      INFO(spec);
      DistillLoss loss(sc, tc, make_layer_map(LayerMapKind::UniformLast, 2, 3), only(spec, 4), 2);
      std::vector<Variable> ps = {student.enc.layers[0].query_w, student.enc.layers[1].key_w,
                                  student.enc.layers[1].value_w, student.enc.layers[0].inter_w,
                                  student.enc.emb_ln_w};
      for (const auto& [name, p] : loss.named_parameters()) ps.push_back(p);
      auto eval = [&] {
        const EncoderOutput out = student.forward(ctx, batch);
        return loss.compute(ctx, out, student.logits(ctx, out), targets, batch.mask).total;
      };
      for (const auto& [name, p] : student.enc.named_parameters()) p.zero_grad();
      eval().backward();
      std::vector<std::vector<float>> g, orig;
      double norm2 = 0;
      for (const Variable& p : ps) {
        REQUIRE(p.has_grad());
        g.push_back(p.grad().to_vector<float>());
        orig.push_back(p.value().to_vector<float>());
        for (float v : g.back()) norm2 += double(v) * v;
      }
      const double norm = std::sqrt(norm2), eps = 1e-2;
      REQUIRE(norm > 0);
      auto shifted = [&](double step) {
        for (size_t i = 0; i < ps.size(); ++i) {
          float* d = ps[i].value().data<float>();
          for (size_t j = 0; j < g[i].size(); ++j) d[j] = float(orig[i][j] + step * g[i][j] / norm);
        }
        NoGradGuard no_grad;
        return value(eval());
      };
      const double numeric = (shifted(eps) - shifted(-eps)) / (2 * eps);
      shifted(0);
      CHECK(numeric == doctest::Approx(norm).epsilon(0.02));
      for (const auto& [name, p] : student.enc.named_parameters()) p.zero_grad();
      for (const auto& [name, p] : student.head.named_parameters()) p.zero_grad();
    }
  }

  TEST_CASE("distill losses: padding tokens affect no term and get no gradient") {
    const EncoderConfig s = tiny(8, 2, 2, 9), t = tiny(12, 3, 3, 9);
    const Tensor mask = make_mask({5, 2, 4}, 5);
    for (Backend backend : {Backend::Ref, best_cpu_backend()})
      for (int64_t R : {2, 4}) {
        INFO(std::string(backend_name(backend)) << ", R = " << R);
        Context ctx(backend);
        DistillLoss loss(s, t, make_layer_map(LayerMapKind::UniformLast, 2, 3), all_terms(R), 6);
        Synthetic x = make_synthetic(s, t, mask, DType::F32, 13);
        const DistillLossTerms before = loss.compute(ctx, x.student, x.logits, x.teacher, mask);
        Rng rng(77);
        const LayerAttention& sa = x.student.attention.back();
        for (const Variable& h : x.student.hidden) scramble_padding(h.value(), 1, mask, rng);
        for (const Variable* v : {&sa.q, &sa.k, &sa.v}) scramble_padding(v->value(), 2, mask, rng);
        scramble_padding(x.logits.value(), 1, mask, rng);
        for (const Tensor& h : x.teacher.hidden) scramble_padding(h, 1, mask, rng);
        for (const Tensor* v : {&x.teacher.q, &x.teacher.k, &x.teacher.v})
          scramble_padding(*v, 2, mask, rng);
        scramble_padding(x.teacher.logits, 1, mask, rng);
        const DistillLossTerms after = loss.compute(ctx, x.student, x.logits, x.teacher, mask);
        CHECK(value(after.hidden) == value(before.hidden));
        CHECK(value(after.attention) == value(before.attention));
        CHECK(value(after.logits) == value(before.logits));
        CHECK(value(after.total) == value(before.total));
        // And the gradient at every padded position is 0: exactly on Ref; the fast kernels'
        // vectorised exp of a masked score (-1e30) may leave a denormal instead of 0.
        after.total.backward();
        const float zero = backend == Backend::Ref ? 0.f : 1e-30f;
        auto zero_at_padding = [&](const Variable& v, int64_t tdim) {
          REQUIRE(v.has_grad());
          Tensor g = v.grad().contiguous();
          const std::vector<float> gv = g.to_vector<float>();
          for (int64_t i = 0; i < g.numel(); ++i) {
            const int64_t b = i / g.stride(0), tok = (i / g.stride(tdim)) % g.size(tdim);
            if (mask.at({b, tok}) == 0) CHECK(std::abs(gv[size_t(i)]) <= zero);
          }
        };
        zero_at_padding(x.student.hidden[1], 1);
        zero_at_padding(x.student.hidden[2], 1);
        for (const Variable* v : {&sa.q, &sa.k, &sa.v}) zero_at_padding(*v, 2);
        zero_at_padding(x.logits, 1);
      }
  }

  TEST_CASE("distill losses: misuse is an error naming the values") {
    const EncoderConfig s = tiny(8, 2, 2), t = tiny(12, 4, 3);
    const LayerMap map = make_layer_map(LayerMapKind::UniformLast, 2, 4);
    // Relation heads must divide both widths (8 and 12).
    check_throws_with([&] { DistillLoss(s, t, map, only("attn", 3), 1); },
                      {"relation_heads 3", "8", "12"});
    check_throws_with([&] { DistillLoss(s, t, map, only("hs,attn", 8), 1); },
                      {"relation_heads 8", "8", "12"});
    check_throws_with([&] { DistillLoss(s, t, map, only("attn", 0), 1); }, {"relation_heads 0"});
    // ... but only matter when the attention term is in use.
    CHECK_NOTHROW(DistillLoss(s, t, map, only("hs", 3), 1));
    // A map for another depth.
    check_throws_with(
        [&] { DistillLoss(s, t, make_layer_map(LayerMapKind::UniformLast, 3, 4), only("hs"), 1); },
        {"'uniform+last'", "3 student layers", "student has 2"});
    check_throws_with(
        [&] { DistillLoss(s, t, make_layer_map(LayerMapKind::Last, 2, 12), only("hs"), 1); },
        {"teacher layer 10", "teacher has 4"});
    check_throws_with([&] { DistillLoss(s, t, parse_layer_map("0,7", 2, 12), only("hs"), 1); },
                      {"'0,7'", "teacher layer 7"});
    check_throws_with([&] { DistillLoss(s, t, LayerMap{}, only("hs"), 1); },
                      {"0 student layers", "student has 2"});
    // No term.
    DistillLossOptions none;
    none.use_hidden = false;
    check_throws_with([&] { DistillLoss(s, t, map, none, 1); }, {"no term selected"});
    // Other options.
    DistillLossOptions o = only("attn", 4);
    o.teacher_attention_layer = 4;
    check_throws_with([&] { DistillLoss(s, t, map, o, 1); },
                      {"teacher_attention_layer 4", "[0, 4)"});
    o.teacher_attention_layer = -2;
    check_throws_with([&] { DistillLoss(s, t, map, o, 1); }, {"teacher_attention_layer -2"});
    o = only("logits");
    o.temperature = 0;
    check_throws_with([&] { DistillLoss(s, t, map, o, 1); }, {"temperature 0"});
    o = only("hs");
    o.hidden_weight = -1;
    check_throws_with([&] { DistillLoss(s, t, map, o, 1); }, {"hidden_weight -1"});
    check_throws_with([&] { DistillLoss(s, tiny(12, 4, 3, 41), map, only("logits"), 1); },
                      {"vocab_size is 40", "teacher's is 41"});
    // Identity projections need k * C_T == C_S.
    check_throws_with([&] { DistillLoss(s, t, map, only("hs"), 1).set_identity_projections(); },
                      {"k * C_T == C_S", "[24, 8]"});

    // compute(): inputs that do not fit.
    Context ctx(Backend::Ref);
    const Tensor mask = make_mask({4, 3}, 4);
    const Synthetic x = make_synthetic(s, t, mask, DType::F32, 5);
    DistillLoss all(s, t, map, all_terms(4), 1);
    EncoderOutput no_attn = x.student;
    no_attn.attention.clear();
    check_throws_with([&] { all.compute(ctx, no_attn, x.logits, x.teacher, mask); },
                      {"return_attention"});
    check_throws_with([&] { all.compute(ctx, x.student, Variable(), x.teacher, mask); },
                      {"student's logits"});
    check_throws_with([&] { all.compute(ctx, x.student, x.logits, x.teacher, make_mask({4}, 4)); },
                      {"attention_mask is [1, 4]", "[2, 4]"});
    check_throws_with([&] { all.compute(ctx, x.student, x.logits, x.teacher, Tensor()); },
                      {"attention_mask is undefined"});
    TeacherTargets short_teacher = x.teacher;
    short_teacher.hidden.pop_back();
    check_throws_with([&] { all.compute(ctx, x.student, x.logits, short_teacher, mask); },
                      {"4 hidden states", "has 5"});
    TeacherTargets no_q = x.teacher;
    no_q.q = Tensor();
    check_throws_with([&] { all.compute(ctx, x.student, x.logits, no_q, mask); },
                      {"teacher's q is undefined"});
    EncoderOutput shallow = x.student;
    shallow.hidden.pop_back();
    check_throws_with([&] { all.compute(ctx, shallow, x.logits, x.teacher, mask); },
                      {"2 hidden states", "has 3"});
    // A batch of padding only: the mean over no token is an error, not NaN.
    check_throws_with(
        [&] {
          all.compute(ctx, x.student, x.logits, x.teacher, make_mask({0, 0}, 4));
        },
        {"selects no rows"});
  }
}  // TEST_SUITE("distill")
