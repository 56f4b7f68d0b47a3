#include "distill/corpus.h"

#include <algorithm>
#include <cctype>
#include <fstream>

#include "tensor/check.h"
#include "tensor/rng.h"

namespace kdnas {
namespace {

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

// The N-th tab-separated field of a line; false when the line has fewer fields.
bool tsv_field(const std::string& line, int64_t n, std::string& out) {
  size_t begin = 0;
  for (int64_t i = 0; i < n; ++i) {
    size_t tab = line.find('\t', begin);
    if (tab == std::string::npos) return false;
    begin = tab + 1;
  }
  size_t end = line.find('\t', begin);
  out = line.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
  return true;
}

void check_options(const CorpusOptions& opt, const std::string& what) {
  KDNAS_CHECK(opt.text_column >= -1, "corpus: ", what, ": text column ", opt.text_column,
              " is negative");
  KDNAS_CHECK(opt.eval_every >= 0 && opt.eval_first >= 0, "corpus: ", what,
              ": eval_every and eval_first must be >= 0, got ", opt.eval_every, " and ",
              opt.eval_first);
}

void check_split(const Corpus& c, const std::string& what) {
  KDNAS_CHECK(!c.train().empty() || !c.eval().empty(), "corpus: ", what,
              " is empty (no non-blank line)");
  KDNAS_CHECK(!c.train().empty(), "corpus: ", what, " has ", c.eval().size(),
              " sentences and all of them are held out for evaluation; lower the held-out slice");
}

}  // namespace

void Corpus::add(std::string sentence, int64_t k, const CorpusOptions& opt) {
  const bool held_out =
      opt.eval_first > 0 ? k < opt.eval_first : (opt.eval_every > 0 && k % opt.eval_every == 0);
  (held_out ? eval_ : train_).push_back(std::move(sentence));
}

Corpus Corpus::read(const std::string& path, const CorpusOptions& opt) {
  check_options(opt, path);
  std::ifstream in(path, std::ios::binary);
  KDNAS_CHECK(in.is_open(), "corpus: cannot open '", path, "'");
  Corpus c;
  std::string line, text;
  int64_t lineno = 0, k = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (opt.text_column >= 0) {
      if (blank(line)) continue;
      KDNAS_CHECK(tsv_field(line, opt.text_column, text), "corpus: ", path, " line ", lineno,
                  " has no tab-separated column ", opt.text_column, " (columns count from 0)");
    } else {
      text = line;
    }
    if (blank(text)) continue;
    c.add(text, k++, opt);
  }
  KDNAS_CHECK(!in.bad(), "corpus: error reading '", path, "'");
  check_split(c, "'" + path + "'");
  return c;
}

Corpus Corpus::from_sentences(const std::vector<std::string>& sentences, const CorpusOptions& opt,
                              const std::string& what) {
  check_options(opt, what);
  Corpus c;
  int64_t k = 0;
  for (const auto& s : sentences)
    if (!blank(s)) c.add(s, k++, opt);
  check_split(c, what);
  return c;
}

Batcher::Batcher(const Corpus& corpus, const Tokenizer& tokenizer, const BatchOptions& opt)
    : corpus_(corpus), tok_(tokenizer), opt_(opt) {
  KDNAS_CHECK(opt.seq >= 2, "distill: --seq ", opt.seq, " leaves no room for <s> and </s>");
  KDNAS_CHECK(opt.batch >= 1, "distill: --batch ", opt.batch, " must be >= 1");
  KDNAS_CHECK(opt.batch_tokens >= 0, "distill: --batch-tokens ", opt.batch_tokens, " must be >= 0");
  if (opt.batch_tokens > 0) {
    lengths_.reserve(corpus.train().size());
    for (const auto& s : corpus.train())
      lengths_.push_back(int64_t(tok_.encode(s, opt.seq).size()));
  }
}

std::vector<int64_t> Batcher::epoch_order(int64_t epoch) const {
  const int64_t n = int64_t(corpus_.train().size());
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  // Fisher-Yates from the back, one draw per position: the order depends on (seed, epoch) only.
  Rng rng(rng_hash(opt_.seed, uint64_t(epoch)));
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[int64_t(rng.below(i + 1))]);
  return order;
}

int64_t Batcher::take(const std::vector<int64_t>& order, int64_t from,
                      const std::vector<int64_t>& lengths) const {
  const int64_t n = int64_t(order.size());
  if (opt_.batch_tokens == 0) return std::min(opt_.batch, n - from);
  // Padded cost of a batch = count * longest; stop before the one that would exceed the budget.
  int64_t count = 0, longest = 0;
  while (from + count < n) {
    const int64_t l = std::max(longest, lengths[order[from + count]]);
    if (count > 0 && (count + 1) * l > opt_.batch_tokens) break;
    longest = l;
    ++count;
  }
  return count;
}

int64_t Batcher::batches_in_epoch(int64_t epoch) const {
  const std::vector<int64_t> order = epoch_order(epoch);
  int64_t batches = 0;
  for (int64_t i = 0; i < int64_t(order.size()); ++batches) i += take(order, i, lengths_);
  return batches;
}

void Batcher::ensure_order(int64_t epoch) {
  if (order_epoch_ == epoch) return;
  order_ = epoch_order(epoch);
  order_epoch_ = epoch;
}

void Batcher::set_position(const DataPosition& pos) {
  KDNAS_CHECK(pos.epoch >= 0 && pos.index >= 0 && pos.index < int64_t(corpus_.train().size()),
              "distill: data position (epoch ", pos.epoch, ", index ", pos.index,
              ") is outside a corpus of ", corpus_.train().size(),
              " training sentences (was the checkpoint made with another corpus?)");
  pos_ = pos;
}

Batch Batcher::make(const std::vector<std::string>& texts, std::vector<int64_t> idx) const {
  Batch b;
  std::vector<std::string> batch_texts;
  batch_texts.reserve(idx.size());
  for (int64_t i : idx) batch_texts.push_back(texts[i]);
  b.encoded = tok_.encode_batch(batch_texts, opt_.seq);
  const Tensor& mask = b.encoded.attention_mask;
  const int64_t* m = mask.data<int64_t>();
  for (int64_t i = 0; i < mask.numel(); ++i) b.tokens += m[i];
  b.sentences = std::move(idx);
  return b;
}

Batch Batcher::next() {
  ensure_order(pos_.epoch);
  const int64_t count = take(order_, pos_.index, lengths_);
  std::vector<int64_t> idx(order_.begin() + pos_.index, order_.begin() + pos_.index + count);
  Batch b = make(corpus_.train(), std::move(idx));
  b.start = pos_;
  pos_.index += count;
  if (pos_.index >= int64_t(order_.size())) pos_ = {pos_.epoch + 1, 0};
  return b;
}

std::vector<Batch> Batcher::eval_batches() const {
  const auto& texts = corpus_.eval();
  std::vector<int64_t> order(texts.size()), lengths;
  for (size_t i = 0; i < texts.size(); ++i) order[i] = int64_t(i);
  if (opt_.batch_tokens > 0)
    for (const auto& s : texts) lengths.push_back(int64_t(tok_.encode(s, opt_.seq).size()));
  std::vector<Batch> out;
  for (int64_t i = 0; i < int64_t(order.size());) {
    const int64_t count = take(order, i, lengths);
    out.push_back(make(texts, std::vector<int64_t>(order.begin() + i, order.begin() + i + count)));
    out.back().start = {0, i};
    i += count;
  }
  return out;
}

}  // namespace kdnas
