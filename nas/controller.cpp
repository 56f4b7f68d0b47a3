// The controllers: an LSTM reward predictor on the project's autograd, and the random baseline.
#include "nas/controller.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include "autograd/functions.h"
#include "autograd/optim.h"
#include "kernels/context.h"
#include "tensor/check.h"

namespace kdnas {

double exploration(const ControllerOptions& opt, int64_t episode) {
  return std::max(opt.eps_min, opt.eps_start - opt.eps_step * double(episode));
}

int64_t random_count(const ControllerOptions& opt, int64_t episode, int64_t n) {
  // The small slack keeps floor() from losing a candidate to rounding: 1 - 3 * 0.05 is
  // 0.8499999999999999 in double, and floor(0.85 * 20) must be 17.
  const double eps = std::clamp(exploration(opt, episode), 0.0, 1.0);
  return std::min(n, int64_t(std::floor(eps * double(n) + 1e-9)));
}

namespace {

void check_options(const ControllerOptions& o) {
  KDNAS_CHECK(o.embed_dim > 0 && o.hidden > 0, "controller: embed_dim ", o.embed_dim,
              " and hidden ", o.hidden, " must be positive");
  KDNAS_CHECK(std::isfinite(o.lr) && o.lr > 0, "controller: lr ", o.lr, " must be positive");
  KDNAS_CHECK(o.train_epochs >= 0, "controller: train_epochs ", o.train_epochs, " must be >= 0");
  KDNAS_CHECK(o.batch_size > 0, "controller: batch_size ", o.batch_size, " must be positive");
  KDNAS_CHECK(o.pool > 0, "controller: pool ", o.pool, " must be positive");
  KDNAS_CHECK(
      o.eps_start >= 0 && o.eps_start <= 1 && o.eps_min >= 0 && o.eps_min <= 1 && o.eps_step >= 0,
      "controller: exploration eps_start ", o.eps_start, ", eps_step ", o.eps_step, ", eps_min ",
      o.eps_min, " must lie in [0, 1] (step >= 0)");
}

// Randomness streams of one seed, kept apart so that adding a draw to one does not shift
// another: episode e's proposals use Rng(rng_hash(seed, e)) as the header promises; the
// predictor's initial weights and its training order use tagged seeds.
constexpr uint64_t kInitTag = 0x1417ull << 40, kShuffleTag = 0x5ef1ull << 40;

// Common to both controllers: n distinct random valid architectures, appended to `out`
// (which may already hold some: they are not repeated).
void add_random(const SearchSpace& space, const EncoderConfig& teacher, Rng& rng, int64_t n,
                std::vector<Arch>& out) {
  std::set<Arch> seen(out.begin(), out.end());
  const size_t want = out.size() + size_t(n);
  // Draws until enough distinct ones; the caller checked the space holds enough, and the
  // attempt cap only turns an impossible request into an error rather than a hang.
  for (int64_t attempt = 0; out.size() < want; ++attempt) {
    KDNAS_CHECK(attempt < 1000 * (n + 10), "controller: could not draw ", n,
                " distinct architectures");
    const Arch a = space.sample(rng, teacher);
    if (seen.insert(a).second) out.push_back(a);
  }
}

void check_request(const char* who, int64_t n, int64_t space_size) {
  KDNAS_CHECK(n >= 0, who, ": asked for ", n, " candidates");
  KDNAS_CHECK(n <= space_size, who, ": asked for ", n,
              " distinct candidates but the space holds only ", space_size, " valid architectures");
}

// ---- the random baseline ---------------------------------------------------------------------

class RandomController : public Controller {
 public:
  RandomController(const SearchSpace& space, const EncoderConfig& teacher,
                   const ControllerOptions& opt)
      : space_(space), teacher_(teacher), opt_(opt), size_(space.size(teacher)) {}
  const char* name() const override { return "random"; }
  std::vector<Arch> propose(int64_t episode, int64_t n, const Arch&, const Arch&) override {
    check_request("random controller", n, size_);
    Rng rng(rng_hash(opt_.seed, uint64_t(episode)));
    std::vector<Arch> out;
    add_random(space_, teacher_, rng, n, out);
    return out;
  }
  void update(const std::vector<Observation>&) override {}
  double predict(const Arch&, const Arch&, const Arch&) override {
    return std::numeric_limits<double>::quiet_NaN();
  }
  std::vector<std::pair<std::string, Tensor>> state() const override { return {}; }
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state) override {
    KDNAS_CHECK(state.empty(), "random controller: has no state, but was given '",
                state.front().first, "'");
  }

 private:
  SearchSpace space_;
  EncoderConfig teacher_;
  ControllerOptions opt_;
  int64_t size_;
};

// ---- the LSTM reward predictor ---------------------------------------------------------------

// Sequence position t of a batch: per dimension, the choice indices [N] (i64).
struct Batch {
  std::vector<Tensor> ids[3];  // [3 positions][4 dims] -> i64 [N]
  int64_t n = 0;
};

class LstmController : public Controller {
 public:
  LstmController(const SearchSpace& space, const EncoderConfig& teacher,
                 const ControllerOptions& opt)
      : space_(space),
        teacher_(teacher),
        opt_(opt),
        size_(space.size(teacher)),
        ctx_(Backend::Ref, 0) {
    init_weights();
    optim_ = std::make_unique<RMSprop>(params_, RmspropOptions{opt.lr});
  }

  const char* name() const override { return "lstm"; }

  std::vector<Arch> propose(int64_t episode, int64_t n, const Arch& prev_best,
                            const Arch& best_so_far) override {
    check_request("lstm controller", n, size_);
    Rng rng(rng_hash(opt_.seed, uint64_t(episode)));
    std::vector<Arch> out;
    add_random(space_, teacher_, rng, random_count(opt_, episode, n), out);
    const int64_t exploit = n - int64_t(out.size());
    if (exploit == 0) return out;
    // The pool: P random valid architectures not already chosen (fewer if the space is small).
    std::vector<Arch> pool;
    {
      std::set<Arch> seen(out.begin(), out.end());
      const int64_t available = size_ - int64_t(out.size());
      const int64_t p = std::min(std::max(opt_.pool, exploit), available);
      for (int64_t attempt = 0; int64_t(pool.size()) < p; ++attempt) {
        KDNAS_CHECK(attempt < 1000 * (p + 10), "lstm controller: could not fill the pool");
        const Arch a = space_.sample(rng, teacher_);
        if (seen.insert(a).second) pool.push_back(a);
      }
    }
    const std::vector<double> score = predict_batch(prev_best, best_so_far, pool);
    // Highest predicted reward first; ties keep pool order, so the result is deterministic.
    std::vector<size_t> order(pool.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return score[a] > score[b]; });
    for (int64_t i = 0; i < exploit; ++i) out.push_back(pool[order[size_t(i)]]);
    return out;
  }

  void update(const std::vector<Observation>& all) override {
    if (all.empty() || opt_.train_epochs == 0) return;
    // Targets standardised over the observations: the rewards differ in the second decimal,
    // and an output layer that starts near 0 learns their spread faster than their offset.
    double mean = 0, var = 0;
    for (const Observation& o : all) {
      KDNAS_CHECK(std::isfinite(o.reward), "lstm controller: the reward of ",
                  arch_to_string(o.arch), " is ", o.reward);
      mean += o.reward;
    }
    mean /= double(all.size());
    for (const Observation& o : all) var += (o.reward - mean) * (o.reward - mean);
    const double sd = std::sqrt(var / double(all.size()));
    norm_mean_ = mean;
    norm_sd_ = sd > 1e-12 ? sd : 1.0;

    const int64_t N = int64_t(all.size());
    std::vector<int64_t> order(static_cast<size_t>(N));
    std::iota(order.begin(), order.end(), 0);
    // The shuffle order depends on the history (its size), not on a counter, so a resumed
    // search that replays update() with the same observations trains the same way.
    Rng rng(rng_hash(opt_.seed ^ kShuffleTag, uint64_t(N)));
    for (int64_t epoch = 0; epoch < opt_.train_epochs; ++epoch) {
      for (int64_t i = N - 1; i > 0; --i)  // Fisher-Yates
        std::swap(order[size_t(i)], order[size_t(rng.below(uint64_t(i + 1)))]);
      for (int64_t start = 0; start < N; start += opt_.batch_size) {
        const int64_t b = std::min(opt_.batch_size, N - start);
        std::vector<const Observation*> rows;
        Tensor target = Tensor::empty({b, 1});
        for (int64_t i = 0; i < b; ++i) {
          const Observation& o = all[size_t(order[size_t(start + i)])];
          rows.push_back(&o);
          target.data<float>()[i] = float((o.reward - norm_mean_) / norm_sd_);
        }
        optim_->zero_grad();
        Variable loss = mse(ctx_, forward(make_batch(rows)), Variable(target));
        loss.backward();
        optim_->step(ctx_);
      }
    }
  }

  double predict(const Arch& prev_best, const Arch& best_so_far, const Arch& a) override {
    return predict_batch(prev_best, best_so_far, {a})[0];
  }

  std::vector<std::pair<std::string, Tensor>> state() const override {
    std::vector<std::pair<std::string, Tensor>> s;
    for (const Variable& p : params_) s.emplace_back(p.name(), p.value().clone());
    s.emplace_back("reward_norm", Tensor::from_vector<double>({norm_mean_, norm_sd_}, {2}));
    for (const auto& [k, t] : optim_->state()) s.emplace_back("optim." + k, t.clone());
    return s;
  }

  void load_state(const std::vector<std::pair<std::string, Tensor>>& state) override {
    std::vector<std::pair<std::string, Tensor>> optim;
    std::set<std::string> loaded;
    double mean = 0, sd = 1;
    std::vector<std::pair<const Variable*, Tensor>> values;
    for (const auto& [k, t] : state) {
      if (k.rfind("optim.", 0) == 0) {
        optim.emplace_back(k.substr(6), t);
        continue;
      }
      if (k == "reward_norm") {
        KDNAS_CHECK(t.defined() && t.numel() == 2 && is_floating(t.dtype()),
                    "lstm controller: state 'reward_norm' must hold 2 numbers");
        const std::vector<double> v = t.contiguous().to_vector<double>();
        KDNAS_CHECK(std::isfinite(v[0]) && std::isfinite(v[1]) && v[1] > 0,
                    "lstm controller: state 'reward_norm' is not (mean, sd > 0)");
        mean = v[0];
        sd = v[1];
        loaded.insert(k);
        continue;
      }
      auto it = std::find_if(params_.begin(), params_.end(),
                             [&](const Variable& p) { return p.name() == k; });
      KDNAS_CHECK(it != params_.end(), "lstm controller: unknown state tensor '", k, "'");
      KDNAS_CHECK(t.defined() && t.shape() == it->shape() && t.dtype() == it->dtype(),
                  "lstm controller: state '", k, "' is ",
                  t.defined() ? dtype_name(t.dtype()) : "undefined", " ",
                  t.defined() ? t.shape() : Shape{}, " but the predictor's is ",
                  dtype_name(it->dtype()), " ", it->shape(),
                  " (saved with other options or another space?)");
      values.emplace_back(&*it, t);
      loaded.insert(k);
    }
    for (const Variable& p : params_)
      KDNAS_CHECK(loaded.count(p.name()), "lstm controller: state is missing '", p.name(), "'");
    KDNAS_CHECK(loaded.count("reward_norm"), "lstm controller: state is missing 'reward_norm'");
    // Only now that everything checked out: a failed load leaves the controller as it was.
    auto fresh = std::make_unique<RMSprop>(params_, RmspropOptions{opt_.lr});
    fresh->load_state(optim);
    for (const auto& [p, t] : values) p->set_value(t.contiguous().clone());
    optim_ = std::move(fresh);
    norm_mean_ = mean;
    norm_sd_ = sd;
  }

 private:
  // PyTorch's defaults: embeddings N(0, 1); LSTM and linear U(-1/sqrt(hidden), 1/sqrt(hidden)).
  void init_weights() {
    Rng rng(rng_hash(opt_.seed ^ kInitTag, 0));
    const int64_t E = opt_.embed_dim, H = opt_.hidden, X = SearchSpace::kDims * E;
    const float k = 1.f / std::sqrt(float(H));
    auto make = [&](const Shape& s, const std::string& name, bool normal) {
      Tensor t = Tensor::empty(s);
      if (normal)
        rng.fill_normal(t);
      else
        rng.fill_uniform(t, -k, k);
      params_.push_back(Variable::parameter(t, name));
      return params_.back();
    };
    for (int d = 0; d < SearchSpace::kDims; ++d) {
      // One row per choice, plus a last "none" row for a context architecture outside the
      // space (Arch{} before any episode has a best).
      const int64_t rows = int64_t(space_.choices(d).size()) + 1;
      embed_[d] = make({rows, E}, std::string("embed.") + SearchSpace::dim_name(d), true);
    }
    w_ih_ = make({4 * H, X}, "lstm.weight_ih", false);  // gates i, f, g, o stacked
    w_hh_ = make({4 * H, H}, "lstm.weight_hh", false);
    b_ = make({4 * H}, "lstm.bias", false);
    w_out_ = make({1, H}, "head.weight", false);
    b_out_ = make({1}, "head.bias", false);
  }

  // Choice indices of one architecture; outside the space: every dimension's "none" row.
  std::vector<int64_t> indices(const Arch& a) const {
    const int64_t v[SearchSpace::kDims] = {a.layers, a.hidden, a.heads, a.ffn};
    std::vector<int64_t> idx(SearchSpace::kDims);
    bool inside = true;
    for (int d = 0; d < SearchSpace::kDims; ++d) {
      const auto& c = space_.choices(d);
      auto it = std::lower_bound(c.begin(), c.end(), v[d]);
      inside = inside && it != c.end() && *it == v[d];
      idx[size_t(d)] = int64_t(it - c.begin());
    }
    if (!inside)
      for (int d = 0; d < SearchSpace::kDims; ++d)
        idx[size_t(d)] = int64_t(space_.choices(d).size());
    return idx;
  }

  Batch make_batch(const std::vector<const Observation*>& rows) const {
    Batch b;
    b.n = int64_t(rows.size());
    for (int t = 0; t < 3; ++t)
      for (int d = 0; d < SearchSpace::kDims; ++d)
        b.ids[t].push_back(Tensor::empty({b.n}, DType::I64));
    for (int64_t i = 0; i < b.n; ++i) {
      const Arch* seq[3] = {&rows[size_t(i)]->prev_best, &rows[size_t(i)]->best_so_far,
                            &rows[size_t(i)]->arch};
      for (int t = 0; t < 3; ++t) {
        const std::vector<int64_t> idx = indices(*seq[t]);
        for (int d = 0; d < SearchSpace::kDims; ++d)
          b.ids[t][size_t(d)].data<int64_t>()[i] = idx[size_t(d)];
      }
    }
    return b;
  }

  // sigmoid(x) = (1 + tanh(x / 2)) / 2: the same function, from ops the tape already has.
  Variable sigmoid(const Variable& x) {
    return add(ctx_, scale(ctx_, tanh(ctx_, scale(ctx_, x, 0.5)), 0.5), half_);
  }

  // The predicted (standardised) reward [N, 1] of a batch.
  Variable forward(const Batch& b) {
    const int64_t H = opt_.hidden;
    Variable h(Tensor::zeros({b.n, H})), c(Tensor::zeros({b.n, H}));
    for (int t = 0; t < 3; ++t) {
      // x_t [N, 4E]: the concatenated per-dimension embeddings of sequence element t.
      std::vector<Variable> parts;
      for (int d = 0; d < SearchSpace::kDims; ++d)
        parts.push_back(embedding(ctx_, b.ids[t][size_t(d)], embed_[d]));
      const Variable x = concat(ctx_, parts, 1);
      // gates [N, 4H] = x W_ih^T + h W_hh^T + b, then i, f, g, o [N, H] each.
      const Variable gates = add(ctx_, linear(ctx_, x, w_ih_, b_), linear(ctx_, h, w_hh_, {}));
      const std::vector<Variable> g = split(ctx_, gates, 1, {H, H, H, H});
      const Variable in = sigmoid(g[0]), forget = sigmoid(g[1]), out = sigmoid(g[3]);
      const Variable cand = tanh(ctx_, g[2]);
      c = add(ctx_, mul(ctx_, forget, c), mul(ctx_, in, cand));
      h = mul(ctx_, out, tanh(ctx_, c));
    }
    return linear(ctx_, h, w_out_, b_out_);
  }

  std::vector<double> predict_batch(const Arch& prev_best, const Arch& best_so_far,
                                    const std::vector<Arch>& archs) {
    if (archs.empty()) return {};
    NoGradGuard no_grad;
    std::vector<Observation> obs(archs.size());
    std::vector<const Observation*> rows;
    for (size_t i = 0; i < archs.size(); ++i) {
      obs[i] = Observation{prev_best, best_so_far, archs[i], 0.0};
      rows.push_back(&obs[i]);
    }
    const std::vector<float> y = forward(make_batch(rows)).value().to_vector<float>();
    std::vector<double> out(y.size());
    for (size_t i = 0; i < y.size(); ++i) out[i] = norm_mean_ + norm_sd_ * double(y[i]);
    return out;
  }

  SearchSpace space_;
  EncoderConfig teacher_;
  ControllerOptions opt_;
  int64_t size_;
  // The reference kernels: single-threaded, so the same sums in the same order whatever the
  // machine and thread count (the GEMMs are tiny), and thread count 0 leaves the process's
  // OpenMP setting alone (a Context with a count would set it for everyone).
  Context ctx_;
  std::vector<Variable> params_;
  Variable embed_[SearchSpace::kDims], w_ih_, w_hh_, b_, w_out_, b_out_;
  Variable half_{Tensor::full({1}, 0.5)};
  std::unique_ptr<RMSprop> optim_;
  double norm_mean_ = 0, norm_sd_ = 1;  // predicted reward = mean + sd * network output
};

}  // namespace

std::unique_ptr<Controller> make_controller(const std::string& kind, const SearchSpace& space,
                                            const EncoderConfig& teacher,
                                            const ControllerOptions& opt) {
  check_options(opt);
  if (kind == "lstm") return std::make_unique<LstmController>(space, teacher, opt);
  if (kind == "random") return std::make_unique<RandomController>(space, teacher, opt);
  detail::fail(detail::concat("controller: unknown kind '", kind, "' (expected lstm or random)"));
}

}  // namespace kdnas
