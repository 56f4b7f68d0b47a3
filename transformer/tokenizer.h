// Tokenizer: a sentencepiece model with the XLM-R id convention.
//
// XLM-R (fairseq, then Hugging Face's XLMRobertaTokenizer) puts four special tokens in front of
// the sentencepiece vocabulary and shifts every other piece by one:
//   <s> = 0, <pad> = 1, </s> = 2, <unk> = 3
//   sentencepiece piece i >= 3  ->  i + 1          (sentencepiece 0 = <unk> -> 3;
//   <mask> = piece count + 1                        pieces 1, 2 = its own <s>, </s>, unused)
//   vocab_size = piece count + 2                    (ids 0 .. mask_id)
// One sequence is `<s> X </s>`; a pair is `<s> A </s></s> B </s>`; token types are all 0.
// For XLM-R's sentencepiece.bpe.model (250 000 pieces) that gives mask 250001, vocab 250002.
// A model trained by train_tokenizer() (sentencepiece defaults unk 0, bos 1, eos 2) follows
// the same rule.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace kdnas {

// A padded batch. Both tensors are i64 [B, T], T = the longest sequence after truncation (or
// max_len when padding to it); padded positions hold <pad> = 1 and mask 0, real tokens mask 1.
struct EncodedBatch {
  Tensor input_ids;
  Tensor attention_mask;
};

class Tokenizer {
 public:
  static constexpr int64_t kBosId = 0;  // <s>, also the classification token
  static constexpr int64_t kPadId = 1;
  static constexpr int64_t kEosId = 2;  // </s>, also the separator
  static constexpr int64_t kUnkId = 3;

  // Loads a sentencepiece model file (XLM-R's sentencepiece.bpe.model or one we trained).
  // Throws kdnas::Error naming the file when it is missing, not a model, or does not have the
  // layout the id convention needs (unk = 0, pieces 1 and 2 control tokens).
  static Tokenizer load(const std::string& model_path);
  // The same from the bytes of a model file; `what` names it in errors.
  static Tokenizer from_bytes(const std::string& model_bytes, const std::string& what);

  int64_t piece_count() const { return pieces_; }  // sentencepiece's vocabulary
  int64_t mask_id() const { return pieces_ + 1; }
  int64_t vocab_size() const { return pieces_ + 2; }  // ids 0 .. mask_id

  // Text -> XLM-R ids without special tokens.
  std::vector<int64_t> tokenize(const std::string& text) const;
  // <s> X </s>. max_len (> 0) bounds the whole sequence, special tokens included, by dropping
  // tokens from the end of X; 0 means no limit. max_len must leave room for the specials (>= 2).
  std::vector<int64_t> encode(const std::string& text, int64_t max_len = 0) const;
  // <s> A </s></s> B </s>. Truncation is longest-first: while too long, drop the last token of
  // the longer of A and B (of B when they tie), as Hugging Face does. max_len >= 4 (or 0).
  std::vector<int64_t> encode_pair(const std::string& a, const std::string& b,
                                   int64_t max_len = 0) const;

  // Batches of the above, padded to the longest sequence, or to max_len if pad_to_max_len.
  EncodedBatch encode_batch(const std::vector<std::string>& texts, int64_t max_len = 0,
                            bool pad_to_max_len = false) const;
  EncodedBatch encode_pair_batch(const std::vector<std::pair<std::string, std::string>>& pairs,
                                 int64_t max_len = 0, bool pad_to_max_len = false) const;

  // XLM-R ids -> text. Special tokens (<s>, <pad>, </s>, <mask>) are skipped unless
  // skip_special is false, in which case they are spelled out; <unk> decodes as sentencepiece
  // does (" ⁇ "). Ids outside [0, vocab_size) are an error.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const;

  // Single-id lookups in XLM-R ids: "<s>", "<mask>", "▁the", ...; piece_to_id gives kUnkId for
  // a piece not in the vocabulary.
  std::string id_to_piece(int64_t id) const;
  int64_t piece_to_id(const std::string& piece) const;

 private:
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;
  int64_t pieces_ = 0;
  std::string what_;  // the model file, for error messages

  static Tokenizer from_processor(std::shared_ptr<sentencepiece::SentencePieceProcessor> sp,
                                  const std::string& what);
  int64_t to_xlmr(int sp_id) const;
  EncodedBatch pad(const std::vector<std::vector<int64_t>>& seqs, int64_t max_len,
                   bool pad_to_max_len, const char* op) const;
};

// Trains a sentencepiece model in process on `input_file` (one sentence per line) and writes
// it to `out_path` atomically. model_type is "unigram" or "bpe"; vocab_size counts
// sentencepiece pieces (the Tokenizer then has vocab_size + 2 ids). Deterministic: the same
// input, vocab size, type, seed and num_threads give a byte-identical model (the thread count
// changes how the corpus is split, hence the floating-point sums, so it is part of the recipe
// and not taken from the machine).
void train_tokenizer(const std::string& input_file, int64_t vocab_size,
                     const std::string& model_type, const std::string& out_path, uint32_t seed = 0,
                     int num_threads = 1);

}  // namespace kdnas
