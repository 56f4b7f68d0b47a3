// The tape-free inference path against the golden PyTorch fixtures and the training path.
#include <doctest/doctest.h>

#include <cmath>

#include "kernels/concat.h"
#include "tests/test_util.h"
#include "transformer/inference.h"
#include "transformer/model_dir.h"
#include "transformer/safetensors.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

std::string golden(const std::string& name) {
  return std::string(KDNAS_SOURCE_DIR) + "/tests/data/golden/" + name;
}

// ||got - want|| / ||want||: bf16 rounds every GEMM input to 8 mantissa bits, so the fair
// measure is the error relative to the tensor's magnitude, not per element.
double relative_error(const Tensor& got, const Tensor& want) {
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double num = 0, den = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    num += (g[i] - w[i]) * (g[i] - w[i]);
    den += w[i] * w[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

void check_fixture(const std::string& name, Backend backend, DType dtype, double max_err = 3e-2) {
  Model m = load_model_dir(golden(name));
  SafetensorsFile want = SafetensorsFile::open(golden(name) + "/expected.safetensors");
  Context ctx(backend);
  InferenceEncoder inf(m.encoder, dtype);
  const std::string what = name + " " + backend_name(backend) + " " + dtype_name(dtype);
  for (int b = 0; want.contains("batch" + std::to_string(b) + ".input_ids"); ++b) {
    const std::string p = "batch" + std::to_string(b) + ".";
    Tensor ids = want.get(p + "input_ids"), mask = want.get(p + "attention_mask");
    Tensor hs = inf.forward(ctx, ids, mask, true), ref = want.get(p + "hidden_states");
    REQUIRE(hs.shape() == ref.shape());
    if (dtype == DType::F32) {
      KDNAS_CHECK_CLOSE(hs, ref, (Tol{1e-4, 0}), what + " " + p + "hidden states");
    } else {
      for (int64_t l = 0; l < ref.size(0); ++l) {
        const double err = relative_error(hs.select(0, l), ref.select(0, l));
        INFO(what << " " << p << "layer " << l << ": relative error " << err);
        CHECK(err < max_err);
      }
    }
    // Only the last state, when that is all that is asked for.
    Tensor last = inf.forward(ctx, ids, mask, false);
    KDNAS_CHECK_CLOSE(last, hs.select(0, hs.size(0) - 1), (Tol{0, 0}), what + " last only");
  }
}

}  // namespace

TEST_SUITE("transformer") {
  TEST_CASE("golden: inference path, f32, every backend") {
    for (Backend be : compiled_cpu_backends()) {
      check_fixture("tiny", be, DType::F32);
      check_fixture("odd72", be, DType::F32);
    }
  }

  TEST_CASE("golden: inference path, bf16, within 3e-2 relative error") {
    for (Backend be : compiled_cpu_backends()) {
      check_fixture("tiny", be, DType::BF16);
      check_fixture("odd72", be, DType::BF16);
    }
  }

  // int8 quantises the input of every linear layer to 8 bits per tensor and the weights to 8
  // bits per output feature; the embeddings, attention products, softmax and LayerNorm stay f32.
  TEST_CASE("golden: inference path, int8, within 5e-2 relative error") {
    for (Backend be : compiled_cpu_backends()) {
      check_fixture("tiny", be, DType::I8, 5e-2);
      check_fixture("odd72", be, DType::I8, 5e-2);
    }
  }

  TEST_CASE("inference and training paths agree on a random model") {
    EncoderConfig cfg = xlmr_base();
    cfg.vocab_size = 300, cfg.hidden_size = 96, cfg.num_hidden_layers = 3,
    cfg.num_attention_heads = 4;
    cfg.intermediate_size = 200, cfg.max_position_embeddings = 70;
    Encoder enc = Encoder::init_random(cfg, 5);
    Tensor ids = Tensor::from_vector<int64_t>({0, 10, 11, 12, 13, 2, 0, 20, 2, 1, 1, 1}, {2, 6});
    Tensor mask = Tensor::from_vector<int64_t>({1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}, {2, 6});
    Context ctx;
    EncoderOutput tr = enc.forward(ctx, ids, mask);
    InferenceEncoder inf(enc, DType::F32);
    Tensor hs = inf.forward(ctx, ids, mask, true);
    for (size_t l = 0; l < tr.hidden.size(); ++l)
      KDNAS_CHECK_CLOSE(hs.select(0, int64_t(l)), tr.hidden[l].value(), (Tol{1e-5, 1e-4}),
                        "layer " + std::to_string(l));
    // 32 x 64 tokens, each sequence padded to its own length: qkv is 2.4 MB, past the 2 MiB up
    // to which f32 copies the heads, so the attention GEMMs read them as strided views of qkv;
    // and attention runs in two chunks of 16 sequences (64 KiB of scores each).
    Rng rng(6);
    std::vector<int64_t> big_ids(32 * 64), big_mask(32 * 64);
    for (int64_t i = 0; i < 32 * 64; ++i) {
      const bool real = i % 64 < 64 - (i / 64) % 7 * 5;
      big_ids[size_t(i)] = real ? 3 + int64_t(rng.uniform() * 290) : cfg.pad_token_id;
      big_mask[size_t(i)] = real ? 1 : 0;
    }
    Tensor ids2 = Tensor::from_vector<int64_t>(big_ids, {32, 64});
    Tensor mask2 = Tensor::from_vector<int64_t>(big_mask, {32, 64});
    EncoderOutput tr2 = enc.forward(ctx, ids2, mask2);
    KDNAS_CHECK_CLOSE(inf.forward(ctx, ids2, mask2, false), tr2.hidden.back().value(),
                      (Tol{1e-5, 1e-4}), "32 x 64 tokens, heads as views, two chunks");
    // bf16 on the same batch (contiguous heads, chunks) against the same f32 training forward.
    InferenceEncoder inf16(enc, DType::BF16);
    KDNAS_CHECK_CLOSE(inf16.forward(ctx, ids2, mask2, false), tr2.hidden.back().value(), kBF16,
                      "bf16, 32 x 64 tokens, two chunks");
    // int8 on 48 x 64 tokens: the FFN's hidden activation (2.5 MB in f32) goes through bf16.
    Tensor ids3 = concat(ctx, {ids2, ids2.narrow(0, 0, 16)}, 0);
    Tensor mask3 = concat(ctx, {mask2, mask2.narrow(0, 0, 16)}, 0);
    InferenceEncoder inf8(enc, DType::I8);
    KDNAS_CHECK_CLOSE(inf8.forward(ctx, ids3, mask3, false),
                      enc.forward(ctx, ids3, mask3).hidden.back().value(), (Tol{2e-2, 2e-2}),
                      "int8, 48 x 64 tokens, bf16 FFN activation");
  }

  TEST_CASE("inference: bad inputs are clear errors") {
    Model m = load_model_dir(golden("odd72"));
    Context ctx;
    InferenceEncoder inf(m.encoder, DType::F32);
    check_throws_with(
        [&] {
          inf.forward(ctx, Tensor::zeros({2, 3}, DType::F32), Tensor());
        },
        {"ids", "i64"});
    check_throws_with(
        [&] {
          inf.forward(ctx, Tensor::zeros({1, 60}, DType::I64), Tensor());
        },
        {"too long", "max_position_embeddings"});
    check_throws_with(
        [&] {
          inf.forward(ctx, Tensor::zeros({2, 3}, DType::I64), Tensor::ones({2, 4}, DType::I64));
        },
        {"attention_mask", "[2, 4]", "[2, 3]"});
    check_throws_with([&] { InferenceEncoder(m.encoder, DType::F16); }, {"f32, bf16 or int8"});
    check_throws_with([] { inference_dtype("i8"); }, {"'i8'", "f32, bf16, int8"});
    CHECK(inference_dtype("int8") == DType::I8);
    CHECK(std::string(inference_dtype_name(DType::I8)) == "int8");
  }
}
