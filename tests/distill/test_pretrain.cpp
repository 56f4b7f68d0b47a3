// MLM pretraining: the masking rule (rate, 80/10/10 split, specials never touched, a pure
// function of the seed), a falling loss and rising held-out accuracy on a tiny corpus, an
// XLMRobertaForMaskedLM output directory, exact resume, and one-line errors for bad input.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "distill/corpus.h"
#include "distill/pretrain.h"
#include "tests/distill/distill_fixtures.h"
#include "tests/test_util.h"
#include "transformer/model_dir.h"
#include "transformer/tokenizer.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

const std::string kSource = KDNAS_SOURCE_DIR;
const std::string kCorpus = kSource + "/tests/data/corpus/tiny.txt";
const std::string kConfig = kSource + "/tests/data/configs/tiny.json";

// One tokenizer (200 pieces, 202 ids) trained on the tiny corpus, for the whole binary.
struct Fixture {
  TempDir dir;
  std::string model = dir.file("tok.model");
  Tokenizer tok;
  Fixture() {
    train_tiny_tokenizer(model);
    tok = Tokenizer::load(model);
  }
};
const Fixture& fixture() {
  static Fixture f;
  return f;
}

PretrainOptions tiny_options(const std::string& out) {
  PretrainOptions o;
  o.config = kConfig;
  o.tokenizer = fixture().model;
  o.corpus = kCorpus;
  o.corpus_opt.eval_every = 10;  // 40 held-out sentences
  o.batch = 16;
  o.seq = 32;
  o.lr = 2e-3;
  o.seed = 3;
  o.threads = 1;
  o.quiet = true;
  o.out = out;
  return o;
}

std::vector<int64_t> values(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::vector<int64_t>(c.data<int64_t>(), c.data<int64_t>() + c.numel());
}

}  // namespace

TEST_SUITE("pretrain") {
  TEST_CASE("pretrain masking: 15% of real tokens, 80/10/10, specials never, from the seed") {
    const Tokenizer& tok = fixture().tok;
    Corpus c = Corpus::read(kCorpus);
    Batcher batcher(c, tok, BatchOptions{32, 0, 48, 1});
    int64_t real = 0, selected = 0, masked = 0, random = 0, kept = 0;
    for (uint64_t step = 0; step < 24; ++step) {
      const Batch b = batcher.next();
      Rng rng(rng_hash(11, step));
      const MaskedBatch m =
          mask_tokens(b.encoded.input_ids, b.encoded.attention_mask, tok.mask_id(), 0.15, rng);
      const auto ids = values(b.encoded.input_ids), mask = values(b.encoded.attention_mask);
      const auto in = values(m.inputs), lab = values(m.labels);
      int64_t n_real = 0, n_sel = 0;
      for (size_t p = 0; p < ids.size(); ++p) {
        const bool special = ids[p] == Tokenizer::kBosId || ids[p] == Tokenizer::kEosId ||
                             ids[p] == Tokenizer::kPadId || mask[p] == 0;
        n_real += !special;
        if (lab[p] == kIgnoreLabel) {
          CHECK(in[p] == ids[p]);  // untouched where there is no label
          continue;
        }
        REQUIRE(!special);  // <s>, </s>, <pad> are never selected
        CHECK(lab[p] == ids[p]);
        ++n_sel;
        if (in[p] == tok.mask_id())
          ++masked;
        else if (in[p] == ids[p])
          ++kept;
        else {
          ++random;
          CHECK((in[p] >= 4 && in[p] < tok.mask_id()));
        }
      }
      CHECK(n_real == m.real);
      CHECK(n_sel == m.selected);
      real += n_real;
      selected += n_sel;
      // The same (seed, step) gives the same masking; another step another.
      Rng again(rng_hash(11, step)), other(rng_hash(11, step + 100));
      const MaskedBatch m2 =
          mask_tokens(b.encoded.input_ids, b.encoded.attention_mask, tok.mask_id(), 0.15, again);
      CHECK(values(m2.inputs) == in);
      CHECK(values(m2.labels) == lab);
      CHECK(values(mask_tokens(b.encoded.input_ids, b.encoded.attention_mask, tok.mask_id(), 0.15,
                               other)
                       .labels) != lab);
    }
    const double rate = double(selected) / double(real);
    MESSAGE(selected << " of " << real << " real tokens selected (" << rate << "); " << masked
                     << " <mask>, " << random << " random, " << kept << " kept");
    REQUIRE(real > 5000);
    CHECK(std::abs(rate - 0.15) < 0.015);
    CHECK(std::abs(double(masked) / selected - 0.8) < 0.03);
    CHECK(std::abs(double(random) / selected - 0.1) < 0.025);
    CHECK(std::abs(double(kept) / selected - 0.1) < 0.025);
  }

  TEST_CASE("pretrain masking: a batch always has a selected token") {
    const Tokenizer& tok = fixture().tok;
    EncodedBatch e = tok.encode_batch({"a"});
    for (uint64_t s = 0; s < 50; ++s) {
      Rng rng(s);
      const MaskedBatch m = mask_tokens(e.input_ids, e.attention_mask, tok.mask_id(), 0.15, rng);
      CHECK(m.selected == 1);
      CHECK(m.real >= 1);
    }
  }

  TEST_CASE("pretrain trainer: the MLM loss falls and held-out accuracy rises") {
    TempDir d;
    PretrainOptions o = tiny_options(d.file("out"));
    o.steps = 120;
    Pretrainer t(o);
    const PretrainEvalRecord before = t.evaluate();
    t.run();
    const auto& h = t.history();
    REQUIRE(h.size() == 120u);
    double first = 0, last = 0;
    for (int i = 0; i < 5; ++i) first += h[i].loss / 5, last += h[h.size() - 1 - i].loss / 5;
    REQUIRE(t.evals().size() == 2u);
    const PretrainEvalRecord after = t.evals().back();
    MESSAGE("MLM loss " << first << " -> " << last << "; held-out loss " << before.loss << " -> "
                        << after.loss << ", accuracy " << before.accuracy << " -> "
                        << after.accuracy << " (" << after.masked << " tokens)");
    CHECK(last < 0.75 * first);
    CHECK(after.loss < before.loss);
    CHECK(before.masked == after.masked);  // the same held-out tokens every time
    CHECK(before.accuracy >= 0);
    CHECK(after.accuracy <= 1);
    CHECK(after.accuracy > before.accuracy + 0.05);
    // An XLMRobertaForMaskedLM model directory with the tokenizer.
    Model m = load_model_dir(d.file("out"));
    CHECK(m.mlm.has_value());
    REQUIRE(!m.config.architectures.empty());
    CHECK(m.config.architectures[0] == "XLMRobertaForMaskedLM");
    CHECK(!m.tokenizer_path.empty());
    CHECK(std::filesystem::exists(d.file("out/train_state.safetensors")));
    CHECK(std::filesystem::exists(d.file("out/log.jsonl")));
  }

  TEST_CASE("pretrain trainer: an interrupted and resumed run repeats the uninterrupted one") {
    TempDir d;
    PretrainOptions o = tiny_options(d.file("full"));
    o.steps = 14;
    o.save_every = 4;
    o.batch = 40;  // 360 / 40: the run crosses an epoch boundary
    Pretrainer full(o);
    full.run();
    o.out = d.file("cut");
    {
      Pretrainer cut(o);
      cut.run(/*stop_at=*/10);  // "killed" at step 10: the last checkpoint is step 8
    }
    PretrainOptions ro;
    ro.out = d.file("cut");
    ro.resume = true;
    ro.quiet = true;
    ro.threads = 1;
    Pretrainer resumed(ro);
    CHECK(resumed.step() == 8);
    resumed.run();
    const auto &a = full.history(), &b = resumed.history();
    REQUIRE(a.size() == 14u);
    REQUIRE(b.size() == 6u);
    for (size_t i = 0; i < b.size(); ++i) {
      CHECK(a[8 + i].step == b[i].step);
      CHECK(a[8 + i].loss == b[i].loss);  // bit-identical
      CHECK(a[8 + i].grad_norm == b[i].grad_norm);
      CHECK(a[8 + i].masked == b[i].masked);
    }
    CHECK(a.back().epoch == 1);
    const auto wa = full.named_weights(), wb = resumed.named_weights();
    REQUIRE(wa.size() == wb.size());
    for (size_t i = 0; i < wa.size(); ++i) CHECK(same_bits(wa[i].second, wb[i].second));
    REQUIRE(full.evals().size() == 1u);
    CHECK(full.evals()[0].loss == resumed.evals().back().loss);
    check_throws_with([&] { Pretrainer again(o); }, {"already holds", "--resume"});
  }

  TEST_CASE("pretrain trainer: bad input is an error naming it") {
    TempDir d;
    PretrainOptions o = tiny_options(d.file("out"));
    o.steps = 5;
    PretrainOptions bad = o;
    bad.config = d.file("none.json");
    check_throws_with([&] { Pretrainer t(bad); }, {"none.json"});
    bad = o;
    bad.tokenizer = d.file("none.model");
    check_throws_with([&] { Pretrainer t(bad); }, {"none.model"});
    bad = o;
    bad.corpus = d.file("none.txt");
    check_throws_with([&] { Pretrainer t(bad); }, {"cannot open", "none.txt"});
    std::ofstream(d.file("empty.txt")) << "";
    bad.corpus = d.file("empty.txt");
    check_throws_with([&] { Pretrainer t(bad); }, {"is empty"});
    // A vocabulary smaller than the tokenizer's 202 ids.
    EncoderConfig small = read_config(kConfig);
    small.vocab_size = 100;
    std::ofstream(d.file("small.json")) << config_to_json(small);
    bad = o;
    bad.config = d.file("small.json");
    check_throws_with([&] { Pretrainer t(bad); }, {"202 ids", "vocab_size is only 100"});
    bad = o;
    bad.steps = 0;
    check_throws_with([&] { Pretrainer t(bad); }, {"--steps"});
    // A diverging run stops on the non-finite loss.
    Pretrainer t(o);
    t.loss_hook = [](int64_t step, double& loss) {
      if (step == 3) loss = std::numeric_limits<double>::quiet_NaN();
    };
    check_throws_with([&] { t.run(); }, {"step 3", "not finite", "no checkpoint"});
  }
}
