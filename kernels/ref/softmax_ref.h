// Reference softmax and log-softmax over the last dim: the executable specification. Naive,
// single-threaded, templated on the scalar (float, or double for gradient checks). x is viewed
// as [rows, N] (attention scores [B, NH, T, T] have rows = B*NH*T, N = T); every buffer is
// contiguous.
#pragma once

#include <cstdint>

namespace kdnas {

// out[r, :] = softmax(z),  z = scale * inp[r, :] + mask[mask_rows[r] + (0 .. N-1)]
// out, inp: [rows, N] (=). mask: an additive mask whose row for x-row r starts at element
// mask_rows[r] (a broadcast mask repeats offsets: [B, 1, 1, T] gives NH*T rows per offset);
// mask == nullptr means no mask (mask_rows is then ignored).
// A row whose logits z are all -inf (fully masked with -inf) comes out uniform, 1/N: the
// limit of a finite mask value M -> -inf, and what a finite large mask (-1e9, -FLT_MAX) gives
// anyway once it swamps x. Never NaN.
template <typename T>
void softmax_forward_ref(T* out, const T* inp, const T* mask, const int64_t* mask_rows, T scale,
                         int64_t rows, int64_t N);

// Gradient w.r.t. inp, from the forward output y (the mask is a constant):
//   dinp[r, :] = scale * y * (dout - sum_n dout[r, n] * y[r, n])
// dinp, dout, out: [rows, N].
template <typename T>
void softmax_backward_ref(T* dinp, const T* dout, const T* out, T scale, int64_t rows, int64_t N);

// out[r, :] = log softmax(inp[r, :]) = inp - max - log(sum_n exp(inp[r, n] - max)).
// A row of all -inf comes out log(1/N), as softmax does.
template <typename T>
void log_softmax_forward_ref(T* out, const T* inp, int64_t rows, int64_t N);

// From the forward output y (log-probabilities): dinp = dout - exp(y) * sum_n dout[r, n].
template <typename T>
void log_softmax_backward_ref(T* dinp, const T* dout, const T* out, int64_t rows, int64_t N);

}  // namespace kdnas
