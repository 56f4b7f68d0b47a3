// The distillation corpus, batcher and trainer: parsing, deterministic batches, a disjoint
// held-out slice, checkpoints that round-trip exactly, resume that repeats an uninterrupted run
// bit for bit, and a clean stop on a non-finite loss.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <set>

#include "distill/corpus.h"
#include "distill/trainer.h"
#include "tests/distill/distill_fixtures.h"
#include "tests/test_util.h"
#include "transformer/model_dir.h"
#include "transformer/safetensors.h"
#include "transformer/tokenizer.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

const std::string kSource = KDNAS_SOURCE_DIR;
const std::string kCorpus = kSource + "/tests/data/corpus/tiny.txt";

// One tokenizer and two tiny random teachers (with and without an MLM head) for the binary.
struct Fixture {
  TempDir dir;
  std::string teacher = dir.file("teacher"), teacher_mlm = dir.file("teacher_mlm");
  Tokenizer tok;
  Fixture() {
    const std::string model = dir.file("tok.model");
    train_tiny_tokenizer(model);
    tok = Tokenizer::load(model);
    Model m;
    m.config = read_config(kSource + "/tests/data/configs/tiny.json");
    m.encoder = Encoder::init_random(m.config, 1);
    m.tokenizer_path = model;
    save_model_dir(teacher, m);
    Rng rng(2);
    m.mlm = MlmHead::init_random(m.config.hidden_size, m.config.vocab_size,
                                 m.config.initializer_range, m.config.layer_norm_eps, rng);
    save_model_dir(teacher_mlm, m);
  }
};
const Fixture& fixture() {
  static Fixture f;
  return f;
}

std::vector<std::string> numbered(int n) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back("sentence number " + std::to_string(i));
  return v;
}

// The ids of a batch as nested vectors, for exact comparisons.
std::vector<int64_t> ids_of(const Batch& b) {
  const Tensor& t = b.encoded.input_ids;
  return std::vector<int64_t>(t.data<int64_t>(), t.data<int64_t>() + t.numel());
}

TrainOptions tiny_options(const std::string& out, const std::string& teacher) {
  TrainOptions o;
  o.teacher = teacher;
  o.arch = "2,32,2,64";
  o.corpus = kCorpus;
  o.batch = 8;
  o.seq = 24;
  o.lr = 1e-3;
  o.seed = 3;
  o.threads = 1;
  o.quiet = true;
  o.out = out;
  return o;
}

}  // namespace

TEST_SUITE("distill_trainer") {
  TEST_CASE("distill corpus: one sentence per line, blank lines and CR skipped") {
    TempDir d;
    write_file(d.file("c.txt"), "first line\r\n\n   \nsecond\tline\n\r\nthird");
    CorpusOptions opt;
    opt.eval_every = 0;
    Corpus c = Corpus::read(d.file("c.txt"), opt);
    CHECK(c.train() == std::vector<std::string>{"first line", "second\tline", "third"});
    CHECK(c.eval().empty());
  }

  TEST_CASE("distill corpus: a TSV column") {
    TempDir d;
    write_file(d.file("c.tsv"), "1\tHello there\tpos\n2\t\tneg\n\n3\tGood bye\tneg\n");
    CorpusOptions opt;
    opt.eval_every = 0;
    opt.text_column = 1;
    Corpus c = Corpus::read(d.file("c.tsv"), opt);
    CHECK(c.train() == std::vector<std::string>{"Hello there", "Good bye"});
    opt.text_column = 2;
    CHECK(Corpus::read(d.file("c.tsv"), opt).train() ==
          std::vector<std::string>{"pos", "neg", "neg"});
    opt.text_column = 3;
    check_throws_with([&] { Corpus::read(d.file("c.tsv"), opt); }, {"c.tsv", "line 1", "column 3"});
  }

  TEST_CASE("distill corpus: a missing or empty corpus is an error") {
    TempDir d;
    check_throws_with([&] { Corpus::read(d.file("none.txt")); }, {"cannot open", "none.txt"});
    write_file(d.file("empty.txt"), "");
    check_throws_with([&] { Corpus::read(d.file("empty.txt")); }, {"empty.txt", "is empty"});
    write_file(d.file("blank.txt"), "\n  \n\t\n");
    check_throws_with([&] { Corpus::read(d.file("blank.txt")); }, {"blank.txt", "is empty"});
    // One sentence, held out: nothing left to train on.
    write_file(d.file("one.txt"), "only\n");
    check_throws_with([&] { Corpus::read(d.file("one.txt")); }, {"one.txt", "held out"});
  }

  TEST_CASE("distill corpus: the held-out slice never reaches a training batch") {
    const Tokenizer& tok = fixture().tok;
    for (int mode = 0; mode < 2; ++mode) {
      CorpusOptions opt;
      if (mode == 0)
        opt.eval_every = 5;
      else
        opt.eval_first = 13;
      Corpus c = Corpus::from_sentences(numbered(100), opt);
      CHECK(c.eval().size() == (mode == 0 ? 20u : 13u));
      CHECK(c.train().size() + c.eval().size() == 100u);
      std::set<std::string> held(c.eval().begin(), c.eval().end());
      for (const auto& s : c.train()) CHECK(held.count(s) == 0);
      if (mode == 0) CHECK(c.eval()[1] == "sentence number 5");
      // Two epochs of batches: every training sentence once per epoch, none held out.
      Batcher b(c, tok, BatchOptions{7, 0, 16, 1});
      for (int64_t e = 0; e < 2; ++e) {
        std::multiset<int64_t> seen;
        while (b.position().epoch == e) {
          Batch batch = b.next();
          CHECK(batch.start.epoch == e);
          for (int64_t i : batch.sentences) seen.insert(i);
        }
        CHECK(seen.size() == c.train().size());
        CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == c.train().size());
      }
      size_t eval_sentences = 0;
      for (const Batch& batch : b.eval_batches()) eval_sentences += batch.sentences.size();
      CHECK(eval_sentences == c.eval().size());
    }
  }

  TEST_CASE("distill batcher: batches are a function of (seed, position)") {
    const Tokenizer& tok = fixture().tok;
    Corpus c = Corpus::read(kCorpus);
    const BatchOptions bo{16, 0, 32, 9};
    Batcher a(c, tok, bo), b(c, tok, bo);
    CHECK(a.epoch_order(0) == b.epoch_order(0));
    CHECK(a.epoch_order(0) != a.epoch_order(1));  // reshuffled every epoch
    BatchOptions other = bo;
    other.seed = 10;
    CHECK(Batcher(c, tok, other).epoch_order(0) != a.epoch_order(0));
    // 30 batches cross an epoch boundary (392 sentences / 16 = 24.5 batches).
    DataPosition saved;
    std::vector<std::vector<int64_t>> after;
    for (int i = 0; i < 30; ++i) {
      if (i == 20) saved = a.position();
      Batch x = a.next(), y = b.next();
      CHECK(ids_of(x) == ids_of(y));
      CHECK(x.encoded.input_ids.size(0) <= 16);
      CHECK(x.encoded.input_ids.size(1) <= 32);
      if (i >= 20) after.push_back(ids_of(x));
    }
    CHECK(a.position().epoch == 1);
    Batcher r(c, tok, bo);
    r.set_position(saved);
    for (const auto& ids : after) CHECK(ids_of(r.next()) == ids);
    check_throws_with([&] { r.set_position({0, 100000}); }, {"data position", "100000"});
  }

  TEST_CASE("distill batcher: a token budget bounds the padded batch") {
    const Tokenizer& tok = fixture().tok;
    Corpus c = Corpus::read(kCorpus);
    Batcher b(c, tok, BatchOptions{32, 100, 32, 4});
    const int64_t batches = b.batches_in_epoch(0);
    int64_t sentences = 0, n = 0;
    while (b.position().epoch == 0) {
      Batch x = b.next();
      const Shape& s = x.encoded.input_ids.shape();
      CHECK((s[0] == 1 || s[0] * s[1] <= 100));
      sentences += s[0];
      ++n;
    }
    CHECK(n == batches);
    CHECK(sentences == int64_t(c.train().size()));
  }

  TEST_CASE("distill trainer: options round-trip through JSON, --arch is checked") {
    TrainOptions o = tiny_options("x", "t");
    o.loss = "hs,attn";
    o.batch_tokens = 77;
    o.corpus_opt.text_column = 2;
    o.warmup = 5;
    o.dropout = false;
    o.teacher_dtype = "bf16";
    TrainOptions r = train_options_from_json(train_options_to_json(o));
    CHECK(r.teacher_dtype == "bf16");
    CHECK(train_options_to_json(r) == train_options_to_json(o));
    CHECK(r.batch_tokens == 77);
    CHECK(r.corpus_opt.text_column == 2);
    CHECK(!r.dropout);

    const EncoderConfig t = read_config(kSource + "/tests/data/configs/tiny.json");
    EncoderConfig s = student_config_from_arch("3,48,4,96", t);
    CHECK(s.num_hidden_layers == 3);
    CHECK(s.hidden_size == 48);
    CHECK(s.num_attention_heads == 4);
    CHECK(s.intermediate_size == 96);
    CHECK(s.vocab_size == t.vocab_size);
    CHECK(s.max_position_embeddings == t.max_position_embeddings);
    check_throws_with([&] { student_config_from_arch("3,48", t); }, {"--arch", "L,H,A,F"});
    check_throws_with([&] { student_config_from_arch("3,48,x,96", t); }, {"--arch", "3,48,x,96"});
    check_throws_with([&] { student_config_from_arch("3,50,4,96", t); }, {"divisible"});
    check_throws_with([&] { student_config_from_arch("0,48,4,96", t); }, {"--arch"});
  }

  TEST_CASE("distill trainer: the loss falls") {
    TempDir d;
    TrainOptions o = tiny_options(d.file("out"), fixture().teacher);
    o.steps = 60;
    Trainer t(o);
    t.run();
    const auto& h = t.history();
    REQUIRE(h.size() == 60u);
    MESSAGE("loss " << h.front().loss << " -> " << h.back().loss);
    CHECK(h.back().loss < 0.7 * h.front().loss);
    REQUIRE(t.evals().size() == 1u);
    CHECK(std::isfinite(t.evals()[0].loss));
    // The output directory is a student model directory with the teacher's tokenizer.
    Model m = load_model_dir(d.file("out"));
    CHECK(m.config.num_hidden_layers == 2);
    CHECK(m.config.hidden_size == 32);
    CHECK(!m.tokenizer_path.empty());
    CHECK(std::filesystem::exists(d.file("out/train_state.json")));
  }

  TEST_CASE("distill trainer: a bf16 teacher gives targets close to the f32 one's") {
    // The same first step with the teacher on the f32 and on the bf16 inference path: the
    // student and its batch are identical, so the losses differ only by the bf16 rounding of the
    // teacher's hidden states (relative error of a few 1e-3 per element).
    TempDir d;
    double loss[2];
    for (int i = 0; i < 2; ++i) {
      TrainOptions o = tiny_options(d.file(i == 0 ? "f32" : "bf16"), fixture().teacher);
      o.teacher_dtype = i == 0 ? "f32" : "bf16";
      o.steps = 1;
      Trainer t(o);
      loss[i] = t.train_step().loss;
    }
    MESSAGE("first-step loss, f32 teacher " << std::setprecision(9) << loss[0] << ", bf16 teacher "
                                            << loss[1]);
    CHECK(loss[1] == doctest::Approx(loss[0]).epsilon(3e-2));
    CHECK(loss[1] != loss[0]);  // the bf16 path really ran
    TrainOptions bad = tiny_options(d.file("bad"), fixture().teacher);
    bad.teacher_dtype = "f16";
    check_throws_with([&] { Trainer t(bad); }, {"--teacher-dtype", "f16"});
  }

  TEST_CASE("distill trainer: a checkpoint round-trips exactly") {
    TempDir d;
    TrainOptions o = tiny_options(d.file("out"), fixture().teacher_mlm);
    o.loss = "hs,logits";
    o.steps = 5;
    Trainer a(o);
    a.run();
    TrainOptions ro;
    ro.out = d.file("out");
    ro.resume = true;
    ro.quiet = true;
    ro.threads = 1;
    Trainer b(ro);
    CHECK(b.step() == 5);
    CHECK(b.position() == a.position());
    CHECK(b.options().loss == "hs,logits");
    CHECK(b.student_config() == a.student_config());
    const auto wa = a.named_weights(), wb = b.named_weights();
    REQUIRE(wa.size() == wb.size());
    for (size_t i = 0; i < wa.size(); ++i) {
      INFO(wa[i].first);
      CHECK(wa[i].first == wb[i].first);
      CHECK(same_bits(wa[i].second, wb[i].second));
    }
    const auto sa = a.optimizer_state(), sb = b.optimizer_state();
    REQUIRE(sa.size() == sb.size());
    REQUIRE(!sa.empty());
    for (size_t i = 0; i < sa.size(); ++i) {
      INFO(sa[i].first);
      CHECK(sa[i].first == sb[i].first);
      CHECK(same_bits(sa[i].second, sb[i].second));
    }
    // A fresh run into a directory that holds one is refused.
    check_throws_with([&] { Trainer c(o); }, {"already holds", "--resume"});
  }

  TEST_CASE("distill trainer: an interrupted and resumed run repeats the uninterrupted one") {
    // Every loss term, dropout on: the teacher's attention path and both MLM heads take part.
    for (const std::string loss : {"hs", "hs,attn,logits"}) {
      INFO("loss " << loss);
      TempDir d;
      TrainOptions o = tiny_options(d.file("full"), fixture().teacher_mlm);
      o.loss = loss;
      o.steps = 14;
      o.save_every = 4;
      o.batch = 40;  // 392 / 40: the run crosses an epoch boundary
      Trainer full(o);
      full.run();

      o.out = d.file("cut");
      {
        Trainer cut(o);
        cut.run(/*stop_at=*/10);  // "killed" at step 10: the last checkpoint is step 8
        CHECK(cut.step() == 10);
      }
      TrainOptions ro;
      ro.out = d.file("cut");
      ro.resume = true;
      ro.quiet = true;
      ro.threads = 1;
      Trainer resumed(ro);
      CHECK(resumed.step() == 8);
      resumed.run();
      const auto& a = full.history();
      const auto& b = resumed.history();
      REQUIRE(a.size() == 14u);
      REQUIRE(b.size() == 6u);
      for (size_t i = 0; i < b.size(); ++i) {
        const StepRecord &x = a[8 + i], &y = b[i];
        CHECK(x.step == y.step);
        CHECK(x.loss == y.loss);  // bit-identical, not approximately equal
        CHECK(x.grad_norm == y.grad_norm);
        CHECK(x.lr == y.lr);
        CHECK(x.epoch == y.epoch);
      }
      CHECK(a.back().epoch == 1);
      const auto wa = full.named_weights(), wb = resumed.named_weights();
      for (size_t i = 0; i < wa.size(); ++i) CHECK(same_bits(wa[i].second, wb[i].second));
      // The log keeps one row per step: the rows the killed run wrote after its checkpoint
      // were dropped and written again.
      std::ifstream log(d.file("cut/log.jsonl"));
      std::string line;
      std::vector<int64_t> steps;
      while (std::getline(log, line))
        if (line.find("\"loss\"") != std::string::npos && line.find("eval") == std::string::npos)
          steps.push_back(std::stoll(line.substr(8)));
      CHECK(steps == std::vector<int64_t>{1, 10, 14});
    }
  }

  TEST_CASE("distill trainer: a non-finite loss stops the run and keeps the last checkpoint") {
    TempDir d;
    TrainOptions o = tiny_options(d.file("out"), fixture().teacher);
    o.steps = 10;
    o.save_every = 2;
    Trainer t(o);
    t.loss_hook = [](int64_t step, double& loss) {
      if (step == 5) loss = std::numeric_limits<double>::quiet_NaN();
    };
    check_throws_with([&] { t.run(); }, {"step 5", "not finite", "checkpoint (step 4)"});
    SafetensorsFile f = SafetensorsFile::open(d.file("out/train_state.safetensors"));
    CHECK(f.metadata().at("step") == "4");

    // A learning rate far too large: the weights overflow and the next loss is not finite.
    TrainOptions big = tiny_options(d.file("big"), fixture().teacher);
    big.steps = 20;
    big.lr = 1e30;
    big.warmup = 0;
    Trainer u(big);
    check_throws_with([&] { u.run(); }, {"not finite", "no checkpoint was written yet"});
    CHECK(!std::filesystem::exists(d.file("big/train_state.safetensors")));
  }
}
