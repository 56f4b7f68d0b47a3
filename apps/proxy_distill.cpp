#include "apps/proxy_distill.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "distill/trainer.h"
#include "tensor/check.h"
#include "tensor/rng.h"
#include "transformer/safetensors.h"

namespace kdnas::cli {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr uint64_t kProxySampleStream = 0x9a0c'5a3d'0000'0001ull;
}  // namespace

std::string read_text_file(const std::string& path, const std::string& op) {
  std::ifstream f(path, std::ios::binary);
  KDNAS_CHECK(f.good(), op, ": cannot open ", path);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_text_file(const std::string& path, const std::string& text, const std::string& op) {
  write_file_atomically(path, {{text.data(), text.size()}}, op);
}

std::vector<double> parse_budgets_ms(const std::string& s) {
  return parse_positive_list(s, "search: --budget-ms", "a positive number of milliseconds");
}

std::vector<double> parse_positive_list(const std::string& s, const std::string& flag,
                                        const std::string& expected) {
  std::vector<double> out;
  if (s.empty()) return out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) {
    size_t used = 0;
    double v = NAN;
    try {
      v = std::stod(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    KDNAS_CHECK(used == part.size() && used > 0 && std::isfinite(v) && v > 0, flag, ": '", part,
                "' is not ", expected);
    out.push_back(v);
  }
  return out;
}

std::string proxy_sample(const std::string& corpus, int64_t n, uint64_t seed) {
  std::ifstream f(corpus);
  KDNAS_CHECK(f.good(), "search: cannot open the corpus ", corpus);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) lines.push_back(line);
  }
  KDNAS_CHECK(!lines.empty(), "search: the corpus ", corpus, " is empty");
  std::vector<size_t> idx(lines.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  const size_t take = std::min(idx.size(), size_t(n));
  Rng rng(rng_hash(seed, kProxySampleStream));
  for (size_t i = 0; i < take; ++i) std::swap(idx[i], idx[i + rng.below(idx.size() - i)]);
  idx.resize(take);
  std::sort(idx.begin(), idx.end());
  std::string out;
  for (size_t i : idx) out += lines[i] + "\n";
  return out;
}

ProxyResult proxy_distill(const ProxySettings& s, const std::string& proxy_corpus, const Arch& arch,
                          const std::string& dir) {
  const fs::path result = fs::path(dir) / kProxyResult;
  if (fs::exists(result)) {
    const json j = json::parse(read_text_file(result.string(), "search"));
    return {j.at("kd_loss").get<double>(), j.at("seconds").get<double>()};
  }
  fs::remove_all(dir);  // an attempt killed half-way: start it again from scratch
  TrainOptions t;
  t.teacher = s.teacher;
  t.arch = arch_to_string(arch);
  t.corpus = proxy_corpus;
  t.corpus_opt.eval_every = 0;  // the proxy set is all training data
  t.corpus_opt.text_column = s.text_column;
  t.batch = s.batch, t.seq = s.seq, t.epochs = s.epochs;
  t.lr = s.lr, t.seed = s.seed, t.threads = s.threads, t.device = s.device;
  t.log_every = 1 << 30;
  t.quiet = true;
  t.out = dir;
  const auto t0 = std::chrono::steady_clock::now();
  Trainer trainer(t);
  trainer.run();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The mean loss over the last proxy epoch.
  const auto& h = trainer.history();
  KDNAS_CHECK(!h.empty(), "search: the proxy distillation of ", t.arch, " made no step");
  const int64_t last = h.back().epoch;
  double sum = 0;
  int64_t count = 0;
  for (const StepRecord& r : h)
    if (r.epoch == last) sum += r.loss, ++count;
  const double loss = sum / double(count);
  if (!s.keep_models) {  // the weights and optimizer state are large; the log stays
    fs::remove(fs::path(dir) / "model.safetensors");
    fs::remove(fs::path(dir) / kTrainStateFile);
  }
  ojson j;
  j["architecture"] = t.arch, j["kd_loss"] = loss, j["seconds"] = seconds;
  j["steps"] = trainer.step(), j["last_epoch_steps"] = count;
  write_text_file(result.string(), j.dump(2) + "\n", "search");
  return {loss, seconds};
}

}  // namespace kdnas::cli
