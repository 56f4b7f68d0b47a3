// Golden tests: the encoder against an independent PyTorch re-implementation of Hugging Face
// XLM-R (tests/tools/xlmr_reference.py generated tests/data/golden/; torch is not needed here).
#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "tests/test_util.h"
#include "transformer/model_dir.h"
#include "transformer/safetensors.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

std::string golden(const std::string& name) {
  return std::string(KDNAS_SOURCE_DIR) + "/tests/data/golden/" + name;
}

// Every batch of a fixture: run the encoder (and heads) on ctx, compare with torch's numbers.
void check_fixture(const std::string& name, Backend backend) {
  Model m = load_model_dir(golden(name));
  SafetensorsFile want = SafetensorsFile::open(golden(name) + "/expected.safetensors");
  Context ctx(backend);
  NoGradGuard no_grad;
  for (int b = 0; want.contains("batch" + std::to_string(b) + ".input_ids"); ++b) {
    const std::string p = "batch" + std::to_string(b) + ".";
    Tensor ids = want.get(p + "input_ids"), mask = want.get(p + "attention_mask");
    EncoderOutput out = m.encoder.forward(ctx, ids, mask);
    Tensor hs = want.get(p + "hidden_states");  // [L+1, B, T, C]
    REQUIRE(int64_t(out.hidden.size()) == hs.size(0));
    for (int64_t l = 0; l < hs.size(0); ++l)
      KDNAS_CHECK_CLOSE(
          out.hidden[size_t(l)].value(), hs.select(0, l), (Tol{1e-4, 0}),
          name + " " + backend_name(backend) + " " + p + "hidden " + std::to_string(l));
    if (m.mlm && want.contains(p + "mlm_logits"))
      KDNAS_CHECK_CLOSE(m.mlm->forward(ctx, out.hidden.back(), m.encoder.word_embeddings).value(),
                        want.get(p + "mlm_logits"), (Tol{1e-4, 0}), name + " " + p + "mlm logits");
    if (m.classifier && want.contains(p + "cls_logits"))
      KDNAS_CHECK_CLOSE(m.classifier->forward(ctx, out.hidden.back(), 0.0, nullptr, false).value(),
                        want.get(p + "cls_logits"), (Tol{1e-4, 0}), name + " " + p + "cls logits");
  }
}

}  // namespace

TEST_SUITE("transformer") {
  TEST_CASE("golden: encoder hidden states match the PyTorch reference on every backend") {
    for (Backend be : compiled_cpu_backends()) {
      check_fixture("tiny", be);   // "roberta." prefix, MLM + classification heads, padding
      check_fixture("odd72", be);  // no prefix, hidden 72 / 3 heads, a length-2 batch
    }
  }

  TEST_CASE("model directory round trip keeps names, shapes and values") {
    Model m = load_model_dir(golden("tiny"));
    const std::string dir = "/tmp/kdnas_test_model_dir";
    save_model_dir(dir, m);
    Model r = load_model_dir(dir);
    // With a classification head the directory is saved as a sequence classifier, with the
    // id2label map Hugging Face reads the label count from; every other key round-trips.
    CHECK(r.config.architectures ==
          std::vector<std::string>{"XLMRobertaForSequenceClassification"});
    CHECK(r.config.extra.count("id2label") == 1);
    EncoderConfig expect = m.config;
    expect.architectures = r.config.architectures;
    expect.extra = r.config.extra;
    CHECK(r.config == expect);
    auto a = m.encoder.named_parameters(), b = r.encoder.named_parameters();
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      CHECK(a[i].first == b[i].first);
      KDNAS_CHECK_CLOSE(b[i].second.value(), a[i].second.value(), (Tol{0, 0}), a[i].first);
    }
    CHECK(r.mlm.has_value());
    CHECK(r.classifier.has_value());
    SafetensorsFile f = SafetensorsFile::open(dir + "/model.safetensors");
    CHECK(f.contains("roberta.embeddings.word_embeddings.weight"));
    CHECK(f.contains("lm_head.dense.weight"));
  }

  TEST_CASE("a missing or misshapen tensor is an error naming it") {
    Model m = load_model_dir(golden("odd72"));
    auto named = m.encoder.named_parameters();
    std::vector<std::pair<std::string, Tensor>> ts;
    for (auto& [n, v] : named) ts.emplace_back(n, v.value());
    auto missing = ts;
    missing.erase(missing.begin() + 7);
    const std::string gone = ts[7].first;
    check_throws_with([&] { Encoder::from_tensors(m.config, missing); }, {gone, "missing"});
    auto bad = ts;
    bad[0].second = Tensor::zeros({3, 4});
    check_throws_with([&] { Encoder::from_tensors(m.config, bad); },
                      {"embeddings.word_embeddings.weight", "[3, 4]", "[150, 72]"});
  }
}
