#include "distill/finetune.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>

#include "autograd/functions.h"
#include "autograd/optim.h"
#include "autograd/precision.h"
#include "autograd/schedule.h"
#include "distill/train_loop.h"
#include "transformer/inference.h"
#include "tensor/check.h"
#include "tensor/rng.h"
#include "transformer/safetensors.h"

namespace kdnas {
namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

// Streams of randomness, each a function of (seed, counter) only.
constexpr uint64_t kShuffleStream = 0xf1e7'0000'5eed'0001ull;  // counter: epoch
constexpr uint64_t kDropoutStream = 0xf1e7'0000'5eed'0002ull;  // counter: step
constexpr uint64_t kHeadStream = 0xf1e7'0000'5eed'0003ull;     // the head's initial weights

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void write_text_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path, {{text.data(), text.size()}}, "finetune");
}

// The tokenizer of a model directory, checked against the model's vocabulary and positions.
Tokenizer model_tokenizer(const Model& m, const std::string& dir, int64_t seq, const char* op) {
  KDNAS_CHECK(!m.tokenizer_path.empty(), op, ": the model directory ", dir, " has no ",
              kTokenizerFile);
  Tokenizer tok = Tokenizer::load(m.tokenizer_path);
  KDNAS_CHECK(tok.vocab_size() <= m.config.vocab_size, op, ": the tokenizer of ", dir, " has ",
              tok.vocab_size(), " ids but the model's vocabulary only ", m.config.vocab_size);
  // RoBERTa positions start after the padding id: a sequence of T tokens needs pad + 1 + T rows.
  const int64_t max_seq = m.config.max_position_embeddings - m.config.pad_token_id - 1;
  KDNAS_CHECK(seq >= 4, op, ": --seq ", seq, " must be at least 4 (room for the special tokens)");
  KDNAS_CHECK(seq <= max_seq, op, ": --seq ", seq, " is longer than the model allows (", max_seq,
              " tokens: max_position_embeddings ", m.config.max_position_embeddings, ")");
  return tok;
}

// The examples order[begin, end) as one padded batch.
EncodedBatch encode_examples(const Tokenizer& tok, const TaskData& d,
                             const std::vector<size_t>& order, size_t begin, size_t end,
                             int64_t seq) {
  if (d.pair) {
    std::vector<std::pair<std::string, std::string>> pairs;
    for (size_t i = begin; i < end; ++i)
      pairs.emplace_back(d.examples[order[i]].text_a, d.examples[order[i]].text_b);
    return tok.encode_pair_batch(pairs, seq);
  }
  std::vector<std::string> texts;
  for (size_t i = begin; i < end; ++i) texts.push_back(d.examples[order[i]].text_a);
  return tok.encode_batch(texts, seq);
}

// Moves every parameter of the model (encoder and heads) to `device`.
void model_to(Model& m, Device device) {
  m.encoder.to(device);
  if (m.mlm) move_parameters(m.mlm->named_parameters(), device);
  if (m.classifier) move_parameters(m.classifier->named_parameters(), device);
}

// logits [B, K] of the head on the encoder's last hidden state, on the model's device (the
// encoder copies the batch's ids and mask there).
Variable classify(Context& ctx, const Model& m, const EncodedBatch& b, bool train, Rng* rng) {
  ForwardOptions fo;
  fo.train = train;
  fo.rng = rng;
  EncoderOutput out = m.encoder.forward(ctx, b.input_ids, b.attention_mask, fo);
  const double p = m.config.classifier_dropout.value_or(m.config.hidden_dropout_prob);
  return m.classifier->forward(ctx, out.hidden.back(), p, rng, train);
}

ojson metrics_json(const ClassificationMetrics& m) {
  return {{"accuracy", m.accuracy}, {"macro_f1", m.macro_f1}, {"examples", m.examples}};
}

}  // namespace

std::vector<int64_t> predict_labels(Context& ctx, const Model& model, const Tokenizer& tok,
                                    const TaskData& data, int64_t batch, int64_t seq,
                                    InferenceEncoder* inference) {
  KDNAS_CHECK(model.classifier.has_value(), "predict: the model has no classification head");
  KDNAS_CHECK(batch >= 1, "predict: batch ", batch, " must be >= 1");
  NoGradGuard no_grad;
  std::vector<size_t> order(data.examples.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::vector<int64_t> pred;
  pred.reserve(order.size());
  for (size_t begin = 0; begin < order.size(); begin += size_t(batch)) {
    const size_t end = std::min(order.size(), begin + size_t(batch));
    const EncodedBatch b = encode_examples(tok, data, order, begin, end, seq);
    // The training path's forward, or the inference path's last hidden state under the same
    // classifier head (f32).
    const Variable out =
        inference ? model.classifier->forward(
                        ctx, Variable(inference->forward(ctx, b.input_ids, b.attention_mask, false)),
                        0.0, nullptr, false)
                  : classify(ctx, model, b, /*train=*/false, nullptr);
    const Tensor logits = out.value().to(cpu_device()).contiguous();
    const int64_t B = logits.size(0), K = logits.size(1);
    const float* p = logits.data<float>();
    for (int64_t i = 0; i < B; ++i)  // argmax; the lower id on a tie
      pred.push_back(int64_t(std::max_element(p + i * K, p + (i + 1) * K) - (p + i * K)));
  }
  return pred;
}

FinetuneResult finetune(const FinetuneOptions& opt) {
  const auto t_start = std::chrono::steady_clock::now();
  KDNAS_CHECK(!opt.model.empty(), "finetune: --model is required");
  KDNAS_CHECK(!opt.train.empty() && !opt.dev.empty(), "finetune: --train and --dev are required");
  KDNAS_CHECK(!opt.out.empty(), "finetune: --out is required");
  const Device device = parse_device(opt.device);
  KDNAS_CHECK(opt.epochs >= 1 && opt.batch >= 1, "finetune: --epochs and --batch must be >= 1");
  KDNAS_CHECK(opt.lr > 0 && std::isfinite(opt.lr), "finetune: --lr ", opt.lr, " must be > 0");
  KDNAS_CHECK(opt.patience >= 0, "finetune: --patience ", opt.patience, " must be >= 0");
  const GemmPrecision precision = parse_gemm_precision(opt.precision, "finetune: --precision");
  KDNAS_CHECK(fs::weakly_canonical(opt.out) != fs::weakly_canonical(opt.model),
              "finetune: --out must differ from --model (", opt.model, ")");

  // Data first: a bad file is reported before the model is loaded.
  const TaskData train = read_task_tsv(opt.train), dev = read_task_tsv(opt.dev);
  std::optional<TaskData> test;
  if (!opt.test.empty()) test = read_task_tsv(opt.test);
  auto layout = [](const TaskData& d) { return d.pair ? "sentence pairs" : "single sentences"; };
  std::vector<const TaskData*> others{&dev};
  if (test) others.push_back(&*test);
  for (const TaskData* d : others)
    KDNAS_CHECK(d->pair == train.pair, "finetune: ", d->path, " holds ", layout(*d), " but ",
                train.path, " holds ", layout(train));
  const LabelMap labels = LabelMap::from_task(train);
  const std::vector<int64_t> y_train = labels.ids(train);
  const std::vector<int64_t> y_dev = labels.ids(dev);
  std::vector<int64_t> y_test;
  if (test) y_test = labels.ids(*test);

  // The model: its encoder, a fresh head, the label names in its config.
  Model m = load_model_dir(opt.model);
  const Tokenizer tok = model_tokenizer(m, opt.model, opt.seq, "finetune");
  m.mlm.reset();
  Rng head_rng(rng_hash(opt.seed ^ kHeadStream, 0));
  m.classifier = ClassificationHead::init_random(m.config.hidden_size, labels.size(),
                                                 m.config.initializer_range, head_rng);
  labels.store(m.config);
  model_to(m, device);  // the optimizer's slots are then made there too

  auto params = m.encoder.named_parameters();
  for (auto& p : m.classifier->named_parameters()) params.push_back(p);
  std::vector<Variable> vars;
  for (auto& [name, v] : params) {
    if (v.name().empty()) v.set_name(name);  // the no-decay rule reads the names
    vars.push_back(v);
  }
  AdamWOptions aopt;
  aopt.lr = opt.lr;
  AdamW optim(split_decay_groups(vars, opt.weight_decay), aopt);
  const int64_t n = int64_t(train.examples.size());
  const int64_t per_epoch = (n + opt.batch - 1) / opt.batch;
  const int64_t total = per_epoch * opt.epochs;
  const int64_t warmup = std::min(total, int64_t(std::llround(opt.warmup_ratio * double(total))));
  const LrSchedule sched(opt.lr, warmup, total, Decay::Linear);

  Context ctx(best_cpu_backend(), opt.threads);
  fs::create_directories(opt.out);
  const std::string log_path = (fs::path(opt.out) / "log.jsonl").string();
  write_text_atomically(log_path, "");
  std::string log_text;
  const bool tty = !opt.quiet && isatty(fileno(stdout));
  if (!opt.quiet) {
    std::printf(
        "fine-tuning %s on %s: %lld training / %lld dev examples (%s), %lld labels; "
        "%lld epochs of %lld steps, batch %lld, seq %lld, lr %g\n",
        opt.model.c_str(), opt.train.c_str(), (long long)n, (long long)dev.examples.size(),
        layout(train), (long long)labels.size(), (long long)opt.epochs, (long long)per_epoch,
        (long long)opt.batch, (long long)opt.seq, opt.lr);
    std::fflush(stdout);
  }

  FinetuneResult r;
  r.labels = labels.labels();
  r.train_examples = n;
  double best_acc = -1;
  int64_t step = 0, bad_epochs = 0;
  for (int64_t epoch = 1; epoch <= opt.epochs; ++epoch) {
    const auto t_epoch = std::chrono::steady_clock::now();
    // This epoch's order: Fisher-Yates with a generator that depends on (seed, epoch) only.
    std::vector<size_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), size_t(0));
    Rng shuffle(rng_hash(opt.seed ^ kShuffleStream, uint64_t(epoch)));
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[shuffle.below(i)]);

    double loss_sum = 0;
    for (int64_t s = 0; s < per_epoch; ++s) {
      const size_t begin = size_t(s * opt.batch),
                   end = std::min(size_t(n), begin + size_t(opt.batch));
      const EncodedBatch b = encode_examples(tok, train, order, begin, end, opt.seq);
      std::vector<int64_t> y;
      for (size_t i = begin; i < end; ++i) y.push_back(y_train[order[i]]);
      Rng dropout(rng_hash(opt.seed ^ kDropoutStream, uint64_t(step)));
      Variable loss;
      {
        // The training GEMMs in --precision; their nodes remember it for the backward.
        GemmPrecisionScope gemm(precision);
        loss = cross_entropy(ctx, classify(ctx, m, b, /*train=*/true, &dropout),
                             Tensor::from_vector(y, {int64_t(y.size())}).to(device));
      }
      const double l = loss.value().item();
      KDNAS_CHECK(std::isfinite(l), "finetune: epoch ", epoch, " step ", step + 1,
                  ": the loss is not finite (", l, "); stopping (lower --lr?)");
      optim.zero_grad();
      loss.backward();
      if (opt.clip > 0) clip_grad_norm(ctx, vars, opt.clip);
      optim.set_lr(sched.lr_at(step));
      optim.step(ctx);
      ++step;
      loss_sum += l;
      if (tty) {
        std::printf("\repoch %lld/%lld  step %lld/%lld  loss %.4f\033[K", (long long)epoch,
                    (long long)opt.epochs, (long long)(s + 1), (long long)per_epoch, l);
        std::fflush(stdout);
      }
    }

    EpochResult e;
    e.epoch = epoch;
    e.train_loss = loss_sum / double(per_epoch);
    e.dev = classification_metrics(y_dev, predict_labels(ctx, m, tok, dev, opt.batch, opt.seq));
    // Strictly better: on a tie the earlier (less trained) model stays.
    e.best = e.dev.accuracy > best_acc;
    if (e.best) {
      best_acc = e.dev.accuracy;
      r.best_epoch = epoch;
      r.dev = e.dev;
      bad_epochs = 0;
      save_model_dir(opt.out, m);  // each file atomic
    } else {
      ++bad_epochs;
    }
    e.seconds = seconds_since(t_epoch);
    r.epochs.push_back(e);

    ojson row{{"epoch", epoch},
              {"step", step},
              {"train_loss", e.train_loss},
              {"dev_accuracy", e.dev.accuracy},
              {"dev_macro_f1", e.dev.macro_f1},
              {"best", e.best},
              {"seconds", e.seconds}};
    log_text += row.dump() + "\n";
    write_text_atomically(log_path, log_text);
    if (!opt.quiet) {
      std::printf(
          "%sepoch %lld/%lld  train loss %.4f  dev accuracy %.4f  macro-F1 %.4f%s  (%.1f s)\n",
          tty ? "\r\033[K" : "", (long long)epoch, (long long)opt.epochs, e.train_loss,
          e.dev.accuracy, e.dev.macro_f1, e.best ? "  best, saved" : "", e.seconds);
      std::fflush(stdout);
    }
    if (opt.patience > 0 && bad_epochs >= opt.patience && epoch < opt.epochs) {
      r.stopped_early = true;
      if (!opt.quiet)
        std::printf("stopping early: no better dev accuracy for %lld epochs (best: epoch %lld)\n",
                    (long long)bad_epochs, (long long)r.best_epoch);
      break;
    }
  }

  // The test score is the saved model's, read back as any user would load it.
  if (test) {
    Model best = load_model_dir(opt.out);
    model_to(best, device);
    r.test =
        classification_metrics(y_test, predict_labels(ctx, best, tok, *test, opt.batch, opt.seq));
  }
  r.seconds = seconds_since(t_start);
  write_text_atomically((fs::path(opt.out) / "results.json").string(),
                        ojson::parse(finetune_result_json(opt, r)).dump(2) + "\n");
  return r;
}

std::string finetune_result_json(const FinetuneOptions& opt, const FinetuneResult& r) {
  ojson j;
  j["dev"] = metrics_json(r.dev);
  if (r.test) j["test"] = metrics_json(*r.test);
  j["best_epoch"] = r.best_epoch;
  j["epochs_run"] = int64_t(r.epochs.size());
  j["stopped_early"] = r.stopped_early;
  j["labels"] = r.labels;
  j["train_examples"] = r.train_examples;
  j["seconds"] = std::round(r.seconds * 100) / 100;
  j["model"] = opt.model;
  j["out"] = opt.out;
  j["precision"] = opt.precision;
  return j.dump();
}

EvalResult evaluate_classifier(const EvalOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  KDNAS_CHECK(!opt.model.empty() && !opt.data.empty(), "eval: --model and --data are required");
  KDNAS_CHECK(opt.batch >= 1, "eval: --batch ", opt.batch, " must be >= 1");
  const Device device = parse_device(opt.device);
  Model m = load_model_dir(opt.model);
  KDNAS_CHECK(m.classifier.has_value(), "eval: ", opt.model,
              " has no classification head (classifier.*); fine-tune it first with kdnas finetune");
  const Tokenizer tok = model_tokenizer(m, opt.model, opt.seq, "eval");
  const TaskData data = read_task_tsv(opt.data);
  const LabelMap labels = LabelMap::from_config(m.config, m.classifier->num_labels());
  const std::vector<int64_t> gold = labels.ids(data);
  Context ctx(best_cpu_backend(), opt.threads);
  model_to(m, device);
  std::optional<InferenceEncoder> inf;
  if (!opt.dtype.empty()) inf.emplace(m.encoder, inference_dtype(opt.dtype), device);
  EvalResult r;
  r.metrics = classification_metrics(
      gold, predict_labels(ctx, m, tok, data, opt.batch, opt.seq, inf ? &*inf : nullptr));
  r.labels = labels.size();
  r.seconds = seconds_since(t0);
  return r;
}

std::string eval_result_json(const EvalOptions& opt, const EvalResult& r) {
  ojson j;
  j["accuracy"] = r.metrics.accuracy;
  j["macro_f1"] = r.metrics.macro_f1;
  j["examples"] = r.metrics.examples;
  j["labels"] = r.labels;
  j["seconds"] = std::round(r.seconds * 100) / 100;
  j["model"] = opt.model;
  j["data"] = opt.data;
  j["path"] = opt.dtype.empty() ? "training (f32)" : "inference (" + opt.dtype + ")";
  return j.dump();
}

}  // namespace kdnas
