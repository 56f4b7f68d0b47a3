#include "kernels/loss.h"

#include <cmath>
#include <vector>

#include "kernels/cpu/loss_cpu.h"
#include "kernels/cuda/loss_cuda.h"
#include "kernels/dispatch.h"
#include "kernels/profiler.h"
#include "kernels/ref/loss_ref.h"

namespace kdnas {
namespace {

// Every dim of x but the last: the rows a row_mask selects.
Shape rows_of(const Tensor& x) {
  return Shape(x.shape().begin(), x.shape().end() - 1);
}

// The row mask as one byte per row (empty: every row counts), after checking its shape, its
// dtype and that each value is exactly 0 or 1, and that at least one row is selected.
std::vector<uint8_t> mask_bytes(const char* op, const Tensor& row_mask, const char* x_name,
                                const Tensor& x) {
  if (!row_mask.defined()) return {};
  const Shape rows = rows_of(x);
  check_dtype(op, "row_mask", row_mask, {DType::F32, DType::F64, DType::U8});
  check_same_device(op, {&x, &row_mask});
  KDNAS_CHECK(row_mask.shape() == rows, op, ": row_mask is ", row_mask.shape(), " but ", x_name,
              " is ", x.shape(), " (need ", rows, ")");
  const std::vector<double> v = row_mask.to_vector<double>();
  std::vector<uint8_t> bytes(v.size());
  int64_t selected = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    KDNAS_CHECK(v[i] == 0.0 || v[i] == 1.0, op, ": row_mask value ", v[i], " at row ", i,
                " is not 0 or 1 (row_mask ", row_mask.shape(), ")");
    bytes[i] = v[i] == 1.0;
    selected += bytes[i];
  }
  KDNAS_CHECK(selected > 0, op, ": row_mask ", row_mask.shape(), " selects no rows (", x_name, " ",
              x.shape(), "); the mean over zero rows is undefined");
  return bytes;
}

const uint8_t* mask_ptr(const std::vector<uint8_t>& m) {
  return m.empty() ? nullptr : m.data();
}

// Two same-shaped float inputs on one device.
void check_pair(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                const Tensor& b) {
  check_dtype(op, a_name, a, {DType::F32, DType::F64});
  check_dtype(op, b_name, b, {a.dtype()});
  check_same_shape(op, a_name, a, b_name, b);
  check_same_device(op, {&a, &b});
}

// targets as contiguous i64 [N], each in [0, V) or equal to ignore_index.
Tensor checked_targets(const char* op, const Tensor& targets, const Tensor& logits,
                       int64_t ignore_index) {
  check_dtype(op, "targets", targets, {DType::I64, DType::I32});
  check_same_device(op, {&logits, &targets});
  const int64_t N = logits.size(0), V = logits.size(1);
  KDNAS_CHECK(targets.dim() == 1 && targets.size(0) == N, op, ": targets is ", targets.shape(),
              " but logits is ", logits.shape(), " (need [", N, "])");
  Tensor t = targets.to(Device{}).to(DType::I64).contiguous();  // checked (and used) on the host
  const int64_t* p = t.data<int64_t>();
  for (int64_t n = 0; n < N; ++n)
    KDNAS_CHECK(p[n] == ignore_index || (p[n] >= 0 && p[n] < V), op, ": target ", p[n], " at row ",
                n, " is outside [0, V) with V = ", V, " and is not ignore_index (", ignore_index,
                ")");
  return t;
}

void check_temperature(const char* op, double tau) {
  KDNAS_CHECK(std::isfinite(tau) && tau > 0, op, ": temperature must be positive and finite, got ",
              tau);
}

}  // namespace

// ---- mse -----------------------------------------------------------------------------------

Tensor mse_forward(Context& ctx, const Tensor& pred, const Tensor& target, const Tensor& row_mask) {
  const char* op = "mse";
  check_pair(op, "pred", pred, "target", target);
  KDNAS_CHECK(pred.dim() >= 1, op, ": pred must have at least 1 dim, got shape ", pred.shape());
  const Route r = route_for(ctx, op, pred);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&pred, &target, &row_mask}, double(pred.element_size()));
  const std::vector<uint8_t> m = mask_bytes(op, row_mask, "pred", pred);
  Tensor pc = pred.contiguous(), tc = target.contiguous();
  const int64_t C = pred.size(-1), R = shape_numel(rows_of(pred));
  KDNAS_CHECK(C > 0 && R > 0, op, ": pred ", pred.shape(), " has no elements to average");
  Tensor loss = Tensor::empty({}, pred.dtype(), pred.device());
  run_kernel(
      op, r, pred,
      [&]<typename T>() {
        mse_forward_ref(loss.data<T>(), pc.data<T>(), tc.data<T>(), mask_ptr(m), R, C);
      },
      [&] {
        (r == Route::Cuda ? mse_forward_cuda : mse_forward_cpu)(
            ctx, loss.data<float>(), pc.data<float>(), tc.data<float>(), mask_ptr(m), R, C);
      });
  return loss;
}

MseGrads mse_backward(Context& ctx, double dloss, const Tensor& pred, const Tensor& target,
                      const Tensor& row_mask) {
  const char* op = "mse_backward";
  check_pair(op, "pred", pred, "target", target);
  KDNAS_CHECK(pred.dim() >= 1, op, ": pred must have at least 1 dim, got shape ", pred.shape());
  const Route r = route_for(ctx, op, pred);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&pred, &target, &row_mask}, 2.0 * double(pred.nbytes()));
  const std::vector<uint8_t> m = mask_bytes(op, row_mask, "pred", pred);
  Tensor pc = pred.contiguous(), tc = target.contiguous();
  const int64_t C = pred.size(-1), R = shape_numel(rows_of(pred));
  KDNAS_CHECK(C > 0 && R > 0, op, ": pred ", pred.shape(), " has no elements to average");
  MseGrads g{Tensor::empty(pred.shape(), pred.dtype(), pred.device()),
             Tensor::empty(pred.shape(), pred.dtype(), pred.device())};
  run_kernel(
      op, r, pred,
      [&]<typename T>() {
        mse_backward_ref(g.dpred.data<T>(), g.dtarget.data<T>(), dloss, pc.data<T>(), tc.data<T>(),
                         mask_ptr(m), R, C);
      },
      [&] {
        (r == Route::Cuda ? mse_backward_cuda : mse_backward_cpu)(
            ctx, g.dpred.data<float>(), g.dtarget.data<float>(), dloss, pc.data<float>(),
            tc.data<float>(), mask_ptr(m), R, C);
      });
  return g;
}

// ---- cross-entropy -------------------------------------------------------------------------

Tensor cross_entropy_forward(Context& ctx, const Tensor& logits, const Tensor& targets,
                             int64_t ignore_index) {
  const char* op = "cross_entropy";
  check_dtype(op, "logits", logits, {DType::F32, DType::F64});
  check_dim(op, "logits", logits, 2);
  const Route r = route_for(ctx, op, logits);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&logits, &targets}, double(logits.element_size()));
  Tensor tg = checked_targets(op, targets, logits, ignore_index);
  Tensor lc = logits.contiguous();
  const int64_t N = logits.size(0), V = logits.size(1);
  KDNAS_CHECK(V > 0, op, ": logits ", logits.shape(), " has an empty vocabulary");
  Tensor loss = Tensor::empty({}, logits.dtype(), logits.device());
  run_kernel(
      op, r, logits,
      [&]<typename T>() {
        cross_entropy_forward_ref(loss.data<T>(), lc.data<T>(), tg.data<int64_t>(), ignore_index, N,
                                  V);
      },
      [&] {
        (r == Route::Cuda ? cross_entropy_forward_cuda : cross_entropy_forward_cpu)(
            ctx, loss.data<float>(), lc.data<float>(), tg.data<int64_t>(), ignore_index, N, V);
      });
  return loss;
}

Tensor cross_entropy_backward(Context& ctx, double dloss, const Tensor& logits,
                              const Tensor& targets, int64_t ignore_index) {
  const char* op = "cross_entropy_backward";
  check_dtype(op, "logits", logits, {DType::F32, DType::F64});
  check_dim(op, "logits", logits, 2);
  const Route r = route_for(ctx, op, logits);
  ProfileScope prof(ctx, op);
  if (prof) prof.set(r, {&logits, &targets}, double(logits.nbytes()));
  Tensor tg = checked_targets(op, targets, logits, ignore_index);
  Tensor lc = logits.contiguous();
  const int64_t N = logits.size(0), V = logits.size(1);
  KDNAS_CHECK(V > 0, op, ": logits ", logits.shape(), " has an empty vocabulary");
  Tensor dlogits = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  run_kernel(
      op, r, logits,
      [&]<typename T>() {
        cross_entropy_backward_ref(dlogits.data<T>(), dloss, lc.data<T>(), tg.data<int64_t>(),
                                   ignore_index, N, V);
      },
      [&] {
        (r == Route::Cuda ? cross_entropy_backward_cuda : cross_entropy_backward_cpu)(
            ctx, dlogits.data<float>(), dloss, lc.data<float>(), tg.data<int64_t>(), ignore_index,
            N, V);
      });
  return dlogits;
}

// ---- kl_div --------------------------------------------------------------------------------

namespace {
void check_kl(const char* op, const Tensor& s, const Tensor& t, double tau) {
  check_pair(op, "student_logits", s, "teacher_logits", t);
  check_dim(op, "student_logits", s, 2);
  check_temperature(op, tau);
  KDNAS_CHECK(s.size(0) > 0 && s.size(1) > 0, op, ": student_logits ", s.shape(),
              " has no rows or an empty vocabulary");
}
}  // namespace

Tensor kl_div_forward(Context& ctx, const Tensor& student_logits, const Tensor& teacher_logits,
                      double temperature, const Tensor& row_mask) {
  const char* op = "kl_div";
  check_kl(op, student_logits, teacher_logits, temperature);
  const Route r = route_for(ctx, op, student_logits);
  ProfileScope prof(ctx, op);
  if (prof)
    prof.set(r, {&student_logits, &teacher_logits, &row_mask},
             double(student_logits.element_size()));
  const std::vector<uint8_t> m = mask_bytes(op, row_mask, "student_logits", student_logits);
  Tensor sc = student_logits.contiguous(), tc = teacher_logits.contiguous();
  const int64_t N = sc.size(0), V = sc.size(1);
  Tensor loss = Tensor::empty({}, sc.dtype(), sc.device());
  run_kernel(
      op, r, sc,
      [&]<typename T>() {
        kl_div_forward_ref(loss.data<T>(), sc.data<T>(), tc.data<T>(), mask_ptr(m), temperature, N,
                           V);
      },
      [&] {
        (r == Route::Cuda ? kl_div_forward_cuda : kl_div_forward_cpu)(
            ctx, loss.data<float>(), sc.data<float>(), tc.data<float>(), mask_ptr(m), temperature,
            N, V);
      });
  return loss;
}

Tensor kl_div_backward(Context& ctx, double dloss, const Tensor& student_logits,
                       const Tensor& teacher_logits, double temperature, const Tensor& row_mask) {
  const char* op = "kl_div_backward";
  check_kl(op, student_logits, teacher_logits, temperature);
  const Route r = route_for(ctx, op, student_logits);
  ProfileScope prof(ctx, op);
  if (prof)
    prof.set(r, {&student_logits, &teacher_logits, &row_mask}, double(student_logits.nbytes()));
  const std::vector<uint8_t> m = mask_bytes(op, row_mask, "student_logits", student_logits);
  Tensor sc = student_logits.contiguous(), tc = teacher_logits.contiguous();
  const int64_t N = sc.size(0), V = sc.size(1);
  Tensor ds = Tensor::empty(sc.shape(), sc.dtype(), sc.device());
  run_kernel(
      op, r, sc,
      [&]<typename T>() {
        kl_div_backward_ref(ds.data<T>(), dloss, sc.data<T>(), tc.data<T>(), mask_ptr(m),
                            temperature, N, V);
      },
      [&] {
        (r == Route::Cuda ? kl_div_backward_cuda : kl_div_backward_cpu)(
            ctx, ds.data<float>(), dloss, sc.data<float>(), tc.data<float>(), mask_ptr(m),
            temperature, N, V);
      });
  return ds;
}

}  // namespace kdnas
