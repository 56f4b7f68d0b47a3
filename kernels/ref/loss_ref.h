// Reference losses: the executable specification of mse, cross_entropy and kl_div, forward and
// backward. Naive, single-threaded, templated on the scalar (float, or double for gradient
// checks). Every sum is accumulated in double: a loss is a reduction over up to B*T*V terms
// (8 * 128 * 250002 for XLM-R's vocabulary), which in f32 would lose digits to rounding.
//
// Each forward writes its scalar to loss[0] (=); each backward overwrites its gradient buffers
// (=) given the upstream gradient of the scalar, dloss. row_mask (nullptr = every row) holds one
// byte per row, 1 = the row counts, 0 = it does not (the op API validates it).
#pragma once

#include <cstdint>

namespace kdnas {

// ---- mean squared error --------------------------------------------------------------------
// loss = sum over selected rows r and all c of (pred[r, c] - target[r, c])^2 / (rows * C),
// rows = the number of selected rows (> 0).
//   pred, target [R, C] (R: every dim but the last, flattened), row_mask [R]
template <typename T>
void mse_forward_ref(T* loss, const T* pred, const T* target, const uint8_t* row_mask, int64_t R,
                     int64_t C);
// dpred = dloss * 2 (pred - target) / (rows * C) on selected rows, 0 elsewhere; dtarget = -dpred
//   dpred, dtarget [R, C] (=)
template <typename T>
void mse_backward_ref(T* dpred, T* dtarget, double dloss, const T* pred, const T* target,
                      const uint8_t* row_mask, int64_t R, int64_t C);

// ---- cross-entropy over a vocabulary ---------------------------------------------------------
// loss = mean over rows n with targets[n] != ignore_index of -log softmax(logits[n])[targets[n]]
//      = logsumexp(logits[n]) - logits[n, targets[n]];   0 when every row is ignored.
//   logits [N, V], targets [N] with values in [0, V) or equal to ignore_index
template <typename T>
void cross_entropy_forward_ref(T* loss, const T* logits, const int64_t* targets,
                               int64_t ignore_index, int64_t N, int64_t V);
// dlogits[n, v] = dloss * (softmax(logits[n])[v] - [v == targets[n]]) / count on counted rows,
// 0 on ignored rows (count = the number of rows not ignored).
//   dlogits [N, V] (=)
template <typename T>
void cross_entropy_backward_ref(T* dlogits, double dloss, const T* logits, const int64_t* targets,
                                int64_t ignore_index, int64_t N, int64_t V);

// ---- distillation KL divergence (Hinton et al. 2015) --------------------------------------
// With temperature tau, p = softmax(teacher[n] / tau) and q = softmax(student[n] / tau):
//   loss = tau^2 / rows * sum over selected rows n of KL(p || q) = sum_v p_v (log p_v - log q_v)
// The tau^2 keeps the gradient's magnitude independent of tau (the gradient of KL alone
// scales as 1 / tau). rows = the number of selected rows (> 0).
//   student, teacher [N, V], row_mask [N]
template <typename T>
void kl_div_forward_ref(T* loss, const T* student, const T* teacher, const uint8_t* row_mask,
                        double tau, int64_t N, int64_t V);
// dstudent = dloss * tau * (q - p) / rows on selected rows, 0 elsewhere (the teacher is a
// constant: no gradient flows to it).
//   dstudent [N, V] (=)
template <typename T>
void kl_div_backward_ref(T* dstudent, double dloss, const T* student, const T* teacher,
                         const uint8_t* row_mask, double tau, int64_t N, int64_t V);

}  // namespace kdnas
