// The teacher the nas tests search under: XLM-R Base with the tiny test config's vocabulary and
// positions, so that building and timing its students stays cheap.
#pragma once

#include "transformer/config.h"

namespace kdnas::test {

inline EncoderConfig tiny_teacher() {
  EncoderConfig t = xlmr_base();
  t.vocab_size = 1000;
  t.max_position_embeddings = 130;
  return t;
}

}  // namespace kdnas::test
