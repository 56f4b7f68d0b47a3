// kdnas: find, distill and ship small fast multilingual encoders.
#include <cstdio>
#include <exception>

#include "apps/commands.h"
#include "tensor/check.h"

int main(int argc, char** argv) {
  CLI::App app{"kdnas: find, distill and ship small, fast multilingual encoders", "kdnas"};
  app.require_subcommand(1);
  kdnas::cli::add_info(app);
  kdnas::cli::add_init(app);
  kdnas::cli::add_encode(app);
  kdnas::cli::add_bench(app);
  kdnas::cli::add_distill(app);
  kdnas::cli::add_tokenizer_train(app);
  kdnas::cli::add_search(app);
  kdnas::cli::add_pretrain(app);
  kdnas::cli::add_finetune(app);
  kdnas::cli::add_eval(app);
  kdnas::cli::add_demo(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One clear line instead of CLI11's help dump.
    std::fprintf(stderr, "kdnas: error: %s (see kdnas --help)\n", e.what());
    return 2;
  } catch (const kdnas::Error& e) {
    std::fprintf(stderr, "kdnas: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kdnas: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
