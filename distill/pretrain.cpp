#include "distill/pretrain.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "autograd/functions.h"
#include "autograd/precision.h"
#include "distill/train_options_json.h"
#include "tensor/check.h"
#include "transformer/model_dir.h"
#include "transformer/tokenizer.h"

namespace kdnas {
namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

// Streams of randomness, each a function of (seed, counter) only.
constexpr uint64_t kMaskStream = 0x3a5c'9e11'7f0d'0001ull;
constexpr uint64_t kEvalMaskStream = 0x3a5c'9e11'7f0d'0002ull;
constexpr uint64_t kDropoutStream = 0x3a5c'9e11'7f0d'0003ull;
constexpr const char* kFormat = "kdnas-pretrain-train-state-1";
constexpr const char* kWho = "pretrain";

// The first id of an ordinary sentencepiece piece (0-2 are <s>, <pad>, </s>; 3 is <unk>).
constexpr int64_t kFirstPieceId = 4;

bool maskable(int64_t id) {
  return id != Tokenizer::kBosId && id != Tokenizer::kEosId && id != Tokenizer::kPadId;
}

}  // namespace

std::string pretrain_options_to_json(const PretrainOptions& o) {
  ojson j;
  j["config"] = o.config;
  j["tokenizer"] = o.tokenizer;
  train_options_json::put_data(j, o);
  j["mask_prob"] = o.mask_prob;
  train_options_json::put_optim(j, o);
  train_options_json::put_run(j, o);
  return j.dump(2);
}

PretrainOptions pretrain_options_from_json(const std::string& text) {
  const json j = train_options_json::parse(text, "pretrain");
  PretrainOptions o;
  auto get = [&](const char* key, auto& field) {
    train_options_json::get(j, key, field, "pretrain");
  };
  get("config", o.config);
  get("tokenizer", o.tokenizer);
  train_options_json::get_data(j, o, "pretrain");
  get("mask_prob", o.mask_prob);
  train_options_json::get_optim(j, o, "pretrain");
  train_options_json::get_run(j, o, "pretrain");
  return o;
}

MaskedBatch mask_tokens(const Tensor& ids, const Tensor& attention_mask, int64_t mask_id,
                        double prob, Rng& rng) {
  KDNAS_CHECK(ids.dtype() == DType::I64 && ids.dim() == 2, "mask_tokens: ids must be i64 [B, T]");
  KDNAS_CHECK(attention_mask.shape() == ids.shape() && attention_mask.dtype() == DType::I64,
              "mask_tokens: the attention mask must be i64 ", ids.shape());
  const Tensor in = ids.contiguous(), am = attention_mask.contiguous();
  const int64_t n = in.numel();
  MaskedBatch m;
  m.inputs = in.clone();
  m.labels = Tensor::full(ids.shape(), double(kIgnoreLabel), DType::I64);
  const int64_t* src = in.data<int64_t>();
  const int64_t* msk = am.data<int64_t>();
  int64_t* dst = m.inputs.data<int64_t>();
  int64_t* lab = m.labels.data<int64_t>();
  // Three counters per position (select, kind, random id) and one for the fallback, so every
  // position's draw depends only on its index.
  const uint64_t seed = rng.seed(), first = rng.reserve(uint64_t(3 * n + 1));
  const int64_t random_ids = mask_id - kFirstPieceId;
  auto replace = [&](int64_t p, float kind) {
    lab[p] = src[p];
    ++m.selected;
    if (kind < 0.8f) {
      dst[p] = mask_id;
    } else if (kind < 0.9f && random_ids > 0) {
      dst[p] = kFirstPieceId + int64_t(rng_hash(seed, first + 3 * p + 2) % uint64_t(random_ids));
    }  // else: the token stays, but it is still predicted
  };
  std::vector<int64_t> candidates;
  for (int64_t p = 0; p < n; ++p) {
    if (msk[p] == 0 || !maskable(src[p])) continue;
    ++m.real;
    candidates.push_back(p);
    if (rng_uniform01(seed, first + 3 * p) < float(prob))
      replace(p, rng_uniform01(seed, first + 3 * p + 1));
  }
  if (m.selected == 0 && !candidates.empty()) {
    const uint64_t k = rng_hash(seed, first + 3 * n) % candidates.size();
    replace(candidates[k], 0.f);
  }
  return m;
}

// ---- the trainer ----------------------------------------------------------------------------

struct Pretrainer::Impl {
  PretrainOptions opt;
  Context ctx;
  EncoderConfig cfg;
  std::string tok_path;
  std::optional<Tokenizer> tok;
  Corpus corpus;
  std::unique_ptr<Batcher> batcher;
  std::vector<Batch> eval_batches;
  Encoder encoder;
  std::optional<MlmHead> mlm;
  std::vector<std::pair<std::string, Variable>> params;
  std::vector<Variable> param_vars;
  std::unique_ptr<AdamW> optim;
  std::optional<LrSchedule> sched;
  int64_t step = 0, total = 0, last_saved = -1;
  std::vector<PretrainStepRecord> history;
  std::vector<PretrainEvalRecord> evals;
  TrainLog tlog;
  // Where the model and the optimizer state live. The batches stay on the host (the masking
  // reads them there); Encoder::forward copies the ids and mask over, the loss its rows and
  // targets.
  Device device;
  // The training steps' GEMM precision (opt.precision); evaluation runs in f32.
  GemmPrecision precision = GemmPrecision::F32;

  explicit Impl(const PretrainOptions& o)
      : opt(o), ctx(best_cpu_backend(), o.threads), device(parse_device(o.device)) {}

  void setup(const std::optional<SafetensorsFile>& state);
  // The MLM loss of a masked batch: logits [N, V] for the N selected tokens and their targets.
  struct Mlm {
    Variable loss, logits;
    Tensor targets;
  };
  Mlm mlm_loss(const Batch& b, const MaskedBatch& mb, bool train);
  PretrainStepRecord train_step(const std::function<void(int64_t, double&)>& hook);
  PretrainEvalRecord evaluate();
  void save();
  void progress(const PretrainStepRecord& r);
  void print_eval(const PretrainEvalRecord& e);
};

void Pretrainer::Impl::setup(const std::optional<SafetensorsFile>& state) {
  KDNAS_CHECK(!opt.config.empty() || state, "pretrain: --config is required");
  KDNAS_CHECK(!opt.corpus.empty(), "pretrain: --corpus is required");
  KDNAS_CHECK(!opt.tokenizer.empty(), "pretrain: --tokenizer is required");
  KDNAS_CHECK(opt.steps > 0, "pretrain: --steps is required (> 0)");
  KDNAS_CHECK(opt.lr > 0 && std::isfinite(opt.lr), "pretrain: --lr ", opt.lr, " must be > 0");
  KDNAS_CHECK(opt.mask_prob > 0 && opt.mask_prob < 1, "pretrain: the masking probability ",
              opt.mask_prob, " must be in (0, 1)");
  KDNAS_CHECK(opt.log_every >= 1, "pretrain: --log-every ", opt.log_every, " must be >= 1");
  KDNAS_CHECK(opt.eval_every >= 0 && opt.save_every >= 0,
              "pretrain: --eval-every and --save-every must be >= 0");
  precision = parse_gemm_precision(opt.precision, "pretrain: --precision");

  // Config (the checkpoint's on resume) and tokenizer (on resume, the output directory's copy
  // when the original has gone).
  if (state) {
    const auto& meta = state->metadata();
    KDNAS_CHECK(meta.count("config"), "pretrain: ", state->path(), " has no config");
    cfg = parse_config_json(meta.at("config"), state->path());
  } else {
    cfg = read_config(opt.config);
  }
  cfg.validate();
  tok_path = opt.tokenizer;
  const fs::path copy = fs::path(opt.out) / kTokenizerFile;
  if (state && !fs::exists(tok_path) && fs::exists(copy)) tok_path = copy.string();
  tok = Tokenizer::load(tok_path);
  KDNAS_CHECK(tok->vocab_size() <= cfg.vocab_size, "pretrain: the tokenizer ", tok_path, " has ",
              tok->vocab_size(), " ids but the config's vocab_size is only ", cfg.vocab_size);
  KDNAS_CHECK(cfg.pad_token_id == Tokenizer::kPadId, "pretrain: the config's pad_token_id is ",
              cfg.pad_token_id, " but XLM-R ids put <pad> at ", Tokenizer::kPadId);
  KDNAS_CHECK(opt.seq >= 2 && opt.seq + cfg.pad_token_id + 1 <= cfg.max_position_embeddings,
              "pretrain: --seq ", opt.seq, " must be in [2, ",
              cfg.max_position_embeddings - cfg.pad_token_id - 1, "] (the position table has ",
              cfg.max_position_embeddings, " rows)");

  corpus = Corpus::read(opt.corpus, opt.corpus_opt);
  batcher = std::make_unique<Batcher>(corpus, *tok,
                                      BatchOptions{opt.batch, opt.batch_tokens, opt.seq, opt.seed});
  eval_batches = batcher->eval_batches();
  total = opt.steps;

  // As `kdnas init --mlm-head`: the encoder from seed, the head from seed + 1.
  encoder = Encoder::init_random(cfg, opt.seed);
  Rng rng(opt.seed + 1);
  mlm = MlmHead::init_random(cfg.hidden_size, cfg.vocab_size, cfg.initializer_range,
                             cfg.layer_norm_eps, rng);
  params = encoder.named_parameters();
  for (auto& p : mlm->named_parameters()) params.push_back(p);
  for (auto& [name, v] : params) {
    if (v.name().empty()) v.set_name(name);
    param_vars.push_back(v);
  }
  if (state) restore_parameters(*state, params, kWho);
  move_parameters(params, device);  // then the optimizer's slots are made (or restored) there
  optim = make_adamw(param_vars, opt.lr, opt.weight_decay);
  sched = make_schedule(opt.lr, opt.warmup, total, opt.decay);
  if (state) {
    restore_optimizer(*state, *optim, device);
    auto num = [&](const char* key) { return train_state_int(*state, key, kWho); };
    step = num("step");
    batcher->set_position({num("epoch"), num("index")});
    last_saved = step;
  }
}

Pretrainer::Impl::Mlm Pretrainer::Impl::mlm_loss(const Batch& b, const MaskedBatch& mb,
                                                 bool train) {
  // Dropout's randomness is a function of (seed, step): nothing to save, exact on resume.
  Rng rng(rng_hash(opt.seed ^ kDropoutStream, uint64_t(step)));
  ForwardOptions fo;
  fo.train = train && opt.dropout;
  fo.rng = &rng;
  // Training GEMMs in the run's precision (their nodes remember it for the backward).
  GemmPrecisionScope gemm(train ? precision : GemmPrecision::F32);
  EncoderOutput out = encoder.forward(ctx, mb.inputs, b.encoded.attention_mask, fo);
  const Variable& h = out.hidden.back();  // [B, T, C]
  const int64_t BT = h.shape()[0] * h.shape()[1], C = h.shape()[2];

  // Gather the selected rows (an embedding lookup into the flattened states, whose backward
  // scatters the gradient back), so the head and its [N, V] logits see only them.
  std::vector<int64_t> rows, targets;
  const int64_t* lab = mb.labels.data<int64_t>();
  for (int64_t p = 0; p < BT; ++p)
    if (lab[p] != kIgnoreLabel) rows.push_back(p), targets.push_back(lab[p]);
  const int64_t N = int64_t(rows.size());
  KDNAS_CHECK(N > 0, "pretrain: a batch without a maskable token (only <s>, </s>, <pad>)");
  Variable selected =
      embedding(ctx, Tensor::from_vector(rows, {N}).to(device), reshape(ctx, h, {BT, C}));
  Mlm m;
  m.logits = mlm->forward(ctx, selected, encoder.word_embeddings);  // [N, V]
  m.targets = Tensor::from_vector(targets, {N});                    // host (evaluate reads it)
  m.loss = cross_entropy(ctx, m.logits, m.targets.to(device), kIgnoreLabel);
  return m;
}

PretrainStepRecord Pretrainer::Impl::train_step(const std::function<void(int64_t, double&)>& hook) {
  const auto t0 = std::chrono::steady_clock::now();
  PretrainStepRecord r;
  Batch b = batcher->next();
  r.epoch = b.start.epoch;
  r.tokens = b.tokens;
  Rng mrng(rng_hash(opt.seed ^ kMaskStream, uint64_t(step)));
  const MaskedBatch mb = mask_tokens(b.encoded.input_ids, b.encoded.attention_mask, tok->mask_id(),
                                     opt.mask_prob, mrng);
  r.masked = mb.selected;
  Mlm m = mlm_loss(b, mb, /*train=*/true);
  r.loss = m.loss.value().item();
  if (hook) hook(step + 1, r.loss);
  const std::string note = checkpoint_note(last_saved, opt.out);
  check_finite_loss(r.loss, step + 1, note, kWho);
  const UpdateStats u =
      apply_update(ctx, m.loss, param_vars, *optim, *sched, step, opt.clip, note, kWho);
  r.grad_norm = u.grad_norm;
  r.lr = u.lr;
  r.step = ++step;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  history.push_back(r);
  return r;
}

PretrainEvalRecord Pretrainer::Impl::evaluate() {
  NoGradGuard no_grad;
  PretrainEvalRecord e;
  e.step = step;
  int64_t correct = 0;
  for (size_t i = 0; i < eval_batches.size(); ++i) {
    const Batch& b = eval_batches[i];
    // A fixed masking per held-out batch: every evaluation scores the same tokens.
    Rng mrng(rng_hash(opt.seed ^ kEvalMaskStream, uint64_t(i)));
    const MaskedBatch mb = mask_tokens(b.encoded.input_ids, b.encoded.attention_mask,
                                       tok->mask_id(), opt.mask_prob, mrng);
    if (mb.selected == 0) continue;
    Mlm m = mlm_loss(b, mb, /*train=*/false);
    e.loss += m.loss.value().item() * double(mb.selected);
    // Top-1: the first maximal logit of each row against its target.
    const Tensor logits = m.logits.value().to(cpu_device()).contiguous();
    const int64_t N = logits.size(0), V = logits.size(1);
    const float* z = logits.data<float>();
    const int64_t* t = m.targets.data<int64_t>();
    for (int64_t r = 0; r < N; ++r) {
      const float* row = z + r * V;
      int64_t best = 0;
      for (int64_t v = 1; v < V; ++v)
        if (row[v] > row[best]) best = v;
      correct += best == t[r];
    }
    e.masked += mb.selected;
    e.sentences += int64_t(b.sentences.size());
  }
  if (e.masked > 0) {
    e.loss /= double(e.masked);
    e.accuracy = double(correct) / double(e.masked);
  }
  evals.push_back(e);
  return e;
}

void Pretrainer::Impl::save() {
  Model m;
  m.config = cfg;
  m.encoder = encoder;
  m.mlm = mlm;
  m.tokenizer_path = tok_path;
  save_model_dir(opt.out, m);

  const DataPosition pos = batcher->position();
  std::map<std::string, std::string> meta{{"format", kFormat},
                                          {"step", std::to_string(step)},
                                          {"total_steps", std::to_string(total)},
                                          {"epoch", std::to_string(pos.epoch)},
                                          {"index", std::to_string(pos.index)},
                                          {"options", pretrain_options_to_json(opt)},
                                          {"config", config_to_json(cfg)}};
  ojson j;
  j["format"] = kFormat;
  j["step"] = step;
  j["total_steps"] = total;
  j["data_position"] = {{"epoch", pos.epoch}, {"index", pos.index}};
  j["options"] = ojson::parse(pretrain_options_to_json(opt));
  j["config"] = ojson::parse(config_to_json(cfg));
  write_train_state(opt.out, params, *optim, meta, j.dump(2) + "\n", kWho);
  last_saved = step;
}

void Pretrainer::Impl::progress(const PretrainStepRecord& r) {
  const double tok_s = tlog.tokens_per_s();
  const double eta = tlog.eta_s(r.step, total);
  ojson row;
  row["step"] = r.step;
  row["loss"] = r.loss;
  row["lr"] = r.lr;
  row["grad_norm"] = r.grad_norm;
  row["epoch"] = r.epoch;
  row["tokens"] = r.tokens;
  row["masked"] = r.masked;
  row["tokens_per_s"] = std::round(tok_s);
  row["eta_s"] = std::round(eta);
  tlog.row(row.dump());
  tlog.reset_window();
  if (tlog.quiet()) return;
  char line[256];
  std::snprintf(line, sizeof line,
                "step %lld/%lld  epoch %lld  mlm loss %.4f  lr %.3g  |g| %.3g  %.0f tok/s  ETA %s",
                (long long)r.step, (long long)total, (long long)r.epoch, r.loss, r.lr, r.grad_norm,
                tok_s, format_hms(eta).c_str());
  tlog.progress(line);
}

void Pretrainer::Impl::print_eval(const PretrainEvalRecord& e) {
  ojson row;
  row["step"] = e.step;
  row["eval_loss"] = e.loss;
  row["eval_accuracy"] = e.accuracy;
  row["eval_sentences"] = e.sentences;
  row["eval_masked"] = e.masked;
  tlog.row(row.dump());
  char line[256];
  std::snprintf(line, sizeof line,
                "eval at step %lld: MLM loss %.4f, accuracy %.2f%% over %lld masked tokens of %lld "
                "held-out sentences",
                (long long)e.step, e.loss, 100 * e.accuracy, (long long)e.masked,
                (long long)e.sentences);
  tlog.print(line);
}

// ---- public face ----------------------------------------------------------------------------

Pretrainer::Pretrainer(const PretrainOptions& given) {
  std::optional<SafetensorsFile> state =
      open_train_state(given.out, given.resume, kFormat, "pretraining", kWho);
  PretrainOptions o = given;
  if (state) {
    // The checkpoint's recipe; the length and the bookkeeping may be changed.
    o = pretrain_options_from_json(state->metadata().at("options"));
    if (given.steps > 0) o.steps = given.steps;
    o.out = given.out;
    o.threads = given.threads;
    o.device = given.device;  // where to run is not part of the recipe
    o.quiet = given.quiet;
    o.resume = true;
  }
  impl_ = std::make_unique<Impl>(o);
  impl_->setup(state);
  impl_->tlog.open(o.out, given.resume, impl_->step, o.quiet, kWho);
}

Pretrainer::~Pretrainer() = default;

PretrainStepRecord Pretrainer::train_step() {
  PretrainStepRecord r = impl_->train_step(loss_hook);
  impl_->tlog.count_step(r.seconds, r.tokens);
  return r;
}

PretrainEvalRecord Pretrainer::evaluate() {
  PretrainEvalRecord e = impl_->evaluate();
  impl_->print_eval(e);
  return e;
}

void Pretrainer::save_checkpoint() {
  impl_->save();
}

void Pretrainer::run(int64_t stop_at) {
  Impl& m = *impl_;
  const PretrainOptions& o = m.opt;
  if (!o.quiet) {
    std::printf(
        "pretraining %s (MLM): %lld layers, hidden %lld, heads %lld, FFN %lld, vocab %lld "
        "(%lld parameters); %lld training / %lld held-out sentences; step %lld of %lld\n",
        o.out.c_str(), (long long)m.cfg.num_hidden_layers, (long long)m.cfg.hidden_size,
        (long long)m.cfg.num_attention_heads, (long long)m.cfg.intermediate_size,
        (long long)m.cfg.vocab_size, (long long)m.encoder.parameter_count(true),
        (long long)m.corpus.train().size(), (long long)m.corpus.eval().size(), (long long)m.step,
        (long long)m.total);
    std::fflush(stdout);
  }
  run_train_loop(*this, m, o, stop_at);
}

int64_t Pretrainer::step() const {
  return impl_->step;
}
int64_t Pretrainer::total_steps() const {
  return impl_->total;
}
const EncoderConfig& Pretrainer::config() const {
  return impl_->cfg;
}
const std::vector<PretrainStepRecord>& Pretrainer::history() const {
  return impl_->history;
}
const std::vector<PretrainEvalRecord>& Pretrainer::evals() const {
  return impl_->evals;
}

std::vector<std::pair<std::string, Tensor>> Pretrainer::named_weights() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, v] : impl_->params) out.emplace_back(name, v.value());
  return out;
}

}  // namespace kdnas
