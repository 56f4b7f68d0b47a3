#include "distill/tasks.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tensor/check.h"

namespace kdnas {
namespace {

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  for (;;) {
    const size_t tab = line.find('\t', start);
    fields.push_back(
        line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return fields;
    start = tab + 1;
  }
}

bool is_blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

}  // namespace

TaskData parse_task_tsv(const std::string& text, const std::string& what) {
  TaskData d;
  d.path = what;
  std::istringstream in(text);
  std::string line;
  size_t want = 0;  // fields per line, from the first non-blank line
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (is_blank(line)) continue;
    const std::vector<std::string> f = split_tabs(line);
    if (want == 0) {
      KDNAS_CHECK(f.size() == 2 || f.size() == 3, "task: ", what, " line ", n, ": expected ",
                  "label<TAB>text or label<TAB>text_a<TAB>text_b, found ", f.size(),
                  f.size() == 1 ? " field (no tab)" : " fields");
      want = f.size();
      d.pair = want == 3;
    }
    KDNAS_CHECK(f.size() == want, "task: ", what, " line ", n, ": ", f.size(),
                f.size() == 1 ? " field" : " fields", " (tab-separated), but the first line has ",
                want, " (", want == 2 ? "label<TAB>text" : "label<TAB>text_a<TAB>text_b", ")");
    for (size_t i = 0; i < f.size(); ++i)
      KDNAS_CHECK(!is_blank(f[i]), "task: ", what, " line ", n, ": the ",
                  i == 0 ? "label" : (want == 2 ? "text" : (i == 1 ? "text_a" : "text_b")),
                  " is empty");
    TaskExample e;
    e.label = f[0];
    e.text_a = f[1];
    if (d.pair) e.text_b = f[2];
    e.line = n;
    d.examples.push_back(std::move(e));
  }
  KDNAS_CHECK(!d.examples.empty(), "task: ", what, " is empty (no non-blank line)");
  return d;
}

TaskData read_task_tsv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  KDNAS_CHECK(in.is_open(), "task: cannot open '", path, "'");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_task_tsv(text, path);
}

// ---- labels ---------------------------------------------------------------------------------

LabelMap::LabelMap(std::vector<std::string> labels) : labels_(std::move(labels)) {
  std::sort(labels_.begin(), labels_.end());
  labels_.erase(std::unique(labels_.begin(), labels_.end()), labels_.end());
}

LabelMap LabelMap::from_task(const TaskData& train) {
  std::vector<std::string> v;
  for (const auto& e : train.examples) v.push_back(e.label);
  LabelMap m(std::move(v));
  KDNAS_CHECK(m.size() >= 2, "task: ", train.path, " has only one label ('", m.label(0),
              "'); classification needs at least two");
  return m;
}

LabelMap LabelMap::from_config(const EncoderConfig& cfg, int64_t num_labels) {
  LabelMap m;
  auto it = cfg.extra.find("id2label");
  if (it == cfg.extra.end()) {  // Hugging Face's defaults
    for (int64_t i = 0; i < num_labels; ++i) m.labels_.push_back("LABEL_" + std::to_string(i));
    return m;
  }
  nlohmann::json j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  KDNAS_CHECK(j.is_object(), "task: the config's id2label is not a JSON object");
  KDNAS_CHECK(int64_t(j.size()) == num_labels, "task: the config's id2label has ", j.size(),
              " labels but the classifier has ", num_labels, " outputs");
  for (int64_t i = 0; i < num_labels; ++i) {
    const std::string key = std::to_string(i);
    KDNAS_CHECK(j.contains(key) && j[key].is_string(), "task: the config's id2label has no label ",
                "for id ", i);
    m.labels_.push_back(j[key].get<std::string>());
  }
  return m;
}

int64_t LabelMap::id(const std::string& label) const {
  // labels_ is sorted for maps built from data; a config's may not be: search linearly.
  for (size_t i = 0; i < labels_.size(); ++i)
    if (labels_[i] == label) return int64_t(i);
  return -1;
}

std::vector<int64_t> LabelMap::ids(const TaskData& data) const {
  std::vector<int64_t> out;
  out.reserve(data.examples.size());
  for (const auto& e : data.examples) {
    const int64_t i = id(e.label);
    if (i < 0) {
      std::string known;
      for (size_t k = 0; k < labels_.size() && k < 20; ++k) known += (k ? ", " : "") + labels_[k];
      if (labels_.size() > 20) known += ", ...";
      KDNAS_CHECK(false, "task: ", data.path, " line ", e.line, ": label '", e.label,
                  "' was not seen in training (known labels: ", known, ")");
    }
    out.push_back(i);
  }
  return out;
}

void LabelMap::store(EncoderConfig& cfg) const {
  nlohmann::ordered_json id2label = nlohmann::ordered_json::object();
  nlohmann::ordered_json label2id = nlohmann::ordered_json::object();
  for (size_t i = 0; i < labels_.size(); ++i) {
    id2label[std::to_string(i)] = labels_[i];
    label2id[labels_[i]] = int64_t(i);
  }
  cfg.extra["id2label"] = id2label.dump();
  cfg.extra["label2id"] = label2id.dump();
}

// ---- metrics --------------------------------------------------------------------------------

ClassificationMetrics classification_metrics(const std::vector<int64_t>& gold,
                                             const std::vector<int64_t>& pred) {
  KDNAS_CHECK(gold.size() == pred.size(), "metrics: ", gold.size(), " gold labels but ",
              pred.size(), " predictions");
  ClassificationMetrics m;
  m.examples = int64_t(gold.size());
  if (gold.empty()) return m;
  // Per class: true positives, false positives, false negatives.
  std::map<int64_t, std::array<int64_t, 3>> c;
  int64_t right = 0;
  for (size_t i = 0; i < gold.size(); ++i) {
    if (gold[i] == pred[i]) {
      ++right;
      ++c[gold[i]][0];
    } else {
      ++c[pred[i]][1];
      ++c[gold[i]][2];
    }
  }
  m.accuracy = double(right) / double(gold.size());
  // F1 = 2 TP / (2 TP + FP + FN); a class in the map appeared in gold or pred, so the
  // denominator is positive.
  double f1 = 0;
  for (const auto& [cls, n] : c) f1 += 2.0 * n[0] / double(2 * n[0] + n[1] + n[2]);
  m.macro_f1 = f1 / double(c.size());
  return m;
}

}  // namespace kdnas
