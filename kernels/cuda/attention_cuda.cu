// CUDA fused attention (inference), in the spirit of llm.c's dev/cuda/attention kernels but
// without tensor cores: readable first, and already free of the two [B, NH, T, T] round trips
// through device memory that matmul + softmax + matmul make.
//
// Work split: a block of kWarps warps takes kWarps consecutive query rows of one (b, h); each
// warp owns one row. The block streams K, then V, through shared memory in chunks of kChunk = 32
// keys, so each key and value row is read from device memory once per block and shared by its
// kWarps query rows.
//   1. Scores: lane j of a warp computes the score of key (chunk start + j) against the warp's
//      query row (held in shared memory, pre-multiplied by scale), reading the key row from the
//      chunk. Key rows are padded to an odd pitch, so the 32 lanes, which read 32 different key
//      rows at the same d, hit 32 different banks.
//   2. Softmax over the warp's row of T scores (kept in shared memory: T <= 512 floats per warp),
//      exactly as softmax_forward: max shift, -inf rows uniform.
//   3. Output: lane l accumulates output dims l, l + 32, ... (HS / 32 registers) over the value
//      chunks: out[d] = sum_j p_j v[j, d], with p_j broadcast from shared memory and v[j, d]
//      read by consecutive lanes at consecutive d (no bank conflicts).
// Shared memory: chunk kChunk x pitch + kWarps x HS (queries) + kWarps x T (scores) floats:
// 27 KB for HS = 64, T = 512.
#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/cuda_common.cuh"
#include "tensor/check.h"

namespace kdnas {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kChunk = 32;  // keys per shared-memory chunk: one per lane in the score pass
constexpr int kMaxSlots = int(kAttentionMaxHS) / kWarpSize;  // output dims per lane

struct Operand {
  const float* p;
  AttentionStrides s;
};

__global__ void attention_kernel(float* __restrict__ out, AttentionStrides os, Operand q, Operand k,
                                 Operand v, const float* __restrict__ mask, int T, int HS,
                                 float scale) {
  extern __shared__ float smem[];
  const int pitch = HS | 1;            // odd: conflict-free column reads in the score pass
  float* chunk = smem;                 // [kChunk, pitch]
  float* qs = chunk + kChunk * pitch;  // [kWarps, HS]
  float* sc = qs + kWarps * HS;        // [kWarps, T]
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int64_t b = blockIdx.z, h = blockIdx.y;
  const int t = blockIdx.x * kWarps + warp;  // this warp's query row
  const bool active = t < T;                 // inactive warps still help load and sync
  float* my_q = qs + warp * HS;
  float* my_s = sc + warp * T;
  const float* kb = k.p + b * k.s.b + h * k.s.h;
  const float* vb = v.p + b * v.s.b + h * v.s.h;

  if (active)
    for (int d = lane; d < HS; d += kWarpSize)
      my_q[d] = scale * q.p[b * q.s.b + h * q.s.h + t * q.s.t + d];

  // 1. scores[j] = (scale q) · k_j + mask[b, j]
  for (int j0 = 0; j0 < T; j0 += kChunk) {
    const int n = min(kChunk, T - j0);
    __syncthreads();  // the previous chunk (and the query rows) are done with / written
    for (int i = threadIdx.x; i < n * HS; i += kThreads) {
      const int j = i / HS, d = i % HS;
      chunk[j * pitch + d] = kb[int64_t(j0 + j) * k.s.t + d];
    }
    __syncthreads();
    if (active && lane < n) {
      const float* kr = chunk + lane * pitch;
      float s = 0.f;
      for (int d = 0; d < HS; ++d) s += my_q[d] * kr[d];
      my_s[j0 + lane] = s + (mask ? mask[b * T + j0 + lane] : 0.f);
    }
  }
  __syncwarp();

  // 2. softmax over my_s[0 .. T), in place
  if (active) {
    float m = -INFINITY;
    for (int j = lane; j < T; j += kWarpSize) m = fmaxf(m, my_s[j]);
    m = warp_max(m);
    if (m == -INFINITY) {  // every key masked with -inf: uniform, never NaN
      for (int j = lane; j < T; j += kWarpSize) my_s[j] = 1.f / float(T);
    } else {
      float sum = 0.f;
      for (int j = lane; j < T; j += kWarpSize) {
        const float e = expf(my_s[j] - m);
        my_s[j] = e;
        sum += e;
      }
      const float inv = 1.f / warp_sum(sum);
      for (int j = lane; j < T; j += kWarpSize) my_s[j] *= inv;
    }
  }
  __syncwarp();

  // 3. out[d] = sum_j p_j v[j, d]
  float acc[kMaxSlots];
#pragma unroll
  for (int i = 0; i < kMaxSlots; ++i) acc[i] = 0.f;
  for (int j0 = 0; j0 < T; j0 += kChunk) {
    const int n = min(kChunk, T - j0);
    __syncthreads();
    for (int i = threadIdx.x; i < n * HS; i += kThreads) {
      const int j = i / HS, d = i % HS;
      chunk[j * pitch + d] = vb[int64_t(j0 + j) * v.s.t + d];
    }
    __syncthreads();
    if (active) {
      for (int j = 0; j < n; ++j) {
        const float p = my_s[j0 + j];
        const float* vr = chunk + j * pitch;
#pragma unroll
        for (int i = 0; i < kMaxSlots; ++i) {
          const int d = lane + i * kWarpSize;
          if (d < HS) acc[i] += p * vr[d];
        }
      }
    }
  }
  if (active) {
    float* o = out + b * os.b + h * os.h + int64_t(t) * os.t;
#pragma unroll
    for (int i = 0; i < kMaxSlots; ++i) {
      const int d = lane + i * kWarpSize;
      if (d < HS) o[d] = acc[i];
    }
  }
}

}  // namespace

void attention_forward_cuda(Context& ctx, float* out, AttentionStrides out_s, const float* q,
                            AttentionStrides q_s, const float* k, AttentionStrides k_s,
                            const float* v, AttentionStrides v_s, const float* mask, int64_t B,
                            int64_t NH, int64_t T, int64_t HS, float scale) {
  KDNAS_CHECK(T <= kAttentionMaxT && HS <= kAttentionMaxHS, "attention: T = ", T, ", HS = ", HS,
              " is beyond the fused CUDA kernel (T <= ", kAttentionMaxT,
              ", HS <= ", kAttentionMaxHS, "); use matmul + softmax + matmul");
  KDNAS_CHECK(B <= 65535 && NH <= 65535, "attention: B = ", B, ", NH = ", NH,
              " exceeds the CUDA grid (65535 each)");
  if (B == 0 || NH == 0 || T == 0 || HS == 0) return;
  const int pitch = int(HS) | 1;
  const size_t smem = size_t(kChunk * pitch + kWarps * HS + kWarps * T) * sizeof(float);
  // Above 48 KB a kernel must opt in to the larger shared memory of sm_80+ (HS > ~200 only).
  if (smem > 48 * 1024)
    KDNAS_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const dim3 grid(unsigned(ceil_div(T, kWarps)), unsigned(NH), unsigned(B));
  attention_kernel<<<grid, kThreads, smem, stream_of(ctx)>>>(
      out, out_s, Operand{q, q_s}, Operand{k, k_s}, Operand{v, v_s}, mask, int(T), int(HS), scale);
  KDNAS_CUDA_CHECK_LAUNCH();
}

}  // namespace kdnas
