// CUDA GEMMs: cuBLASLt for the products, with the bias fused as a cuBLASLt epilogue, and small
// kernels of ours for what cuBLASLt does not do exactly as the reference does.
//
// Row-major on a column-major library. cuBLASLt computes D = alpha op(A) op(B) + beta C on
// column-major matrices, and a row-major [R, C] matrix with row stride ld is the column-major
// [C, R] matrix with the same ld: its transpose. So out = a · b is computed as
//   outᵀ [N, M] = bᵀ [N, K] · aᵀ [K, M]
// with cuBLASLt's A = bᵀ, B = aᵀ, D = outᵀ, and nothing is copied: a matrix whose unit stride
// is along its rows instead (a transposed view, rs == 1) is handed over with op = T.
//
// Epilogues. cuBLASLt adds the bias in the GEMM's epilogue (CUBLASLT_EPILOGUE_BIAS: free, the
// tile is still in registers). Its GELU epilogues use the tanh approximation, which differs from
// the erf GELU that XLM-R uses (and the reference computes) by up to ~5e-4, far outside the f32
// tolerance; so GELU is a separate in-place pass of ours (one read and write of out, small next
// to the GEMM for the FFN shapes). A bf16 output with an epilogue goes through an f32 buffer, so
// bias and GELU are applied before the one rounding to bf16, as the reference rounds once.
//
// Plans. Descriptors, layouts and the heuristic's algorithm for a shape are made once and kept
// in the Context's CudaState (keyed by every field that affects them, pointer alignment
// included), so a hot loop pays one cublasLtMatmul call. If the heuristic offers nothing for a
// layout, the product falls back to cublasGemmStridedBatchedEx and our bias kernel.
#include <algorithm>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_allocator.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/matmul_cuda.h"
#include "kernels/cuda/reduce_cuda.h"
#include "tensor/check.h"

namespace kdnas {
namespace {

constexpr int kThreads = 256;

// ---- epilogue kernels ---------------------------------------------------------------------

// out[i] = gelu(out[i])
__global__ void gelu_inplace_kernel(float* out, int64_t n) {
  KDNAS_GRID_STRIDE_LOOP(i, n) out[i] = gelu_erf(out[i]);
}

// out[i] = bf16(act(in[i])), rounded once.
__global__ void to_bf16_kernel(uint16_t* __restrict__ out, const float* __restrict__ in, int64_t n,
                               bool gelu) {
  KDNAS_GRID_STRIDE_LOOP(i, n) out[i] = f32_to_bf16_bits(gelu ? gelu_erf(in[i]) : in[i]);
}

// out[r, j] += bias[j] over rows of N: the fallback path's epilogue.
__global__ void add_bias_kernel(float* __restrict__ out, const float* __restrict__ bias, int64_t n,
                                int64_t N) {
  KDNAS_GRID_STRIDE_LOOP(i, n) out[i] += bias[i % N];
}

// out[r, j] = act(bias[j] or 0): a GEMM with K = 0 has no products, only its epilogue.
__global__ void epilogue_only_kernel(void* out, bool bf16_out, const float* __restrict__ bias,
                                     int64_t n, int64_t N, bool gelu) {
  KDNAS_GRID_STRIDE_LOOP(i, n) {
    float v = bias ? bias[i % N] : 0.f;
    if (gelu) v = gelu_erf(v);
    if (bf16_out)
      static_cast<uint16_t*>(out)[i] = f32_to_bf16_bits(v);
    else
      static_cast<float*>(out)[i] = v;
  }
}

// ---- one cuBLASLt call --------------------------------------------------------------------

// out = alpha a · b (+ bias) + beta out for `batch` matrices at the given batch strides
// (elements); strides as in GemmLayout, one unit stride per matrix.
struct Gemm {
  int64_t M = 0, K = 0, N = 0;
  int64_t a_rs = 0, a_cs = 0, b_rs = 0, b_cs = 0;
  int64_t batch = 1, a_bs = 0, b_bs = 0, d_bs = 0;
  DType in = DType::F32, out = DType::F32;
  bool bias = false;
  float beta = 0.f;
};

cudaDataType_t lt_type(DType t) {
  return t == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
}
size_t elem(DType t) {
  return t == DType::BF16 ? 2 : 4;
}

// The largest power of two (<= 256) dividing v.
uint32_t pow2_divisor(uint64_t v) {
  uint32_t a = 256;
  while (a > 1 && (v % a) != 0) a /= 2;
  return a;
}

// What cuBLASLt may assume about an operand's alignment: its kernels load whole vectors from
// the start of every column and every batch matrix, so the pointer, the leading dimension and
// the batch stride (in bytes) must all be multiples of it. A narrow view or an odd K (a row of
// 13 floats is 52 bytes) lowers it; the heuristic then picks a kernel that copes.
uint32_t alignment(const void* p, int64_t ld, int64_t batch, int64_t batch_stride, size_t esize) {
  uint32_t a = pow2_divisor(reinterpret_cast<uintptr_t>(p));
  a = std::min(a, pow2_divisor(uint64_t(ld) * esize));
  if (batch > 1) a = std::min(a, pow2_divisor(uint64_t(batch_stride) * esize));
  return a;
}

template <typename T>
void set_desc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, T value) {
  KDNAS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d, attr, &value, sizeof(value)));
}

// A column-major rows x cols layout with leading dimension ld, strided-batched when batch > 1.
cublasLtMatrixLayout_t make_layout(DType t, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                                   int64_t batch_stride) {
  cublasLtMatrixLayout_t l = nullptr;
  KDNAS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, lt_type(t), uint64_t(rows), uint64_t(cols),
                                                std::max<int64_t>(ld, 1)));
  if (batch > 1) {
    const int32_t count = int32_t(batch);
    KDNAS_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                        &count, sizeof(count)));
    KDNAS_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
        l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &batch_stride, sizeof(batch_stride)));
  }
  return l;
}

// The plan for g with operands of the given alignments, or null when cuBLASLt offers no
// algorithm (then the caller falls back to cuBLAS).
std::unique_ptr<LtPlan> make_plan(CudaState& st, const Gemm& g, const float* bias, uint32_t align_a,
                                  uint32_t align_b, uint32_t align_d) {
  auto p = std::make_unique<LtPlan>();
  const cublasComputeType_t compute =
      g.in == DType::F32 && st.allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  KDNAS_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, compute, CUDA_R_32F));
  // cuBLASLt's A = bᵀ [N, K]: b with unit column stride is exactly that (ld = b_rs); with unit
  // row stride, b is a column-major [K, N] matrix (ld = b_cs), transposed by op = T.
  const bool a_n = g.b_cs == 1, b_n = g.a_cs == 1;
  set_desc<int32_t>(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, a_n ? CUBLAS_OP_N : CUBLAS_OP_T);
  set_desc<int32_t>(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, b_n ? CUBLAS_OP_N : CUBLAS_OP_T);
  set_desc<uint32_t>(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                     g.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT);
  // The heuristic reads the bias pointer's alignment (not its data), so it is set before the
  // query; the plan key includes that alignment. One bias [N] serves every batch matrix
  // (CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE keeps its default, 0).
  if (g.bias) set_desc<const void*>(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
  p->layout_a = a_n ? make_layout(g.in, g.N, g.K, g.b_rs, g.batch, g.b_bs)
                    : make_layout(g.in, g.K, g.N, g.b_cs, g.batch, g.b_bs);
  // cuBLASLt's B = aᵀ [K, M], likewise.
  p->layout_b = b_n ? make_layout(g.in, g.K, g.M, g.a_rs, g.batch, g.a_bs)
                    : make_layout(g.in, g.M, g.K, g.a_cs, g.batch, g.a_bs);
  p->layout_d = make_layout(g.out, g.N, g.M, g.N, g.batch, g.d_bs);

  cublasLtMatmulPreference_t pref = nullptr;
  KDNAS_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  auto set_pref = [&](cublasLtMatmulPreferenceAttributes_t attr, auto value) {
    KDNAS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)));
  };
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  try {
    set_pref(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(st.lt_workspace_bytes));
    // cuBLASLt's A is our b and its B our a.
    set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_b);
    set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_a);
    set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_d);
    set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d);
    const cublasStatus_t s =
        cublasLtMatmulAlgoGetHeuristic(st.cublaslt, p->desc, p->layout_a, p->layout_b, p->layout_d,
                                       p->layout_d, pref, 1, &result, &found);
    if (s != CUBLAS_STATUS_SUCCESS) found = 0;  // "not supported": use the fallback
  } catch (...) {
    cublasLtMatmulPreferenceDestroy(pref);
    throw;
  }
  cublasLtMatmulPreferenceDestroy(pref);
  if (found == 0) return nullptr;
  p->algo = result.algo;
  return p;
}

// The fallback: the same product through cublasGemmStridedBatchedEx, then the bias.
void cublas_gemm(CudaState& st, const Gemm& g, void* out, const void* a, const void* b,
                 const float* bias) {
  const float alpha = 1.f;
  const bool a_n = g.b_cs == 1, b_n = g.a_cs == 1;
  const cublasComputeType_t compute =
      g.in == DType::F32 && st.allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  KDNAS_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      st.cublas, a_n ? CUBLAS_OP_N : CUBLAS_OP_T, b_n ? CUBLAS_OP_N : CUBLAS_OP_T, int(g.N),
      int(g.M), int(g.K), &alpha, b, lt_type(g.in),
      int(std::max<int64_t>(1, a_n ? g.b_rs : g.b_cs)), g.b_bs, a, lt_type(g.in),
      int(std::max<int64_t>(1, b_n ? g.a_rs : g.a_cs)), g.a_bs, &g.beta, out, lt_type(g.out),
      int(g.N), g.d_bs, int(g.batch), compute, CUBLAS_GEMM_DEFAULT));
  if (bias) {
    KDNAS_CHECK(g.out == DType::F32, "matmul: internal: fallback bias on a bf16 output");
    const int64_t n = g.batch * g.M * g.N;
    add_bias_kernel<<<grid_for(n, kThreads), kThreads, 0, st.stream>>>(static_cast<float*>(out),
                                                                       bias, n, g.N);
    KDNAS_CUDA_CHECK_LAUNCH();
  }
}

// A size-1 dim's stride is arbitrary (a [1, K] row may say rs = 1, cs = 1); give it the value
// that makes the layout plain (unit stride on one dim, the other >= its extent), as the op API's
// plain_matrix does, so that the leading dimensions handed to cuBLASLt are valid.
void normalize(int64_t rows, int64_t cols, int64_t& rs, int64_t& cs) {
  if (rows == 1) rs = cs == 1 ? cols : 1;
  if (cols == 1) cs = rs == 1 ? rows : 1;
}

void lt_gemm(CudaState& st, Gemm g, void* out, const void* a, const void* b, const float* bias) {
  normalize(g.M, g.K, g.a_rs, g.a_cs);
  normalize(g.K, g.N, g.b_rs, g.b_cs);
  KDNAS_CHECK((g.a_cs == 1 && g.a_rs >= g.K) || (g.a_rs == 1 && g.a_cs >= g.M),
              "matmul: internal: a [", g.M, ", ", g.K, "] has strides (", g.a_rs, ", ", g.a_cs,
              "), not one unit stride");
  KDNAS_CHECK((g.b_cs == 1 && g.b_rs >= g.N) || (g.b_rs == 1 && g.b_cs >= g.K),
              "matmul: internal: b [", g.K, ", ", g.N, "] has strides (", g.b_rs, ", ", g.b_cs,
              "), not one unit stride");
  const size_t ein = elem(g.in), eout = elem(g.out);
  const uint32_t al_a = alignment(a, g.a_cs == 1 ? g.a_rs : g.a_cs, g.batch, g.a_bs, ein);
  const uint32_t al_b = alignment(b, g.b_cs == 1 ? g.b_rs : g.b_cs, g.batch, g.b_bs, ein);
  const uint32_t al_d = alignment(out, g.N, g.batch, g.d_bs, eout);
  const uint32_t al_bias = bias ? pow2_divisor(reinterpret_cast<uintptr_t>(bias)) : 0;
  const std::string key = detail::concat(
      int(g.in), ",", int(g.out), ",", g.M, ",", g.K, ",", g.N, ",", g.a_rs, ",", g.a_cs, ",",
      g.b_rs, ",", g.b_cs, ",", g.batch, ",", g.a_bs, ",", g.b_bs, ",", g.d_bs, ",", g.bias, ",",
      al_a, ",", al_b, ",", al_d, ",", al_bias, ",", st.allow_tf32);
  auto it = st.lt_plans.find(key);
  if (it == st.lt_plans.end())
    it = st.lt_plans.emplace(key, make_plan(st, g, bias, al_a, al_b, al_d)).first;
  const LtPlan* p = it->second.get();
  if (p == nullptr) return cublas_gemm(st, g, out, a, b, bias);
  if (bias) set_desc<const void*>(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
  const float alpha = 1.f;
  KDNAS_CUBLAS_CHECK(cublasLtMatmul(st.cublaslt, p->desc, &alpha, b, p->layout_a, a, p->layout_b,
                                    &g.beta, out, p->layout_d, out, p->layout_d, &p->algo,
                                    st.lt_workspace, st.lt_workspace_bytes, st.stream));
}

// ---- batches ------------------------------------------------------------------------------

// The batch of a GemmLayout as one strided batch (the innermost run of batch dims that cuBLASLt
// can step with a single stride per operand) times an outer loop on the host over the rest.
struct BatchPlan {
  int64_t inner = 1, a_bs = 0, b_bs = 0;  // the strided batch
  std::vector<int64_t> outer_a, outer_b;  // element offsets of each outer step
};

BatchPlan plan_batch(const GemmLayout& l) {
  // Batch dims with their strides in a, b and out (out contiguous: M * N per matrix).
  const size_t nb = l.batch.size();
  std::vector<int64_t> size, sa, sb, so;
  int64_t out_stride = l.M * l.N;
  std::vector<int64_t> out_strides(nb);
  for (size_t d = nb; d-- > 0;) {
    out_strides[d] = out_stride;
    out_stride *= l.batch[d];
  }
  for (size_t d = 0; d < nb; ++d) {
    if (l.batch[d] == 1) continue;
    const int64_t n = l.batch[d], a = l.a_batch_strides[d], b = l.b_batch_strides[d];
    const int64_t o = out_strides[d];
    if (!size.empty() && sa.back() == a * n && sb.back() == b * n && so.back() == o * n) {
      size.back() *= n;  // contiguous with the previous dim in all three: one dim
      sa.back() = a;
      sb.back() = b;
      so.back() = o;
      continue;
    }
    size.push_back(n);
    sa.push_back(a);
    sb.push_back(b);
    so.push_back(o);
  }
  BatchPlan p;
  // The innermost dim becomes the strided batch unless an operand broadcasts along it (stride
  // 0): cuBLASLt documents no zero batch stride, so those matrices are launched one by one.
  size_t outer_dims = size.size();
  if (!size.empty() && sa.back() != 0 && sb.back() != 0 && size.back() <= INT32_MAX) {
    p.inner = size.back();
    p.a_bs = sa.back();
    p.b_bs = sb.back();
    outer_dims = size.size() - 1;
  }
  int64_t outer = 1;
  for (size_t d = 0; d < outer_dims; ++d) outer *= size[d];
  for (int64_t g = 0; g < outer; ++g) {
    int64_t rem = g, oa = 0, ob = 0;
    for (size_t d = outer_dims; d-- > 0;) {
      const int64_t idx = rem % size[d];
      rem /= size[d];
      oa += idx * sa[d];
      ob += idx * sb[d];
    }
    p.outer_a.push_back(oa);
    p.outer_b.push_back(ob);
  }
  return p;
}

}  // namespace

void matmul_forward_cuda(Context& ctx, void* out, DType out_dtype, const void* a, const void* b,
                         DType in_dtype, const float* bias, const GemmLayout& l, bool gelu) {
  KDNAS_CHECK((in_dtype == DType::F32 || in_dtype == DType::BF16) &&
                  (out_dtype == DType::F32 || out_dtype == DType::BF16),
              "matmul: the CUDA GEMM takes f32 or bf16 operands and gives f32 or bf16, not ",
              dtype_name(in_dtype), " -> ", dtype_name(out_dtype));
  CudaState& st = cuda_state(ctx);
  const int64_t count = l.batch_count(), n = count * l.M * l.N;
  if (n == 0) return;
  const bool bf16_out = out_dtype == DType::BF16;
  if (l.K == 0) {
    epilogue_only_kernel<<<grid_for(n, kThreads), kThreads, 0, st.stream>>>(out, bf16_out, bias, n,
                                                                            l.N, gelu);
    KDNAS_CUDA_CHECK_LAUNCH();
    return;
  }
  // A bf16 result with an epilogue is computed in f32 and rounded once at the end.
  const bool via_f32 = bf16_out && (bias != nullptr || gelu);
  CudaBuffer tmp;
  void* d = out;
  DType d_type = out_dtype;
  if (via_f32) {
    tmp = CudaBuffer(size_t(n) * sizeof(float));
    d = tmp.data();
    d_type = DType::F32;
  }
  const BatchPlan bp = plan_batch(l);
  Gemm g;
  g.M = l.M, g.K = l.K, g.N = l.N;
  g.a_rs = l.a_rs, g.a_cs = l.a_cs, g.b_rs = l.b_rs, g.b_cs = l.b_cs;
  g.batch = bp.inner, g.a_bs = bp.a_bs, g.b_bs = bp.b_bs, g.d_bs = l.M * l.N;
  g.in = in_dtype, g.out = d_type, g.bias = bias != nullptr;
  const size_t ein = elem(in_dtype), eout = elem(d_type);
  for (size_t k = 0; k < bp.outer_a.size(); ++k) {
    const int64_t d_off = int64_t(k) * bp.inner * l.M * l.N;
    lt_gemm(st, g, static_cast<char*>(d) + size_t(d_off) * eout,
            static_cast<const char*>(a) + size_t(bp.outer_a[k]) * ein,
            static_cast<const char*>(b) + size_t(bp.outer_b[k]) * ein, bias);
  }
  if (via_f32) {
    to_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, st.stream>>>(
        static_cast<uint16_t*>(out), static_cast<const float*>(d), n, gelu);
    KDNAS_CUDA_CHECK_LAUNCH();
  } else if (gelu) {
    gelu_inplace_kernel<<<grid_for(n, kThreads), kThreads, 0, st.stream>>>(static_cast<float*>(d),
                                                                           n);
    KDNAS_CUDA_CHECK_LAUNCH();
  }
}

void matmul_backward_cuda(Context& ctx, float* da, float* db, const float* dout, const float* a,
                          const float* b, int64_t M, int64_t K, int64_t N) {
  CudaState& st = cuda_state(ctx);
  if (M == 0 || K == 0 || N == 0) return;  // += a product with no terms, or of empty gradients
  if (da) {
    // da [M, K] += dout [M, N] · bᵀ, bᵀ read in place as an [N, K] matrix with unit row stride.
    Gemm g;
    g.M = M, g.K = N, g.N = K;
    g.a_rs = N, g.a_cs = 1, g.b_rs = 1, g.b_cs = N;
    g.d_bs = M * K, g.beta = 1.f;
    lt_gemm(st, g, da, dout, b, nullptr);
  }
  if (db) {
    // db [K, N] += aᵀ · dout, aᵀ read in place as a [K, M] matrix with unit row stride.
    Gemm g;
    g.M = K, g.K = M, g.N = N;
    g.a_rs = 1, g.a_cs = K, g.b_rs = N, g.b_cs = 1;
    g.d_bs = K * N, g.beta = 1.f;
    lt_gemm(st, g, db, a, dout, nullptr);
  }
}

void bias_backward_cuda(Context& ctx, float* dbias, const float* dout, int64_t M, int64_t N) {
  sum_forward_cuda(ctx, dbias, dout, 1, M, N, 1.0);
}

}  // namespace kdnas
