// CUDA embedding lookup and its scatter-add gradient (f32). Same contracts as
// kernels/ref/embedding_ref.h, with one difference in where the ids live: they are a HOST array
// (the op API has them on the host anyway, since it range-checks every id before a kernel
// indexes with it). The kernels copy what they need to the device.
//
// The backward is deterministic and bit-for-bit the reference's: every dtable row is summed by
// one thread per column over that id's positions in increasing order (no atomics).
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

// out [N, C] (=), ids_host [N] in [0, V), table [V, C]
void embedding_forward_cuda(Context& ctx, float* out, const int64_t* ids_host, const float* table,
                            int64_t N, int64_t C);
// dtable [V, C] (=), dout [N, C], ids_host [N]; ids == padding_idx are skipped (-1 = none)
void embedding_backward_cuda(Context& ctx, float* dtable, const float* dout,
                             const int64_t* ids_host, int64_t N, int64_t V, int64_t C,
                             int64_t padding_idx);
// dtable [V, C] (+=): the scatter-add alone, touching only the rows in ids
void embedding_backward_accumulate_cuda(Context& ctx, float* dtable, const float* dout,
                                        const int64_t* ids_host, int64_t N, int64_t C,
                                        int64_t padding_idx);

}  // namespace kdnas
