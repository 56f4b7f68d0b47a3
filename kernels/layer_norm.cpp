#include "kernels/layer_norm.h"

#include <cmath>

#include "kernels/binary.h"
#include "kernels/cast.h"
#include "kernels/cpu/layer_norm_cpu.h"
#include "kernels/cuda/layer_norm_cuda.h"
#include "kernels/dispatch.h"
#include "kernels/profiler.h"
#include "kernels/ref/layer_norm_ref.h"

namespace kdnas {
namespace {

// x is [..., C]: C and the number of rows, after checking that x has a last dim.
struct Rows {
  int64_t rows, C;
};
Rows rows_of(const char* op, const Tensor& x) {
  KDNAS_CHECK(x.dim() >= 1, op, ": x must have at least 1 dim ([..., C]), got shape ", x.shape());
  const int64_t C = x.size(-1);
  KDNAS_CHECK(C >= 1, op, ": x is ", x.shape(), "; the normalised (last) dim must be >= 1");
  return {x.numel() / C, C};
}

// A per-channel parameter must be exactly [C].
void check_param(const char* op, const char* name, const Tensor& p, const Tensor& x, int64_t C) {
  check_dtype(op, name, p, {x.dtype()});
  KDNAS_CHECK(p.dim() == 1 && p.size(0) == C, op, ": x is ", x.shape(), " (C = ", C, ") but ", name,
              " is ", p.shape(), "; expected [", C, "]");
}

// A per-row statistic must be [rows].
void check_stat(const char* op, const char* name, const Tensor& s, const Tensor& x, int64_t rows) {
  check_dtype(op, name, s, {x.dtype()});
  KDNAS_CHECK(s.dim() == 1 && s.size(0) == rows, op, ": x is ", x.shape(), " (", rows,
              " rows) but ", name, " is ", s.shape(), "; expected [", rows, "]");
}

// Which kernel Route::Onednn runs: true = oneDNN's layer_normalization primitive, false = the
// OpenMP kernel. Measured here (bench/README.md, "layer_norm and softmax"), the OpenMP kernel
// is as fast forward and 1.3-2.6x faster backward at [128, 768] and [128, 3072], so
// Route::Onednn uses it too. The oneDNN kernels stay (tested, and benched as
// "onednn_primitive") so that the choice can be re-measured on another CPU.
constexpr bool kOnednnLayerNorm = false;

}  // namespace

LayerNormOutput layer_norm_forward(Context& ctx, const Tensor& x, const Tensor& gamma,
                                   const Tensor& beta, double eps) {
  const char* op = "layer_norm";
  check_dtype(op, "x", x, {DType::F32, DType::F64});
  const auto [rows, C] = rows_of(op, x);
  check_param(op, "gamma", gamma, x, C);
  check_param(op, "beta", beta, x, C);
  check_same_device(op, {&x, &gamma, &beta});
  KDNAS_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps must be finite and >= 0, got ", eps,
              " (x is ", x.shape(), ")");
  const Route r = route_for(ctx, op, x);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&x, &gamma, &beta}, double(x.nbytes()) + 2.0 * rows * x.element_size());
  Tensor xc = x.contiguous(), gc = gamma.contiguous(), bc = beta.contiguous();
  LayerNormOutput res{Tensor::empty(x.shape(), x.dtype(), x.device()),
                      Tensor::empty({rows}, x.dtype(), x.device()),
                      Tensor::empty({rows}, x.dtype(), x.device())};
  if (rows == 0) return res;  // an empty batch: nothing to compute
  if (r == Route::Ref || x.dtype() == DType::F64) {
    KDNAS_CHECK(x.device().is_cpu(), op, ": f64 runs on the CPU reference only");
    dispatch_float(op, x.dtype(), [&]<typename T>() {
      layer_norm_forward_ref(res.out.data<T>(), res.mean.data<T>(), res.rstd.data<T>(),
                             xc.data<T>(), gc.data<T>(), bc.data<T>(), rows, C, T(eps));
    });
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    auto* kernel = r == Route::Cuda                         ? layer_norm_forward_cuda
                   : r == Route::Onednn && kOnednnLayerNorm ? layer_norm_forward_onednn
                                                            : layer_norm_forward_cpu;
    kernel(ctx, res.out.data<float>(), res.mean.data<float>(), res.rstd.data<float>(),
           xc.data<float>(), gc.data<float>(), bc.data<float>(), rows, C, float(eps));
  } else {
    no_kernel(op, r, x.dtype());
  }
  return res;
}

Tensor add_layer_norm_forward(Context& ctx, const Tensor& x, const Tensor& residual,
                              const Tensor& gamma, const Tensor& beta, double eps,
                              Tensor* out_bf16) {
  const char* op = "add_layer_norm";
  check_dtype(op, "x", x, {DType::F32, DType::F64});
  KDNAS_CHECK(!out_bf16 || x.dtype() == DType::F32, op,
              ": a bf16 copy of the result needs f32 x, not ", dtype_name(x.dtype()));
  check_dtype(op, "residual", residual, {x.dtype()});
  check_same_shape(op, "x", x, "residual", residual);
  const auto [rows, C] = rows_of(op, x);
  check_param(op, "gamma", gamma, x, C);
  check_param(op, "beta", beta, x, C);
  check_same_device(op, {&x, &residual, &gamma, &beta});
  KDNAS_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps must be finite and >= 0, got ", eps,
              " (x is ", x.shape(), ")");
  const Route r = route_for(ctx, op, x);
  const bool fused_cast = out_bf16 && (r == Route::Omp || r == Route::Onednn);
  Tensor out;
  if (r == Route::Cuda) {
    out = layer_norm_forward(ctx, add(ctx, x, residual), gamma, beta, eps).out;
  } else {
    ProfileScope prof(ctx, op);
    if (prof) {
      prof.set(r, {&x, &residual, &gamma, &beta},
               double(x.nbytes()) * (fused_cast ? 1.5 : 1.0));  // + the bf16 copy's bytes
    }
    Tensor xc = x.contiguous(), rc = residual.contiguous();
    Tensor gc = gamma.contiguous(), bc = beta.contiguous();
    out = Tensor::empty(x.shape(), x.dtype(), x.device());
    if (fused_cast) *out_bf16 = Tensor::empty(x.shape(), DType::BF16, x.device());
    if (rows > 0 && (r == Route::Ref || x.dtype() == DType::F64)) {
      dispatch_float(op, x.dtype(), [&]<typename T>() {
        add_layer_norm_forward_ref(out.data<T>(), xc.data<T>(), rc.data<T>(), gc.data<T>(),
                                   bc.data<T>(), rows, C, T(eps));
      });
    } else if (rows > 0 && (r == Route::Omp || r == Route::Onednn)) {
      add_layer_norm_forward_cpu(ctx, out.data<float>(),
                                 fused_cast ? out_bf16->data<bf16>() : nullptr, xc.data<float>(),
                                 rc.data<float>(), gc.data<float>(), bc.data<float>(), rows, C,
                                 float(eps));
    } else if (rows > 0) {
      no_kernel(op, r, x.dtype());
    }
  }
  // The reference (and CUDA): the bf16 copy is the cast op itself, by definition.
  if (out_bf16 && !fused_cast) *out_bf16 = cast(ctx, out, DType::BF16);
  return out;
}

LayerNormGrads layer_norm_backward(Context& ctx, const Tensor& dout, const Tensor& x,
                                   const Tensor& gamma, const Tensor& mean, const Tensor& rstd) {
  const char* op = "layer_norm_backward";
  check_dtype(op, "x", x, {DType::F32, DType::F64});
  check_dtype(op, "dout", dout, {x.dtype()});
  check_same_shape(op, "dout", dout, "x", x);
  const auto [rows, C] = rows_of(op, x);
  check_param(op, "gamma", gamma, x, C);
  check_stat(op, "mean", mean, x, rows);
  check_stat(op, "rstd", rstd, x, rows);
  check_same_device(op, {&x, &dout, &gamma, &mean, &rstd});
  const Route r = route_for(ctx, op, x);
  ProfileScope prof(ctx, op);
  if (prof)
    prof.set(r, {&dout, &x, &gamma, &mean, &rstd}, profile_bytes({&x, &gamma}) + gamma.nbytes());
  Tensor dc = dout.contiguous(), xc = x.contiguous(), gc = gamma.contiguous();
  Tensor mc = mean.contiguous(), sc = rstd.contiguous();
  LayerNormGrads g{Tensor::empty(x.shape(), x.dtype(), x.device()),
                   Tensor::empty({C}, x.dtype(), x.device()),
                   Tensor::empty({C}, x.dtype(), x.device())};
  if (rows == 0 && r != Route::Cuda) {  // no rows: nothing flows back to gamma and beta
    g.dgamma.fill_(0);
    g.dbeta.fill_(0);
    return g;
  }
  if (r == Route::Ref || x.dtype() == DType::F64) {
    KDNAS_CHECK(x.device().is_cpu(), op, ": f64 runs on the CPU reference only");
    dispatch_float(op, x.dtype(), [&]<typename T>() {
      layer_norm_backward_ref(g.dx.data<T>(), g.dgamma.data<T>(), g.dbeta.data<T>(), dc.data<T>(),
                              xc.data<T>(), gc.data<T>(), mc.data<T>(), sc.data<T>(), rows, C);
    });
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    auto* kernel = r == Route::Cuda                         ? layer_norm_backward_cuda
                   : r == Route::Onednn && kOnednnLayerNorm ? layer_norm_backward_onednn
                                                            : layer_norm_backward_cpu;
    kernel(ctx, g.dx.data<float>(), g.dgamma.data<float>(), g.dbeta.data<float>(), dc.data<float>(),
           xc.data<float>(), gc.data<float>(), mc.data<float>(), sc.data<float>(), rows, C);
  } else {
    no_kernel(op, r, x.dtype());
  }
  return g;
}

}  // namespace kdnas
