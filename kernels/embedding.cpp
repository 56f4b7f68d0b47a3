#include "kernels/embedding.h"

#include "kernels/cpu/embedding_cpu.h"
#include "kernels/cuda/embedding_cuda.h"
#include "kernels/dispatch.h"
#include "kernels/profiler.h"
#include "kernels/ref/embedding_ref.h"

namespace kdnas {
namespace {

// Row-major index i of `shape` as a multi-index, for error messages: [3, 17].
Shape unravel(int64_t i, const Shape& shape) {
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] ? i % shape[d] : 0;
    i = shape[d] ? i / shape[d] : 0;
  }
  return idx;
}

// ids as a contiguous i64 tensor, every value checked against [0, V). The kernels index the
// table with them unchecked, so this is the one place a bad id is caught (it costs one pass
// over N ids, nothing next to the N*C floats the kernels move).
Tensor checked_ids(const char* op, const Tensor& ids, int64_t V) {
  Tensor c = ids.to(Device{}).to(DType::I64).contiguous();  // on the host (CUDA kernels too)
  const int64_t* p = c.data<int64_t>();
  for (int64_t i = 0; i < c.numel(); ++i)
    KDNAS_CHECK(p[i] >= 0 && p[i] < V, op, ": id ", p[i], " at position ", unravel(i, ids.shape()),
                " of ids ", ids.shape(), " is outside [0, V) with V = ", V);
  return c;
}

}  // namespace

Tensor embedding_forward(Context& ctx, const Tensor& ids, const Tensor& table) {
  const char* op = "embedding";
  check_dtype(op, "table", table, {DType::F32, DType::F64});
  check_dtype(op, "ids", ids, {DType::I64, DType::I32});
  check_dim(op, "table", table, 2);
  check_same_device(op, {&table, &ids});
  const Route r = route_for(ctx, op, table);
  // Traffic: the ids, and one table row read and one output row written per id.
  ProfileScope prof(ctx, op);
  if (prof)
    prof.set(
        r, table.dtype(), profile_shapes({&ids, &table}), 0,
        double(ids.nbytes()) + 2.0 * double(ids.numel() * table.size(1)) * table.element_size());
  const int64_t V = table.size(0), C = table.size(1), N = ids.numel();
  Tensor idc = checked_ids(op, ids, V);
  Tensor tc = table.contiguous();
  Shape out_shape = ids.shape();
  out_shape.push_back(C);
  Tensor out = Tensor::empty(out_shape, table.dtype(), table.device());
  if (r == Route::Ref || table.dtype() == DType::F64) {
    KDNAS_CHECK(table.device().is_cpu(), op, ": f64 runs on the CPU reference only");
    dispatch_float(op, table.dtype(), [&]<typename T>() {
      embedding_forward_ref(out.data<T>(), idc.data<int64_t>(), tc.data<T>(), N, C);
    });
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    auto* kernel = r == Route::Cuda ? embedding_forward_cuda : embedding_forward_cpu;
    kernel(ctx, out.data<float>(), idc.data<int64_t>(), tc.data<float>(), N, C);
  } else {
    no_kernel(op, r, table.dtype());
  }
  return out;
}

namespace {

// Checks shared by both backward variants.
void check_backward(const char* op, const Tensor& dout, const Tensor& ids, int64_t V,
                    int64_t padding_idx) {
  check_dtype(op, "dout", dout, {DType::F32, DType::F64});
  check_dtype(op, "ids", ids, {DType::I64, DType::I32});
  check_same_device(op, {&dout, &ids});
  KDNAS_CHECK(V > 0, op, ": V must be positive, got ", V);
  KDNAS_CHECK(padding_idx == -1 || (padding_idx >= 0 && padding_idx < V), op, ": padding_idx ",
              padding_idx, " is outside [0, V) with V = ", V, " (use -1 for none)");
  bool prefix_ok = dout.dim() == ids.dim() + 1;
  for (int64_t d = 0; prefix_ok && d < ids.dim(); ++d) prefix_ok = dout.size(d) == ids.size(d);
  KDNAS_CHECK(prefix_ok, op, ": dout is ", dout.shape(), " but ids is ", ids.shape(),
              " (dout must be ids' shape + [C])");
}

}  // namespace

Tensor embedding_backward(Context& ctx, const Tensor& dout, const Tensor& ids, int64_t V,
                          int64_t padding_idx) {
  const char* op = "embedding_backward";
  check_backward(op, dout, ids, V, padding_idx);
  const Route r = route_for(ctx, op, dout);
  ProfileScope prof(ctx, op);
  if (prof)
    prof.set(r, dout.dtype(), profile_shapes({&dout, &ids}), 0,
             profile_bytes({&dout, &ids}) + double(V * dout.size(-1)) * dout.element_size());
  Tensor idc = checked_ids(op, ids, V);
  const int64_t C = dout.size(-1), N = ids.numel();
  Tensor dc = dout.contiguous();
  Tensor dtable = Tensor::empty({V, C}, dout.dtype(), dout.device());
  if (r == Route::Ref || dout.dtype() == DType::F64) {
    KDNAS_CHECK(dout.device().is_cpu(), op, ": f64 runs on the CPU reference only");
    dispatch_float(op, dout.dtype(), [&]<typename T>() {
      embedding_backward_ref(dtable.data<T>(), dc.data<T>(), idc.data<int64_t>(), N, V, C,
                             padding_idx);
    });
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    auto* kernel = r == Route::Cuda ? embedding_backward_cuda : embedding_backward_cpu;
    kernel(ctx, dtable.data<float>(), dc.data<float>(), idc.data<int64_t>(), N, V, C, padding_idx);
  } else {
    no_kernel(op, r, dout.dtype());
  }
  return dtable;
}

void embedding_backward_accumulate(Context& ctx, const Tensor& dtable, const Tensor& dout,
                                   const Tensor& ids, int64_t padding_idx) {
  const char* op = "embedding_backward_accumulate";
  check_dtype(op, "dout", dout, {DType::F32, DType::F64});
  check_dtype(op, "dtable", dtable, {dout.dtype()});
  check_dim(op, "dtable", dtable, 2);
  check_same_device(op, {&dtable, &dout});
  KDNAS_CHECK(dtable.is_contiguous(), op, ": dtable ", dtable.shape(),
              " must be contiguous (it is updated in place)");
  const int64_t V = dtable.size(0), C = dtable.size(1), N = ids.numel();
  check_backward(op, dout, ids, V, padding_idx);
  KDNAS_CHECK(dout.size(-1) == C, op, ": dout is ", dout.shape(), " but dtable is ", dtable.shape(),
              " (last dims differ)");
  const Route r = route_for(ctx, op, dout);
  ProfileScope prof(ctx, op);
  if (prof)  // each id's row of dtable read and written
    prof.set(r, dout.dtype(), profile_shapes({&dout, &ids}), 0,
             profile_bytes({&ids}) + 3.0 * double(dout.nbytes()));
  Tensor idc = checked_ids(op, ids, V);
  Tensor dc = dout.contiguous();
  if (r == Route::Ref || dout.dtype() == DType::F64) {
    KDNAS_CHECK(dout.device().is_cpu(), op, ": f64 runs on the CPU reference only");
    dispatch_float(op, dout.dtype(), [&]<typename T>() {
      embedding_backward_accumulate_ref(dtable.data<T>(), dc.data<T>(), idc.data<int64_t>(), N, C,
                                        padding_idx);
    });
  } else if (r == Route::Omp || r == Route::Onednn || r == Route::Cuda) {
    auto* kernel =
        r == Route::Cuda ? embedding_backward_accumulate_cuda : embedding_backward_accumulate_cpu;
    kernel(ctx, dtable.data<float>(), dc.data<float>(), idc.data<int64_t>(), N, C, padding_idx);
  } else {
    no_kernel(op, r, dout.dtype());
  }
}

}  // namespace kdnas
