// GEMMs at XLM-R's shapes for one sequence of 128 tokens (and 1024 rows: a batch of 8), f32 and
// bf16, through the op API on the oneDNN and OpenMP backends; the attention GEMMs QKᵀ and PV.
//
// Besides GFLOP/s (useful flops / median time), the oneDNN benches report
//   x_bare      op time / time of a bare oneDNN matmul of the same layout: primitive created
//               once outside the loop, memory objects bound once, execute + wait per
//               iteration. Both are timed in the same loop, alternately, and compared by
//               their medians, so contention on this shared machine hits both alike. The
//               target is x_bare <= 1.11 (the op reaches >= 90% of bare oneDNN).
//   alloc_frac  the part of the op's time spent allocating its output and touching its pages
//               once (measured alone, in the same loop).
// On a machine shared with other jobs, wall time measures the other jobs as much as the kernel,
// so two more estimates:
//   best_GFLOP/s      the fastest iteration instead of the median;
//   cpu_GFLOP/s       flops / (process CPU seconds per call / threads): the rate if each
//                     thread had a core to itself (honest only with OMP_WAIT_POLICY=PASSIVE,
//                     since spinning threads burn CPU time without doing work);
//   x_bare_cpu        op CPU time / bare CPU time, the contention-proof x_bare.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <utility>
#include <vector>

#include "bench/bench_util.h"
#include "kernels/matmul.h"
#include "kernels/permute.h"
#include "tensor/rng.h"

#if KDNAS_HAVE_ONEDNN
#include <dnnl.hpp>
#include <unordered_map>
#endif

namespace kdnas::bench {
namespace {

double seconds_of(const std::function<void()>& fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Wall and process CPU seconds of one call.
std::pair<double, double> times_of(const std::function<void()>& fn) {
  const double c0 = process_cpu_seconds();
  const double wall = seconds_of(fn);
  return {wall, process_cpu_seconds() - c0};
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

#if KDNAS_HAVE_ONEDNN
// A bare oneDNN matmul over existing tensors: the baseline the op is measured against.
class BareMatmul {
 public:
  BareMatmul(const Tensor& a, const Tensor& b, const Tensor& out, const Tensor& bias, bool gelu)
      : eng_(dnnl::engine::kind::cpu, 0), stream_(eng_) {
    using namespace dnnl;
    auto md = [](const Tensor& t) {
      return memory::desc(
          memory::dims(t.shape().begin(), t.shape().end()),
          t.dtype() == DType::BF16 ? memory::data_type::bf16 : memory::data_type::f32,
          memory::dims(t.strides().begin(), t.strides().end()));
    };
    memory::desc bias_md;
    if (bias.defined()) {
      memory::dims d(size_t(out.dim()), 1), s(size_t(out.dim()), bias.numel());
      d.back() = bias.numel();
      s.back() = 1;
      bias_md = memory::desc(d, memory::data_type::f32, s);
    }
    primitive_attr attr;
    if (gelu) {
      post_ops po;
      po.append_eltwise(1.f, algorithm::eltwise_gelu_erf, 0.f, 0.f);
      attr.set_post_ops(po);
    }
    matmul::primitive_desc pd(matmul::desc(md(a), md(b), bias_md, md(out)), attr, eng_);
    impl_ = pd.impl_info_str();
    prim_ = matmul(pd);
    args_ = {{DNNL_ARG_SRC, memory(md(a), eng_, a.raw_data())},
             {DNNL_ARG_WEIGHTS, memory(md(b), eng_, b.raw_data())},
             {DNNL_ARG_DST, memory(md(out), eng_, out.raw_data())}};
    if (bias.defined()) args_.emplace(DNNL_ARG_BIAS, memory(bias_md, eng_, bias.raw_data()));
  }
  void run() {
    prim_.execute(stream_, args_);
    stream_.wait();
  }
  const std::string& impl() const { return impl_; }

 private:
  dnnl::engine eng_;
  dnnl::stream stream_;
  dnnl::primitive prim_;
  std::unordered_map<int, dnnl::memory> args_;
  std::string impl_;
};
#endif

// Times op() per iteration (the benchmark's time), and alongside it the bare oneDNN run on the
// same operands and the allocation + first touch of an output of the same size.
void run_gemm(benchmark::State& state, Backend be, int threads, double flops, const Tensor& a,
              const Tensor& b, const Tensor& bias, bool gelu, const std::function<Tensor()>& op) {
  std::vector<double> t_op, c_op, t_bare, c_bare, t_alloc;
  Tensor sample = op();
#if KDNAS_HAVE_ONEDNN
  std::unique_ptr<BareMatmul> bare;
  Tensor bare_out = Tensor::empty(sample.shape(), sample.dtype());
  if (be == Backend::Onednn) {
    bare = std::make_unique<BareMatmul>(a, b, bare_out, bias, gelu);
    state.SetLabel(bare->impl());
    bare->run();
  }
#endif
  for (auto _ : state) {
    const auto [s, c] = times_of([&] { benchmark::DoNotOptimize(op().raw_data()); });
    state.SetIterationTime(s);
    t_op.push_back(s);
    c_op.push_back(c);
#if KDNAS_HAVE_ONEDNN
    if (bare) {
      const auto [bs, bc] = times_of([&] { bare->run(); });
      t_bare.push_back(bs);
      c_bare.push_back(bc);
    }
#endif
    t_alloc.push_back(seconds_of([&] {
      Tensor o = Tensor::empty(sample.shape(), sample.dtype());
      char* p = static_cast<char*>(o.raw_data());
      for (size_t i = 0; i < o.nbytes(); i += 4096) p[i] = 0;
      benchmark::DoNotOptimize(p);
    }));
  }
  const double op_s = median(t_op), op_best = *std::min_element(t_op.begin(), t_op.end());
  state.counters["GFLOP/s"] = flops / op_s / 1e9;
  state.counters["best_GFLOP/s"] = flops / op_best / 1e9;
  state.counters["cpu_GFLOP/s"] = flops / (median(c_op) / threads) / 1e9;
  if (!t_bare.empty()) {
    state.counters["x_bare"] = op_s / median(t_bare);
    state.counters["x_bare_cpu"] = median(c_op) / median(c_bare);
    state.counters["bare_GFLOP/s"] = flops / median(t_bare) / 1e9;
    state.counters["bare_cpu_GFLOP/s"] = flops / (median(c_bare) / threads) / 1e9;
  }
  state.counters["alloc_frac"] = median(t_alloc) / op_s;
}

// Checks the first rows of out against the reference (the full reference GEMM at these sizes
// takes seconds single-threaded).
bool validate_rows(benchmark::State& state, const Tensor& out, const Tensor& a, const Tensor& b,
                   const Tensor& bias, bool gelu) {
  Context ref(Backend::Ref);
  const int64_t rows = std::min<int64_t>(8, a.size(-2));
  Tensor a32 = a.narrow(-2, 0, rows).to(DType::F32), b32 = b.to(DType::F32);
  Tensor want = matmul_forward(ref, a32, b32, {bias, gelu ? Activation::Gelu : Activation::None});
  const double tol = a.dtype() == DType::BF16 ? 2e-2 : 1e-3;
  return validate(state, out.narrow(-2, 0, rows), want, tol, tol);
}

// a [M, K] · b [K, N], both row-major.
void BM_matmul(benchmark::State& state, Backend be, DType dt) {
  Context ctx(be, bench_threads());
  Rng rng(0);
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  Tensor a = Tensor::empty({M, K}, dt), b = Tensor::empty({K, N}, dt);
  rng.fill_uniform(a, -1.f, 1.f);
  rng.fill_uniform(b, -0.1f, 0.1f);
  if (!validate_rows(state, matmul_forward(ctx, a, b), a, b, {}, false)) return;
  run_gemm(state, be, ctx.threads(), 2.0 * M * K * N, a, b, {}, false,
           [&] { return matmul_forward(ctx, a, b); });
}

// linear: x [M, K] · w[N, K]ᵀ + bias, GELU: the FFN's first layer.
void BM_linear_gelu(benchmark::State& state, Backend be, DType dt) {
  Context ctx(be, bench_threads());
  Rng rng(0);
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  Tensor x = Tensor::empty({M, K}, dt), w = Tensor::empty({N, K}, dt), bias = Tensor::empty({N});
  rng.fill_uniform(x, -1.f, 1.f);
  rng.fill_uniform(w, -0.1f, 0.1f);
  rng.fill_uniform(bias, -1.f, 1.f);
  auto op = [&] { return linear_forward(ctx, x, w, bias, Activation::Gelu); };
  if (!validate_rows(state, op(), x, w.transpose(0, 1), bias, true)) return;
  run_gemm(state, be, ctx.threads(), 2.0 * M * K * N, x, w.transpose(0, 1), bias, true, op);
}

// linear with constant weights (ConstWeights: pre-packed once on oneDNN) against linear reading
// w [N, K] in place, at the encoder's shapes: x [M, K] · w[N, K]ᵀ + bias. range(3): 0 = plain
// w, 1 = const_weights(w), 2 = "cold": const_weights of 12 copies of w, one after the other,
// as a 12-layer model runs them, so that every call's weights come from L3 or memory instead
// of the core's L2 (x_bare then compares with the bare GEMM on hot weights), 3 = the same 12
// copies read in place.
void BM_linear_const(benchmark::State& state, Backend be, DType dt) {
  Context ctx(be, bench_threads());
  Rng rng(0);
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const int64_t variant = state.range(3);
  Tensor x = Tensor::empty({M, K}, dt), w = Tensor::empty({N, K}, dt), bias = Tensor::empty({N});
  rng.fill_uniform(x, -1.f, 1.f);
  rng.fill_uniform(w, -0.1f, 0.1f);
  rng.fill_uniform(bias, -1.f, 1.f);
  std::vector<ConstWeights> cws{const_weights(w)};
  std::vector<Tensor> ws{w};
  for (int copy = 1; variant >= 2 && copy < 12; ++copy) {
    ws.push_back(w.clone());
    cws.push_back(const_weights(ws.back()));
  }
  size_t next = 0;
  auto op = [&] {
    if (variant == 3) {
      const Tensor& wc = ws[next];
      next = (next + 1) % ws.size();
      return linear_forward(ctx, x, wc, bias);
    }
    if (variant == 0) return linear_forward(ctx, x, w, bias);
    const ConstWeights& cw = cws[next];
    next = (next + 1) % cws.size();
    return linear_forward(ctx, x, cw, bias);
  };
  if (!validate_rows(state, op(), x, w.transpose(0, 1), bias, false)) return;
  run_gemm(state, be, ctx.threads(), 2.0 * M * K * N, x, w.transpose(0, 1), bias, false, op);
}

// Attention at XLM-R's B = 8, NH = 12, T = 128, HS = 64. range(0): 0 = QKᵀ, 1 = PV;
// range(1): 0 = head views of [B, T, NH, HS] (what the QKV projection leaves), 1 = contiguous
// [B*NH, T, HS]; PV only: 2 = contiguous [B, NH, T, HS] heads written straight into a merged
// [B, T, NH, HS] out (opts.out, what inference does), 3 = the same, then a permute_copy to
// merged (what 2 replaces).
void BM_attention(benchmark::State& state, Backend be, DType dt) {
  Context ctx(be, bench_threads());
  Rng rng(0);
  const int64_t B = 8, NH = 12, T = 128, HS = 64;
  const int64_t layout = state.range(1);
  const bool qk = state.range(0) == 0, views = layout == 0;
  Tensor x, y;
  if (views) {
    Tensor q = Tensor::empty({B, T, NH, HS}, dt), k = Tensor::empty({B, T, NH, HS}, dt);
    rng.fill_uniform(q, -1.f, 1.f);
    rng.fill_uniform(k, -1.f, 1.f);
    x = q.permute({0, 2, 1, 3});
    y = k.permute({0, 2, 1, 3});
  } else {
    const Shape heads = layout == 1 ? Shape{B * NH, T, HS} : Shape{B, NH, T, HS};
    x = Tensor::empty(heads, dt);
    y = Tensor::empty(heads, dt);
    rng.fill_uniform(x, -1.f, 1.f);
    rng.fill_uniform(y, -1.f, 1.f);
  }
  if (qk) {
    y = y.transpose(-1, -2);  // Kᵀ: [.., HS, T]
  } else {
    Shape ps = x.shape();
    ps.back() = T;
    Tensor p = Tensor::empty(ps, dt);  // softmax-like weights: P [.., T, T] · V [.., T, HS]
    rng.fill_uniform(p, 0.f, 2.f / T);
    x = p;
  }
  Tensor merged = Tensor::empty({B, T, NH, HS});
  MatmulOptions into;
  into.out = merged.permute({0, 2, 1, 3});
  // Every variant returns the [.., T, HS] heads (2 and 3 as views of merged).
  auto op = [&] {
    if (layout == 2) return matmul_forward(ctx, x, y, into);
    if (layout == 3) {
      return permute_copy(ctx, matmul_forward(ctx, x, y), {0, 2, 1, 3}).permute({0, 2, 1, 3});
    }
    return matmul_forward(ctx, x, y);
  };
  if (!validate_rows(state, op(), x, y, {}, false)) return;
  const double flops = 2.0 * B * NH * T * T * HS;
  run_gemm(state, be, ctx.threads(), flops, x, y, {}, false, op);
}

void gemm_shapes(benchmark::internal::Benchmark* b) {
  b->Args({128, 768, 3072})->Args({128, 768, 768})->Args({128, 3072, 768})->Args({1024, 768, 3072});
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
}
void linear_shapes(benchmark::internal::Benchmark* b) {
  b->Args({128, 768, 3072})
      ->Args({1024, 768, 3072})
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
}
void linear_const_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t packed : {0, 1})
    b->Args({128, 768, 2304, packed})
        ->Args({128, 768, 768, packed})
        ->Args({128, 768, 3072, packed})
        ->Args({128, 3072, 768, packed})
        ->Args({4096, 768, 3072, packed});
  for (const auto& [K, N] : std::vector<std::pair<int64_t, int64_t>>{
           {768, 2304}, {768, 768}, {768, 3072}, {3072, 768}})
    b->Args({128, K, N, 2})->Args({128, K, N, 3});
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
}
void attention_shapes(benchmark::internal::Benchmark* b) {
  b->Args({0, 0})->Args({0, 1})->Args({1, 0})->Args({1, 1})->Args({1, 2})->Args({1, 3});
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
}

[[maybe_unused]] const bool registered = [] {
  std::vector<Backend> backends{Backend::Omp};
  if (onednn_compiled()) backends.insert(backends.begin(), Backend::Onednn);
  for (Backend be : backends)
    for (DType dt : {DType::F32, DType::BF16}) {
      const std::string suffix = std::string("/") + backend_name(be) + "/" + dtype_name(dt);
      benchmark::RegisterBenchmark(("BM_matmul" + suffix).c_str(), BM_matmul, be, dt)
          ->Apply(gemm_shapes);
      benchmark::RegisterBenchmark(("BM_matmul_linear_gelu" + suffix).c_str(), BM_linear_gelu, be,
                                   dt)
          ->Apply(linear_shapes);
      benchmark::RegisterBenchmark(("BM_matmul_attention" + suffix).c_str(), BM_attention, be, dt)
          ->Apply(attention_shapes);
      benchmark::RegisterBenchmark(("BM_matmul_linear_const" + suffix).c_str(), BM_linear_const, be,
                                   dt)
          ->Apply(linear_const_shapes);
    }
  return true;
}();

}  // namespace
}  // namespace kdnas::bench
