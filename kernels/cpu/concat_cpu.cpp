// Concat and split are pure copies: the only cost is memory traffic, one read and one write of
// every byte. Each row of the big tensor is a sequence of segments (one per piece), so the big
// tensor's bytes are split into equal contiguous ranges, one per thread, and each range is walked
// segment by segment with memcpy. Balanced whatever the shapes: concat along dim 0 (one row of
// large segments) and along the last dim (many rows of small ones) split the same way.
#include "kernels/cpu/concat_cpu.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/parallel.h"

namespace kdnas {
namespace {

constexpr int64_t kGrainBytes = 1 << 16;  // below this, one thread is faster than waking two

// Copies between the big tensor and the pieces; to_big: concat, else split.
void move_segments(Context& ctx, char* big, const std::vector<char*>& pieces,
                   const std::vector<int64_t>& seg, int64_t outer, bool to_big) {
  std::vector<int64_t> start(seg.size() + 1, 0);  // segment k's offset inside a big row
  for (size_t k = 0; k < seg.size(); ++k) start[k + 1] = start[k] + seg[k];
  const int64_t row = start.back();
  if (row == 0) return;
  parallel_for(ctx, outer * row, kGrainBytes, [&](int64_t b, int64_t e) {
    int64_t o = b / row, off = b % row;
    size_t k = size_t(std::upper_bound(start.begin(), start.end(), off) - start.begin()) - 1;
    for (int64_t p = b; p < e;) {
      const int64_t in_seg = off - start[k];
      const int64_t n = std::min(seg[k] - in_seg, e - p);
      char* piece = pieces[k] + o * seg[k] + in_seg;
      if (to_big)
        std::memcpy(big + p, piece, size_t(n));
      else
        std::memcpy(piece, big + p, size_t(n));
      p += n;
      off += n;
      if (off == start[k + 1]) {  // next segment (an empty one passes with n = 0), or next row
        if (++k == seg.size()) {
          k = 0;
          off = 0;
          ++o;
        }
      }
    }
  });
}

}  // namespace

void concat_cpu(Context& ctx, void* out, const std::vector<const void*>& xs,
                const std::vector<int64_t>& seg_bytes, int64_t outer) {
  std::vector<char*> pieces;
  for (const void* x : xs) pieces.push_back(static_cast<char*>(const_cast<void*>(x)));
  move_segments(ctx, static_cast<char*>(out), pieces, seg_bytes, outer, true);
}

void split_cpu(Context& ctx, const std::vector<void*>& outs, const void* x,
               const std::vector<int64_t>& seg_bytes, int64_t outer) {
  std::vector<char*> pieces;
  for (void* p : outs) pieces.push_back(static_cast<char*>(p));
  move_segments(ctx, static_cast<char*>(const_cast<void*>(x)), pieces, seg_bytes, outer, false);
}

}  // namespace kdnas
