#include "kernels/qlinear.h"

#include <atomic>
#include <cmath>

#include "kernels/cast.h"
#include "kernels/cpu/qlinear_cpu.h"
#include "kernels/dispatch.h"
#include "kernels/profiler.h"
#include "kernels/ref/qlinear_ref.h"

namespace kdnas {
namespace {

void check_finite(const char* op, const char* arg, const Tensor& t) {
  const float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    KDNAS_CHECK(std::isfinite(p[i]), op, ": ", arg, " ", t.shape(), " holds a non-finite value (",
                p[i], ") at flat index ", i);
}

}  // namespace

QuantizedLinear quantize_linear(Context& ctx, const Tensor& w, const Tensor& bias) {
  const char* op = "quantize_linear";
  check_dtype(op, "w", w, {DType::F32});
  check_dim(op, "w", w, 2);
  KDNAS_CHECK(w.device().is_cpu(), op, ": w is on ", w.device().str(), "; int8 runs on the CPU");
  (void)route_for(ctx, op, w);
  const int64_t N = w.size(0), K = w.size(1);
  KDNAS_CHECK(N >= 1 && K >= 1 && K <= kQlinearMaxK, op, ": w is ", w.shape(),
              "; need N >= 1 and 1 <= K <= ", kQlinearMaxK);
  const Tensor wc = w.contiguous();
  check_finite(op, "w", wc);
  QuantizedLinear q;
  if (bias.defined()) {
    check_dtype(op, "bias", bias, {DType::F32});
    KDNAS_CHECK(bias.dim() == 1 && bias.size(0) == N, op, ": bias is ", bias.shape(),
                " but w is ", w.shape(), " (bias must be [N])");
    q.bias = bias.contiguous().clone();
  }
  static std::atomic<uint64_t> next_id{1};
  q.id = next_id.fetch_add(1);
  q.wq = Tensor::empty({N, K}, DType::I8);
  q.scales = Tensor::empty({N}, DType::F32);
  q.row_sums = Tensor::empty({N}, DType::I32);
  quantize_weight_ref(q.wq.data<int8_t>(), q.scales.data<float>(), q.row_sums.data<int32_t>(),
                      wc.data<float>(), N, K);
  return q;
}

Tensor qlinear_forward(Context& ctx, const Tensor& x, const QuantizedLinear& q, Activation act,
                       DType out_dtype) {
  const char* op = "qlinear";
  check_dtype(op, "x", x, {DType::F32, DType::BF16});
  KDNAS_CHECK(out_dtype == DType::F32 || out_dtype == DType::BF16, op,
              ": out_dtype must be f32 or bf16, not ", dtype_name(out_dtype));
  KDNAS_CHECK(q.wq.defined() && q.wq.dtype() == DType::I8 && q.wq.dim() == 2 && q.id != 0, op,
              ": the weights are not quantised (use quantize_linear)");
  KDNAS_CHECK(x.device().is_cpu(), op, ": x is on ", x.device().str(), "; int8 runs on the CPU");
  const int64_t N = q.out_features(), K = q.in_features();
  KDNAS_CHECK(x.dim() >= 1 && x.size(-1) == K, op, ": x is ", x.shape(), " but the weights are [",
              N, ", ", K, "] (x's last dim must be K)");
  const Route r = route_for(ctx, op, x);
  // The reference reads f32: a bf16 x is widened first (exactly), which defines the bf16 case.
  const Tensor xc = r == Route::Ref ? x.to(DType::F32).contiguous() : x.contiguous();
  const int64_t M = xc.numel() / K;
  Shape out_shape = x.shape();
  out_shape.back() = N;
  // oneDNN writes bf16 itself; the other backends compute f32 and cast it.
  const bool direct_bf16 = out_dtype == DType::BF16 && r == Route::Onednn;
  Tensor out = Tensor::empty(out_shape, direct_bf16 ? DType::BF16 : DType::F32);
  if (M == 0) return out.to(out_dtype);
  ProfileScope prof(ctx, op);
  if (prof) {
    prof.set(r, {&x, &q.wq}, double(M * N) * double(dtype_size(out_dtype)),
             2.0 * double(M) * double(N) * double(K));
    const std::string m = std::to_string(M), k = std::to_string(K), n = std::to_string(N);
    prof.set_gemm(m + "x" + k + ":" + k + "x" + n + ":" + m + "x" + n + ":u8s8");
  }
  const bool gelu = act == Activation::Gelu;
  const float* bias = q.bias.defined() ? q.bias.data<float>() : nullptr;
  Tensor xq = Tensor::empty({M, K}, DType::U8);
  // The fast kernels read f32 or bf16 x directly (one pass for the range, one to quantise).
  auto fast = [&](auto&& f) {
    return xc.dtype() == DType::BF16 ? f(xc.data<bf16>()) : f(xc.data<float>());
  };
  ActQuant aq;
  if (r == Route::Ref) {
    aq = activation_quant_ref(xc.data<float>(), M * K);
  } else {
    aq = fast([&](const auto* xp) { return activation_quant_cpu(ctx, xp, M * K); });
  }
  KDNAS_CHECK(std::isfinite(aq.scale), op, ": x ", x.shape(), " holds a non-finite value");
  if (r == Route::Ref) {
    quantize_activation_ref(xq.data<uint8_t>(), xc.data<float>(), M * K, aq);
    qlinear_forward_ref(out.data<float>(), xq.data<uint8_t>(), aq, q.wq.data<int8_t>(),
                        q.scales.data<float>(), q.row_sums.data<int32_t>(), bias, M, N, K, gelu);
  } else {
    fast([&](const auto* xp) { quantize_activation_cpu(ctx, xq.data<uint8_t>(), xp, M * K, aq); });
    if (r == Route::Onednn)
      qlinear_forward_onednn(ctx, out.raw_data(), direct_bf16, xq.data<uint8_t>(), aq,
                             q.wq.data<int8_t>(), q.scales.data<float>(),
                             q.row_sums.data<int32_t>(), bias, M, N, K, gelu, q.id);
    else
      qlinear_forward_cpu(ctx, out.data<float>(), xq.data<uint8_t>(), aq, q.wq.data<int8_t>(),
                          q.scales.data<float>(), q.row_sums.data<int32_t>(), bias, M, N, K, gelu);
  }
  return out.dtype() == out_dtype ? out : cast(ctx, out, out_dtype);
}

}  // namespace kdnas
