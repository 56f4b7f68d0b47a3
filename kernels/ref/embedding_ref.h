// Reference embedding lookup: the executable specification of embedding_forward/backward.
// Naive, single-threaded, templated on the scalar (float, or double for gradient checks).
// Ids are already range-checked by the op API (kernels/embedding.cpp).
#pragma once

#include <cstdint>

namespace kdnas {

// out[n, :] = table[ids[n], :]
//   out [N, C] (=), ids [N] with values in [0, V), table [V, C]
template <typename T>
void embedding_forward_ref(T* out, const int64_t* ids, const T* table, int64_t N, int64_t C);

// The scatter-add that is the lookup's gradient:
//   dtable[v, :] = sum over n (in increasing order) with ids[n] == v of dout[n, :]
//   dtable [V, C] (=, rows no id points at are zero), dout [N, C], ids [N]
// Ids equal to padding_idx contribute nothing (torch.nn.Embedding's padding_idx; -1 = none).
template <typename T>
void embedding_backward_ref(T* dtable, const T* dout, const int64_t* ids, int64_t N, int64_t V,
                            int64_t C, int64_t padding_idx);
// The same sum added to an existing gradient: dtable [V, C] (+=); only rows in ids change.
template <typename T>
void embedding_backward_accumulate_ref(T* dtable, const T* dout, const int64_t* ids, int64_t N,
                                       int64_t C, int64_t padding_idx);

}  // namespace kdnas
