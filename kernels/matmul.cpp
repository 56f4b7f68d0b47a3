#include "kernels/matmul.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "kernels/cast.h"
#include "kernels/cpu/matmul_cpu.h"
#include "kernels/cuda/binary_cuda.h"
#include "kernels/cuda/matmul_cuda.h"
#include "kernels/dispatch.h"
#include "kernels/permute.h"
#include "kernels/profiler.h"
#include "kernels/ref/matmul_ref.h"

namespace kdnas {
namespace {

// ---- layouts ---------------------------------------------------------------------------------

// Whether a rows x cols matrix with strides (rs, cs) can be read in place: one unit stride, the
// other at least as large as the unit-stride dim (rows do not overlap). A size-1 dim's stride is
// free, so it is set to whatever makes the layout plain.
bool plain_matrix(int64_t rows, int64_t cols, int64_t& rs, int64_t& cs) {
  if (rows == 1) rs = cs == 1 ? cols : 1;
  if (cols == 1) cs = rs == 1 ? rows : 1;
  return (cs == 1 && rs >= cols) || (rs == 1 && cs >= rows);
}

// The batch dims of t (all but the last two).
Shape batch_of(const Tensor& t) {
  return Shape(t.shape().begin(), t.shape().end() - 2);
}

// t's stride along each dim of `batch` (right-aligned); 0 where t broadcasts (missing or size 1).
Shape batch_strides(const Tensor& t, const Shape& batch) {
  const int64_t tb = t.dim() - 2, nb = int64_t(batch.size());
  Shape s(batch.size(), 0);
  for (int64_t d = 0; d < nb; ++d) {
    const int64_t k = d - (nb - tb);
    if (k >= 0 && t.size(k) != 1) s[size_t(d)] = t.stride(k);
  }
  return s;
}

// The numpy broadcast of a's and b's batch dims.
Shape broadcast_batch(const char* op, const Tensor& a, const Tensor& b) {
  const Shape ab = batch_of(a), bb = batch_of(b);
  const size_t n = std::max(ab.size(), bb.size());
  Shape batch(n, 1);
  for (size_t d = 0; d < n; ++d) {
    const int64_t x = d + ab.size() >= n ? ab[d + ab.size() - n] : 1;
    const int64_t y = d + bb.size() >= n ? bb[d + bb.size() - n] : 1;
    KDNAS_CHECK(x == y || x == 1 || y == 1, op, ": batch dims of a ", a.shape(), " and b ",
                b.shape(), " do not broadcast");
    batch[d] = x == 1 ? y : x;
  }
  return batch;
}

// out's shape: [batch..., M, N].
Shape matmul_out_shape(const char* op, const Tensor& a, const Tensor& b) {
  Shape s = broadcast_batch(op, a, b);
  s.push_back(a.size(-2));
  s.push_back(b.size(-1));
  return s;
}

// The layout of out = a · b. a and b are replaced by contiguous copies if their matrix dims
// cannot be read in place. When b is shared by every batch and a's batch dims stack its rows
// evenly (a contiguous [B, T, C] activation, say), the batch folds into one taller GEMM,
// which is faster than many short ones.
GemmLayout gemm_layout(const char* op, Tensor& a, Tensor& b) {
  const Shape batch = broadcast_batch(op, a, b);
  GemmLayout l;
  l.M = a.size(-2);
  l.K = a.size(-1);
  l.N = b.size(-1);
  l.a_rs = a.stride(-2), l.a_cs = a.stride(-1);
  if (!plain_matrix(l.M, l.K, l.a_rs, l.a_cs)) {
    a = a.contiguous();
    l.a_rs = a.stride(-2), l.a_cs = a.stride(-1);
    plain_matrix(l.M, l.K, l.a_rs, l.a_cs);
  }
  l.b_rs = b.stride(-2), l.b_cs = b.stride(-1);
  if (!plain_matrix(l.K, l.N, l.b_rs, l.b_cs)) {
    b = b.contiguous();
    l.b_rs = b.stride(-2), l.b_cs = b.stride(-1);
    plain_matrix(l.K, l.N, l.b_rs, l.b_cs);
  }
  l.batch = batch;
  l.a_batch_strides = batch_strides(a, batch);
  l.b_batch_strides = batch_strides(b, batch);

  // Fold: b broadcast along every batch dim and a's rows evenly spaced across the batch.
  bool b_shared = true;
  for (size_t d = 0; d < batch.size(); ++d) b_shared = b_shared && l.b_batch_strides[d] == 0;
  if (b_shared && !batch.empty()) {
    int64_t expected = l.a_rs * l.M, rows = l.M;
    bool even = true;
    for (size_t d = batch.size(); d-- > 0;) {
      if (batch[d] == 1) continue;
      even = even && l.a_batch_strides[d] == expected;
      expected *= batch[d];
      rows *= batch[d];
    }
    int64_t rs = l.a_rs, cs = l.a_cs;
    if (even && plain_matrix(rows, l.K, rs, cs)) {
      l.M = rows;
      l.a_rs = rs, l.a_cs = cs;
      l.batch.clear();
      l.a_batch_strides.clear();
      l.b_batch_strides.clear();
    }
  }
  return l;
}

// ---- checks ----------------------------------------------------------------------------------

// The output dtype for operands of dtype `in`, after checking the requested one.
DType matmul_out_dtype(const char* op, DType in, DType requested) {
  if (in == DType::F64) {
    KDNAS_CHECK(requested == DType::F32 || requested == DType::F64, op,
                ": f64 operands give an f64 output, not ", dtype_name(requested));
    return DType::F64;
  }
  KDNAS_CHECK(requested == DType::F32 || (requested == DType::BF16 && in == DType::BF16), op,
              ": out_dtype ", dtype_name(requested), " is not available for ", dtype_name(in),
              " operands (f32, or bf16 from bf16 operands)");
  return requested;
}

void check_bias(const char* op, const Tensor& bias, DType in, int64_t N, const Tensor& a,
                const Tensor& b, const char* b_name) {
  if (!bias.defined()) return;
  check_dtype(op, "bias", bias, {in == DType::F64 ? DType::F64 : DType::F32});
  KDNAS_CHECK(bias.dim() == 1 && bias.size(0) == N, op, ": bias is ", bias.shape(), " but ", b_name,
              " ", b.shape(), " gives N = ", N, " outputs (x/a is ", a.shape(), ")");
}

// ---- the K = 0 corner -----------------------------------------------------------------------

// out = act(bias) (or act(0)) in every row: what a GEMM with no products gives.
void fill_epilogue_only(Tensor& out, const Tensor& bias, bool gelu) {
  const int64_t N = out.size(-1), rows = N ? out.numel() / N : 0;
  char* p = static_cast<char*>(out.raw_data());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double x = bias.defined() ? bias.at({j}) : 0.0;
      if (gelu) x = 0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440));
      store_from_double(p + (i * N + j) * int64_t(out.element_size()), out.dtype(), x);
    }
}

// ---- broadcast gradients --------------------------------------------------------------------

// Sums full [batch..., R, C] (contiguous) over the batch dims along which an input of shape
// `like` was broadcast, giving a contiguous tensor of shape `like`.
Tensor sum_to(Context& ctx, const Tensor& full, const Shape& like) {
  if (full.shape() == like) return full;
  if (!full.device().is_cpu()) {  // f32 on the GPU: the broadcast-gradient reduction kernel
    Tensor out = Tensor::empty(like, full.dtype(), full.device());
    sum_to_shape_cuda(ctx, out.data<float>(), full.data<float>(), full.shape(), like, 1.f);
    return out;
  }
  Tensor out = Tensor::zeros(like, full.dtype());
  Shape lb = like;
  lb.insert(lb.begin(), full.shape().size() - like.size(), 1);
  const Shape ls = contiguous_strides(lb);
  const Shape& fs = full.shape();
  const int64_t n = full.numel(), nd = int64_t(fs.size());
  dispatch_float("matmul_backward", full.dtype(), [&]<typename T>() {
    const T* src = full.data<T>();
    T* dst = out.data<T>();
    for (int64_t i = 0; i < n; ++i) {
      int64_t rem = i, o = 0;
      for (int64_t d = nd - 1; d >= 0; --d) {
        const int64_t idx = rem % fs[size_t(d)];
        rem /= fs[size_t(d)];
        if (lb[size_t(d)] != 1) o += idx * ls[size_t(d)];
      }
      dst[o] += src[i];
    }
  });
  return out;
}

// The dim order that lists t's dims from the largest stride to the smallest, if t viewed in
// that order is contiguous (t is a dim permutation of a contiguous tensor); empty otherwise.
std::vector<int64_t> dense_order(const Tensor& t) {
  std::vector<int64_t> order(size_t(t.dim()));
  for (int64_t d = 0; d < t.dim(); ++d) order[size_t(d)] = d;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return t.stride(x) > t.stride(y); });
  return t.permute(order).is_contiguous() ? order : std::vector<int64_t>{};
}

// opts.out's checks: the result's shape, dtype and device, and a permuted-contiguous layout.
void check_out(const char* op, const Tensor& out, const Shape& shape, DType dtype,
               const Tensor& a) {
  KDNAS_CHECK(out.shape() == shape && out.dtype() == dtype && out.device() == a.device(), op,
              ": out is ", dtype_name(out.dtype()), " ", out.shape(), " on ", out.device().str(),
              " but the result is ", dtype_name(dtype), " ", shape, " on ", a.device().str());
  KDNAS_CHECK(!dense_order(out).empty(), op, ": out ", out.shape(), " with strides ",
              out.strides(), " is not a contiguous tensor or a dim permutation of one");
}

// out (=) res, any device: both viewed in out's memory order, where out is contiguous.
void copy_into(Context& ctx, const Tensor& out, const Tensor& res) {
  const std::vector<int64_t> order = dense_order(out);
  Tensor dst = out.permute(order);
  dst.copy_(permute_copy(ctx, res, order));
}

// a viewed (or copied) as [rows, K]: the batch dims stacked into the rows.
Tensor rows_of(const Tensor& t) {
  const int64_t cols = t.size(-1);
  return t.reshape({cols ? t.numel() / cols : 0, cols});
}

}  // namespace

// ---- forward ---------------------------------------------------------------------------------

Tensor matmul_forward(Context& ctx, const Tensor& a_in, const Tensor& b_in,
                      const MatmulOptions& opts) {
  const char* op = "matmul";
  check_dtype(op, "a", a_in, {DType::F32, DType::BF16, DType::F64});
  check_dtype(op, "b", b_in, {a_in.dtype()});
  check_same_device(op, {&a_in, &b_in});
  KDNAS_CHECK(a_in.dim() >= 2 && b_in.dim() >= 2, op, ": a is ", a_in.shape(), " and b is ",
              b_in.shape(), "; both need at least 2 dims");
  KDNAS_CHECK(a_in.size(-1) == b_in.size(-2), op, ": a is ", a_in.shape(), " but b is ",
              b_in.shape(), " (a's last dim K = ", a_in.size(-1),
              " must equal b's second to last)");
  const DType in = a_in.dtype(), out_dtype = matmul_out_dtype(op, in, opts.out_dtype);
  check_bias(op, opts.bias, in, b_in.size(-1), a_in, b_in, "b");
  const bool gelu = opts.act == Activation::Gelu;
  const Route r = route_for(ctx, op, a_in);
  // 2·M·N·K per output matrix: out has numel = batch·M·N elements, each a K-long dot product.
  ProfileScope prof(ctx, op);
  if (prof) {
    const double outn = double(shape_numel(matmul_out_shape(op, a_in, b_in)));
    prof.set(r, {&a_in, &b_in, &opts.bias}, outn * double(dtype_size(out_dtype)),
             2.0 * outn * double(a_in.size(-1)));
  }
  const bool on_ref = r == Route::Ref || in == DType::F64;
  KDNAS_CHECK(!on_ref || a_in.device().is_cpu(), op, ": f64 runs on the CPU reference only");

  // Only oneDNN and cuBLASLt multiply bf16 directly; the Ref and Omp kernels widen it first.
  Tensor a = a_in, b = b_in;
  const bool widen = in == DType::BF16 && r != Route::Onednn && r != Route::Cuda;
  if (widen) {
    a = cast(ctx, a_in, DType::F32);
    b = cast(ctx, b_in, DType::F32);
  }
  const Shape out_shape = matmul_out_shape(op, a, b);
  if (opts.out.defined()) check_out(op, opts.out, out_shape, out_dtype, a_in);
  const GemmLayout l = gemm_layout(op, a, b);
  if (prof) {  // as ONEDNN_VERBOSE's problem_desc: src:weights:dst, batch dims first
    std::string batch;
    for (int64_t d : l.batch) batch += std::to_string(d) + "x";
    const std::string M = std::to_string(l.M), K = std::to_string(l.K), N = std::to_string(l.N);
    prof.set_gemm(batch + M + "x" + K + ":" + batch + K + "x" + N + ":" + batch + M + "x" + N);
  }
  if (opts.out.defined()) {
    const Tensor& dst = opts.out;
    // oneDNN writes dst in place when the batch did not fold into the rows and dst's rows are
    // plain (unit column stride); anything else computes a new result and copies it in.
    const bool direct = r == Route::Onednn && l.K > 0 && dst.numel() > 0 &&
                        l.batch.size() + 2 == out_shape.size() && dst.stride(-1) == 1;
    if (!direct) {
      MatmulOptions o = opts;
      o.out = Tensor();
      copy_into(ctx, dst, matmul_forward(ctx, a_in, b_in, o));
      return dst;
    }
    const Tensor bias = opts.bias.defined() ? opts.bias.contiguous() : Tensor();
    Shape strides = dst.strides();
    if (l.M == 1) strides[strides.size() - 2] = l.N;  // a lone row: its stride is free
    matmul_forward_onednn(ctx, dst.raw_data(), out_dtype, a.raw_data(), b.raw_data(), a.dtype(),
                          bias.defined() ? bias.data<float>() : nullptr, l, gelu, strides);
    return dst;
  }
  const DType kernel_out = widen ? DType::F32 : out_dtype;
  Tensor out = Tensor::empty(out_shape, kernel_out, a_in.device());
  if (out.numel() == 0) return out.to(out_dtype);
  Tensor bias = opts.bias.defined() ? opts.bias.contiguous() : Tensor();
  if (l.K == 0 && r != Route::Cuda) {  // (the CUDA kernel writes its own epilogue-only result)
    fill_epilogue_only(out, bias, gelu);
    return out.to(out_dtype);
  }

  if (on_ref) {
    dispatch_float(op, a.dtype(), [&]<typename T>() {
      const T* bp = bias.defined() ? bias.data<T>() : nullptr;
      for (int64_t g = 0; g < l.batch_count(); ++g) {
        int64_t ao, bo;
        l.batch_offsets(g, ao, bo);
        matmul_forward_ref(out.data<T>() + g * l.M * l.N, a.data<T>() + ao, b.data<T>() + bo, bp,
                           l.M, l.K, l.N, l.a_rs, l.a_cs, l.b_rs, l.b_cs, gelu);
      }
    });
  } else if (r == Route::Omp) {
    matmul_forward_cpu(ctx, out.data<float>(), a.data<float>(), b.data<float>(),
                       bias.defined() ? bias.data<float>() : nullptr, l, gelu);
  } else if (r == Route::Onednn) {
    matmul_forward_onednn(ctx, out.raw_data(), out.dtype(), a.raw_data(), b.raw_data(), a.dtype(),
                          bias.defined() ? bias.data<float>() : nullptr, l, gelu);
  } else if (r == Route::Cuda) {
    matmul_forward_cuda(ctx, out.raw_data(), out.dtype(), a.raw_data(), b.raw_data(), a.dtype(),
                        bias.defined() ? bias.data<float>() : nullptr, l, gelu);
  } else {
    no_kernel(op, r, in);
  }
  return kernel_out == out_dtype ? out : cast(ctx, out, out_dtype);
}

Tensor linear_forward(Context& ctx, const Tensor& x, const Tensor& w, const Tensor& bias,
                      Activation act, DType out_dtype) {
  const char* op = "linear";
  check_dtype(op, "x", x, {DType::F32, DType::BF16, DType::F64});
  check_dtype(op, "w", w, {x.dtype()});
  KDNAS_CHECK(x.dim() >= 1 && w.dim() == 2 && x.size(-1) == w.size(1), op, ": x is ", x.shape(),
              " but w is ", w.shape(), " (w must be [N, K] with K = x's last dim)");
  check_bias(op, bias, x.dtype(), w.size(0), x, w, "w");
  matmul_out_dtype(op, x.dtype(), out_dtype);
  ProfileScope prof(ctx, op);
  if (prof) {  // a GEMM of rows x K by K x N
    const int64_t rows = x.numel() / std::max<int64_t>(x.size(-1), 1), K = w.size(1), N = w.size(0);
    prof.set(route_for(ctx, op, x), {&x, &w, &bias}, double(rows * N) * dtype_size(out_dtype),
             2.0 * double(rows) * double(N) * double(K));
    const std::string m = std::to_string(rows), k = std::to_string(K), n = std::to_string(N);
    prof.set_gemm(m + "x" + k + ":" + k + "x" + n + ":" + m + "x" + n);
  }
  Shape out_shape = x.shape();
  out_shape.back() = w.size(0);
  // x [..., K] as [rows, K] (a view when x's strides allow), times wᵀ: a [K, N] view of w.
  Tensor out = matmul_forward(ctx, rows_of(x), w.transpose(0, 1), {bias, act, out_dtype});
  return out.view(out_shape);
}

ConstWeights const_weights(const Tensor& w) {
  KDNAS_CHECK(w.defined() && w.dim() == 2, "const_weights: w must be [N, K], not ",
              w.defined() ? w.shape() : Shape{});
  static std::atomic<uint64_t> next{1};
  return {w, next++};
}

Tensor linear_forward(Context& ctx, const Tensor& x, const ConstWeights& cw, const Tensor& bias,
                      Activation act, DType out_dtype) {
  const Tensor& w = cw.w;
  const Tensor rows = x.dim() >= 1 ? rows_of(x) : x;
  // The packed routes, for contiguous weights and rows (anything else is the plain linear,
  // which also does every check and error message): f32 on Omp runs the OpenMP GEMM on weights
  // it packed once (XLM-R Base f32, batch 1, 2 threads, in a build without oneDNN: 146 -> 94.6
  // ms); f32 and bf16 on oneDNN its matmul on weights reordered once (in f32 oneDNN's stays
  // faster: 85.3 vs 93.3 ms with the OpenMP GEMM).
  const Route r = x.device().is_cpu() ? route_for(ctx, "linear", x) : Route::Cuda;
  const bool f32_packed = x.dtype() == DType::F32 && out_dtype == DType::F32 && r == Route::Omp;
  const bool onednn_packed = r == Route::Onednn && !f32_packed &&
                             (x.dtype() == DType::F32 || x.dtype() == DType::BF16);
  const bool packed = cw.id != 0 && (f32_packed || onednn_packed) && w.defined() &&
                      w.dim() == 2 && w.dtype() == x.dtype() && w.is_contiguous() &&
                      x.dim() >= 1 && x.size(-1) == w.size(1) && rows.is_contiguous() &&
                      rows.numel() > 0 && w.size(1) > 0;
  if (!packed) return linear_forward(ctx, x, w, bias, act, out_dtype);
  const char* op = "linear";
  check_bias(op, bias, x.dtype(), w.size(0), x, w, "w");
  matmul_out_dtype(op, x.dtype(), out_dtype);
  const int64_t M = rows.size(0), K = w.size(1), N = w.size(0);
  ProfileScope prof(ctx, op);
  if (prof) {
    prof.set(r, {&x, &w, &bias}, double(M * N) * dtype_size(out_dtype),
             2.0 * double(M) * double(N) * double(K));
    const std::string m = std::to_string(M), k = std::to_string(K), n = std::to_string(N);
    prof.set_gemm(m + "x" + k + ":" + k + "x" + n + ":" + m + "x" + n);
  }
  Shape out_shape = x.shape();
  out_shape.back() = N;
  Tensor out = Tensor::empty(out_shape, out_dtype);
  const Tensor b = bias.defined() ? bias.contiguous() : Tensor();
  if (f32_packed) {
    linear_forward_packed_cpu(ctx, out.data<float>(), rows.data<float>(), w.data<float>(),
                              b.defined() ? b.data<float>() : nullptr, M, K, N,
                              act == Activation::Gelu, cw.id);
  } else {
    linear_forward_onednn_packed(ctx, out.raw_data(), out_dtype, rows.raw_data(), w.raw_data(),
                                 x.dtype(), b.defined() ? b.data<float>() : nullptr, M, K, N,
                                 act == Activation::Gelu, cw.id);
  }
  return out;
}

// ---- backward --------------------------------------------------------------------------------

namespace {

// The checks shared by matmul_backward and linear_backward: a and b one dtype, dout f32 or the
// same dtype, dout shaped like the forward output.
void check_backward(const char* op, const Tensor& dout, const Tensor& a, const Tensor& b,
                    const Shape& out_shape) {
  check_dtype(op, "dout", dout, {DType::F32, DType::BF16, DType::F64});
  KDNAS_CHECK(dout.dtype() == a.dtype() || (dout.dtype() == DType::F32 && a.dtype() == DType::BF16),
              op, ": dout has dtype ", dtype_name(dout.dtype()), " but the operands are ",
              dtype_name(a.dtype()));
  KDNAS_CHECK(dout.shape() == out_shape, op, ": dout is ", dout.shape(), " but the output of ",
              a.shape(), " and ", b.shape(), " is ", out_shape);
  check_same_device(op, {&dout, &a, &b});
}

// The reference backward: every operand broadcast to the full batch, the textbook loops of
// matmul_backward_ref per batch matrix, accumulating into the (possibly broadcast) gradients.
MatmulGrads matmul_backward_on_ref(Context& ctx, const Tensor& dout, const Tensor& a_in,
                                   const Tensor& b_in) {
  const DType t = a_in.dtype() == DType::F64 ? DType::F64 : DType::F32;
  Tensor a = cast(ctx, a_in, t).contiguous(), b = cast(ctx, b_in, t).contiguous();
  Tensor d = cast(ctx, dout, t).contiguous();
  // Per batch matrix of the output; a, b, d, da and db are contiguous, so a matrix's offset in
  // a is also its gradient's offset in da (likewise b and db).
  GemmLayout l;
  l.M = a.size(-2), l.K = a.size(-1), l.N = b.size(-1);
  l.batch = broadcast_batch("matmul_backward", a, b);
  l.a_batch_strides = batch_strides(a, l.batch);
  l.b_batch_strides = batch_strides(b, l.batch);
  Tensor da = Tensor::zeros(a.shape(), t), db = Tensor::zeros(b.shape(), t);
  dispatch_float("matmul_backward", t, [&]<typename T>() {
    for (int64_t g = 0; g < l.batch_count(); ++g) {
      int64_t ao, bo;
      l.batch_offsets(g, ao, bo);
      matmul_backward_ref(da.data<T>() + ao, db.data<T>() + bo, d.data<T>() + g * l.M * l.N,
                          a.data<T>() + ao, b.data<T>() + bo, l.M, l.K, l.N);
    }
  });
  return {cast(ctx, da, a_in.dtype()), cast(ctx, db, b_in.dtype())};
}

}  // namespace

MatmulGrads matmul_backward(Context& ctx, const Tensor& dout, const Tensor& a, const Tensor& b) {
  const char* op = "matmul_backward";
  check_dtype(op, "a", a, {DType::F32, DType::BF16, DType::F64});
  check_dtype(op, "b", b, {a.dtype()});
  KDNAS_CHECK(a.dim() >= 2 && b.dim() >= 2 && a.size(-1) == b.size(-2), op, ": a is ", a.shape(),
              " but b is ", b.shape(), " (a's last dim must equal b's second to last)");
  check_backward(op, dout, a, b, matmul_out_shape(op, a, b));
  const Route r = route_for(ctx, op, a);
  // Two GEMMs (da = dout·bᵀ, db = aᵀ·dout), each 2·M·N·K per matrix; the gradients are written.
  ProfileScope prof(ctx, op);
  if (prof)
    prof.set(r, {&dout, &a, &b}, profile_bytes({&a, &b}),
             4.0 * double(dout.numel()) * double(a.size(-1)));
  if (r == Route::Ref || a.dtype() == DType::F64) return matmul_backward_on_ref(ctx, dout, a, b);

  // Two GEMMs over transposed views (no copies): da = dout · bᵀ, db = aᵀ · dout. bf16 operands
  // with an f32 dout are widened, since both factors of a GEMM share one dtype.
  Tensor a2 = a, b2 = b;
  if (a.dtype() != dout.dtype()) {
    a2 = cast(ctx, a, DType::F32);
    b2 = cast(ctx, b, DType::F32);
  }
  Tensor da = sum_to(ctx, matmul_forward(ctx, dout, b2.transpose(-1, -2)), a.shape());
  Tensor db;
  if (b.dim() == 2) {
    // b shared by every batch: db = sum over all rows of a and dout, as one GEMM with the
    // batch stacked into the reduction dim: [K, rows] · [rows, N].
    db = matmul_forward(ctx, rows_of(a2).transpose(0, 1), rows_of(dout));
  } else {
    db = sum_to(ctx, matmul_forward(ctx, a2.transpose(-1, -2), dout), b.shape());
  }
  return {cast(ctx, da, a.dtype()), cast(ctx, db, b.dtype())};
}

LinearGrads linear_backward(Context& ctx, const Tensor& dout, const Tensor& x, const Tensor& w,
                            bool has_bias) {
  const char* op = "linear_backward";
  check_dtype(op, "x", x, {DType::F32, DType::BF16, DType::F64});
  check_dtype(op, "w", w, {x.dtype()});
  KDNAS_CHECK(x.dim() >= 1 && w.dim() == 2 && x.size(-1) == w.size(1), op, ": x is ", x.shape(),
              " but w is ", w.shape(), " (w must be [N, K] with K = x's last dim)");
  Shape out_shape = x.shape();
  out_shape.back() = w.size(0);
  check_backward(op, dout, x, w, out_shape);
  const Route r = route_for(ctx, op, x);
  ProfileScope prof(ctx, op);
  if (prof)
    prof.set(r, {&dout, &x, &w}, profile_bytes({&x, &w}) + (has_bias ? double(w.size(0)) * 4 : 0),
             4.0 * double(dout.numel()) * double(w.size(1)));
  const Tensor d2 = rows_of(dout), x2 = rows_of(x);
  LinearGrads g;
  if (r == Route::Ref || x.dtype() == DType::F64) {
    // The reference: matmul's backward with b = wᵀ, whose gradient transposes back to [N, K].
    MatmulGrads mg = matmul_backward_on_ref(ctx, d2, x2, w.transpose(0, 1));
    g.dx = mg.da.view(x.shape());
    g.dw = mg.db.transpose(0, 1).contiguous();
  } else {
    Tensor xw = x2, ww = w;
    if (x.dtype() != dout.dtype()) {
      xw = cast(ctx, x2, DType::F32);
      ww = cast(ctx, w, DType::F32);
    }
    g.dx = cast(ctx, matmul_forward(ctx, d2, ww), x.dtype()).view(x.shape());
    g.dw = cast(ctx, matmul_forward(ctx, d2.transpose(0, 1), xw), w.dtype());
  }
  if (has_bias) {
    const int64_t M = d2.size(0), N = d2.size(1);
    if (r == Route::Ref || x.dtype() == DType::F64) {
      Tensor d = cast(ctx, d2, x.dtype() == DType::F64 ? DType::F64 : DType::F32).contiguous();
      g.db = Tensor::empty({N}, d.dtype());
      dispatch_float(op, d.dtype(),
                     [&]<typename T>() { bias_backward_ref(g.db.data<T>(), d.data<T>(), M, N); });
    } else {
      Tensor d = cast(ctx, d2, DType::F32).contiguous();
      g.db = Tensor::empty({N}, DType::F32, d.device());
      (d.device().is_cpu() ? bias_backward_cpu : bias_backward_cuda)(ctx, g.db.data<float>(),
                                                                     d.data<float>(), M, N);
    }
  }
  return g;
}

}  // namespace kdnas
