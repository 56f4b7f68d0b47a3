// GPU tests of the encoder as the commands run it with --device cuda (docs/cuda.md): the
// tape-free InferenceEncoder with its weights on the GPU against the same encoder on the CPU
// (f32 and bf16), and one training step of the autograd Encoder moved to the GPU (loss,
// gradients, the AdamW update) against the CPU. Host ids and masks go in, as the commands pass
// them; the position ids and the additive mask are made on the host by the encoders.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/optim.h"
#include "tests/cuda/gpu_test_util.h"
#include "transformer/encoder.h"
#include "transformer/inference.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// A small random encoder with odd sizes: 3 layers, C = 96, 4 heads, FF = 200.
EncoderConfig small_config() {
  EncoderConfig cfg = xlmr_base();
  cfg.vocab_size = 300, cfg.hidden_size = 96, cfg.num_hidden_layers = 3;
  cfg.num_attention_heads = 4, cfg.intermediate_size = 200, cfg.max_position_embeddings = 70;
  return cfg;
}

// Two sequences, the second padded (pad id 1): the mask and the position ids matter.
Tensor batch_ids() {
  return Tensor::from_vector<int64_t>({0, 10, 11, 12, 13, 2, 0, 20, 2, 1, 1, 1}, {2, 6});
}
Tensor batch_mask() {
  return Tensor::from_vector<int64_t>({1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}, {2, 6});
}

}  // namespace

TEST_SUITE("gpu") {
  TEST_CASE("gpu encoder: InferenceEncoder on cuda matches the CPU, f32 and bf16") {
    const EncoderConfig cfg = small_config();
    const Encoder enc = Encoder::init_random(cfg, 5);
    const Tensor ids = batch_ids(), mask = batch_mask();
    for (DType dt : {DType::F32, DType::BF16}) {
      const std::string what = std::string("inference ") + dtype_name(dt);
      Context cpu, g;
      InferenceEncoder on_cpu(enc, dt), on_gpu(enc, dt, gpu());
      CHECK(on_gpu.device() == gpu());
      const Tensor want = on_cpu.forward(cpu, ids, mask, true);  // [L + 1, B, T, C]
      const Tensor got = on_gpu.forward(g, ids, mask, true);
      CHECK_MESSAGE(got.device() == gpu(), what, " result is on ", got.device().str());
      REQUIRE(got.shape() == want.shape());
      // f32: the GEMMs sum over K (up to FF = 200) in another order than the CPU's: gemm_tol.
      // bf16: both sides round the GEMM inputs to bf16 the same way; the f32 sums still differ
      // in order, which bf16's tolerance covers.
      const Tol tol = dt == DType::F32 ? gemm_tol(cfg.intermediate_size) : kBF16;
      KDNAS_CHECK_CLOSE(to_host(got), want, tol, what + " hidden states");
      // Only the last state: the same values.
      const Tensor last = on_gpu.forward(g, ids, mask, false);
      KDNAS_CHECK_CLOSE(to_host(last), want.select(0, want.size(0) - 1), tol, what + " last");
      // The ids and the mask may already be on the device.
      const Tensor again = on_gpu.forward(g, to_gpu(ids), to_gpu(mask), true);
      KDNAS_CHECK_CLOSE(to_host(again), to_host(got), kExact, what + " from device ids");
    }
  }

  TEST_CASE("gpu encoder: one training step of the autograd Encoder on cuda matches the CPU") {
    const EncoderConfig cfg = small_config();
    // The same weights twice; one copy moves to the GPU.
    Encoder on_cpu = Encoder::init_random(cfg, 7), on_gpu = Encoder::init_random(cfg, 7);
    on_gpu.to(gpu());
    CHECK(on_gpu.device() == gpu());
    for (const auto& [name, v] : on_gpu.named_parameters())
      CHECK_MESSAGE(v.value().device() == gpu(), name, " stayed on ", v.value().device().str());

    const Tensor ids = batch_ids(), mask = batch_mask();
    Rng trng(3);
    const Tensor target = random_tensor({2, 6, cfg.hidden_size}, trng);

    struct Step {
      double loss = 0;
      std::vector<std::pair<std::string, Variable>> params;
    };
    auto step = [&](Encoder& enc, Device dev) {
      Context ctx;
      // Dropout on: its masks are the CPU's bits on the GPU too (tensor/rng.h).
      Rng drop(11);
      ForwardOptions fo;
      fo.train = true;
      fo.rng = &drop;
      EncoderOutput out = enc.forward(ctx, ids, mask, fo);
      Variable loss = mse(ctx, out.hidden.back(), Variable(target.to(dev)));
      Step s;
      s.params = enc.named_parameters();
      std::vector<Variable> vars;
      for (auto& [name, v] : s.params) vars.push_back(v);
      AdamW optim(vars);
      optim.zero_grad();
      loss.backward();
      s.loss = loss.value().to(cpu_device()).item();
      // The optimizer's slots are made where the parameters are (the step counts: on the host).
      optim.step(ctx);
      for (const auto& [key, t] : optim.state()) {
        const bool is_step = key.size() >= 5 && key.compare(key.size() - 5, 5, ".step") == 0;
        if (!is_step) CHECK_MESSAGE(t.device() == dev, key, " is on ", t.device().str());
      }
      return s;
    };
    // Gradients are computed before the step and kept by the parameters.
    const Step want = step(on_cpu, cpu_device());
    const Step got = step(on_gpu, gpu());
    CHECK(got.loss == doctest::Approx(want.loss).epsilon(1e-5));
    // Gradients and updated weights pass through every layer's GEMMs and reductions, summed in
    // another order than the CPU's (over B * T rows and over K up to FF = 200): 1e-4 absolute,
    // 1e-3 relative, where a wrong gradient is off by its own size.
    const Tol grad_tol{1e-4, 1e-3};
    for (size_t i = 0; i < want.params.size(); ++i) {
      const std::string& name = want.params[i].first;
      const bool sample = name.find("word_embeddings") != std::string::npos ||
                          name.find("layer.0.attention.self.query.weight") != std::string::npos ||
                          name.find("layer.2.output.LayerNorm") != std::string::npos ||
                          name.find("position_embeddings") != std::string::npos;
      if (!sample) continue;
      const Variable &w = want.params[i].second, &g = got.params[i].second;
      REQUIRE(w.has_grad());
      REQUIRE(g.has_grad());
      CHECK_MESSAGE(g.grad().device() == gpu(), name, " gradient on ", g.grad().device().str());
      KDNAS_CHECK_CLOSE(to_host(g.grad()), w.grad(), grad_tol, name + " gradient");
      KDNAS_CHECK_CLOSE(to_host(g.value()), w.value(), grad_tol, name + " after the AdamW step");
    }
  }
}
