// Reference dtype conversion: the executable specification of cast. out[n] (=) in[n]
// converted, one element at a time, through tensor/dtype.h's scalar conversions.
#pragma once

#include <cstdint>

#include "tensor/dtype.h"

namespace kdnas {

// Dst, Src in {float, double, bf16, f16}. Conversions to bf16 and f16 go through f32 (round to
// nearest even), matching Tensor::to.
template <typename Dst, typename Src>
void cast_ref(Dst* out, const Src* in, int64_t n);

}  // namespace kdnas
