// CUDA embedding: a gather forward and a deterministic scatter-add backward.
//
// Forward: one thread per output element; a warp reads 32 consecutive floats of one table row
// (coalesced), so the gather costs what a copy costs.
//
// Backward: atomicAdd into dtable would be the obvious kernel, but float addition is not
// associative and atomics land in whatever order the hardware picks, so repeated ids (every
// padding position, frequent tokens) would give different bits on every run. Instead the host
// groups the positions by id (a counting sort of the N ids, O(N + unique ids)): for id v,
// positions[starts[u] .. starts[u + 1]) lists its n in increasing order. The kernel then gives
// each (unique id, column) one thread that adds those rows of dout in that order, exactly the
// reference's loop, so the result is the reference's bits.
#include <algorithm>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/cuda_allocator.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/embedding_cuda.h"

namespace kdnas {
namespace {

constexpr int kThreads = 256;

// out[n, c] = table[ids[n], c]. Rows over blockIdx.y, columns over threads: no index division.
__global__ void embedding_forward_kernel(float* __restrict__ out, const int64_t* __restrict__ ids,
                                         const float* __restrict__ table, int64_t N, int64_t C) {
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
    const float* row = table + ids[n] * C;
    for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < C;
         c += int64_t(gridDim.x) * blockDim.x)
      out[n * C + c] = row[c];
  }
}

// For unique id u (blockIdx.y) and column c: dtable[uid[u], c] (+=) sum of dout[pos[k], c] for
// k in [starts[u], starts[u + 1]), in increasing k, added one by one to the existing value.
__global__ void embedding_scatter_kernel(float* __restrict__ dtable, const float* __restrict__ dout,
                                         const int64_t* __restrict__ uid,
                                         const int64_t* __restrict__ starts,
                                         const int64_t* __restrict__ pos, int64_t C) {
  const int64_t u = blockIdx.y;
  float* row = dtable + uid[u] * C;
  const int64_t k0 = starts[u], k1 = starts[u + 1];
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < C;
       c += int64_t(gridDim.x) * blockDim.x) {
    float acc = row[c];
    for (int64_t k = k0; k < k1; ++k) acc += dout[pos[k] * C + c];
    row[c] = acc;
  }
}

// The positions grouped by id, in one device buffer: uid [U], starts [U + 1], pos [P], where U
// is the number of distinct ids (padding excluded) and P the number of non-padding positions.
struct Groups {
  CudaBuffer buf;
  int64_t U = 0;
  const int64_t* uid() const { return buf.as<int64_t>(); }
  const int64_t* starts() const { return uid() + U; }
  const int64_t* pos() const { return starts() + U + 1; }
};

Groups group_by_id(cudaStream_t s, const int64_t* ids, int64_t N, int64_t padding_idx) {
  // Ids in order of first appearance, each with its count; then prefix sums and a stable fill.
  std::unordered_map<int64_t, int64_t> slot;
  std::vector<int64_t> uid, count;
  for (int64_t n = 0; n < N; ++n) {
    if (ids[n] == padding_idx) continue;
    auto [it, fresh] = slot.emplace(ids[n], int64_t(uid.size()));
    if (fresh) {
      uid.push_back(ids[n]);
      count.push_back(0);
    }
    ++count[size_t(it->second)];
  }
  const int64_t U = int64_t(uid.size());
  std::vector<int64_t> host(size_t(2 * U + 1));  // uid, starts, then pos appended
  std::copy(uid.begin(), uid.end(), host.begin());
  int64_t* starts = host.data() + U;
  starts[0] = 0;
  for (int64_t u = 0; u < U; ++u) starts[u + 1] = starts[u] + count[size_t(u)];
  const int64_t P = starts[U];
  std::vector<int64_t> fill(starts, starts + U);
  host.resize(size_t(2 * U + 1 + P));  // (moves the data: starts is not used below)
  int64_t* pos = host.data() + 2 * U + 1;
  for (int64_t n = 0; n < N; ++n)  // increasing n: each id's positions come out sorted
    if (ids[n] != padding_idx) pos[fill[size_t(slot[ids[n]])]++] = n;

  Groups g;
  g.U = U;
  if (U == 0) return g;
  g.buf = CudaBuffer(host.size() * sizeof(int64_t));
  KDNAS_CUDA_CHECK(cudaMemcpyAsync(g.buf.data(), host.data(), host.size() * sizeof(int64_t),
                                   cudaMemcpyHostToDevice, s));
  return g;
}

void scatter(Context& ctx, float* dtable, const float* dout, const int64_t* ids, int64_t N,
             int64_t C, int64_t padding_idx) {
  const cudaStream_t s = stream_of(ctx);
  Groups g = group_by_id(s, ids, N, padding_idx);
  if (g.U == 0 || C == 0) return;
  // gridDim.y is limited to 65535: launch the unique ids in slices.
  const unsigned col_blocks = unsigned(ceil_div(C, kThreads));
  for (int64_t u0 = 0; u0 < g.U; u0 += 65535) {
    const int64_t nu = std::min<int64_t>(65535, g.U - u0);
    embedding_scatter_kernel<<<dim3(col_blocks, unsigned(nu)), kThreads, 0, s>>>(
        dtable, dout, g.uid() + u0, g.starts() + u0, g.pos(), C);
    KDNAS_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void embedding_forward_cuda(Context& ctx, float* out, const int64_t* ids_host, const float* table,
                            int64_t N, int64_t C) {
  if (N == 0 || C == 0) return;
  const cudaStream_t s = stream_of(ctx);
  CudaBuffer ids(size_t(N) * sizeof(int64_t));
  KDNAS_CUDA_CHECK(cudaMemcpyAsync(ids.data(), ids_host, size_t(N) * sizeof(int64_t),
                                   cudaMemcpyHostToDevice, s));
  const dim3 grid(unsigned(ceil_div(C, kThreads)), unsigned(std::min<int64_t>(N, 65535)));
  embedding_forward_kernel<<<grid, kThreads, 0, s>>>(out, ids.as<int64_t>(), table, N, C);
  KDNAS_CUDA_CHECK_LAUNCH();
}

void embedding_backward_cuda(Context& ctx, float* dtable, const float* dout,
                             const int64_t* ids_host, int64_t N, int64_t V, int64_t C,
                             int64_t padding_idx) {
  KDNAS_CUDA_CHECK(
      cudaMemsetAsync(dtable, 0, size_t(V) * size_t(C) * sizeof(float), stream_of(ctx)));
  scatter(ctx, dtable, dout, ids_host, N, C, padding_idx);
}

void embedding_backward_accumulate_cuda(Context& ctx, float* dtable, const float* dout,
                                        const int64_t* ids_host, int64_t N, int64_t C,
                                        int64_t padding_idx) {
  scatter(ctx, dtable, dout, ids_host, N, C, padding_idx);
}

}  // namespace kdnas
