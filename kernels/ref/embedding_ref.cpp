#include "kernels/ref/embedding_ref.h"

#include <algorithm>

namespace kdnas {

template <typename T>
void embedding_forward_ref(T* out, const int64_t* ids, const T* table, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; ++n) {
    const T* row = table + ids[n] * C;
    for (int64_t c = 0; c < C; ++c) out[n * C + c] = row[c];
  }
}

template <typename T>
void embedding_backward_ref(T* dtable, const T* dout, const int64_t* ids, int64_t N, int64_t V,
                            int64_t C, int64_t padding_idx) {
  std::fill(dtable, dtable + V * C, T(0));
  embedding_backward_accumulate_ref(dtable, dout, ids, N, C, padding_idx);
}

template <typename T>
void embedding_backward_accumulate_ref(T* dtable, const T* dout, const int64_t* ids, int64_t N,
                                       int64_t C, int64_t padding_idx) {
  // A repeated id accumulates every occurrence, always in increasing n: the order the fast
  // kernel keeps too, so both give the same bits.
  for (int64_t n = 0; n < N; ++n) {
    if (ids[n] == padding_idx) continue;
    T* row = dtable + ids[n] * C;
    for (int64_t c = 0; c < C; ++c) row[c] += dout[n * C + c];
  }
}

#define KDNAS_INSTANTIATE(T)                                                                       \
  template void embedding_forward_ref<T>(T*, const int64_t*, const T*, int64_t, int64_t);          \
  template void embedding_backward_ref<T>(T*, const T*, const int64_t*, int64_t, int64_t, int64_t, \
                                          int64_t);                                                \
  template void embedding_backward_accumulate_ref<T>(T*, const T*, const int64_t*, int64_t,        \
                                                     int64_t, int64_t);
KDNAS_INSTANTIATE(float)
KDNAS_INSTANTIATE(double)
#undef KDNAS_INSTANTIATE

}  // namespace kdnas
