#include "transformer/model_dir.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "transformer/safetensors.h"

namespace kdnas {
namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}

// Tensors of the file under their prefix-free names, f32, minus what kdnas ignores.
std::vector<std::pair<std::string, Tensor>> read_weights(const SafetensorsFile& f,
                                                         std::string& dtype) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const std::string& raw : f.names()) {
    std::string name = starts_with(raw, "roberta.") ? raw.substr(8) : raw;
    if (starts_with(name, "pooler.") || name == "embeddings.position_ids" ||
        starts_with(name, "lm_head.decoder."))
      continue;  // pooler unused; position_ids a buffer; the decoder is tied to the embeddings
    const TensorInfo& ti = f.info(raw);
    KDNAS_CHECK(ti.supported && is_floating(ti.dtype) && ti.dtype != DType::F64, "model: tensor '",
                raw, "' in ", f.path(), " has dtype ", ti.dtype_name,
                " (weights must be F32, F16 or BF16)");
    if (dtype.empty()) dtype = ti.dtype_name;
    out.emplace_back(name, f.get(raw).to(DType::F32));
  }
  return out;
}

const Tensor& need(const std::vector<std::pair<std::string, Tensor>>& w, const std::string& name,
                   const Shape& shape) {
  for (const auto& [n, t] : w)
    if (n == name) {
      KDNAS_CHECK(t.shape() == shape, "model: tensor '", name, "' has shape ", t.shape(),
                  " but the config needs ", shape);
      return t;
    }
  detail::fail(detail::concat("model: tensor '", name, "' is missing"));
}

bool has(const std::vector<std::pair<std::string, Tensor>>& w, const std::string& name) {
  for (const auto& [n, t] : w)
    if (n == name) return true;
  return false;
}

}  // namespace

Model load_model_dir(const std::string& dir) {
  KDNAS_CHECK(fs::is_directory(dir), "model: '", dir, "' is not a directory");
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  const std::string st_path = (fs::path(dir) / "model.safetensors").string();
  KDNAS_CHECK(fs::exists(cfg_path), "model: ", dir, " has no config.json");
  if (!fs::exists(st_path)) {
    KDNAS_CHECK(!fs::exists(fs::path(dir) / "pytorch_model.bin"), "model: ", dir,
                " has only pytorch_model.bin; kdnas reads model.safetensors (convert it first)");
    detail::fail(detail::concat("model: ", dir, " has no model.safetensors"));
  }
  Model m;
  m.config = read_config(cfg_path);
  m.config.validate();
  SafetensorsFile f = SafetensorsFile::open(st_path);
  auto w = read_weights(f, m.weights_dtype);
  m.encoder = Encoder::from_tensors(m.config, w);
  const int64_t C = m.config.hidden_size, V = m.config.vocab_size;
  if (has(w, "lm_head.dense.weight")) {
    MlmHead h;
    h.dense_w =
        Variable::parameter(need(w, "lm_head.dense.weight", {C, C}), "lm_head.dense.weight");
    h.dense_b = Variable::parameter(need(w, "lm_head.dense.bias", {C}), "lm_head.dense.bias");
    h.ln_w =
        Variable::parameter(need(w, "lm_head.layer_norm.weight", {C}), "lm_head.layer_norm.weight");
    h.ln_b =
        Variable::parameter(need(w, "lm_head.layer_norm.bias", {C}), "lm_head.layer_norm.bias");
    h.bias = Variable::parameter(need(w, "lm_head.bias", {V}), "lm_head.bias");
    h.ln_eps = m.config.layer_norm_eps;
    m.mlm = h;
  }
  if (has(w, "classifier.dense.weight")) {
    ClassificationHead h;
    h.dense_w =
        Variable::parameter(need(w, "classifier.dense.weight", {C, C}), "classifier.dense.weight");
    h.dense_b = Variable::parameter(need(w, "classifier.dense.bias", {C}), "classifier.dense.bias");
    int64_t labels = 0;
    for (const auto& [n, t] : w)
      if (n == "classifier.out_proj.weight") labels = t.dim() == 2 ? t.size(0) : 0;
    KDNAS_CHECK(labels > 0, "model: classifier.out_proj.weight is missing or not 2-D");
    h.out_w = Variable::parameter(need(w, "classifier.out_proj.weight", {labels, C}),
                                  "classifier.out_proj.weight");
    h.out_b = Variable::parameter(need(w, "classifier.out_proj.bias", {labels}),
                                  "classifier.out_proj.bias");
    m.classifier = h;
  }
  const fs::path tok = fs::path(dir) / kTokenizerFile;
  if (fs::exists(tok)) m.tokenizer_path = tok.string();
  return m;
}

void save_model_dir(const std::string& dir, const Model& model) {
  fs::create_directories(dir);
  EncoderConfig cfg = model.config;
  cfg.torch_dtype = "float32";
  const bool prefixed = model.mlm.has_value() || model.classifier.has_value();
  if (model.classifier) {
    cfg.architectures = {"XLMRobertaForSequenceClassification"};
    // Hugging Face reads the label count from id2label.
    if (!cfg.extra.count("id2label")) {
      std::ostringstream id2label, label2id;
      for (int64_t i = 0; i < model.classifier->num_labels(); ++i) {
        id2label << (i ? "," : "{") << "\"" << i << "\":\"LABEL_" << i << "\"";
        label2id << (i ? "," : "{") << "\"LABEL_" << i << "\":" << i;
      }
      cfg.extra["id2label"] = id2label.str() + "}";
      cfg.extra["label2id"] = label2id.str() + "}";
    }
  } else if (model.mlm) {
    cfg.architectures = {"XLMRobertaForMaskedLM"};
  } else {
    cfg.architectures = {"XLMRobertaModel"};
  }
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, v] : model.encoder.named_parameters())
    tensors.emplace_back(prefixed ? "roberta." + name : name,
                         v.value().to(DType::F32).contiguous());
  if (model.mlm)
    for (const auto& [name, v] : model.mlm->named_parameters())
      tensors.emplace_back(name, v.value());
  if (model.classifier)
    for (const auto& [name, v] : model.classifier->named_parameters())
      tensors.emplace_back(name, v.value());
  write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  write_config((fs::path(dir) / "config.json").string(), cfg);
  if (!model.tokenizer_path.empty()) {
    const fs::path dst = fs::path(dir) / kTokenizerFile;
    if (fs::weakly_canonical(model.tokenizer_path) != fs::weakly_canonical(dst)) {
      std::ifstream in(model.tokenizer_path, std::ios::binary);
      KDNAS_CHECK(in.good(), "model: cannot read tokenizer ", model.tokenizer_path);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      write_file_atomically(dst.string(), {{bytes.data(), bytes.size()}}, "model");
    }
  }
}

}  // namespace kdnas
