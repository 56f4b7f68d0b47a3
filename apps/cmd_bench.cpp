// kdnas bench (--model DIR | --config FILE.json) --batch B --seq T --threads N --dtype f32|bf16|int8
//             [--runs R] [--warmup W] [--json] [--profile FILE.json] [--device cpu|cuda[:N]]
// Latency of the inference forward pass (ARCHITECTURE.md's protocol: warm-up, then the median
// of R timed runs, with the spread), tokens/s and GFLOP/s. On a GPU each run ends with a
// synchronisation of the stream, so the clock sees the kernels finish, not their launches.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "apps/device_flag.h"
#include "kernels/cuda/cuda_context.h"
#include "kernels/profiler.h"
#include "transformer/inference.h"
#include "transformer/model_dir.h"

namespace kdnas::cli {

void add_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Time the inference forward pass");
  struct Args {
    std::string model, config, dtype = "f32", profile, device = "cpu";
    int64_t batch = 1, seq = 128, threads = 0, runs = 20, warmup = 3;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* model = cmd->add_option("--model", a->model, "model directory");
  auto* config = cmd->add_option("--config", a->config, "config.json (random weights)");
  model->excludes(config);
  cmd->add_option("--batch", a->batch, "sequences per forward pass")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option("--seq", a->seq, "tokens per sequence")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option("--threads", a->threads, "threads (default: OMP_NUM_THREADS or all cores)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  cmd->add_option("--dtype", a->dtype, "f32, bf16 or int8 (dynamically quantised linear layers)")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}));
  cmd->add_option("--runs", a->runs, "timed runs (default 20)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option("--warmup", a->warmup, "untimed runs first (default 3)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  add_device_flag(cmd, a->device);
  cmd->add_flag("--json", a->json, "print one JSON object instead of a table");
  cmd->add_option("--profile", a->profile,
                  "per-op Chrome trace of the timed runs to FILE.json, summary on stderr "
                  "(docs/profiling.md)");
  cmd->callback([a] {
    const Device device = resolve_device(a->device);  // before --profile's file is opened
    KDNAS_CHECK(!a->model.empty() || !a->config.empty(),
                "bench: give --model DIR or --config FILE.json");
    // Opened first, so that a bad path fails before the model is loaded.
    auto prof = a->profile.empty() ? nullptr : std::make_shared<Profiler>(a->profile);
    Encoder enc;
    if (!a->model.empty()) {
      enc = load_model_dir(a->model).encoder;
    } else {
      enc = Encoder::init_random(read_config(a->config), 0);
    }
    const EncoderConfig& cfg = enc.config();
    KDNAS_CHECK(a->seq + cfg.pad_token_id < cfg.max_position_embeddings, "bench: --seq ", a->seq,
                " is too long for max_position_embeddings ", cfg.max_position_embeddings);
    Context ctx(best_cpu_backend(), int(a->threads));
    InferenceEncoder inf(enc, inference_dtype(a->dtype), device);
    // Real-looking input: <s> tokens </s>, no padding.
    Tensor ids = Tensor::empty({a->batch, a->seq}, DType::I64);
    Rng rng(0);
    for (int64_t i = 0; i < ids.numel(); ++i)
      ids.data<int64_t>()[i] = 3 + int64_t(rng.below(uint64_t(cfg.vocab_size - 4)));
    for (int64_t b = 0; b < a->batch; ++b) {
      ids.data<int64_t>()[b * a->seq] = cfg.bos_token_id;
      ids.data<int64_t>()[b * a->seq + a->seq - 1] = cfg.eos_token_id;
    }
    Tensor mask = Tensor::ones({a->batch, a->seq}, DType::I64);
    // One finished forward pass from host ids, as a caller has them: on a GPU the time includes
    // copying the ids and the mask over, and the synchronisation makes the clock wait for the
    // kernels, not only their launches.
    auto run_once = [&] {
      inf.forward(ctx, ids, mask, false);
      if (!device.is_cpu()) cuda_synchronize(ctx);
    };
    // --profile (or else KDNAS_PROFILE's profiler) sees the timed runs only, not the warm-up.
    std::shared_ptr<Profiler> timed_prof = prof ? prof : ctx.shared_profiler();
    ctx.set_profiler(nullptr);
    for (int64_t i = 0; i < a->warmup; ++i) run_once();
    ctx.set_profiler(timed_prof);
    std::vector<double> ms;
    for (int64_t i = 0; i < a->runs; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      run_once();
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2], lo = ms.front(), hi = ms.back();
    const double tokens = double(a->batch * a->seq) / (median / 1e3);
    const double gflops = inf.flops(a->batch, a->seq) / (median / 1e3) / 1e9;
    const std::string name = a->model.empty() ? a->config : a->model;
    if (a->json) {
      std::printf(
          "{\"model\": \"%s\", \"layers\": %lld, \"hidden\": %lld, \"heads\": %lld, \"ffn\": %lld, "
          "\"batch\": %lld, \"seq\": %lld, \"threads\": %d, \"dtype\": \"%s\", \"device\": \"%s\", "
          "\"runs\": %lld, "
          "\"median_ms\": %.3f, \"min_ms\": %.3f, \"max_ms\": %.3f, \"tokens_per_s\": %.1f, "
          "\"gflops\": %.1f}\n",
          name.c_str(), (long long)cfg.num_hidden_layers, (long long)cfg.hidden_size,
          (long long)cfg.num_attention_heads, (long long)cfg.intermediate_size, (long long)a->batch,
          (long long)a->seq, ctx.threads(), a->dtype.c_str(), device.str().c_str(),
          (long long)a->runs, median, lo, hi, tokens, gflops);
    } else {
      std::printf("model    %s (%lldL/%lldH/%lld heads/FFN %lld)\n", name.c_str(),
                  (long long)cfg.num_hidden_layers, (long long)cfg.hidden_size,
                  (long long)cfg.num_attention_heads, (long long)cfg.intermediate_size);
      // The device is named only when it is not the CPU (the line is as before on the CPU).
      const std::string on = device.is_cpu() ? "" : ", on " + device.str();
      std::printf(
          "settings batch %lld x %lld tokens, %d threads, %s%s, %lld runs after %lld warm-up\n",
          (long long)a->batch, (long long)a->seq, ctx.threads(), a->dtype.c_str(), on.c_str(),
          (long long)a->runs, (long long)a->warmup);
      std::printf("latency  median %.2f ms (min %.2f, max %.2f)\n", median, lo, hi);
      std::printf("rate     %.0f tokens/s, %.1f GFLOP/s\n", tokens, gflops);
    }
    if (prof) {
      std::fflush(stdout);  // the table first, then the profile on stderr
      prof->finish();
    }
  });
}

}  // namespace kdnas::cli
