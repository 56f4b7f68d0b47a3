// CUDA concat and split: each piece is one 2-D copy (outer rows of seg_bytes[k] bytes, with the
// big tensor's row pitch on one side), which the copy engines run at memory speed with no
// kernel of ours.
#include <cstddef>

#include "kernels/cuda/concat_cuda.h"
#include "kernels/cuda/cuda_common.cuh"

namespace kdnas {

void concat_cuda(Context& ctx, void* out, const std::vector<const void*>& xs,
                 const std::vector<int64_t>& seg_bytes, int64_t outer) {
  const cudaStream_t s = stream_of(ctx);
  int64_t row = 0;
  for (int64_t b : seg_bytes) row += b;
  int64_t off = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    const size_t w = size_t(seg_bytes[k]);
    if (w > 0 && outer > 0)
      KDNAS_CUDA_CHECK(cudaMemcpy2DAsync(static_cast<char*>(out) + off, size_t(row), xs[k], w, w,
                                         size_t(outer), cudaMemcpyDeviceToDevice, s));
    off += seg_bytes[k];
  }
}

void split_cuda(Context& ctx, const std::vector<void*>& outs, const void* x,
                const std::vector<int64_t>& seg_bytes, int64_t outer) {
  const cudaStream_t s = stream_of(ctx);
  int64_t row = 0;
  for (int64_t b : seg_bytes) row += b;
  int64_t off = 0;
  for (size_t k = 0; k < outs.size(); ++k) {
    const size_t w = size_t(seg_bytes[k]);
    if (w > 0 && outer > 0)
      KDNAS_CUDA_CHECK(cudaMemcpy2DAsync(outs[k], w, static_cast<const char*>(x) + off, size_t(row),
                                         w, size_t(outer), cudaMemcpyDeviceToDevice, s));
    off += seg_bytes[k];
  }
}

}  // namespace kdnas
