// Classification tasks: TSV files, their label mapping and the two metrics kdnas reports.
//
// A task file is UTF-8 text, one example per line, in one of two layouts (decided by the first
// line; every line must agree):
//   label<TAB>text                single sentence   (language identification)
//   label<TAB>text_a<TAB>text_b   sentence pair     (is b a translation of a?)
// Labels are arbitrary strings. Blank lines are skipped; a trailing \r is dropped. A line with
// the wrong number of fields, an empty label or an empty text is an error naming file and line.
//
// Label ids are the labels in sorted (byte) order, taken from the training file; the mapping
// travels with the fine-tuned model as Hugging Face's config keys id2label / label2id.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "transformer/config.h"

namespace kdnas {

struct TaskExample {
  std::string label;
  std::string text_a, text_b;  // text_b is empty for single-sentence tasks
  int64_t line = 0;            // 1-based line in the file, for error messages
};

struct TaskData {
  std::string path;
  bool pair = false;  // three fields per line
  std::vector<TaskExample> examples;
};

// Reads and checks a task TSV; errors name the file (and the line): cannot open, empty (no
// non-blank line), a line whose field count differs from the first line's, an empty field.
TaskData read_task_tsv(const std::string& path);
// The same from text; `what` names it in errors.
TaskData parse_task_tsv(const std::string& text, const std::string& what);

// id -> label, sorted.
class LabelMap {
 public:
  LabelMap() = default;
  explicit LabelMap(std::vector<std::string> labels);  // sorts and de-duplicates
  static LabelMap from_task(const TaskData& train);
  // From a config's id2label (num_labels entries "0".."K-1"); errors name the problem.
  static LabelMap from_config(const EncoderConfig& cfg, int64_t num_labels);

  int64_t size() const { return int64_t(labels_.size()); }
  const std::string& label(int64_t id) const { return labels_.at(size_t(id)); }
  const std::vector<std::string>& labels() const { return labels_; }
  int64_t id(const std::string& label) const;  // -1 when unknown

  // Every example's id; a label the map does not know is an error naming file, line and label.
  std::vector<int64_t> ids(const TaskData& data) const;
  // Writes id2label and label2id into cfg.extra (as Hugging Face's config.json has them).
  void store(EncoderConfig& cfg) const;

 private:
  std::vector<std::string> labels_;
};

struct ClassificationMetrics {
  double accuracy = 0;  // fraction of examples predicted right
  double macro_f1 = 0;  // F1 per class, averaged over the classes present in gold or predicted
  int64_t examples = 0;
};

// gold and pred are label ids of the same length (an empty list gives zeros).
ClassificationMetrics classification_metrics(const std::vector<int64_t>& gold,
                                             const std::vector<int64_t>& pred);

}  // namespace kdnas
