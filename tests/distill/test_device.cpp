// The CPU side of --device (docs/cuda.md, "--device cuda on the commands"): the device in the
// saved training options (and "cpu" for checkpoints written before it existed), the latency
// key that stays unchanged on the CPU, moving parameters and the inference encoder with an
// explicit CPU device, and the gradient clipping that the training loops share. The GPU side
// is tests/cuda/test_gpu_encoder.cpp.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "autograd/optim.h"
#include "distill/finetune.h"
#include "distill/pretrain.h"
#include "distill/train_loop.h"
#include "distill/trainer.h"
#include "nas/latency.h"
#include "tests/test_util.h"
#include "transformer/encoder.h"
#include "transformer/inference.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {
// The options JSON without its "device" key, as checkpoints wrote it before --device.
std::string without_device(const std::string& text) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text);
  REQUIRE(j.contains("device"));
  j.erase("device");
  return j.dump();
}

EncoderConfig tiny_config() {
  EncoderConfig cfg = xlmr_base();
  cfg.vocab_size = 50, cfg.hidden_size = 16, cfg.num_hidden_layers = 2;
  cfg.num_attention_heads = 2, cfg.intermediate_size = 24, cfg.max_position_embeddings = 20;
  return cfg;
}
}  // namespace

TEST_SUITE("distill") {
  TEST_CASE("device: the training options store it; without it they read as cpu") {
    CHECK(TrainOptions{}.device == "cpu");
    CHECK(PretrainOptions{}.device == "cpu");
    CHECK(FinetuneOptions{}.device == "cpu");
    CHECK(EvalOptions{}.device == "cpu");
    TrainOptions t;
    t.device = "cuda:1";
    CHECK(train_options_from_json(train_options_to_json(t)).device == "cuda:1");
    CHECK(train_options_from_json(without_device(train_options_to_json(t))).device == "cpu");
    PretrainOptions p;
    p.device = "cuda";
    CHECK(pretrain_options_from_json(pretrain_options_to_json(p)).device == "cuda");
    CHECK(pretrain_options_from_json(without_device(pretrain_options_to_json(p))).device == "cpu");
    // A wrong type is an error naming the key.
    nlohmann::json j = nlohmann::json::parse(train_options_to_json(t));
    j["device"] = 3;
    check_throws_with([&] { train_options_from_json(j.dump()); }, {"device", "wrong type"});
  }

  TEST_CASE("device: the latency key is unchanged on the CPU; a bad device is an error") {
    LatencySettings s;
    CHECK(s.device == "cpu");
    CHECK(s.key() == "b1.t128.th2.f32|" + build_id());
    s.device = "tpu";
    check_throws_with([&] { (void)s.key(); }, {"tpu", "cpu, cuda or cuda:N"});
    check_throws_with([&] { measure_config_latency(tiny_config(), s); }, {"tpu"});
  }

  TEST_CASE("device: moving to the CPU is a no-op; InferenceEncoder on an explicit CPU device") {
    Encoder enc = Encoder::init_random(tiny_config(), 3);
    const Tensor before = enc.layers[0].query_w.value();
    enc.to(cpu_device());
    CHECK(enc.device() == cpu_device());
    CHECK(enc.layers[0].query_w.value().storage() == before.storage());  // not even copied
    move_parameters(enc.named_parameters(), cpu_device());
    CHECK(enc.layers[0].query_w.value().storage() == before.storage());

    const Tensor ids = Tensor::from_vector<int64_t>({0, 7, 8, 2, 0, 9, 2, 1}, {2, 4});
    const Tensor mask = Tensor::from_vector<int64_t>({1, 1, 1, 1, 1, 1, 1, 0}, {2, 4});
    Context ctx;
    InferenceEncoder a(enc, DType::F32), b(enc, DType::F32, cpu_device());
    CHECK(b.device() == cpu_device());
    const Tensor ha = a.forward(ctx, ids, mask, true), hb = b.forward(ctx, ids, mask, true);
    CHECK(hb.device() == cpu_device());
    KDNAS_CHECK_CLOSE(hb, ha, (Tol{0, 0}), "explicit cpu device");
    // The training path agrees with it, as before.
    EncoderOutput tr = enc.forward(ctx, ids, mask);
    KDNAS_CHECK_CLOSE(hb.select(0, 2), tr.hidden.back().value(), (Tol{1e-5, 1e-4}), "training");
  }
}
