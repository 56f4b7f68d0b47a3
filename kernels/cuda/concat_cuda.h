// CUDA concat and split. Same layout as kernels/cpu/concat_cpu.h, counted in bytes: row o of
// the big tensor is the pieces' rows o side by side, piece k contributing seg_bytes[k] bytes.
// Outputs are overwritten (=). Any dtype. Device pointers (host vectors of them).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/context.h"

namespace kdnas {

// out [outer, sum seg_bytes] <- xs[k] [outer, seg_bytes[k]]
void concat_cuda(Context& ctx, void* out, const std::vector<const void*>& xs,
                 const std::vector<int64_t>& seg_bytes, int64_t outer);

// outs[k] [outer, seg_bytes[k]] <- x [outer, sum seg_bytes]
void split_cuda(Context& ctx, const std::vector<void*>& outs, const void* x,
                const std::vector<int64_t>& seg_bytes, int64_t outer);

}  // namespace kdnas
