// Reference concat and split: the executable specification. Naive, single-threaded. These ops
// move elements without looking at them, so they are templated on the element's storage type
// by size (uint8_t, uint16_t, uint32_t, uint64_t) and serve every dtype.
//
// The big tensor is a contiguous [outer, sum_k sizes[k], inner] block; piece k is a contiguous
// [outer, sizes[k], inner] block. Outputs are overwritten (=).
#pragma once

#include <cstdint>
#include <vector>

namespace kdnas {

// out[o, off_k + d, i] = xs[k][o, d, i], off_k = sizes[0] + ... + sizes[k-1].
template <typename T>
void concat_ref(T* out, const std::vector<const T*>& xs, const std::vector<int64_t>& sizes,
                int64_t outer, int64_t inner);

// outs[k][o, d, i] = x[o, off_k + d, i]
template <typename T>
void split_ref(const std::vector<T*>& outs, const T* x, const std::vector<int64_t>& sizes,
               int64_t outer, int64_t inner);

}  // namespace kdnas
