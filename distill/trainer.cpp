#include "distill/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autograd/precision.h"
#include "distill/train_options_json.h"
#include "tensor/check.h"
#include "tensor/rng.h"
#include "transformer/inference.h"
#include "transformer/model_dir.h"
#include "transformer/safetensors.h"
#include "transformer/tokenizer.h"

namespace kdnas {
namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

// Streams of randomness, each a function of (seed, counter) only.
constexpr uint64_t kDropoutStream = 0xd409'0a7c'5eed'0001ull;
constexpr uint64_t kProjectionSeed = 1, kMlmSeed = 2;
constexpr const char* kFormat = "kdnas-distill-train-state-1";

// The largest of the usual relation-head counts dividing both widths.
int64_t default_relation_heads(int64_t cs, int64_t ct) {
  for (int64_t r : {12, 8, 6, 4, 2})
    if (cs % r == 0 && ct % r == 0) return r;
  return 1;
}

}  // namespace

std::string train_options_to_json(const TrainOptions& o) {
  ojson j;
  j["teacher"] = o.teacher;
  j["teacher_dtype"] = o.teacher_dtype;
  j["student_dir"] = o.student_dir;
  j["student_config"] = o.student_config;
  j["arch"] = o.arch;
  train_options_json::put_data(j, o);
  j["epochs"] = o.epochs;
  train_options_json::put_optim(j, o);
  j["loss"] = o.loss;
  j["map"] = o.map;
  j["shared_projection"] = o.shared_projection;
  j["relation_heads"] = o.relation_heads;
  j["temperature"] = o.temperature;
  train_options_json::put_run(j, o);
  return j.dump(2);
}

TrainOptions train_options_from_json(const std::string& text) {
  const json j = train_options_json::parse(text, "distill");
  TrainOptions o;
  auto get = [&](const char* key, auto& field) {
    train_options_json::get(j, key, field, "distill");
  };
  get("teacher", o.teacher);
  get("teacher_dtype", o.teacher_dtype);
  get("student_dir", o.student_dir);
  get("student_config", o.student_config);
  get("arch", o.arch);
  train_options_json::get_data(j, o, "distill");
  get("epochs", o.epochs);
  train_options_json::get_optim(j, o, "distill");
  get("loss", o.loss);
  get("map", o.map);
  get("shared_projection", o.shared_projection);
  get("relation_heads", o.relation_heads);
  get("temperature", o.temperature);
  train_options_json::get_run(j, o, "distill");
  return o;
}

EncoderConfig student_config_from_arch(const std::string& arch, const EncoderConfig& teacher) {
  std::vector<int64_t> v;
  std::stringstream ss(arch);
  std::string part;
  bool ok = true;
  while (std::getline(ss, part, ',')) {
    size_t used = 0;
    long long x = 0;
    try {
      x = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    ok = ok && used == part.size() && !part.empty() && x > 0;
    v.push_back(x);
  }
  KDNAS_CHECK(ok && v.size() == 4, "distill: --arch '", arch,
              "': expected four positive integers L,H,A,F (layers, hidden, heads, FFN), e.g. "
              "4,256,4,1024");
  EncoderConfig c = teacher;
  c.num_hidden_layers = v[0];
  c.hidden_size = v[1];
  c.num_attention_heads = v[2];
  c.intermediate_size = v[3];
  c.architectures = {"XLMRobertaModel"};
  KDNAS_CHECK(v[1] % v[2] == 0, "distill: --arch '", arch, "': hidden size ", v[1],
              " is not divisible by ", v[2], " heads");
  c.validate();
  return c;
}

// ---- the trainer ----------------------------------------------------------------------------

struct Trainer::Impl {
  TrainOptions opt;
  Context ctx;
  Model teacher;
  std::optional<Tokenizer> tok;
  std::unique_ptr<InferenceEncoder> teacher_fast;  // "hs" only
  Corpus corpus;
  std::unique_ptr<Batcher> batcher;
  std::vector<Batch> eval_batches;
  EncoderConfig scfg;
  Encoder student;
  std::optional<MlmHead> mlm;
  std::unique_ptr<DistillLoss> loss;
  std::vector<std::pair<std::string, Variable>> params;  // everything trained, checkpoint names
  std::vector<Variable> param_vars;
  std::unique_ptr<AdamW> optim;
  std::optional<LrSchedule> sched;
  int64_t step = 0, total = 0;
  int64_t last_saved = -1;  // step of the last checkpoint written or resumed from
  std::vector<StepRecord> history;
  std::vector<EvalRecord> evals;
  TrainLog tlog;  // log.jsonl, progress lines, tokens/s and ETA
  // Where the student, the teacher's weights, the batches and the optimizer state live.
  Device device;
  // The student's training GEMMs (opt.precision); the teacher and evaluation run in f32 (the
  // teacher's hidden-state targets in teacher_dtype).
  GemmPrecision precision = GemmPrecision::F32;

  explicit Impl(const TrainOptions& o)
      : opt(o), ctx(best_cpu_backend(), o.threads), device(parse_device(o.device)) {}

  void setup(std::optional<SafetensorsFile> state);
  void to_device(Batch& b) const;
  TeacherTargets teacher_targets(const Batch& b);
  DistillLossTerms student_loss(const Batch& b, const TeacherTargets& t, bool train);
  StepRecord train_step(const std::function<void(int64_t, double&)>& hook);
  EvalRecord evaluate();
  void save();
  void progress(const StepRecord& r);
  void print_eval(const EvalRecord& e);
};

void Trainer::Impl::setup(std::optional<SafetensorsFile> state) {
  KDNAS_CHECK(!opt.out.empty(), "distill: --out is required");
  KDNAS_CHECK(!opt.teacher.empty(), "distill: --teacher is required");
  KDNAS_CHECK(!opt.corpus.empty(), "distill: --corpus is required");
  KDNAS_CHECK(opt.steps >= 0 && opt.epochs >= 0, "distill: --steps and --epochs must be >= 0");
  KDNAS_CHECK(opt.lr > 0 && std::isfinite(opt.lr), "distill: --lr ", opt.lr, " must be > 0");
  KDNAS_CHECK(opt.log_every >= 1, "distill: --log-every ", opt.log_every, " must be >= 1");
  precision = parse_gemm_precision(opt.precision, "distill: --precision");
  KDNAS_CHECK(opt.eval_every >= 0 && opt.save_every >= 0,
              "distill: --eval-every and --save-every must be >= 0");

  // Teacher and tokenizer.
  teacher = load_model_dir(opt.teacher);
  const EncoderConfig& tcfg = teacher.config;
  KDNAS_CHECK(!teacher.tokenizer_path.empty(), "distill: the teacher directory ", opt.teacher,
              " has no ", kTokenizerFile, " (the student uses the teacher's tokenizer)");
  tok = Tokenizer::load(teacher.tokenizer_path);
  KDNAS_CHECK(tok->vocab_size() <= tcfg.vocab_size, "distill: the teacher's tokenizer has ",
              tok->vocab_size(), " ids but its vocabulary only ", tcfg.vocab_size);

  DistillLossOptions lopt;
  parse_loss_terms(opt.loss, lopt);
  KDNAS_CHECK(!lopt.use_logits || teacher.mlm,
              "distill: --loss logits needs the teacher's MLM "
              "head (lm_head.*), and ",
              opt.teacher, " has none");

  // Student config: from the checkpoint on resume, else from one of the three sources.
  const int sources = !opt.student_dir.empty() + !opt.student_config.empty() + !opt.arch.empty();
  std::optional<Model> student_model;
  if (state) {
    const auto& meta = state->metadata();
    KDNAS_CHECK(meta.count("student_config"), "distill: ", state->path(), " has no student_config");
    scfg = parse_config_json(meta.at("student_config"), state->path());
    scfg.validate();
  } else {
    KDNAS_CHECK(sources == 1, "distill: give exactly one of --student-config, --arch, --student (",
                sources, " given)");
    if (!opt.student_dir.empty()) {
      student_model = load_model_dir(opt.student_dir);
      scfg = student_model->config;
    } else if (!opt.student_config.empty()) {
      scfg = read_config(opt.student_config);
    } else {
      scfg = student_config_from_arch(opt.arch, tcfg);
    }
  }
  KDNAS_CHECK(scfg.vocab_size == tcfg.vocab_size && scfg.pad_token_id == tcfg.pad_token_id,
              "distill: the student's vocabulary (", scfg.vocab_size, ", pad ", scfg.pad_token_id,
              ") must be the teacher's (", tcfg.vocab_size, ", pad ", tcfg.pad_token_id, ")");
  for (const EncoderConfig* c : {&tcfg, static_cast<const EncoderConfig*>(&scfg)})
    KDNAS_CHECK(opt.seq >= 2 && opt.seq + c->pad_token_id + 1 <= c->max_position_embeddings,
                "distill: --seq ", opt.seq, " must be in [2, ",
                c->max_position_embeddings - c->pad_token_id - 1, "] (",
                c == &tcfg ? "the teacher's" : "the student's", " position table has ",
                c->max_position_embeddings, " rows)");

  // Corpus and batches.
  corpus = Corpus::read(opt.corpus, opt.corpus_opt);
  batcher = std::make_unique<Batcher>(corpus, *tok,
                                      BatchOptions{opt.batch, opt.batch_tokens, opt.seq, opt.seed});
  eval_batches = batcher->eval_batches();
  for (Batch& b : eval_batches) to_device(b);  // resident for every evaluation
  if (opt.steps > 0) {
    total = opt.steps;
  } else {
    for (int64_t e = 0; e < std::max<int64_t>(opt.epochs, 1); ++e)
      total += batcher->batches_in_epoch(e);
  }

  // Student, MLM head, loss.
  student = student_model ? student_model->encoder : Encoder::init_random(scfg, opt.seed);
  if (lopt.use_logits) {
    if (student_model && student_model->mlm) {
      mlm = student_model->mlm;
    } else {
      Rng rng(rng_hash(opt.seed, kMlmSeed));
      mlm = MlmHead::init_random(scfg.hidden_size, scfg.vocab_size, scfg.initializer_range,
                                 scfg.layer_norm_eps, rng);
    }
  }
  lopt.shared_projection = opt.shared_projection;
  lopt.relation_heads = opt.relation_heads > 0
                            ? opt.relation_heads
                            : default_relation_heads(scfg.hidden_size, tcfg.hidden_size);
  lopt.temperature = opt.temperature;
  LayerMap map = parse_layer_map(opt.map, scfg.num_hidden_layers, tcfg.num_hidden_layers);
  loss = std::make_unique<DistillLoss>(scfg, tcfg, std::move(map), lopt,
                                       rng_hash(opt.seed, kProjectionSeed));
  KDNAS_CHECK(opt.teacher_dtype == "f32" || opt.teacher_dtype == "bf16",
              "distill: --teacher-dtype must be f32 or bf16, not '", opt.teacher_dtype, "'");
  if (!lopt.use_attention)
    teacher_fast = std::make_unique<InferenceEncoder>(teacher.encoder,
                                                      dtype_from_name(opt.teacher_dtype), device);
  // The rest of the teacher that runs: the autograd encoder (attention targets), the MLM head
  // and the word embeddings it is tied to (logits targets).
  if (!teacher_fast) teacher.encoder.to(device);
  if (lopt.use_logits) {
    move_parameters({{"word_embeddings", teacher.encoder.word_embeddings}}, device);
    move_parameters(teacher.mlm->named_parameters(), device);
  }

  params = student.named_parameters();
  if (mlm)
    for (auto& p : mlm->named_parameters()) params.push_back(p);
  for (auto& p : loss->named_parameters()) params.push_back(p);
  for (auto& [name, v] : params) {
    if (v.name().empty()) v.set_name(name);  // the optimizer's state keys and no-decay rule
    param_vars.push_back(v);
  }

  // Restore the trained weights before the optimizer sees them.
  if (state) restore_parameters(*state, params, "distill");
  move_parameters(params, device);  // then the optimizer's slots are made (or restored) there
  optim = make_adamw(param_vars, opt.lr, opt.weight_decay);
  sched = make_schedule(opt.lr, opt.warmup, total, opt.decay);

  if (state) {
    restore_optimizer(*state, *optim, device);
    auto num = [&](const char* key) { return train_state_int(*state, key, "distill"); };
    step = num("step");
    batcher->set_position({num("epoch"), num("index")});
    last_saved = step;
  }
}

void Trainer::Impl::to_device(Batch& b) const {
  // The ids and the mask go where the model is (the ops and the losses copy what they check
  // back to the host); the token counts were taken on the host already. A no-op on the CPU.
  b.encoded.input_ids = b.encoded.input_ids.to(device);
  b.encoded.attention_mask = b.encoded.attention_mask.to(device);
}

TeacherTargets Trainer::Impl::teacher_targets(const Batch& b) {
  NoGradGuard no_grad;
  const Tensor& ids = b.encoded.input_ids;
  const Tensor& mask = b.encoded.attention_mask;
  TeacherTargets t;
  Tensor last;
  if (teacher_fast) {
    Tensor all = teacher_fast->forward(ctx, ids, mask, /*all_hidden=*/true);  // [L+1, B, T, C]
    for (int64_t i = 0; i < all.size(0); ++i) t.hidden.push_back(all.select(0, i));
  } else {
    ForwardOptions fo;
    fo.return_attention = true;
    EncoderOutput out = teacher.encoder.forward(ctx, ids, mask, fo);
    for (const auto& h : out.hidden) t.hidden.push_back(h.value());
    int64_t layer = loss->options().teacher_attention_layer;
    if (layer < 0) layer = teacher.config.num_hidden_layers - 1;
    t.q = out.attention[layer].q.value();
    t.k = out.attention[layer].k.value();
    t.v = out.attention[layer].v.value();
  }
  if (loss->options().use_logits)
    t.logits = teacher.mlm->forward(ctx, Variable(t.hidden.back()), teacher.encoder.word_embeddings)
                   .value();
  return t;
}

DistillLossTerms Trainer::Impl::student_loss(const Batch& b, const TeacherTargets& t, bool train) {
  // Dropout's randomness is a function of (seed, step): nothing to save, exact on resume.
  Rng rng(rng_hash(opt.seed ^ kDropoutStream, uint64_t(step)));
  ForwardOptions fo;
  fo.train = train && opt.dropout;
  fo.return_attention = loss->options().use_attention;
  fo.rng = &rng;
  // The student's GEMMs (and the loss's projections) in the run's precision while training;
  // their nodes remember it for the backward.
  GemmPrecisionScope gemm(train ? precision : GemmPrecision::F32);
  EncoderOutput out = student.forward(ctx, b.encoded.input_ids, b.encoded.attention_mask, fo);
  Variable logits;
  if (mlm) logits = mlm->forward(ctx, out.hidden.back(), student.word_embeddings);
  return loss->compute(ctx, out, logits, t, b.encoded.attention_mask);
}

namespace {
double term(const Variable& v) {
  return v.defined() ? v.value().item() : 0.0;
}
}  // namespace

StepRecord Trainer::Impl::train_step(const std::function<void(int64_t, double&)>& hook) {
  const auto t0 = std::chrono::steady_clock::now();
  StepRecord r;
  Batch b = batcher->next();
  to_device(b);
  r.epoch = b.start.epoch;
  r.tokens = b.tokens;
  TeacherTargets t = teacher_targets(b);
  DistillLossTerms terms = student_loss(b, t, /*train=*/true);
  r.loss = terms.total.value().item();
  r.hidden = term(terms.hidden);
  r.attention = term(terms.attention);
  r.logits = term(terms.logits);
  if (hook) hook(step + 1, r.loss);
  const std::string note = checkpoint_note(last_saved, opt.out);
  check_finite_loss(r.loss, step + 1, note, "distill");
  const UpdateStats u =
      apply_update(ctx, terms.total, param_vars, *optim, *sched, step, opt.clip, note, "distill");
  r.grad_norm = u.grad_norm;
  r.lr = u.lr;
  r.step = ++step;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  history.push_back(r);
  return r;
}

EvalRecord Trainer::Impl::evaluate() {
  NoGradGuard no_grad;
  EvalRecord e;
  e.step = step;
  for (const Batch& b : eval_batches) {
    DistillLossTerms terms = student_loss(b, teacher_targets(b), /*train=*/false);
    // Each batch's terms are means over its tokens: weight them by the token count.
    const double w = double(b.tokens);
    e.loss += w * terms.total.value().item();
    e.hidden += w * term(terms.hidden);
    e.attention += w * term(terms.attention);
    e.logits += w * term(terms.logits);
    e.tokens += b.tokens;
    e.sentences += int64_t(b.sentences.size());
  }
  if (e.tokens > 0) {
    const double n = double(e.tokens);
    e.loss /= n, e.hidden /= n, e.attention /= n, e.logits /= n;
  }
  evals.push_back(e);
  return e;
}

void Trainer::Impl::save() {
  fs::create_directories(opt.out);
  // The student as a model directory (each file atomic), the teacher's tokenizer beside it.
  Model m;
  m.config = scfg;
  m.encoder = student;
  m.mlm = mlm;
  m.tokenizer_path = teacher.tokenizer_path;
  save_model_dir(opt.out, m);

  const DataPosition pos = batcher->position();
  std::map<std::string, std::string> meta{
      {"format", kFormat},
      {"step", std::to_string(step)},
      {"total_steps", std::to_string(total)},
      {"epoch", std::to_string(pos.epoch)},
      {"index", std::to_string(pos.index)},
      {"dropout_seed", std::to_string(opt.seed ^ kDropoutStream)},
      {"options", train_options_to_json(opt)},
      {"student_config", config_to_json(scfg)},
      {"layer_map", layer_map_spec(loss->layer_map())}};

  ojson j;
  j["format"] = kFormat;
  j["step"] = step;
  j["total_steps"] = total;
  j["data_position"] = {{"epoch", pos.epoch}, {"index", pos.index}};
  j["dropout_seed"] = opt.seed ^ kDropoutStream;
  j["layer_map"] = layer_map_spec(loss->layer_map());
  j["options"] = ojson::parse(train_options_to_json(opt));
  j["student_config"] = ojson::parse(config_to_json(scfg));
  write_train_state(opt.out, params, *optim, meta, j.dump(2) + "\n", "distill");
  last_saved = step;
}

void Trainer::Impl::progress(const StepRecord& r) {
  const double tok_s = tlog.tokens_per_s();
  const double eta = tlog.eta_s(r.step, total);
  ojson row;
  row["step"] = r.step;
  row["loss"] = r.loss;
  const DistillLossOptions& lo = loss->options();
  if (lo.use_hidden) row["hs"] = r.hidden;
  if (lo.use_attention) row["attn"] = r.attention;
  if (lo.use_logits) row["logits"] = r.logits;
  row["lr"] = r.lr;
  row["grad_norm"] = r.grad_norm;
  row["epoch"] = r.epoch;
  row["tokens"] = r.tokens;
  row["tokens_per_s"] = std::round(tok_s);
  row["eta_s"] = std::round(eta);
  tlog.row(row.dump());
  tlog.reset_window();
  if (tlog.quiet()) return;

  char terms[128] = "";
  int n = 0;
  if (lo.use_hidden) n += std::snprintf(terms + n, sizeof terms - n, "  hs %.4f", r.hidden);
  if (lo.use_attention) n += std::snprintf(terms + n, sizeof terms - n, "  attn %.4f", r.attention);
  if (lo.use_logits) std::snprintf(terms + n, sizeof terms - n, "  logits %.4f", r.logits);
  char line[512];
  std::snprintf(line, sizeof line,
                "step %lld/%lld  epoch %lld  loss %.4f%s  lr %.3g  |g| %.3g  %.0f tok/s  ETA %s",
                (long long)r.step, (long long)total, (long long)r.epoch, r.loss, terms, r.lr,
                r.grad_norm, tok_s, format_hms(eta).c_str());
  tlog.progress(line);
}

void Trainer::Impl::print_eval(const EvalRecord& e) {
  ojson row;
  row["step"] = e.step;
  row["eval_loss"] = e.loss;
  const DistillLossOptions& lo = loss->options();
  if (lo.use_hidden) row["eval_hs"] = e.hidden;
  if (lo.use_attention) row["eval_attn"] = e.attention;
  if (lo.use_logits) row["eval_logits"] = e.logits;
  row["eval_sentences"] = e.sentences;
  row["eval_tokens"] = e.tokens;
  tlog.row(row.dump());
  char line[256];
  std::snprintf(line, sizeof line,
                "eval at step %lld: loss %.4f over %lld held-out sentences (%lld tokens)",
                (long long)e.step, e.loss, (long long)e.sentences, (long long)e.tokens);
  tlog.print(line);
}

// ---- public face ----------------------------------------------------------------------------

Trainer::Trainer(const TrainOptions& given) {
  std::optional<SafetensorsFile> state =
      open_train_state(given.out, given.resume, kFormat, "distillation", "distill");
  if (!given.resume) {
    impl_ = std::make_unique<Impl>(given);
    impl_->setup(std::nullopt);
  } else {
    // The checkpoint's recipe; the length and the bookkeeping may be changed.
    TrainOptions o = train_options_from_json(state->metadata().at("options"));
    if (given.steps > 0 || given.epochs > 0) o.steps = given.steps, o.epochs = given.epochs;
    o.out = given.out;
    o.threads = given.threads;
    o.device = given.device;  // where to run is not part of the recipe
    o.quiet = given.quiet;
    o.resume = true;
    impl_ = std::make_unique<Impl>(o);
    impl_->setup(std::move(state));
  }
  impl_->tlog.open(impl_->opt.out, given.resume, impl_->step, impl_->opt.quiet, "distill");
}

Trainer::~Trainer() = default;

StepRecord Trainer::train_step() {
  StepRecord r = impl_->train_step(loss_hook);
  impl_->tlog.count_step(r.seconds, r.tokens);
  return r;
}

EvalRecord Trainer::evaluate() {
  EvalRecord e = impl_->evaluate();
  impl_->print_eval(e);
  return e;
}

void Trainer::save_checkpoint() {
  impl_->save();
}

void Trainer::run(int64_t stop_at) {
  Impl& m = *impl_;
  const TrainOptions& o = m.opt;
  if (!o.quiet) {
    std::printf(
        "distilling %s -> %s: student %lld layers, hidden %lld, heads %lld, FFN %lld "
        "(%lld parameters); %lld training / %lld held-out sentences; step %lld of %lld\n",
        o.teacher.c_str(), o.out.c_str(), (long long)m.scfg.num_hidden_layers,
        (long long)m.scfg.hidden_size, (long long)m.scfg.num_attention_heads,
        (long long)m.scfg.intermediate_size, (long long)m.student.parameter_count(true),
        (long long)m.corpus.train().size(), (long long)m.corpus.eval().size(), (long long)m.step,
        (long long)m.total);
    std::fflush(stdout);
  }
  run_train_loop(*this, m, o, stop_at);
}

int64_t Trainer::step() const {
  return impl_->step;
}
int64_t Trainer::total_steps() const {
  return impl_->total;
}
DataPosition Trainer::position() const {
  return impl_->batcher->position();
}
const TrainOptions& Trainer::options() const {
  return impl_->opt;
}
const EncoderConfig& Trainer::student_config() const {
  return impl_->scfg;
}
const std::vector<StepRecord>& Trainer::history() const {
  return impl_->history;
}
const std::vector<EvalRecord>& Trainer::evals() const {
  return impl_->evals;
}

std::vector<std::pair<std::string, Tensor>> Trainer::named_weights() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, v] : impl_->params) out.emplace_back(name, v.value());
  return out;
}

std::vector<std::pair<std::string, Tensor>> Trainer::optimizer_state() const {
  return impl_->optim->state();
}

}  // namespace kdnas
