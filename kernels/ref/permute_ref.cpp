#include "kernels/ref/permute_ref.h"

namespace kdnas {

template <typename T>
void permute_copy_ref(T* out, const T* x, const Shape& x_shape, const Shape& x_strides,
                      const std::vector<int64_t>& order) {
  Shape shape, src_strides;  // the output's shape and x's stride along each output dim
  for (int64_t d : order) {
    shape.push_back(x_shape[size_t(d)]);
    src_strides.push_back(x_strides[size_t(d)]);
  }
  const int64_t n = shape_numel(shape);
  Shape idx(shape.size(), 0);  // the output index i as (i_0, ..., i_{n-1})
  for (int64_t i = 0; i < n; ++i) {
    int64_t src = 0;
    for (size_t k = 0; k < idx.size(); ++k) src += idx[k] * src_strides[k];
    out[i] = x[src];
    for (size_t k = idx.size(); k-- > 0;) {  // next output index, row-major
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
}

template void permute_copy_ref<uint8_t>(uint8_t*, const uint8_t*, const Shape&, const Shape&,
                                        const std::vector<int64_t>&);
template void permute_copy_ref<uint16_t>(uint16_t*, const uint16_t*, const Shape&, const Shape&,
                                         const std::vector<int64_t>&);
template void permute_copy_ref<uint32_t>(uint32_t*, const uint32_t*, const Shape&, const Shape&,
                                         const std::vector<int64_t>&);
template void permute_copy_ref<uint64_t>(uint64_t*, const uint64_t*, const Shape&, const Shape&,
                                         const std::vector<int64_t>&);

}  // namespace kdnas
