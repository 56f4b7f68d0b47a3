// The derivative table. Each function: check the Variables are defined, run the forward kernel,
// record a closure that saves only what the backward kernel reads. Closures capture tensors
// (values, masks, saved statistics), never Variables, so the graph holds no activation a
// backward does not need.
#include "autograd/functions.h"

#include <algorithm>

#include "autograd/precision.h"
#include "kernels/binary.h"
#include "kernels/cast.h"
#include "kernels/concat.h"
#include "kernels/dropout.h"
#include "kernels/eltwise.h"
#include "kernels/embedding.h"
#include "kernels/layer_norm.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"
#include "kernels/permute.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"

namespace kdnas {
namespace {

// The value of a Variable argument, with an error naming the function if it is undefined.
const Tensor& val(const char* op, const char* arg, const Variable& v) {
  KDNAS_CHECK(v.defined(), op, ": ", arg, " is an undefined variable");
  return v.value();
}

// dL/dloss of a scalar loss node, as the kernels' loss backward takes it.
double scalar_of(const Tensor& dout) {
  return dout.item();
}

// A stand-in with t's shape and dtype over one element (every stride 0), for a backward that
// reads only the shape: the node then does not keep t's bytes alive.
Tensor shape_only(const Tensor& t) {
  return Tensor::zeros({}, t.dtype(), t.device()).expand(t.shape());
}

Variable binary(Context& ctx, BinaryOp op, const char* name, const Variable& a, const Variable& b) {
  const Tensor &av = val(name, "a", a), &bv = val(name, "b", b);
  Tensor out = binary_forward(ctx, op, av, bv);
  // add and sub: the gradients depend on dout and the shapes only.
  const bool needs_values = op == BinaryOp::Mul || op == BinaryOp::Div;
  return record_op(ctx, name, out, {a, b},
                   [op, av = needs_values ? av : shape_only(av),
                    bv = needs_values ? bv : shape_only(bv)](Context& c, const Tensor& d) -> Grads {
                     BinaryGrads g = binary_backward(c, op, d, av, bv);
                     return {g.da, g.db};
                   });
}

// ---- mixed-precision GEMMs (autograd/precision.h) ---------------------------------------------
// Under GemmPrecision::BF16 the f32 operands are rounded to bf16 once, in the forward; the node
// keeps those bf16 copies, and the backward rounds dout to bf16 too, so each of the three GEMMs
// is bf16 x bf16 with f32 accumulation and an f32 result. The gradients that leave the node
// are f32, as the f32 path's.

bool gemm_in_bf16(const Tensor& a) {
  return gemm_precision() == GemmPrecision::BF16 && a.dtype() == DType::F32;
}

// full [batch..., R, C] summed over the dims along which an operand of shape `like` was
// broadcast (the leading dims it lacks, and those where it has size 1).
Tensor sum_to_shape(Context& ctx, Tensor full, const Shape& like) {
  while (full.dim() > int64_t(like.size())) full = sum(ctx, full, 0);
  for (int64_t d = 0; d < full.dim(); ++d)
    if (like[size_t(d)] == 1 && full.size(d) != 1) full = sum(ctx, full, d, /*keepdim=*/true);
  return full;
}

// a [..., M, K] · b [..., K, N] with bf16 operands.
Variable matmul_bf16(Context& ctx, const Variable& a, const Variable& b, const Tensor& av,
                     const Tensor& bv) {
  const Tensor ab = cast(ctx, av, DType::BF16), bb = cast(ctx, bv, DType::BF16);  // contiguous
  return record_op(
      ctx, "matmul", matmul_forward(ctx, ab, bb), {a, b},
      [ab, bb](Context& c, const Tensor& d) -> Grads {
        const Tensor d16 = cast(c, d, DType::BF16);  // [batch..., M, N]
        // da = dout · bᵀ, db = aᵀ · dout, over transposed views (no copies).
        Tensor da = sum_to_shape(c, matmul_forward(c, d16, bb.transpose(-1, -2)), ab.shape());
        Tensor db;
        if (bb.dim() == 2) {  // b shared by every batch: one GEMM over all rows
          const int64_t K = ab.size(-1), N = bb.size(-1);
          db = matmul_forward(c,
                              ab.reshape({ab.numel() / std::max<int64_t>(K, 1), K}).transpose(0, 1),
                              d16.reshape({d16.numel() / std::max<int64_t>(N, 1), N}));
        } else {
          db = sum_to_shape(c, matmul_forward(c, ab.transpose(-1, -2), d16), bb.shape());
        }
        return {da, db};
      });
}

// x [..., K] · w [N, K]ᵀ + bias [N] with bf16 x and w; the bias and its gradient stay f32.
Variable linear_bf16(Context& ctx, const Variable& x, const Variable& w, const Variable& bias,
                     const Tensor& xv, const Tensor& wv, const Tensor& bv) {
  const Tensor xb = cast(ctx, xv, DType::BF16), wb = cast(ctx, wv, DType::BF16);  // contiguous
  const bool has_bias = bv.defined();
  return record_op(
      ctx, "linear", linear_forward(ctx, xb, wb, bv), {x, w, bias},
      [xb, wb, has_bias](Context& c, const Tensor& d) -> Grads {
        const int64_t K = xb.size(-1), N = wb.size(0);
        const int64_t rows = shape_numel(Shape(xb.shape().begin(), xb.shape().end() - 1));
        const Tensor d2 = cast(c, d, DType::BF16).reshape({rows, N});  // [rows, N]
        Tensor dx = matmul_forward(c, d2, wb).view(xb.shape());        // [rows, N] · [N, K]
        Tensor dw = matmul_forward(c, d2.transpose(0, 1), xb.reshape({rows, K}));  // [N, K]
        Tensor db = has_bias ? sum(c, d.reshape({rows, N}), 0) : Tensor();  // f32 dout's rows
        return {dx, dw, db};
      });
}

}  // namespace

// ---- element-wise ---------------------------------------------------------------------------

Variable gelu(Context& ctx, const Variable& x) {
  const Tensor& xv = val("gelu", "x", x);
  return record_op(
      ctx, "gelu", gelu_forward(ctx, xv), {x},
      [xv](Context& c, const Tensor& d) -> Grads { return {gelu_backward(c, d, xv)}; });
}

Variable tanh(Context& ctx, const Variable& x) {
  Tensor y = tanh_forward(ctx, val("tanh", "x", x));  // the backward needs only the output
  return record_op(ctx, "tanh", y, {x},
                   [y](Context& c, const Tensor& d) -> Grads { return {tanh_backward(c, d, y)}; });
}

Variable relu(Context& ctx, const Variable& x) {
  const Tensor& xv = val("relu", "x", x);
  return record_op(
      ctx, "relu", relu_forward(ctx, xv), {x},
      [xv](Context& c, const Tensor& d) -> Grads { return {relu_backward(c, d, xv)}; });
}

Variable scale(Context& ctx, const Variable& x, double alpha) {
  return record_op(
      ctx, "scale", scale_forward(ctx, val("scale", "x", x), alpha), {x},
      [alpha](Context& c, const Tensor& d) -> Grads { return {scale_forward(c, d, alpha)}; });
}

// ---- binary ---------------------------------------------------------------------------------

Variable add(Context& ctx, const Variable& a, const Variable& b) {
  return binary(ctx, BinaryOp::Add, "add", a, b);
}
Variable sub(Context& ctx, const Variable& a, const Variable& b) {
  return binary(ctx, BinaryOp::Sub, "sub", a, b);
}
Variable mul(Context& ctx, const Variable& a, const Variable& b) {
  return binary(ctx, BinaryOp::Mul, "mul", a, b);
}
Variable div(Context& ctx, const Variable& a, const Variable& b) {
  return binary(ctx, BinaryOp::Div, "div", a, b);
}

// ---- GEMMs ----------------------------------------------------------------------------------

Variable matmul(Context& ctx, const Variable& a, const Variable& b) {
  const Tensor &av = val("matmul", "a", a), &bv = val("matmul", "b", b);
  if (gemm_in_bf16(av) && bv.dtype() == DType::F32) return matmul_bf16(ctx, a, b, av, bv);
  return record_op(ctx, "matmul", matmul_forward(ctx, av, bv), {a, b},
                   [av, bv](Context& c, const Tensor& d) -> Grads {
                     MatmulGrads g = matmul_backward(c, d, av, bv);
                     return {g.da, g.db};
                   });
}

Variable linear(Context& ctx, const Variable& x, const Variable& w, const Variable& bias) {
  const Tensor &xv = val("linear", "x", x), &wv = val("linear", "w", w);
  const Tensor bv = bias.defined() ? bias.value() : Tensor();
  const bool has_bias = bv.defined();
  if (gemm_in_bf16(xv) && wv.dtype() == DType::F32) return linear_bf16(ctx, x, w, bias, xv, wv, bv);
  return record_op(ctx, "linear", linear_forward(ctx, xv, wv, bv), {x, w, bias},
                   [xv, wv, has_bias](Context& c, const Tensor& d) -> Grads {
                     LinearGrads g = linear_backward(c, d, xv, wv, has_bias);
                     return {g.dx, g.dw, has_bias ? g.db : Tensor()};
                   });
}

// ---- normalisation --------------------------------------------------------------------------

Variable layer_norm(Context& ctx, const Variable& x, const Variable& gamma, const Variable& beta,
                    double eps) {
  const Tensor& xv = val("layer_norm", "x", x);
  const Tensor& gv = val("layer_norm", "gamma", gamma);
  LayerNormOutput o = layer_norm_forward(ctx, xv, gv, val("layer_norm", "beta", beta), eps);
  // Saved: x, gamma and the per-row statistics, so the backward need not recompute them.
  return record_op(ctx, "layer_norm", o.out, {x, gamma, beta},
                   [xv, gv, mean = o.mean, rstd = o.rstd](Context& c, const Tensor& d) -> Grads {
                     LayerNormGrads g = layer_norm_backward(c, d, xv, gv, mean, rstd);
                     return {g.dx, g.dgamma, g.dbeta};
                   });
}

Variable softmax(Context& ctx, const Variable& x, const Tensor& mask, double scale) {
  // The backward needs the probabilities only, not the (often large) scores x.
  Tensor y = softmax_forward(ctx, val("softmax", "x", x), mask, scale);
  return record_op(ctx, "softmax", y, {x}, [y, scale](Context& c, const Tensor& d) -> Grads {
    return {softmax_backward(c, d, y, scale)};
  });
}

Variable log_softmax(Context& ctx, const Variable& x) {
  Tensor y = log_softmax_forward(ctx, val("log_softmax", "x", x));
  return record_op(ctx, "log_softmax", y, {x}, [y](Context& c, const Tensor& d) -> Grads {
    return {log_softmax_backward(c, d, y)};
  });
}

// ---- lookups and noise ----------------------------------------------------------------------

Variable embedding(Context& ctx, const Tensor& ids, const Variable& table, int64_t padding_idx) {
  const Tensor& tv = val("embedding", "table", table);
  const int64_t V = tv.dim() > 0 ? tv.size(0) : 0;
  return record_op(ctx, "embedding", embedding_forward(ctx, ids, tv), {table},
                   [ids, V, padding_idx](Context& c, const Tensor& d) -> Grads {
                     return {embedding_backward(c, d, ids, V, padding_idx)};
                   });
}

Variable dropout(Context& ctx, const Variable& x, double p, Rng& rng, bool train) {
  const Tensor& xv = val("dropout", "x", x);
  if (!train || p == 0.0) return x;
  // The kernel draws element i from counter first + i: reserve them so that the next call (and
  // a run resumed from a checkpointed Rng state) continues the same stream.
  const uint64_t first = rng.reserve(uint64_t(xv.numel()));
  DropoutOutput o = dropout_forward(ctx, xv, p, rng.seed(), first);
  return record_op(ctx, "dropout", o.out, {x},
                   [mask = o.mask, p](Context& c, const Tensor& d) -> Grads {
                     return {dropout_backward(c, d, mask, p)};
                   });
}

// ---- reductions -----------------------------------------------------------------------------

Variable sum(Context& ctx, const Variable& x, int64_t dim, bool keepdim) {
  const Tensor& xv = val("sum", "x", x);
  return record_op(ctx, "sum", sum(ctx, xv, dim, keepdim), {x},
                   [shape = xv.shape(), dim, keepdim](Context& c, const Tensor& d) -> Grads {
                     return {sum_backward(c, d, shape, dim, keepdim)};
                   });
}

Variable mean(Context& ctx, const Variable& x, int64_t dim, bool keepdim) {
  const Tensor& xv = val("mean", "x", x);
  return record_op(ctx, "mean", mean(ctx, xv, dim, keepdim), {x},
                   [shape = xv.shape(), dim, keepdim](Context& c, const Tensor& d) -> Grads {
                     return {mean_backward(c, d, shape, dim, keepdim)};
                   });
}

Variable max(Context& ctx, const Variable& x, int64_t dim, bool keepdim) {
  const Tensor& xv = val("max", "x", x);
  MaxOutput o = max(ctx, xv, dim, keepdim);
  return record_op(
      ctx, "max", o.values, {x},
      [idx = o.indices, shape = xv.shape(), dim, keepdim](Context& c, const Tensor& d) -> Grads {
        return {max_backward(c, d, idx, shape, dim, keepdim)};
      });
}

Variable sum_all(Context& ctx, const Variable& x) {
  return sum(ctx, reshape(ctx, x, {val("sum_all", "x", x).numel()}), 0);
}

Variable mean_all(Context& ctx, const Variable& x) {
  return mean(ctx, reshape(ctx, x, {val("mean_all", "x", x).numel()}), 0);
}

// ---- shape ----------------------------------------------------------------------------------

Variable concat(Context& ctx, const std::vector<Variable>& xs, int64_t dim) {
  std::vector<Tensor> vs;
  for (const Variable& x : xs) vs.push_back(val("concat", "an input", x));
  Tensor out = concat(ctx, vs, dim);
  std::vector<int64_t> sizes;
  const int64_t d = out.wrap_dim(dim);
  for (const Tensor& v : vs) sizes.push_back(v.size(d));
  return record_op(ctx, "concat", out, xs, [sizes, d](Context& c, const Tensor& dout) -> Grads {
    return concat_backward(c, dout, sizes, d);
  });
}

std::vector<Variable> split(Context& ctx, const Variable& x, int64_t dim,
                            const std::vector<int64_t>& sizes) {
  const Tensor& xv = val("split", "x", x);
  std::vector<Tensor> pieces = split(ctx, xv, dim, sizes);
  const int64_t d = xv.wrap_dim(dim);
  std::vector<Variable> out;
  int64_t start = 0;
  for (size_t i = 0; i < pieces.size(); ++i) {
    // dx = [zeros | dpiece | zeros] along d.
    const Shape shape = xv.shape();
    const int64_t before = start, after = shape[d] - start - sizes[i];
    out.push_back(record_op(ctx, "split", pieces[i], {x},
                            [shape, d, before, after](Context& c, const Tensor& dp) -> Grads {
                              Shape sb = shape, sa = shape;
                              sb[d] = before;
                              sa[d] = after;
                              return {concat(c,
                                             {Tensor::zeros(sb, dp.dtype(), dp.device()), dp,
                                              Tensor::zeros(sa, dp.dtype(), dp.device())},
                                             d)};
                            }));
    start += sizes[i];
  }
  return out;
}

Variable narrow(Context& ctx, const Variable& x, int64_t dim, int64_t start, int64_t length) {
  const Tensor& xv = val("narrow", "x", x);
  Tensor out = xv.narrow(dim, start, length);
  const int64_t d = xv.wrap_dim(dim);
  return record_op(ctx, "narrow", out, {x},
                   [shape = xv.shape(), d, start, length](Context& c, const Tensor& dp) -> Grads {
                     Shape sb = shape, sa = shape;
                     sb[d] = start;
                     sa[d] = shape[d] - start - length;
                     return {concat(c,
                                    {Tensor::zeros(sb, dp.dtype(), dp.device()), dp,
                                     Tensor::zeros(sa, dp.dtype(), dp.device())},
                                    d)};
                   });
}

Variable permute(Context& ctx, const Variable& x, const std::vector<int64_t>& order) {
  return record_op(
      ctx, "permute", permute_copy(ctx, val("permute", "x", x), order), {x},
      [order](Context& c, const Tensor& d) -> Grads { return {permute_backward(c, d, order)}; });
}

Variable reshape(Context& ctx, const Variable& x, const Shape& shape) {
  const Tensor& xv = val("reshape", "x", x);
  return record_op(
      ctx, "reshape", xv.reshape(shape), {x},
      [in = xv.shape()](Context&, const Tensor& d) -> Grads { return {d.reshape(in)}; });
}

Variable view(Context& ctx, const Variable& x, const Shape& shape) {
  const Tensor& xv = val("view", "x", x);
  // The gradient arrives contiguous or as the view of one, so reshape (a view when it can be).
  return record_op(
      ctx, "view", xv.view(shape), {x},
      [in = xv.shape()](Context&, const Tensor& d) -> Grads { return {d.reshape(in)}; });
}

Variable transpose(Context& ctx, const Variable& x, int64_t d0, int64_t d1) {
  return record_op(ctx, "transpose", val("transpose", "x", x).transpose(d0, d1), {x},
                   [d0, d1](Context&, const Tensor& d) -> Grads { return {d.transpose(d0, d1)}; });
}

// ---- losses ---------------------------------------------------------------------------------

Variable mse(Context& ctx, const Variable& pred, const Variable& target, const Tensor& row_mask) {
  const Tensor &pv = val("mse", "pred", pred), &tv = val("mse", "target", target);
  return record_op(ctx, "mse", mse_forward(ctx, pv, tv, row_mask), {pred, target},
                   [pv, tv, row_mask](Context& c, const Tensor& d) -> Grads {
                     MseGrads g = mse_backward(c, scalar_of(d), pv, tv, row_mask);
                     return {g.dpred, g.dtarget};
                   });
}

Variable cross_entropy(Context& ctx, const Variable& logits, const Tensor& targets,
                       int64_t ignore_index) {
  const Tensor& lv = val("cross_entropy", "logits", logits);
  return record_op(ctx, "cross_entropy", cross_entropy_forward(ctx, lv, targets, ignore_index),
                   {logits}, [lv, targets, ignore_index](Context& c, const Tensor& d) -> Grads {
                     return {cross_entropy_backward(c, scalar_of(d), lv, targets, ignore_index)};
                   });
}

Variable kl_div(Context& ctx, const Variable& student_logits, const Tensor& teacher_logits,
                double temperature, const Tensor& row_mask) {
  const Tensor& sv = val("kl_div", "student_logits", student_logits);
  return record_op(
      ctx, "kl_div", kl_div_forward(ctx, sv, teacher_logits, temperature, row_mask),
      {student_logits},
      [sv, teacher_logits, temperature, row_mask](Context& c, const Tensor& d) -> Grads {
        return {kl_div_backward(c, scalar_of(d), sv, teacher_logits, temperature, row_mask)};
      });
}

}  // namespace kdnas
