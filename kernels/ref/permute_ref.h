// Reference permute_copy: the executable specification. Naive, single-threaded; templated on the
// element's storage type by size (uint8_t ... uint64_t), since a permutation moves elements
// without looking at them and so serves every dtype.
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace kdnas {

// out (contiguous, shape[k] = x_shape[order[k]], overwritten =) gets
//   out[i_0, ..., i_{n-1}] = x[j]  with j[order[k]] = i_k,
// x being read through x_strides (elements; any view).
template <typename T>
void permute_copy_ref(T* out, const T* x, const Shape& x_shape, const Shape& x_strides,
                      const std::vector<int64_t>& order);

}  // namespace kdnas
