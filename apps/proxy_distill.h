// Proxy distillation for the KD-NAS search, shared by `kdnas search` and `kdnas demo`: the
// fixed proxy sample of the corpus and the ProxyFn body (nas/search.h) that distils one
// candidate with the distill trainer (distill/trainer.h) and keeps its result.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nas/search.h"

namespace kdnas::cli {

// The recipe of one proxy run.
struct ProxySettings {
  std::string teacher;  // teacher model directory (with its tokenizer)
  int64_t batch = 32, seq = 128, epochs = 4;
  double lr = 1e-4;
  uint64_t seed = 0;
  int threads = 2;
  std::string device = "cpu";  // where the proxy distillation runs (TrainOptions::device)
  int64_t text_column = -1;    // -1: whole lines; N >= 0: the N-th TAB-separated field
  bool keep_models = false;    // keep the proxy weights and optimizer state
};

// File names inside a run directory.
constexpr const char* kProxyFile = "proxy.txt";
constexpr const char* kProxyResult = "proxy_result.json";

// Whole text file; errors name it (op prefixes the message, e.g. "search").
std::string read_text_file(const std::string& path, const std::string& op);
// Atomically (temporary file + rename).
void write_text_file(const std::string& path, const std::string& text, const std::string& op);

// "X,Y,..." -> positive millisecond budgets (empty: none); errors name the bad part.
std::vector<double> parse_budgets_ms(const std::string& s);
// "X,Y,..." -> positive numbers (empty: none); errors read "<flag>: 'part' is not <expected>".
std::vector<double> parse_positive_list(const std::string& s, const std::string& flag,
                                        const std::string& expected);

// A deterministic sample of at most n non-blank lines of the corpus, in corpus order (lines kept
// whole: a TSV corpus keeps its columns, text_column picks the text when training).
std::string proxy_sample(const std::string& corpus, int64_t n, uint64_t seed);

// Proxy distillation of one candidate on proxy_corpus; its result is kept in
// dir/proxy_result.json, so a candidate measured before (by this run, another run sharing the
// directory, or a run killed before it recorded the row) is not trained twice. A directory
// without a result (an attempt killed half-way) is started again from scratch.
ProxyResult proxy_distill(const ProxySettings& s, const std::string& proxy_corpus, const Arch& arch,
                          const std::string& dir);

}  // namespace kdnas::cli
