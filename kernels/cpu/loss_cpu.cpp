// Losses reduce a large tensor to one number, so there are two concerns besides speed:
//
// Accuracy. Row sums are accumulated in double lanes (the f32 terms are converted as they are
// added): a row of V = 250002 exponentials, or 768 squared errors, summed in f32 loses digits.
// The exponentials themselves are the vectorised vec::exp (relative error < 3e-7).
//
// Determinism. Each row (or each fixed block of kBlock elements for mse) gets its own partial
// sum in a buffer, computed in parallel, and the partials are added serially in index order:
// the loss is the same whatever the thread count, and a training run reproduces exactly.
//
// Softmax-based rows are read two or three times (max, exponentials and sums, then the gradient
// scaling); a row of V = 8000 floats is 32 KB and stays in L1/L2 between passes, so the cost is
// one pass over memory plus the exponentials, which dominate: each is computed once per element
// and input (the backward stores them in the gradient buffer and rescales in place).
#include "kernels/cpu/loss_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace kdnas {
namespace {

constexpr int64_t kGrain = 16384;  // elements below which one thread is faster than two
constexpr int64_t kBlock = 4096;   // mse partial-sum block (fixed: the sum order must not move)

int64_t row_grain(int64_t V) {
  return std::max<int64_t>(1, kGrain / std::max<int64_t>(V, 1));
}

int64_t selected_rows(const uint8_t* row_mask, int64_t R) {
  if (!row_mask) return R;
  int64_t n = 0;
  for (int64_t r = 0; r < R; ++r) n += row_mask[r] ? 1 : 0;
  return n;
}

double serial_sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

KDNAS_CPU_CLONES float row_max(const float* x, int64_t n) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// sum_i exp((x[i] - mx) * inv_tau), mx = max x: every term is in (0, 1], no overflow.
KDNAS_CPU_CLONES double row_sum_exp(const float* x, float mx, float inv_tau, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += double(vec::exp((x[i] - mx) * inv_tau));
  return s;
}

KDNAS_CPU_CLONES double sum_sq_diff(const float* a, const float* b, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    s += d * d;
  }
  return s;
}

KDNAS_CPU_CLONES void mse_grad_chunk(float* dpred, float* dtarget, const float* pred,
                                     const float* target, float k, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float d = k * (pred[i] - target[i]);
    dpred[i] = d;
    dtarget[i] = -d;
  }
}

// e[i] = exp((x[i] - mx) * inv_tau), returning their sum: the unnormalised softmax, kept so that
// the gradient pass that follows does not compute the exponentials a second time.
KDNAS_CPU_CLONES double exp_store_sum(float* e, const float* x, float mx, float inv_tau,
                                      int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    e[i] = vec::exp((x[i] - mx) * inv_tau);
    s += double(e[i]);
  }
  return s;
}

KDNAS_CPU_CLONES void scale_inplace(float* x, float k, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] *= k;
}

// One pass over a (student, teacher) row after the maxima: the two partition functions and
// a = sum_v e^{(t_v - mt)/tau} (t_v - s_v), from which KL follows without any log per element.
struct KlSums {
  double zs, zt, a;
};
KDNAS_CPU_CLONES KlSums kl_sums(const float* s, const float* t, float ms, float mt, float inv_tau,
                                int64_t n) {
  double zs = 0, zt = 0, a = 0;
#pragma omp simd reduction(+ : zs, zt, a)
  for (int64_t i = 0; i < n; ++i) {
    const float es = vec::exp((s[i] - ms) * inv_tau), et = vec::exp((t[i] - mt) * inv_tau);
    zs += double(es);
    zt += double(et);
    a += double(et) * (double(t[i]) - double(s[i]));
  }
  return {zs, zt, a};
}

// ds = k * (q - p) = kq * es - kp * et, with es, et the stored exponentials.
KDNAS_CPU_CLONES void kl_grad_row(float* ds, const float* et, float kq, float kp, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) ds[i] = kq * ds[i] - kp * et[i];
}

}  // namespace

// ---- mse -----------------------------------------------------------------------------------

void mse_forward_cpu(Context& ctx, float* loss, const float* pred, const float* target,
                     const uint8_t* row_mask, int64_t R, int64_t C) {
  // Fixed blocks of the flat [R*C] array (not rows: a [1, 10M] input still splits), each
  // summing only the segments of its rows that are selected.
  const int64_t n = R * C, blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> part(size_t(blocks), 0.0);
  parallel_for(ctx, blocks, std::max<int64_t>(1, kGrain / kBlock), [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t end = std::min(n, (blk + 1) * kBlock);
      double s = 0;
      for (int64_t i = blk * kBlock; i < end;) {
        const int64_t r = i / C, seg_end = std::min(end, (r + 1) * C);
        if (!row_mask || row_mask[r]) s += sum_sq_diff(pred + i, target + i, seg_end - i);
        i = seg_end;
      }
      part[size_t(blk)] = s;
    }
  });
  loss[0] = float(serial_sum(part) / (double(selected_rows(row_mask, R)) * double(C)));
}

void mse_backward_cpu(Context& ctx, float* dpred, float* dtarget, double dloss, const float* pred,
                      const float* target, const uint8_t* row_mask, int64_t R, int64_t C) {
  const float k = float(2.0 * dloss / (double(selected_rows(row_mask, R)) * double(C)));
  parallel_for(ctx, R * C, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e;) {
      const int64_t r = i / C, seg_end = std::min(e, (r + 1) * C);
      if (!row_mask || row_mask[r]) {
        mse_grad_chunk(dpred + i, dtarget + i, pred + i, target + i, k, seg_end - i);
      } else {
        std::memset(dpred + i, 0, size_t(seg_end - i) * sizeof(float));
        std::memset(dtarget + i, 0, size_t(seg_end - i) * sizeof(float));
      }
      i = seg_end;
    }
  });
}

// ---- cross-entropy -------------------------------------------------------------------------

void cross_entropy_forward_cpu(Context& ctx, float* loss, const float* logits,
                               const int64_t* targets, int64_t ignore_index, int64_t N, int64_t V) {
  std::vector<double> row(size_t(N), 0.0);
  parallel_for(ctx, N, row_grain(V), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      if (targets[n] == ignore_index) continue;
      const float* x = logits + n * V;
      const float mx = row_max(x, V);
      row[size_t(n)] = double(mx) + std::log(row_sum_exp(x, mx, 1.f, V)) - double(x[targets[n]]);
    }
  });
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) count += targets[n] != ignore_index ? 1 : 0;
  loss[0] = count ? float(serial_sum(row) / double(count)) : 0.f;
}

void cross_entropy_backward_cpu(Context& ctx, float* dlogits, double dloss, const float* logits,
                                const int64_t* targets, int64_t ignore_index, int64_t N,
                                int64_t V) {
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) count += targets[n] != ignore_index ? 1 : 0;
  const double k = count ? dloss / double(count) : 0.0;
  parallel_for(ctx, N, row_grain(V), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      float* dx = dlogits + n * V;
      if (targets[n] == ignore_index) {
        std::memset(dx, 0, size_t(V) * sizeof(float));
        continue;
      }
      const float* x = logits + n * V;
      const float mx = row_max(x, V);
      // dx = softmax * k: the exponentials go to dx, then one in-cache scaling pass.
      scale_inplace(dx, float(k / exp_store_sum(dx, x, mx, 1.f, V)), V);
      dx[targets[n]] -= float(k);  // the one-hot term
    }
  });
}

// ---- kl_div --------------------------------------------------------------------------------
//
// Per row, with lse_x = max(x)/tau + log z_x:
//   KL(p || q) = sum_v p_v (t_v - s_v) / tau - lse_t + lse_s = a / (z_t tau) - lse_t + lse_s

void kl_div_forward_cpu(Context& ctx, float* loss, const float* student, const float* teacher,
                        const uint8_t* row_mask, double tau, int64_t N, int64_t V) {
  const float inv_tau = float(1.0 / tau);
  std::vector<double> row(size_t(N), 0.0);
  parallel_for(ctx, N, row_grain(V), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      if (row_mask && !row_mask[n]) continue;
      const float *s = student + n * V, *t = teacher + n * V;
      const float ms = row_max(s, V), mt = row_max(t, V);
      const KlSums z = kl_sums(s, t, ms, mt, inv_tau, V);
      const double lse_s = double(ms) / tau + std::log(z.zs);
      const double lse_t = double(mt) / tau + std::log(z.zt);
      row[size_t(n)] = z.a / (z.zt * tau) - lse_t + lse_s;
    }
  });
  loss[0] = float(tau * tau * serial_sum(row) / double(selected_rows(row_mask, N)));
}

void kl_div_backward_cpu(Context& ctx, float* dstudent, double dloss, const float* student,
                         const float* teacher, const uint8_t* row_mask, double tau, int64_t N,
                         int64_t V) {
  const float inv_tau = float(1.0 / tau);
  const double k = dloss * tau / double(selected_rows(row_mask, N));
  parallel_for(ctx, N, row_grain(V), [&](int64_t b, int64_t e) {
    std::vector<float> et(
        static_cast<size_t>(V));  // the teacher's exponentials for one row (per thread)
    for (int64_t n = b; n < e; ++n) {
      float* ds = dstudent + n * V;
      if (row_mask && !row_mask[n]) {
        std::memset(ds, 0, size_t(V) * sizeof(float));
        continue;
      }
      const float *s = student + n * V, *t = teacher + n * V;
      const double zs = exp_store_sum(ds, s, row_max(s, V), inv_tau, V);
      const double zt = exp_store_sum(et.data(), t, row_max(t, V), inv_tau, V);
      kl_grad_row(ds, et.data(), float(k / zs), float(k / zt), V);
    }
  });
}

}  // namespace kdnas
