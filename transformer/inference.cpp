#include "transformer/inference.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/binary.h"
#include "kernels/cast.h"
#include "kernels/concat.h"
#include "kernels/embedding.h"
#include "kernels/layer_norm.h"
#include "kernels/matmul.h"
#include "kernels/permute.h"
#include "kernels/profiler.h"
#include "kernels/softmax.h"

namespace kdnas {

InferenceEncoder::InferenceEncoder(const Encoder& enc, DType dtype, Device device)
    : cfg_(enc.config()), dtype_(dtype), device_(device) {
  KDNAS_CHECK(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::I8,
              "inference: dtype must be f32, bf16 or int8, got ", dtype_name(dtype));
  KDNAS_CHECK(dtype != DType::I8 || device.is_cpu(),
              "inference: int8 runs on the CPU only, not on ", device.str());
  // The weights are prepared on the host (concatenated, converted), then copied to the device
  // once. host(): the encoder's value as it is on the CPU, a host copy otherwise.
  Context ctx;
  auto host = [](const Variable& v) { return v.value().to(cpu_device()); };
  auto put = [&](const Tensor& t) { return t.contiguous().to(device); };
  auto w = [&](const Variable& v) { return put(host(v).to(dtype)); };
  auto f = [&](const Variable& v) { return put(host(v)); };
  word_ = f(enc.word_embeddings);
  pos_ = f(enc.position_embeddings);
  type0_ = put(host(enc.token_type_embeddings).narrow(0, 0, 1));
  emb_ln_w_ = f(enc.emb_ln_w);
  emb_ln_b_ = f(enc.emb_ln_b);
  for (const EncoderLayer& l : enc.layers) {
    Layer L;
    const Tensor wqkv = concat(ctx, {host(l.query_w), host(l.key_w), host(l.value_w)}, 0);
    const Tensor bqkv = concat(ctx, {host(l.query_b), host(l.key_b), host(l.value_b)}, 0);
    if (dtype == DType::I8) {
      L.qqkv = quantize_linear(ctx, wqkv, bqkv);
      L.qo = quantize_linear(ctx, host(l.attn_out_w), host(l.attn_out_b));
      L.q1 = quantize_linear(ctx, host(l.inter_w), host(l.inter_b));
      L.q2 = quantize_linear(ctx, host(l.out_w), host(l.out_b));
    } else {
      L.wqkv = const_weights(put(wqkv.to(dtype))), L.bqkv = put(bqkv);
      L.wo = const_weights(w(l.attn_out_w)), L.bo = f(l.attn_out_b);
      L.w1 = const_weights(w(l.inter_w)), L.b1 = f(l.inter_b);
      L.w2 = const_weights(w(l.out_w)), L.b2 = f(l.out_b);
    }
    L.ln1_w = f(l.attn_ln_w), L.ln1_b = f(l.attn_ln_b);
    L.ln2_w = f(l.out_ln_w), L.ln2_b = f(l.out_ln_b);
    layers_.push_back(std::move(L));
  }
}

double InferenceEncoder::flops(int64_t B, int64_t T) const {
  const double M = double(B * T), C = double(cfg_.hidden_size), FF = double(cfg_.intermediate_size);
  const double per_layer = 2 * M * C * 3 * C      // QKV
                           + 2 * 2 * M * T * C    // QK^T and PV over all heads
                           + 2 * M * C * C        // attention output
                           + 2 * 2 * M * C * FF;  // FFN
  return per_layer * double(cfg_.num_hidden_layers);
}

namespace {

// Sequences per attention chunk: as many as keep one chunk's f32 scores [n, NH, T, T] within
// kAttentionChunkBytes (at least one). XLM-R Base at 128 tokens has 768 KiB of scores per
// sequence, so it goes one sequence at a time.
constexpr int64_t kAttentionChunkBytes = int64_t(1) << 20;

int64_t attention_chunk(int64_t B, int64_t NH, int64_t T) {
  const int64_t per_seq = std::max<int64_t>(1, NH * T * T * int64_t(sizeof(float)));
  return std::clamp<int64_t>(kAttentionChunkBytes / per_seq, 1, std::max<int64_t>(B, 1));
}
}  // namespace

// Attention for n sequences: qkv [n, T, 3C] (the QKV GEMM's output), add_mask [n, ...] (the
// additive mask), merged [n, T, NH, HS] (written by PV, in merged's dtype).
void InferenceEncoder::attend_chunk(Context& ctx, Tensor qkv, const Tensor& add_mask,
                                    const Tensor& merged, double score_scale) const {
  const int64_t n = qkv.size(0), T = qkv.size(1), NH = cfg_.num_attention_heads;
  const int64_t HS = cfg_.hidden_size / NH;
  const DType attn_dt = dtype_ == DType::F32 ? DType::F32 : DType::BF16;
  // Q, K, V: [n, NH, T, HS] each: strided views of qkv [n, T, 3, NH, HS] (no copy), or one
  // copy of qkv into [3, n, NH, T, HS] that makes every head contiguous, so that oneDNN 2.6
  // runs the two attention GEMMs with its brgemm kernels instead of gemm:jit (it does not
  // take rows strided wider than the head). In bf16 (AMX) that halves their time (12 heads of
  // 128 x 64: ~0.16 -> ~0.075 ms per layer), more than the copy costs, at any size. In f32 it
  // takes XLM-R's two attention GEMMs at batch 1 from 0.45 to 0.20 ms a layer, but the copy
  // only pays while qkv stays in cache (b1 2 threads: XLM-R 85.8 -> 84.9 ms; 6L/384H batch 32
  // 1 thread, qkv 19 MB: 694 -> 704), so f32 copies up to 2 MiB of qkv. int8 takes the bf16
  // attention (its QKV GEMM writes bf16): its error is far below the int8 linear layers' own.
  Tensor q, k, v;
  if (attn_dt == DType::BF16 || qkv.nbytes() <= (size_t(2) << 20)) {
    if (qkv.dtype() != attn_dt) qkv = cast(ctx, qkv, attn_dt);
    Tensor heads3 = permute_copy(ctx, qkv.view({n, T, 3, NH, HS}), {2, 0, 3, 1, 4});
    q = heads3.select(0, 0), k = heads3.select(0, 1), v = heads3.select(0, 2);
  } else {
    Tensor q5 = qkv.view({n, T, 3, NH, HS});
    q = q5.select(2, 0).permute({0, 2, 1, 3});
    k = q5.select(2, 1).permute({0, 2, 1, 3});
    v = q5.select(2, 2).permute({0, 2, 1, 3});
  }
  Tensor scores = matmul_forward(ctx, q, k.transpose(-1, -2));  // [n, NH, T, T] f32
  // The probabilities in attn_dt: softmax rounds them to bf16 as it writes them.
  Tensor probs = attn_dt == DType::BF16 ? softmax_forward_bf16(ctx, scores, add_mask, score_scale)
                                        : softmax_forward(ctx, scores, add_mask, score_scale);
  // PV [n, NH, T, HS] written straight into merged [n, T, NH, HS] (no permute pass).
  MatmulOptions pv;
  pv.out_dtype = merged.dtype();
  pv.out = merged.permute({0, 2, 1, 3});
  matmul_forward(ctx, probs, v, pv);
}

Tensor InferenceEncoder::forward(Context& ctx, const Tensor& ids, const Tensor& attention_mask,
                                 bool all_hidden) {
  KDNAS_CHECK(ids.dtype() == DType::I64 && ids.dim() == 2,
              "inference: ids must be i64 [B, T], got ", dtype_name(ids.dtype()), " ", ids.shape());
  const int64_t B = ids.size(0), T = ids.size(1), C = cfg_.hidden_size;
  const int64_t NH = cfg_.num_attention_heads, HS = C / NH, L = cfg_.num_hidden_layers;
  KDNAS_CHECK(T + cfg_.pad_token_id < cfg_.max_position_embeddings, "inference: sequence length ",
              T, " is too long for max_position_embeddings ", cfg_.max_position_embeddings);
  Tensor mask = attention_mask.defined() ? attention_mask : Tensor::ones({B, T}, DType::I64);
  KDNAS_CHECK(mask.shape() == ids.shape(), "inference: attention_mask is ", mask.shape(),
              " but ids are ", ids.shape());
  // Host-side metadata: the position ids and the additive mask are computed from host copies
  // of ids and mask; the ops then take them (and the ids) on the device, where the embedding op
  // copies the ids back to check them (docs/cuda.md, "Host-side metadata"). On the CPU every
  // .to() here returns its argument.
  const Tensor ids_host = ids.to(cpu_device());
  const Tensor add_mask = additive_attention_mask(mask.to(cpu_device())).to(device_);
  const Tensor pos_ids = roberta_position_ids(ids_host, cfg_.pad_token_id).to(device_);
  const double eps = cfg_.layer_norm_eps, score_scale = 1.0 / std::sqrt(double(HS));
  // The dtype the weight GEMMs read: bf16 for bf16, f32 otherwise (int8 quantises inside
  // qlinear). The attention products (QKᵀ, PV) run in bf16 for bf16 and int8, f32 for f32.
  const DType gemm_dt = dtype_ == DType::BF16 ? DType::BF16 : DType::F32;
  const bool int8 = dtype_ == DType::I8;
  // int8: the dtype of an activation with `width` features that only a qlinear reads (merged,
  // the FFN's hidden one): bf16 once its f32 form would pass 2 MiB, i.e. leave the cache between
  // the GEMM that writes it and the qlinear's two passes over it (range, then codes; qlinear
  // quantises a bf16 x as its exact f32 value). Half the bytes: 6L/384H batch 32, one thread,
  // 274 -> 235 ms; at batch 1 (XLM-R, 1.5 MB of f32 hidden FFN activation) f32 stays faster:
  // bf16 there was 29.4 -> 30.1 ms.
  auto int8_act_dt = [&](int64_t width) {
    return B * T * width * int64_t(sizeof(float)) > (int64_t(2) << 20) ? DType::BF16 : DType::F32;
  };

  Tensor hidden_all;
  if (all_hidden) hidden_all = Tensor::empty({L + 1, B, T, C}, DType::F32, device_);
  // Embeddings: word + position + token type 0, then LayerNorm.
  Tensor x = add(ctx, embedding_forward(ctx, ids.to(device_), word_),
                 embedding_forward(ctx, pos_ids, pos_));
  x = layer_norm_forward(ctx, add(ctx, x, type0_), emb_ln_w_, emb_ln_b_, eps).out;  // [B, T, C]
  if (all_hidden) hidden_all.select(0, 0).copy_(x);
  // The bf16 GEMMs read x as bf16: the embedding's is cast here, every later one comes out of
  // the add + LayerNorm that produces x (rounded in the same pass).
  const bool bf16_gemm = gemm_dt == DType::BF16;
  Tensor x16 = bf16_gemm ? cast(ctx, x, DType::BF16) : Tensor();

  for (int64_t l = 0; l < L; ++l) {
    const Layer& w = layers_[size_t(l)];
    ProfileScope layer_scope(ctx, "layer", "layer");  // the whole layer, around its ops' events
    if (layer_scope) layer_scope.set_name("layer " + std::to_string(l));
    // One GEMM for Q, K and V: [B, T, C] x [3C, C]^T -> [B, T, 3C].
    // int8 writes qkv in bf16, the dtype its attention products read.
    Tensor qkv = int8 ? qlinear_forward(ctx, x, w.qqkv, Activation::None, DType::BF16)
                      : linear_forward(ctx, bf16_gemm ? x16 : x, w.wqkv, w.bqkv,
                                       Activation::None, gemm_dt);
    // Attention, a chunk of sequences at a time (attend_chunk below), so that each chunk's
    // scores stay in cache between the three passes over them (QKᵀ writes, softmax reads and
    // writes the probabilities, PV reads), and its qkv copy too.
    Tensor merged = Tensor::empty({B, T, NH, HS}, int8 ? int8_act_dt(C) : gemm_dt, device_);
    const int64_t chunk = attention_chunk(B, NH, T);
    for (int64_t b0 = 0; b0 < B; b0 += chunk) {
      const int64_t n = std::min(chunk, B - b0);
      attend_chunk(ctx, qkv.narrow(0, b0, n), add_mask.narrow(0, b0, n), merged.narrow(0, b0, n),
                   score_scale);
    }
    merged = merged.view({B, T, C});
    Tensor attn = int8 ? qlinear_forward(ctx, merged, w.qo)
                       : linear_forward(ctx, merged, w.wo, w.bo);  // [B, T, C] f32
    Tensor h1_16;  // LN(x + attn), and its bf16 copy for the FFN's first GEMM
    Tensor h1 = add_layer_norm_forward(ctx, x, attn, w.ln1_w, w.ln1_b, eps,
                                       bf16_gemm ? &h1_16 : nullptr);
    Tensor ff = int8 ? qlinear_forward(ctx, h1, w.q1, Activation::Gelu,
                                       int8_act_dt(cfg_.intermediate_size))
                     : linear_forward(ctx, bf16_gemm ? h1_16 : h1, w.w1, w.b1, Activation::Gelu,
                                      gemm_dt);
    Tensor ff2 = int8 ? qlinear_forward(ctx, ff, w.q2) : linear_forward(ctx, ff, w.w2, w.b2);
    x = add_layer_norm_forward(ctx, h1, ff2, w.ln2_w, w.ln2_b, eps,
                               bf16_gemm && l + 1 < L ? &x16 : nullptr);
    if (all_hidden) hidden_all.select(0, l + 1).copy_(x);
  }
  return all_hidden ? hidden_all : x;
}

DType inference_dtype(const std::string& name) {
  if (name == "f32") return DType::F32;
  if (name == "bf16") return DType::BF16;
  if (name == "int8") return DType::I8;
  detail::fail(detail::concat("inference: dtype '", name, "' is not one of f32, bf16, int8"));
}

const char* inference_dtype_name(DType dt) {
  return dt == DType::I8 ? "int8" : dtype_name(dt);
}

}  // namespace kdnas
