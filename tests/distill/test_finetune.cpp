// Classification tasks and fine-tuning: TSV parsing (single, pair, errors), the label mapping,
// accuracy and macro-F1 on hand-computed cases, a tiny random model learning a trivially
// learnable synthetic task, early stopping, determinism, and evaluation of the saved model.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "distill/finetune.h"
#include "distill/tasks.h"
#include "tests/distill/distill_fixtures.h"
#include "tests/test_util.h"
#include "transformer/model_dir.h"
#include "transformer/tokenizer.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

const std::string kSource = KDNAS_SOURCE_DIR;

// A trivially learnable task: the label says which of two disjoint word sets a sentence is
// drawn from (words the test tokenizer knows), with shared filler words in between.
std::string synthetic_task(int n, uint64_t seed, bool pair = false) {
  const std::vector<std::string> a{"brother", "student", "clock", "bicycle", "market"};
  const std::vector<std::string> b{"river", "garden", "kitchen", "window", "school"};
  const std::vector<std::string> filler{"the", "a", "red", "young", "near", "on"};
  Rng rng(seed);
  auto sentence = [&](const std::vector<std::string>& words) {
    std::string s;
    for (int w = 0; w < 6; ++w) {
      const auto& set = w % 2 ? words : filler;
      s += (w ? " " : "") + set[rng.below(set.size())];
    }
    return s;
  };
  std::string out;
  for (int i = 0; i < n; ++i) {
    const bool is_a = rng.below(2) == 0;
    out += std::string(is_a ? "alpha" : "beta") + "\t" + sentence(is_a ? a : b);
    if (pair) out += "\t" + sentence(filler);
    out += "\n";
  }
  return out;
}

// One tokenizer and one tiny random model (no head) for the binary, and the task files.
struct Fixture {
  TempDir dir;
  std::string model = dir.file("model");
  std::string train = dir.file("train.tsv"), dev = dir.file("dev.tsv");
  Fixture() {
    const std::string tok = dir.file("tok.model");
    train_tiny_tokenizer(tok);
    Model m;
    m.config = read_config(kSource + "/tests/data/configs/tiny.json");
    m.encoder = Encoder::init_random(m.config, 1);
    m.tokenizer_path = tok;
    save_model_dir(model, m);
    write_file(train, synthetic_task(192, 1));
    write_file(dev, synthetic_task(48, 2));
  }
};
const Fixture& fixture() {
  static Fixture f;
  return f;
}

FinetuneOptions tiny_options(const std::string& out) {
  FinetuneOptions o;
  o.model = fixture().model;
  o.train = fixture().train;
  o.dev = fixture().dev;
  o.out = out;
  o.epochs = 4;
  o.batch = 16;
  o.seq = 16;
  o.lr = 2e-3;
  o.patience = 0;
  o.seed = 3;
  o.threads = 1;
  o.quiet = true;
  return o;
}

}  // namespace

TEST_SUITE("finetune") {
  TEST_CASE("task TSV: single sentences and pairs") {
    TaskData d = parse_task_tsv("en\tHello world.\r\n\nde\tHallo Welt.\n  \n", "x.tsv");
    CHECK_FALSE(d.pair);
    REQUIRE(d.examples.size() == 2);
    CHECK(d.examples[0].label == "en");
    CHECK(d.examples[0].text_a == "Hello world.");  // the \r is dropped
    CHECK(d.examples[1].line == 3);                 // blank lines count, but are skipped
    TaskData p = parse_task_tsv("1\ta b\tc d\n0\te\tf", "p.tsv");
    CHECK(p.pair);
    REQUIRE(p.examples.size() == 2);
    CHECK(p.examples[1].text_b == "f");
    // The committed samples parse.
    CHECK_FALSE(read_task_tsv(kSource + "/tests/data/tasks/langid/train.tsv").pair);
    CHECK(read_task_tsv(kSource + "/tests/data/tasks/pairs/dev.tsv").pair);
  }

  TEST_CASE("task TSV: errors name the file and the line") {
    check_throws_with([] { parse_task_tsv("en\ta\nde\tb\tc\n", "m.tsv"); },
                      {"m.tsv", "line 2", "3", "fields"});
    check_throws_with([] { parse_task_tsv("no tab here\n", "n.tsv"); }, {"n.tsv", "line 1"});
    check_throws_with([] { parse_task_tsv("a\tb\tc\td\n", "f.tsv"); }, {"f.tsv", "line 1"});
    check_throws_with([] { parse_task_tsv("en\thi\n\tthere\n", "l.tsv"); },
                      {"l.tsv", "line 2", "label", "empty"});
    check_throws_with([] { parse_task_tsv("1\ta\t \n", "t.tsv"); }, {"t.tsv", "text_b", "empty"});
    check_throws_with([] { parse_task_tsv("\n \n", "e.tsv"); }, {"e.tsv", "empty"});
    check_throws_with([] { read_task_tsv("/nonexistent/x.tsv"); }, {"cannot open", "x.tsv"});
  }

  TEST_CASE("labels: sorted ids and stored in the config and unseen labels") {
    TaskData train = parse_task_tsv("fr\ta\nde\tb\nen\tc\nde\td\n", "train.tsv");
    LabelMap m = LabelMap::from_task(train);
    REQUIRE(m.size() == 3);
    CHECK(m.labels() == std::vector<std::string>{"de", "en", "fr"});
    CHECK(m.ids(train) == std::vector<int64_t>{2, 0, 1, 0});
    EncoderConfig cfg;
    m.store(cfg);
    CHECK(cfg.extra.at("id2label") == R"({"0":"de","1":"en","2":"fr"})");
    CHECK(cfg.extra.at("label2id") == R"({"de":0,"en":1,"fr":2})");
    CHECK(LabelMap::from_config(cfg, 3).labels() == m.labels());
    check_throws_with([&] { LabelMap::from_config(cfg, 4); }, {"id2label", "3", "4"});
    TaskData dev = parse_task_tsv("en\tx\nru\ty\n", "dev.tsv");
    check_throws_with([&] { m.ids(dev); }, {"dev.tsv", "line 2", "'ru'", "not seen"});
    check_throws_with([] { LabelMap::from_task(parse_task_tsv("a\tx\na\ty\n", "one.tsv")); },
                      {"one.tsv", "only one label"});
  }

  TEST_CASE("metrics: accuracy and macro-F1 by hand") {
    // gold 0 0 1 1 2, pred 0 1 1 1 0:
    //   class 0: TP 1, FP 1, FN 1 -> F1 2/4 = 0.5
    //   class 1: TP 2, FP 1, FN 0 -> F1 4/5 = 0.8
    //   class 2: TP 0, FP 0, FN 1 -> F1 0
    ClassificationMetrics m = classification_metrics({0, 0, 1, 1, 2}, {0, 1, 1, 1, 0});
    CHECK(m.examples == 5);
    CHECK(m.accuracy == doctest::Approx(0.6));
    CHECK(m.macro_f1 == doctest::Approx((0.5 + 0.8 + 0.0) / 3));
    // A class only predicted counts too: gold 0 0, pred 0 3 -> class 0 F1 2/3, class 3 F1 0.
    ClassificationMetrics p = classification_metrics({0, 0}, {0, 3});
    CHECK(p.accuracy == doctest::Approx(0.5));
    CHECK(p.macro_f1 == doctest::Approx((2.0 / 3) / 2));
    ClassificationMetrics all = classification_metrics({1, 0, 1}, {1, 0, 1});
    CHECK(all.accuracy == 1.0);
    CHECK(all.macro_f1 == 1.0);
    CHECK(classification_metrics({}, {}).examples == 0);
    check_throws_with([] { classification_metrics({0}, {0, 1}); }, {"1 gold", "2 predictions"});
  }

  TEST_CASE("fine-tuning a tiny random model learns a learnable task and eval agrees") {
    TempDir out;
    const FinetuneOptions o = tiny_options(out.file("ft"));
    const FinetuneResult r = finetune(o);
    MESSAGE("dev accuracy ", r.dev.accuracy, " macro-F1 ", r.dev.macro_f1, " (best epoch ",
            r.best_epoch, ", ", r.seconds, " s)");
    CHECK(r.epochs.size() == 4);
    CHECK(r.dev.accuracy >= 0.9);
    CHECK(r.dev.macro_f1 >= 0.9);
    CHECK(r.epochs.back().train_loss < r.epochs.front().train_loss);
    // The output directory is a classification model directory with the label names.
    const Model m = load_model_dir(o.out);
    REQUIRE(m.classifier.has_value());
    CHECK(m.classifier->num_labels() == 2);
    CHECK(m.config.architectures ==
          std::vector<std::string>{"XLMRobertaForSequenceClassification"});
    CHECK(LabelMap::from_config(m.config, 2).labels() == std::vector<std::string>{"alpha", "beta"});
    CHECK(std::filesystem::exists(out.file("ft/results.json")));
    CHECK(std::filesystem::exists(out.file("ft/sentencepiece.bpe.model")));
    nlohmann::json res = nlohmann::json::parse(read_file(out.file("ft/results.json")));
    CHECK(res["dev"]["accuracy"].get<double>() == r.dev.accuracy);
    // Evaluating the saved model on dev gives the best epoch's numbers.
    EvalOptions e;
    e.model = o.out;
    e.data = o.dev;
    e.batch = 7;  // a different batching must not change predictions
    e.seq = 16;
    e.threads = 1;
    const EvalResult er = evaluate_classifier(e);
    CHECK(er.metrics.examples == 48);
    CHECK(er.metrics.accuracy == doctest::Approx(r.dev.accuracy));
    nlohmann::json ej = nlohmann::json::parse(eval_result_json(e, er));
    CHECK(ej.contains("accuracy"));
    CHECK(ej.contains("macro_f1"));
    CHECK(ej["examples"] == 48);
  }

  TEST_CASE("fine-tuning: pairs and test scores and early stopping") {
    TempDir out;
    write_file(out.file("train.tsv"), synthetic_task(64, 5, /*pair=*/true));
    write_file(out.file("dev.tsv"), synthetic_task(16, 6, /*pair=*/true));
    FinetuneOptions o = tiny_options(out.file("ft"));
    o.train = out.file("train.tsv");
    o.dev = o.test = out.file("dev.tsv");
    o.lr = 1e-9;  // nothing moves: the dev accuracy cannot improve after epoch 1
    o.epochs = 5;
    o.patience = 1;
    const FinetuneResult r = finetune(o);
    CHECK(r.stopped_early);
    CHECK(r.epochs.size() == 2);
    CHECK(r.best_epoch == 1);
    REQUIRE(r.test.has_value());
    CHECK(r.test->accuracy == doctest::Approx(r.dev.accuracy));  // the same file, the best model
    // A single-sentence dev file with a pair training file is an error.
    o.dev = fixture().dev;
    o.test.clear();
    check_throws_with([&] { finetune(o); }, {"single sentences", "pairs"});
  }

  TEST_CASE("fine-tuning is deterministic given the seed") {
    TempDir out;
    FinetuneOptions o = tiny_options(out.file("a"));
    o.epochs = 1;
    const FinetuneResult a = finetune(o);
    o.out = out.file("b");
    const FinetuneResult b = finetune(o);
    CHECK(a.epochs[0].train_loss == b.epochs[0].train_loss);
    CHECK(read_file(out.file("a/model.safetensors")) == read_file(out.file("b/model.safetensors")));
    o.out = out.file("c");
    o.seed = 4;
    finetune(o);
    CHECK(read_file(out.file("a/model.safetensors")) != read_file(out.file("c/model.safetensors")));
  }

  TEST_CASE("fine-tuning and eval: bad input") {
    TempDir out;
    FinetuneOptions o = tiny_options(out.file("ft"));
    write_file(out.file("unseen.tsv"), "alpha\tthe clock\ngamma\tthe river\n");
    o.dev = out.file("unseen.tsv");
    check_throws_with([&] { finetune(o); }, {"unseen.tsv", "line 2", "gamma"});
    o.dev = out.file("missing.tsv");
    check_throws_with([&] { finetune(o); }, {"cannot open", "missing.tsv"});
    o.dev = fixture().dev;
    o.out = o.model;
    check_throws_with([&] { finetune(o); }, {"--out must differ"});
    o.out = out.file("ft");
    o.seq = 1000;
    check_throws_with([&] { finetune(o); }, {"--seq 1000", "longer"});
    EvalOptions e;
    e.model = fixture().model;  // no classifier
    e.data = fixture().dev;
    check_throws_with([&] { evaluate_classifier(e); }, {"no classification head"});
  }
}
