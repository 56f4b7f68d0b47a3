// kdnas encode --model DIR (--text "..." | --ids "0 581 2;0 5 2" | --input FILE) [--max-len N]
//              [--dtype f32|bf16|int8] [--device cpu|cuda[:N]] --out FILE.safetensors
//              [--profile FILE.json]
// Writes hidden_states f32 [L+1, B, T, C] and attention_mask i64 [B, T]. With --device cuda the
// weights and the forward pass live on the GPU and the hidden states are copied back to write.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "apps/device_flag.h"
#include "kernels/profiler.h"
#include "transformer/inference.h"
#include "transformer/model_dir.h"
#include "transformer/safetensors.h"
#include "transformer/tokenizer.h"

namespace kdnas::cli {
namespace {

// "0 581 2;0 5 2" -> one sequence per ';' group, padded with pad_id to the longest.
EncodedBatch parse_ids(const std::string& text, int64_t pad_id, int64_t vocab) {
  std::vector<std::vector<int64_t>> seqs;
  std::stringstream groups(text);
  std::string group;
  while (std::getline(groups, group, ';')) {
    std::vector<int64_t> s;
    std::stringstream ws(group);
    std::string tok;
    while (ws >> tok) {
      size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(tok, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      KDNAS_CHECK(used == tok.size(), "encode: --ids: '", tok, "' is not an integer");
      KDNAS_CHECK(v >= 0 && v < vocab, "encode: --ids: id ", v, " is outside the vocabulary [0, ",
                  vocab, ")");
      s.push_back(v);
    }
    KDNAS_CHECK(!s.empty(), "encode: --ids: an empty sequence in '", text, "'");
    seqs.push_back(s);
  }
  KDNAS_CHECK(!seqs.empty(), "encode: --ids is empty");
  size_t T = 0;
  for (auto& s : seqs) T = std::max(T, s.size());
  EncodedBatch b{Tensor::full({int64_t(seqs.size()), int64_t(T)}, double(pad_id), DType::I64),
                 Tensor::zeros({int64_t(seqs.size()), int64_t(T)}, DType::I64)};
  for (size_t i = 0; i < seqs.size(); ++i)
    for (size_t t = 0; t < seqs[i].size(); ++t) {
      b.input_ids.data<int64_t>()[i * T + t] = seqs[i][t];
      b.attention_mask.data<int64_t>()[i * T + t] = 1;
    }
  return b;
}

}  // namespace

void add_encode(CLI::App& app) {
  auto* cmd = app.add_subcommand("encode", "Run the encoder and write every layer's hidden states");
  struct Args {
    std::string model, text, ids, input, out, dtype = "f32", profile, device = "cpu";
    int64_t max_len = 512;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->model, "model directory")->required();
  auto* text = cmd->add_option("--text", a->text, "one sentence (needs the model's tokenizer)");
  auto* ids = cmd->add_option("--ids", a->ids, "token ids: \"0 581 2\"; ';' separates sequences");
  auto* input = cmd->add_option("--input", a->input, "a text file, one sentence per line");
  text->excludes(ids)->excludes(input);
  ids->excludes(input);
  cmd->add_option("--max-len", a->max_len, "truncate to this many tokens (default 512)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option("--dtype", a->dtype, "f32, bf16 or int8 (dynamically quantised linear layers)")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}));
  add_device_flag(cmd, a->device);
  cmd->add_option("--out", a->out, "output .safetensors file")->required();
  cmd->add_option("--profile", a->profile,
                  "per-op Chrome trace to FILE.json, summary on stderr (docs/profiling.md)");
  cmd->callback([a] {
    const Device device = resolve_device(a->device);  // first: no file is touched before it
    KDNAS_CHECK(!a->text.empty() + !a->ids.empty() + !a->input.empty() == 1,
                "encode: give exactly one of --text, --ids or --input");
    auto prof = a->profile.empty() ? nullptr : std::make_shared<Profiler>(a->profile);
    Model m = load_model_dir(a->model);
    EncodedBatch batch;
    if (!a->ids.empty()) {
      batch = parse_ids(a->ids, m.config.pad_token_id, m.config.vocab_size);
    } else {
      KDNAS_CHECK(!m.tokenizer_path.empty(), "encode: ", a->model, " has no tokenizer (",
                  kTokenizerFile, "); use --ids");
      Tokenizer tok = Tokenizer::load(m.tokenizer_path);
      std::vector<std::string> lines;
      if (!a->text.empty()) {
        lines.push_back(a->text);
      } else {
        std::ifstream in(a->input);
        KDNAS_CHECK(in.good(), "encode: cannot read ", a->input);
        for (std::string line; std::getline(in, line);)
          if (!line.empty()) lines.push_back(line);
        KDNAS_CHECK(!lines.empty(), "encode: ", a->input, " has no non-empty line");
      }
      batch = tok.encode_batch(lines, a->max_len);
    }
    const int64_t max_t = m.config.max_position_embeddings - m.config.pad_token_id - 1;
    KDNAS_CHECK(batch.input_ids.size(1) <= max_t, "encode: sequence of ", batch.input_ids.size(1),
                " tokens; this model takes at most ", max_t);
    Context ctx;
    if (prof) ctx.set_profiler(prof);
    InferenceEncoder enc(m.encoder, inference_dtype(a->dtype), device);
    Tensor hs = enc.forward(ctx, batch.input_ids, batch.attention_mask, true).to(cpu_device());
    write_safetensors(a->out, {{"hidden_states", hs}, {"attention_mask", batch.attention_mask}},
                      {{"model", a->model}, {"dtype", a->dtype}});
    std::printf("wrote %s: hidden_states %s, attention_mask %s\n", a->out.c_str(),
                shape_str(hs.shape()).c_str(), shape_str(batch.attention_mask.shape()).c_str());
    if (prof) {
      std::fflush(stdout);
      prof->finish();
    }
  });
}

}  // namespace kdnas::cli
