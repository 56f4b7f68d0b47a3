// The kdnas command line: one file per subcommand, each registering itself on the app.
// Every command reports bad input as one line "kdnas: error: ..." and a non-zero exit (main.cpp).
#pragma once

#include <CLI/CLI.hpp>

namespace kdnas::cli {

void add_info(CLI::App& app);
void add_init(CLI::App& app);
void add_encode(CLI::App& app);
void add_bench(CLI::App& app);
void add_distill(CLI::App& app);
void add_tokenizer_train(CLI::App& app);
void add_search(CLI::App& app);
void add_pretrain(CLI::App& app);
void add_finetune(CLI::App& app);
void add_eval(CLI::App& app);
void add_demo(CLI::App& app);

}  // namespace kdnas::cli
