// kdnas tokenizer-train --input FILE --vocab N --out FILE.model [--model-type unigram|bpe]
//                       [--seed S] [--input-column N] [--threads N]
// Trains a sentencepiece model (transformer/tokenizer.h: train_tokenizer) whose ids follow the
// XLM-R convention once loaded by Tokenizer. The input is one sentence per line, or TSV lines
// (lang<TAB>sentence from scripts/build_corpus.sh) with --input-column picking the text.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "apps/commands.h"
#include "transformer/tokenizer.h"

namespace kdnas::cli {
namespace {

// Column `column` (from 0) of every non-empty line of `in`, written to `out_path`, one per line.
// Returns the number of lines written. A line with too few columns is an error: it means the
// wrong file or the wrong column, and silently training on part of a file would hide that.
int64_t extract_column(const std::string& in_path, int column, const std::string& out_path) {
  std::ifstream in(in_path, std::ios::binary);
  KDNAS_CHECK(in.good(), "tokenizer-train: cannot read ", in_path);
  std::ofstream out(out_path, std::ios::binary);
  KDNAS_CHECK(out.good(), "tokenizer-train: cannot write ", out_path);
  int64_t n = 0, lineno = 0;
  for (std::string line; std::getline(in, line);) {
    ++lineno;
    if (line.empty()) continue;
    size_t begin = 0;
    for (int c = 0; c < column; ++c) {
      const size_t tab = line.find('\t', begin);
      KDNAS_CHECK(tab != std::string::npos, "tokenizer-train: ", in_path, ":", lineno, " has ",
                  c + 1, " column(s); --input-column ", column, " needs ", column + 1);
      begin = tab + 1;
    }
    const size_t end = line.find('\t', begin);
    const std::string text = line.substr(begin, end == std::string::npos ? end : end - begin);
    if (text.empty()) continue;
    out << text << '\n';
    ++n;
  }
  KDNAS_CHECK(!in.bad() && out.good(), "tokenizer-train: I/O error on ", in_path, " or ", out_path);
  return n;
}

int64_t count_nonempty_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  KDNAS_CHECK(in.good(), "tokenizer-train: cannot read ", path);
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

}  // namespace

void add_tokenizer_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenizer-train",
                                 "Train a sentencepiece tokenizer (XLM-R ids) on a text file");
  struct Args {
    std::string input, out, model_type = "unigram";
    int64_t vocab = 0;
    uint32_t seed = 0;
    int column = -1, threads = 1;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--input", a->input, "text file: one sentence per line, or TSV")->required();
  cmd->add_option("--vocab", a->vocab, "sentencepiece pieces (the model has vocab + 2 ids)")
      ->required();
  cmd->add_option("--out", a->out, "output model file (FILE.model)")->required();
  cmd->add_option("--model-type", a->model_type, "unigram (default) or bpe")
      ->check(CLI::IsMember({"unigram", "bpe"}));
  cmd->add_option("--seed", a->seed, "random seed (default 0)");
  cmd->add_option("--input-column", a->column,
                  "take the text from this TAB-separated column (from 0; e.g. 1 for lang<TAB>text)")
      ->check(CLI::Range(0, 1000));
  cmd->add_option("--threads", a->threads,
                  "training threads (default 1; part of the recipe: it changes the model)")
      ->check(CLI::Range(1, 1024));
  cmd->callback([a] {
    namespace fs = std::filesystem;
    KDNAS_CHECK(fs::is_regular_file(a->input), "tokenizer-train: ", a->input,
                " is not a readable file");
    // Fewer pieces than this leaves no room beyond the three specials and the characters.
    KDNAS_CHECK(a->vocab >= 8, "tokenizer-train: --vocab ", a->vocab,
                " is too small (at least 8 pieces)");
    const auto t0 = std::chrono::steady_clock::now();
    // The temporary column file goes away however the command ends.
    struct Cleanup {
      std::string path;
      ~Cleanup() {
        std::error_code ec;
        if (!path.empty()) std::filesystem::remove(path, ec);
      }
    } tmp;
    std::string text_file = a->input;
    int64_t lines = 0;
    if (a->column >= 0) {
      tmp.path =
          (fs::temp_directory_path() / ("kdnas-tokenizer-" + std::to_string(::getpid()) + ".txt"))
              .string();
      lines = extract_column(a->input, a->column, tmp.path);
      text_file = tmp.path;
    } else {
      lines = count_nonempty_lines(a->input);
    }
    KDNAS_CHECK(lines > 0, "tokenizer-train: ", a->input, " has no text",
                a->column >= 0 ? " in --input-column " + std::to_string(a->column) : "");
    try {
      train_tokenizer(text_file, a->vocab, a->model_type, a->out, a->seed, a->threads);
    } catch (const Error& e) {
      // Name the user's file, not the temporary column file, in sentencepiece's complaint.
      std::string msg = e.what();
      const std::string user = a->input + " (column " + std::to_string(a->column) + ")";
      for (size_t at; !tmp.path.empty() && (at = msg.find(tmp.path)) != std::string::npos;)
        msg.replace(at, tmp.path.size(), user);
      throw Error(msg);
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const Tokenizer tok = Tokenizer::load(a->out);
    std::printf(
        "wrote %s: %s, %lld pieces, vocab size %lld (XLM-R ids, <mask> = %lld), "
        "trained on %lld lines in %.1f s\n",
        a->out.c_str(), a->model_type.c_str(), (long long)tok.piece_count(),
        (long long)tok.vocab_size(), (long long)tok.mask_id(), (long long)lines, secs);
  });
}

}  // namespace kdnas::cli
