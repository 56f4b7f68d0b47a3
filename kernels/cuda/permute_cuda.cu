// CUDA permute_copy: one thread per output element, reading x at the permuted strides.
//
// Writes are always coalesced (the output is contiguous). Reads are coalesced whenever the
// innermost output dim is also x's innermost, as in the attention head split
// [B, T, NH, HS] -> [B, NH, T, HS], where each warp reads HS-long runs; a full 2-D transpose
// reads with a stride and leans on L2, which is good enough for the sizes a transformer permutes.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/permute_cuda.h"
#include "tensor/check.h"

namespace kdnas {
namespace {

constexpr int kThreads = 256;

// d.stride[0]: the output's (contiguous) strides; d.stride[1]: x's strides in output dim order.
template <typename T>
__global__ void permute_kernel(T* __restrict__ out, const T* __restrict__ x, Dims d, int64_t n) {
  KDNAS_GRID_STRIDE_LOOP(i, n) out[i] = x[dims_offset(d, 1, i)];
}

template <typename T>
void launch(cudaStream_t s, void* out, const void* x, const Dims& d, int64_t n) {
  permute_kernel<T><<<grid_for(n, kThreads), kThreads, 0, s>>>(static_cast<T*>(out),
                                                               static_cast<const T*>(x), d, n);
  KDNAS_CUDA_CHECK_LAUNCH();
}

}  // namespace

void permute_copy_cuda(Context& ctx, void* out, const void* x, size_t element_size,
                       const Shape& x_shape, const Shape& x_strides,
                       const std::vector<int64_t>& order) {
  const size_t nd = x_shape.size();
  Shape shape(nd), in_strides(nd);
  for (size_t k = 0; k < nd; ++k) {
    shape[k] = x_shape[size_t(order[k])];
    in_strides[k] = x_strides[size_t(order[k])];
  }
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  const Shape out_strides = contiguous_strides(shape);
  const Dims d =
      make_dims("permute_copy", shape.data(), int(nd), out_strides.data(), in_strides.data());
  const cudaStream_t s = stream_of(ctx);
  switch (element_size) {
    case 1:
      return launch<uint8_t>(s, out, x, d, n);
    case 2:
      return launch<uint16_t>(s, out, x, d, n);
    case 4:
      return launch<uint32_t>(s, out, x, d, n);
    case 8:
      return launch<uint64_t>(s, out, x, d, n);
    default:
      break;
  }
  detail::fail(
      detail::concat("permute_copy: element size ", element_size, " is not 1, 2, 4 or 8 bytes"));
}

}  // namespace kdnas
