// kdnas init --config FILE.json --out DIR [--seed S]: a randomly initialised model directory.
#include <cstdio>
#include <string>

#include "apps/commands.h"
#include "transformer/model_dir.h"

namespace kdnas::cli {

void add_init(CLI::App& app) {
  auto* cmd = app.add_subcommand("init", "Write a randomly initialised model directory");
  struct Args {
    std::string config, out, tokenizer;
    uint64_t seed = 0;
    bool mlm = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--config", a->config, "config.json (Hugging Face XLMRobertaConfig keys)")
      ->required();
  cmd->add_option("--out", a->out, "output model directory")->required();
  cmd->add_option("--seed", a->seed, "random seed (default 0)");
  cmd->add_option("--tokenizer", a->tokenizer, "sentencepiece model to copy into the directory");
  cmd->add_flag("--mlm-head", a->mlm, "add a masked-language-model head");
  cmd->callback([a] {
    Model m;
    m.config = read_config(a->config);
    m.encoder = Encoder::init_random(m.config, a->seed);
    if (a->mlm) {
      Rng rng(a->seed + 1);
      m.mlm = MlmHead::init_random(m.config.hidden_size, m.config.vocab_size,
                                   m.config.initializer_range, m.config.layer_norm_eps, rng);
    }
    m.tokenizer_path = a->tokenizer;
    save_model_dir(a->out, m);
    std::printf("wrote %s: %lld parameters (%lld without embeddings), seed %llu\n", a->out.c_str(),
                (long long)m.encoder.parameter_count(true),
                (long long)m.encoder.parameter_count(false), (unsigned long long)a->seed);
  });
}

}  // namespace kdnas::cli
