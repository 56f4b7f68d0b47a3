#include <doctest/doctest.h>
#include <sentencepiece_processor.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/test_util.h"
#include "transformer/tokenizer.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// A small multilingual text we wrote for these tests (11 languages, 57 lines).
const std::string kCorpus =
    std::string(KDNAS_SOURCE_DIR) + "/tests/data/tokenizer/multilingual_tiny.txt";
constexpr int64_t kPieces = 300;

// One unigram model for the whole test binary (training takes about a second).
struct Trained {
  TempDir dir;
  std::string path = dir.file("tiny.model");
  Trained() { train_tokenizer(kCorpus, kPieces, "unigram", path, /*seed=*/7); }
};
const Trained& trained() {
  static Trained t;
  return t;
}

// The same model through sentencepiece directly: the independent side of the id checks.
std::unique_ptr<sentencepiece::SentencePieceProcessor> raw_processor() {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  REQUIRE(sp->Load(trained().path).ok());
  return sp;
}

// Hugging Face's longest-first loop, one token at a time: the spec for encode_pair.
std::pair<int64_t, int64_t> longest_first(int64_t na, int64_t nb, int64_t budget) {
  while (na + nb > budget) {
    if (na > nb)
      --na;
    else
      --nb;
  }
  return {na, nb};
}

}  // namespace

TEST_SUITE("transformer") {
TEST_CASE("tokenizer: the XLM-R id convention") {
  Tokenizer tok = Tokenizer::load(trained().path);
  auto sp_ptr = raw_processor();
  const sentencepiece::SentencePieceProcessor& sp = *sp_ptr;
  REQUIRE(sp.GetPieceSize() == kPieces);
  CHECK(tok.piece_count() == kPieces);
  CHECK(tok.mask_id() == kPieces + 1);
  CHECK(tok.vocab_size() == kPieces + 2);
  CHECK(tok.id_to_piece(0) == "<s>");
  CHECK(tok.id_to_piece(1) == "<pad>");
  CHECK(tok.id_to_piece(2) == "</s>");
  CHECK(tok.id_to_piece(3) == "<unk>");
  CHECK(tok.id_to_piece(tok.mask_id()) == "<mask>");
  CHECK(tok.piece_to_id("<mask>") == tok.mask_id());
  CHECK(tok.piece_to_id("<pad>") == 1);
  CHECK(tok.piece_to_id("no-such-piece-here") == 3);
  // Piece i >= 3 -> i + 1, both ways.
  for (int i = 3; i < kPieces; ++i) {
    CHECK(tok.id_to_piece(i + 1) == sp.IdToPiece(i));
    CHECK(tok.piece_to_id(sp.IdToPiece(i)) == i + 1);
  }
  // Encoded text: the same pieces as sentencepiece, shifted; its unk (0) becomes 3. The
  // snowman and the rare CJK character are not in the vocabulary.
  const std::string text = "The cat sleeps. Кошка спит. ☃ 猫 zzq 鬱";
  std::vector<int> raw;
  REQUIRE(sp.Encode(text, &raw).ok());
  std::vector<int64_t> ids = tok.tokenize(text);
  REQUIRE(ids.size() == raw.size());
  int unks = 0;
  for (size_t k = 0; k < raw.size(); ++k) {
    CHECK(ids[k] == (raw[k] == 0 ? 3 : raw[k] + 1));
    CHECK(ids[k] >= 3);
    CHECK(ids[k] < tok.mask_id());
    unks += raw[k] == 0;
  }
  CHECK(unks >= 2);
  CHECK(std::count(ids.begin(), ids.end(), int64_t(3)) == unks);
}

TEST_CASE("tokenizer: single sequences and pairs") {
  Tokenizer tok = Tokenizer::load(trained().path);
  const std::vector<int64_t> a = tok.tokenize("The small train leaves the station.");
  const std::vector<int64_t> b = tok.tokenize("Le petit train quitte la gare.");
  REQUIRE(a.size() > 4);
  REQUIRE(b.size() > 4);

  std::vector<int64_t> one = tok.encode("The small train leaves the station.");
  std::vector<int64_t> want{0};
  want.insert(want.end(), a.begin(), a.end());
  want.push_back(2);
  CHECK(one == want);
  CHECK(tok.encode("") == std::vector<int64_t>{0, 2});

  // <s> A </s></s> B </s>
  std::vector<int64_t> pair =
      tok.encode_pair("The small train leaves the station.", "Le petit train quitte la gare.");
  want = {0};
  want.insert(want.end(), a.begin(), a.end());
  want.insert(want.end(), {2, 2});
  want.insert(want.end(), b.begin(), b.end());
  want.push_back(2);
  CHECK(pair == want);
}

TEST_CASE("tokenizer: truncation, longest-first for pairs") {
  Tokenizer tok = Tokenizer::load(trained().path);
  const std::string text = "My grandmother keeps her old letters in a wooden box under the bed.";
  const std::vector<int64_t> full = tok.encode(text);
  for (int64_t max_len : {2, 3, 5, 8}) {
    std::vector<int64_t> t = tok.encode(text, max_len);
    CHECK(int64_t(t.size()) == max_len);
    CHECK(t.front() == 0);
    CHECK(t.back() == 2);
    CHECK(std::equal(t.begin(), t.end() - 1, full.begin()));  // a prefix, then </s>
  }
  CHECK(tok.encode(text, 1000) == full);

  // Pairs of many length combinations against the one-token-at-a-time loop.
  const std::vector<std::string> texts{
      "Hi", "The cat sleeps.", "Der kleine Zug verlässt den Bahnhof jeden Morgen um sieben Uhr.",
      "Мы посадили помидоры, фасоль и подсолнухи в саду за школой, и это было хорошо."};
  for (const std::string& x : texts) {
    for (const std::string& y : texts) {
      const int64_t na = int64_t(tok.tokenize(x).size()), nb = int64_t(tok.tokenize(y).size());
      for (int64_t max_len : {4, 5, 6, 9, 12, 17, 30, 200}) {
        std::vector<int64_t> p = tok.encode_pair(x, y, max_len);
        const auto [wa, wb] = longest_first(na, nb, max_len - 4);
        INFO(x, " | ", y, " | max_len ", max_len);
        CHECK(int64_t(p.size()) == wa + wb + 4);
        CHECK(int64_t(p.size()) <= max_len);
        // Layout: <s> A' </s></s> B' </s>, with A' and B' prefixes of A and B.
        REQUIRE(int64_t(p.size()) >= 4);
        CHECK(p[0] == 0);
        CHECK(p[size_t(wa + 1)] == 2);
        CHECK(p[size_t(wa + 2)] == 2);
        CHECK(p.back() == 2);
        std::vector<int64_t> ta = tok.tokenize(x), tb = tok.tokenize(y);
        CHECK(std::equal(ta.begin(), ta.begin() + wa, p.begin() + 1));
        CHECK(std::equal(tb.begin(), tb.begin() + wb, p.begin() + wa + 3));
      }
    }
  }
  check_throws_with([&] { tok.encode(text, 1); }, {"tokenizer", "encode", "max_len 1"});
  check_throws_with([&] { tok.encode_pair(text, text, 3); },
                    {"tokenizer", "encode_pair", "max_len 3"});
  check_throws_with([&] { tok.encode(text, -4); }, {"tokenizer", "max_len -4"});
}

TEST_CASE("tokenizer: batches are padded with <pad> = 1 and masked") {
  Tokenizer tok = Tokenizer::load(trained().path);
  const std::vector<std::string> texts{"Hi", "The cat sleeps on the warm windowsill.", ""};
  EncodedBatch b = tok.encode_batch(texts);
  std::vector<std::vector<int64_t>> seqs;
  size_t longest = 0;
  for (const auto& t : texts) {
    seqs.push_back(tok.encode(t));
    longest = std::max(longest, seqs.back().size());
  }
  const int64_t T = int64_t(longest);
  CHECK(b.input_ids.dtype() == DType::I64);
  CHECK(b.attention_mask.dtype() == DType::I64);
  CHECK(b.input_ids.shape() == Shape{3, T});
  CHECK(b.attention_mask.shape() == Shape{3, T});
  for (int64_t i = 0; i < 3; ++i) {
    const auto& s = seqs[size_t(i)];
    for (int64_t t = 0; t < T; ++t) {
      const bool real = t < int64_t(s.size());
      CHECK(b.input_ids.at({i, t}) == (real ? double(s[size_t(t)]) : 1.0));
      CHECK(b.attention_mask.at({i, t}) == (real ? 1.0 : 0.0));
    }
  }

  // Truncated to max_len, and padded to it on request.
  EncodedBatch c = tok.encode_batch(texts, 6);
  CHECK(c.input_ids.shape() == Shape{3, 6});
  CHECK(c.input_ids.at({1, 5}) == 2);
  EncodedBatch d = tok.encode_batch({"Hi"}, 16, /*pad_to_max_len=*/true);
  CHECK(d.input_ids.shape() == Shape{1, 16});
  CHECK(d.attention_mask.to_vector<int64_t>()[15] == 0);

  EncodedBatch p =
      tok.encode_pair_batch({{"Hi", "Salut"}, {"The cat sleeps.", "Le chat dort."}}, 9);
  CHECK(p.input_ids.size(0) == 2);
  CHECK(p.input_ids.size(1) <= 9);
  CHECK(p.input_ids.at({1, 0}) == 0);

  check_throws_with([&] { tok.encode_batch({}); }, {"tokenizer", "encode_batch", "empty batch"});
  check_throws_with([&] { tok.encode_batch({"x"}, 0, true); }, {"pad_to_max_len needs max_len"});
}

TEST_CASE("tokenizer: decode") {
  Tokenizer tok = Tokenizer::load(trained().path);
  const std::string text = "The cat sleeps on the warm windowsill.";
  CHECK(tok.decode(tok.encode(text)) == text);
  CHECK(tok.decode(tok.encode_pair("Hi there", "Salut")) == "Hi there Salut");
  CHECK(tok.decode({0, 4, 5, 2, 1, 1}, /*skip_special=*/false).find("<s>") == 0);
  const std::string with_mask = tok.decode({0, tok.mask_id(), 2}, false);
  CHECK(with_mask == "<s><mask></s>");
  CHECK(tok.decode({0, 3, 2}) == " ⁇ ");  // sentencepiece's rendering of <unk>
  check_throws_with(
      [&] {
        tok.decode({0, tok.vocab_size()});
      },
      {"tokenizer", "decode", "outside the vocabulary"});
  check_throws_with([&] { tok.decode({-1}); }, {"tokenizer", "decode", "id -1"});
  check_throws_with([&] { tok.id_to_piece(tok.vocab_size()); }, {"tokenizer", "outside"});
}

TEST_CASE("tokenizer: training is deterministic with a fixed seed; bpe works too") {
  TempDir dir;
  train_tokenizer(kCorpus, kPieces, "unigram", dir.file("again.model"), 7);
  CHECK(read_file(dir.file("again.model")) == read_file(trained().path));

  train_tokenizer(kCorpus, 260, "bpe", dir.file("bpe1.model"), 11);
  train_tokenizer(kCorpus, 260, "bpe", dir.file("bpe2.model"), 11);
  CHECK(read_file(dir.file("bpe1.model")) == read_file(dir.file("bpe2.model")));
  Tokenizer bpe = Tokenizer::load(dir.file("bpe1.model"));
  CHECK(bpe.vocab_size() == 262);
  CHECK(bpe.decode(bpe.encode("Die Katze schläft.")) == "Die Katze schläft.");
  // The unigram and the bpe models are different models.
  CHECK(read_file(dir.file("bpe1.model")) != read_file(trained().path));

  check_throws_with([&] { train_tokenizer(kCorpus, 100, "wordpiece", dir.file("x.model")); },
                    {"train_tokenizer", "model_type 'wordpiece'"});
  check_throws_with([&] { train_tokenizer(dir.file("none.txt"), 100, "bpe", dir.file("x.model")); },
                    {"train_tokenizer", "cannot open", "none.txt"});
  // More pieces than the text can give: sentencepiece's reason is passed on.
  check_throws_with([&] { train_tokenizer(kCorpus, 5000, "unigram", dir.file("x.model")); },
                    {"train_tokenizer", "failed", "Vocabulary size"});
  CHECK(!std::filesystem::exists(dir.file("x.model")));
}

TEST_CASE("tokenizer: a bad model file is a clear error") {
  TempDir dir;
  check_throws_with([&] { Tokenizer::load(dir.file("missing.model")); },
                    {"tokenizer", "cannot open", "missing.model"});
  std::ofstream(dir.file("text.model")) << "this is not a protobuf, just some text\n";
  check_throws_with([&] { Tokenizer::load(dir.file("text.model")); },
                    {"tokenizer", "text.model", "is not a sentencepiece model"});
  std::ofstream(dir.file("empty.model")).flush();
  check_throws_with([&] { Tokenizer::load(dir.file("empty.model")); },
                    {"tokenizer", "empty.model"});
  // A truncated model file.
  const std::string bytes = read_file(trained().path);
  std::ofstream(dir.file("cut.model"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  check_throws_with([&] { Tokenizer::load(dir.file("cut.model")); }, {"tokenizer", "cut.model"});
}
}
