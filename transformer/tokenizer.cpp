#include "transformer/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "tensor/check.h"
#include "transformer/safetensors.h"

namespace kdnas {

namespace {

// sentencepiece's own ids in any model the convention applies to.
constexpr int kSpUnk = 0, kSpBos = 1, kSpEos = 2;

std::string read_file(const std::string& path, const char* op) {
  std::ifstream in(path, std::ios::binary);
  KDNAS_CHECK(in, op, ": cannot open '", path, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  KDNAS_CHECK(!in.bad(), op, ": cannot read '", path, "'");
  return ss.str();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Loading

Tokenizer Tokenizer::load(const std::string& model_path) {
  return from_bytes(read_file(model_path, "tokenizer"), model_path);
}

Tokenizer Tokenizer::from_bytes(const std::string& model_bytes, const std::string& what) {
  auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
  const auto st = sp->LoadFromSerializedProto(model_bytes);
  KDNAS_CHECK(st.ok(), "tokenizer: '", what, "' is not a sentencepiece model (", st.ToString(),
              ")");
  return from_processor(std::move(sp), what);
}

Tokenizer Tokenizer::from_processor(std::shared_ptr<sentencepiece::SentencePieceProcessor> sp,
                                    const std::string& what) {
  const int n = sp->GetPieceSize();
  // The id shift assumes sentencepiece's default layout. If pieces 1 and 2 were ordinary
  // pieces, encode could emit them and they would collide with <pad> and </s>.
  KDNAS_CHECK(n > 3 && sp->unk_id() == kSpUnk && !sp->IsUnknown(kSpBos) &&
                  (sp->IsControl(kSpBos) || sp->IsUnused(kSpBos)) &&
                  (sp->IsControl(kSpEos) || sp->IsUnused(kSpEos)),
              "tokenizer: '", what, "' does not have the layout the XLM-R ids need (", n,
              " pieces, unk id ", sp->unk_id(),
              "; expected unk = 0 and pieces 1, 2 = <s>, </s> control tokens)");
  Tokenizer t;
  t.sp_ = std::move(sp);
  t.pieces_ = n;
  t.what_ = what;
  return t;
}

int64_t Tokenizer::to_xlmr(int sp_id) const {
  if (sp_id == kSpUnk) return kUnkId;
  KDNAS_ASSERT(sp_id > kSpEos && sp_id < pieces_);  // encode never emits control pieces
  return int64_t(sp_id) + 1;
}

// ---------------------------------------------------------------------------------------------
// Encoding

std::vector<int64_t> Tokenizer::tokenize(const std::string& text) const {
  std::vector<int> sp_ids;
  const auto st = sp_->Encode(text, &sp_ids);
  KDNAS_CHECK(st.ok(), "tokenizer: encode failed (", st.ToString(), ")");
  std::vector<int64_t> ids;
  ids.reserve(sp_ids.size());
  for (int i : sp_ids) ids.push_back(to_xlmr(i));
  return ids;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, int64_t max_len) const {
  KDNAS_CHECK(max_len == 0 || max_len >= 2, "tokenizer: encode: max_len ", max_len,
              " leaves no room for <s> and </s> (need >= 2, or 0 for no limit)");
  std::vector<int64_t> x = tokenize(text);
  if (max_len > 0 && int64_t(x.size()) > max_len - 2) x.resize(size_t(max_len - 2));
  std::vector<int64_t> ids{kBosId};
  ids.insert(ids.end(), x.begin(), x.end());
  ids.push_back(kEosId);
  return ids;
}

std::vector<int64_t> Tokenizer::encode_pair(const std::string& a, const std::string& b,
                                            int64_t max_len) const {
  KDNAS_CHECK(max_len == 0 || max_len >= 4, "tokenizer: encode_pair: max_len ", max_len,
              " leaves no room for <s> A </s></s> B </s> (need >= 4, or 0 for no limit)");
  std::vector<int64_t> xa = tokenize(a), xb = tokenize(b);
  if (max_len > 0) {
    // Longest-first: removing one token at a time from the longer side (B on ties) ends with
    // the longer side cut down towards the shorter one, then both shrinking in turn. The
    // closed form below is that loop's result.
    const int64_t budget = max_len - 4;
    int64_t na = int64_t(xa.size()), nb = int64_t(xb.size());
    int64_t excess = na + nb - budget;
    if (excess > 0) {
      const int64_t diff = std::min(std::abs(na - nb), excess);
      (na > nb ? na : nb) -= diff;  // first level the longer side down to the shorter
      excess -= diff;
      // Equal now (or done): alternate, B first, so B loses the odd token.
      nb -= (excess + 1) / 2;
      na -= excess / 2;
      xa.resize(size_t(na));
      xb.resize(size_t(nb));
    }
  }
  std::vector<int64_t> ids{kBosId};
  ids.insert(ids.end(), xa.begin(), xa.end());
  ids.insert(ids.end(), {kEosId, kEosId});
  ids.insert(ids.end(), xb.begin(), xb.end());
  ids.push_back(kEosId);
  return ids;
}

EncodedBatch Tokenizer::pad(const std::vector<std::vector<int64_t>>& seqs, int64_t max_len,
                            bool pad_to_max_len, const char* op) const {
  KDNAS_CHECK(!seqs.empty(), "tokenizer: ", op, ": empty batch");
  KDNAS_CHECK(!pad_to_max_len || max_len > 0, "tokenizer: ", op,
              ": pad_to_max_len needs max_len > 0");
  int64_t T = 0;
  for (const auto& s : seqs) T = std::max(T, int64_t(s.size()));
  if (pad_to_max_len) T = max_len;
  const int64_t B = int64_t(seqs.size());
  // input_ids, attention_mask: [B, T]
  EncodedBatch out{Tensor::full({B, T}, double(kPadId), DType::I64),
                   Tensor::zeros({B, T}, DType::I64)};
  int64_t* ids = out.input_ids.data<int64_t>();
  int64_t* mask = out.attention_mask.data<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = seqs[size_t(b)];
    std::copy(s.begin(), s.end(), ids + b * T);
    std::fill(mask + b * T, mask + b * T + int64_t(s.size()), int64_t(1));
  }
  return out;
}

EncodedBatch Tokenizer::encode_batch(const std::vector<std::string>& texts, int64_t max_len,
                                     bool pad_to_max_len) const {
  std::vector<std::vector<int64_t>> seqs;
  for (const std::string& t : texts) seqs.push_back(encode(t, max_len));
  return pad(seqs, max_len, pad_to_max_len, "encode_batch");
}

EncodedBatch Tokenizer::encode_pair_batch(
    const std::vector<std::pair<std::string, std::string>>& pairs, int64_t max_len,
    bool pad_to_max_len) const {
  std::vector<std::vector<int64_t>> seqs;
  for (const auto& [a, b] : pairs) seqs.push_back(encode_pair(a, b, max_len));
  return pad(seqs, max_len, pad_to_max_len, "encode_pair_batch");
}

// ---------------------------------------------------------------------------------------------
// Decoding and lookups

std::string Tokenizer::id_to_piece(int64_t id) const {
  KDNAS_CHECK(id >= 0 && id < vocab_size(), "tokenizer: id ", id, " is outside the vocabulary [0, ",
              vocab_size(), ")");
  switch (id) {
    case kBosId:
      return "<s>";
    case kPadId:
      return "<pad>";
    case kEosId:
      return "</s>";
    case kUnkId:
      return "<unk>";
  }
  if (id == mask_id()) return "<mask>";
  return sp_->IdToPiece(int(id - 1));
}

int64_t Tokenizer::piece_to_id(const std::string& piece) const {
  if (piece == "<s>") return kBosId;
  if (piece == "<pad>") return kPadId;
  if (piece == "</s>") return kEosId;
  if (piece == "<unk>") return kUnkId;
  if (piece == "<mask>") return mask_id();
  const int i = sp_->PieceToId(piece);
  return (i == kSpUnk || i == kSpBos || i == kSpEos) ? kUnkId : int64_t(i) + 1;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::string out;
  std::vector<int> run;  // consecutive ordinary pieces, decoded together so spaces come out right
  auto flush = [&] {
    if (run.empty()) return;
    std::string s;
    const auto st = sp_->Decode(run, &s);
    KDNAS_CHECK(st.ok(), "tokenizer: decode failed (", st.ToString(), ")");
    out += s;
    run.clear();
  };
  for (int64_t id : ids) {
    KDNAS_CHECK(id >= 0 && id < vocab_size(), "tokenizer: decode: id ", id,
                " is outside the vocabulary [0, ", vocab_size(), ")");
    if (id == kUnkId) {
      run.push_back(kSpUnk);
    } else if (id > kUnkId && id < mask_id()) {
      run.push_back(int(id - 1));
    } else if (!skip_special) {
      flush();
      out += id_to_piece(id);
    }
  }
  flush();
  return out;
}

// ---------------------------------------------------------------------------------------------
// Training

namespace {

// Feeds sentencepiece one line at a time from our own stream, so that the path needs no
// escaping (sentencepiece splits its --input at commas) and a read error is ours to report.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::string& path) : in_(path, std::ios::binary) { Next(); }
  bool done() const override { return done_; }
  void Next() override { done_ = !std::getline(in_, line_); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override {
    if (in_.bad())
      return sentencepiece::util::Status(sentencepiece::util::StatusCode::kDataLoss, "read error");
    return sentencepiece::util::Status();
  }

 private:
  std::ifstream in_;
  std::string line_;
  bool done_ = false;
};

}  // namespace

void train_tokenizer(const std::string& input_file, int64_t vocab_size,
                     const std::string& model_type, const std::string& out_path, uint32_t seed,
                     int num_threads) {
  KDNAS_CHECK(model_type == "unigram" || model_type == "bpe", "train_tokenizer: model_type '",
              model_type, "' is not \"unigram\" or \"bpe\"");
  KDNAS_CHECK(vocab_size > 3 && vocab_size <= (int64_t(1) << 30), "train_tokenizer: vocab_size ",
              vocab_size, " must be in [4, 2^30]");
  KDNAS_CHECK(num_threads >= 1, "train_tokenizer: num_threads ", num_threads, " must be >= 1");
  {
    std::ifstream probe(input_file);
    KDNAS_CHECK(probe, "train_tokenizer: cannot open '", input_file, "'");
  }
  // The ids are spelled out rather than left to sentencepiece's defaults, because the XLM-R id
  // convention depends on exactly this layout. minloglevel 1 silences the INFO progress log
  // (sentencepiece keeps that level process-wide; warnings and errors still print).
  const std::unordered_map<std::string, std::string> args{
      {"model_type", model_type},
      {"vocab_size", std::to_string(vocab_size)},
      {"num_threads", std::to_string(num_threads)},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"minloglevel", "1"},
  };
  // The seed matters where sentencepiece samples (e.g. sentence subsampling); it is a global
  // of the library, so it is set right before the call that uses it.
  sentencepiece::SetRandomGeneratorSeed(seed);
  LineIterator lines(input_file);
  std::string model;
  const auto st = sentencepiece::SentencePieceTrainer::Train(args, &lines, &model);
  KDNAS_CHECK(st.ok(), "train_tokenizer: training on '", input_file, "' failed (", st.ToString(),
              ")");
  Tokenizer::from_bytes(model, out_path);  // checks the layout before anything is written
  write_file_atomically(out_path, {{model.data(), model.size()}}, "train_tokenizer");
}

}  // namespace kdnas
