// Fast CPU embedding lookup and its scatter-add gradient (f32). Same contracts as
// kernels/ref/embedding_ref.h; the backward gives the same bits as the reference whatever the
// thread count.
#pragma once

#include <cstdint>

#include "kernels/context.h"

namespace kdnas {

// out [N, C] (=), ids [N] in [0, V), table [V, C]
void embedding_forward_cpu(Context& ctx, float* out, const int64_t* ids, const float* table,
                           int64_t N, int64_t C);
// dtable [V, C] (=), dout [N, C], ids [N]; ids == padding_idx are skipped (-1 = none)
void embedding_backward_cpu(Context& ctx, float* dtable, const float* dout, const int64_t* ids,
                            int64_t N, int64_t V, int64_t C, int64_t padding_idx);
// dtable [V, C] (+=): the scatter-add alone, touching only the rows in ids
void embedding_backward_accumulate_cpu(Context& ctx, float* dtable, const float* dout,
                                       const int64_t* ids, int64_t N, int64_t C,
                                       int64_t padding_idx);

}  // namespace kdnas
