// CUDA permute_copy: a strided gather into a contiguous output. Same contract as
// kernels/ref/permute_ref.h, for elements of `element_size` bytes (1, 2, 4 or 8; any dtype).
// Device pointers; host shape, strides and order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

void permute_copy_cuda(Context& ctx, void* out, const void* x, size_t element_size,
                       const Shape& x_shape, const Shape& x_strides,
                       const std::vector<int64_t>& order);

}  // namespace kdnas
