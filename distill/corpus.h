// The distillation corpus: sentences read from a text file, a held-out evaluation slice, and a
// deterministic batcher whose position can be saved and restored exactly.
//
// File format: one sentence per line, or TSV with the text in one column (text_column). Lines
// are read one at a time (the file is never loaded as one buffer); a trailing '\r' is dropped and
// lines that are empty (or blank) after that are skipped. Line numbers in errors are 1-based.
//
// Held-out slice: with eval_first = N > 0 the first N sentences; otherwise every eval_every-th
// sentence (sentence k, counted from 0 over non-empty lines, when k % eval_every == 0). A held-out
// sentence never reaches a training batch.
//
// Batching: epoch e visits the training sentences in the order of a Fisher-Yates permutation
// drawn from Rng(rng_hash(seed, e)), so the order is a pure function of (seed, e). A batch is
// the next `batch` sentences of that order, or, with a token budget, as many sentences as fit
// when every sequence is padded to the longest one in the batch (at least one sentence always).
// The last batch of an epoch may be smaller; the next batch starts the next epoch. The data
// position (epoch, index into the permutation) is all the state there is.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "transformer/tokenizer.h"

namespace kdnas {

struct CorpusOptions {
  int64_t text_column = -1;  // -1: the whole line; N >= 0: the N-th tab-separated field (0-based)
  int64_t eval_every = 50;   // every N-th sentence is held out (0: none)
  int64_t eval_first = 0;    // > 0: hold out the first N sentences instead
};

class Corpus {
 public:
  // Reads and splits the file. Errors name the file: missing or unreadable, a TSV line without
  // the column, no sentence at all, or no training sentence left after the held-out slice.
  static Corpus read(const std::string& path, const CorpusOptions& opt = {});
  // The same from sentences already in memory (tests); `what` names them in errors.
  static Corpus from_sentences(const std::vector<std::string>& sentences,
                               const CorpusOptions& opt = {}, const std::string& what = "corpus");

  const std::vector<std::string>& train() const { return train_; }
  const std::vector<std::string>& eval() const { return eval_; }

 private:
  std::vector<std::string> train_, eval_;
  void add(std::string sentence, int64_t k, const CorpusOptions& opt);
};

struct DataPosition {
  int64_t epoch = 0;
  int64_t index = 0;  // next sentence of the epoch's permutation
  bool operator==(const DataPosition&) const = default;
};

struct BatchOptions {
  int64_t batch = 32;        // sentences per batch (when batch_tokens == 0)
  int64_t batch_tokens = 0;  // > 0: padded-token budget per batch instead
  int64_t seq = 128;         // max tokens per sequence, <s> and </s> included
  uint64_t seed = 0;
};

struct Batch {
  EncodedBatch encoded;            // i64 [B, T] ids and mask
  std::vector<int64_t> sentences;  // indices into Corpus::train() (or eval())
  DataPosition start;              // where the batch began
  int64_t tokens = 0;              // real (non-padding) tokens
};

class Batcher {
 public:
  // Keeps references to the corpus and tokenizer: both must outlive the batcher. With a token
  // budget, every training sentence is tokenised once here to learn its length.
  Batcher(const Corpus& corpus, const Tokenizer& tokenizer, const BatchOptions& opt);

  Batch next();  // the batch at position(), then advances
  DataPosition position() const { return pos_; }
  void set_position(const DataPosition& pos);  // errors name an impossible position

  // The training order of an epoch (a permutation of 0 .. train().size() - 1).
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  // Batches in an epoch (with a token budget it depends on the epoch's order).
  int64_t batches_in_epoch(int64_t epoch) const;

  // The held-out sentences in file order, in batches of opt.batch sentences (or of the token
  // budget); empty when there are none.
  std::vector<Batch> eval_batches() const;

 private:
  const Corpus& corpus_;
  const Tokenizer& tok_;
  BatchOptions opt_;
  DataPosition pos_;
  std::vector<int64_t> order_;    // permutation of the current epoch
  int64_t order_epoch_ = -1;      // which epoch order_ holds
  std::vector<int64_t> lengths_;  // token count per training sentence (token budget only)

  // How many of order[from..] go into one batch.
  int64_t take(const std::vector<int64_t>& order, int64_t from,
               const std::vector<int64_t>& lengths) const;
  Batch make(const std::vector<std::string>& texts, std::vector<int64_t> idx) const;
  void ensure_order(int64_t epoch);
};

}  // namespace kdnas
