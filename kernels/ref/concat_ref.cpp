#include "kernels/ref/concat_ref.h"

#include <cstddef>
#include <numeric>

namespace kdnas {

template <typename T>
void concat_ref(T* out, const std::vector<const T*>& xs, const std::vector<int64_t>& sizes,
                int64_t outer, int64_t inner) {
  const int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t(0));
  for (int64_t o = 0; o < outer; ++o) {
    int64_t off = 0;
    for (size_t k = 0; k < xs.size(); ++k) {
      for (int64_t d = 0; d < sizes[k]; ++d)
        for (int64_t i = 0; i < inner; ++i)
          out[(o * total + off + d) * inner + i] = xs[k][(o * sizes[k] + d) * inner + i];
      off += sizes[k];
    }
  }
}

template <typename T>
void split_ref(const std::vector<T*>& outs, const T* x, const std::vector<int64_t>& sizes,
               int64_t outer, int64_t inner) {
  const int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t(0));
  for (int64_t o = 0; o < outer; ++o) {
    int64_t off = 0;
    for (size_t k = 0; k < outs.size(); ++k) {
      for (int64_t d = 0; d < sizes[k]; ++d)
        for (int64_t i = 0; i < inner; ++i)
          outs[k][(o * sizes[k] + d) * inner + i] = x[(o * total + off + d) * inner + i];
      off += sizes[k];
    }
  }
}

#define KDNAS_INSTANTIATE(T)                                                                 \
  template void concat_ref<T>(T*, const std::vector<const T*>&, const std::vector<int64_t>&, \
                              int64_t, int64_t);                                             \
  template void split_ref<T>(const std::vector<T*>&, const T*, const std::vector<int64_t>&,  \
                             int64_t, int64_t);
KDNAS_INSTANTIATE(uint8_t)
KDNAS_INSTANTIATE(uint16_t)
KDNAS_INSTANTIATE(uint32_t)
KDNAS_INSTANTIATE(uint64_t)
#undef KDNAS_INSTANTIATE

}  // namespace kdnas
