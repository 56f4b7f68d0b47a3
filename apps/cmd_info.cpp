// kdnas info DIR: what a model directory holds.
#include <cstdio>
#include <filesystem>
#include <string>

#include "apps/commands.h"
#include "transformer/model_dir.h"

namespace kdnas::cli {

void add_info(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("info", "Describe a model directory: config, parameters, dtype, size");
  auto dir = std::make_shared<std::string>();
  cmd->add_option("dir", *dir, "model directory (config.json + model.safetensors)")->required();
  cmd->callback([dir] {
    Model m = load_model_dir(*dir);
    const EncoderConfig& c = m.config;
    const int64_t total = m.encoder.parameter_count(true), body = m.encoder.parameter_count(false);
    int64_t heads = 0;
    if (m.mlm)
      for (auto& [n, v] : m.mlm->named_parameters()) heads += v.numel();
    if (m.classifier)
      for (auto& [n, v] : m.classifier->named_parameters()) heads += v.numel();
    const auto bytes =
        std::filesystem::file_size(std::filesystem::path(*dir) / "model.safetensors");
    std::printf("model        %s\n", dir->c_str());
    std::printf("architecture %s\n", c.architectures.empty() ? "?" : c.architectures[0].c_str());
    std::printf("layers       %lld\nhidden       %lld\nheads        %lld (head size %lld)\n",
                (long long)c.num_hidden_layers, (long long)c.hidden_size,
                (long long)c.num_attention_heads, (long long)c.head_size());
    std::printf("ffn          %lld\nvocab        %lld\nmax position %lld\nactivation   %s\n",
                (long long)c.intermediate_size, (long long)c.vocab_size,
                (long long)c.max_position_embeddings, c.hidden_act.c_str());
    std::printf("parameters   %lld (embeddings %lld, layers %lld, heads %lld)\n",
                (long long)(total + heads), (long long)(total - body), (long long)body,
                (long long)heads);
    std::printf("heads        %s%s%s\n", m.mlm ? "mlm " : "", m.classifier ? "classification " : "",
                (m.mlm || m.classifier) ? "" : "none");
    std::printf("dtype        %s\n", m.weights_dtype.c_str());
    std::printf("file size    %.2f MB (model.safetensors)\n", double(bytes) / 1e6);
    std::printf("tokenizer    %s\n",
                m.tokenizer_path.empty() ? "none (ids only)" : m.tokenizer_path.c_str());
  });
}

}  // namespace kdnas::cli
