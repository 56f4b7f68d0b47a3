// The precision of the training GEMMs: mixed-precision training's one switch.
//
// Under a GemmPrecisionScope(GemmPrecision::BF16), autograd's matmul and linear
// (autograd/functions.h) round their f32 operands to bf16 and run all three GEMMs of the op (the
// forward and both backward products) as bf16 x bf16 -> f32, with f32 accumulation: on oneDNN
// that is the AVX512-BF16 or AMX kernel (`brg:avx512_core_amx_bf16` where the CPU has AMX),
// on cuBLASLt its bf16 GEMM, and on the Ref and Omp kernels (the embedded build) the operands
// are widened back to f32, so the result is the same rounding of the inputs, only not faster.
// Everything else stays f32: the weights, their gradients and the optimizer state (the master
// copies), the activations and the gradients flowing between ops, the bias add and every
// non-GEMM op. What bf16 changes is only the 8-bit mantissa of the two GEMM inputs, and each
// op's node saves its bf16 copies (half the bytes of the f32 values the f32 path keeps).
//
// Why a scoped per-thread setting and not an argument: the encoder, its heads and the
// distillation losses call matmul/linear in many places, and the trainers own the choice; a
// scope set around a trainer's forward reaches all of them without threading a flag through
// the model code, exactly as NoGradGuard does for grad mode. The backward does not read the
// setting: each node records the precision its forward ran in, so backward() may run outside
// the scope and still repeats the forward's choice. The setting is per thread (OpenMP workers
// never call autograd), f32 by default, and f64 operands (gradient checks) ignore it.
#pragma once

#include <string>

#include "tensor/check.h"

namespace kdnas {

enum class GemmPrecision : unsigned char {
  F32,   // f32 operands, f32 GEMMs (the default)
  BF16,  // f32 operands rounded to bf16; bf16 x bf16 -> f32 GEMMs
};

namespace detail {
inline thread_local GemmPrecision g_gemm_precision = GemmPrecision::F32;
}

// The calling thread's training GEMM precision.
inline GemmPrecision gemm_precision() {
  return detail::g_gemm_precision;
}

// Sets the calling thread's precision until the scope ends (then the previous one again).
class GemmPrecisionScope {
 public:
  explicit GemmPrecisionScope(GemmPrecision p) : previous_(detail::g_gemm_precision) {
    detail::g_gemm_precision = p;
  }
  ~GemmPrecisionScope() { detail::g_gemm_precision = previous_; }
  GemmPrecisionScope(const GemmPrecisionScope&) = delete;
  GemmPrecisionScope& operator=(const GemmPrecisionScope&) = delete;

 private:
  GemmPrecision previous_;
};

// "f32" / "bf16", as the --precision flag and the saved training options spell them.
inline const char* gemm_precision_name(GemmPrecision p) {
  return p == GemmPrecision::BF16 ? "bf16" : "f32";
}

// The precision `name` spells; anything else is a kdnas::Error of one line naming `what`
// (the flag, or the command reading a saved option) and the accepted values.
inline GemmPrecision parse_gemm_precision(const std::string& name, const std::string& what) {
  if (name == "f32") return GemmPrecision::F32;
  KDNAS_CHECK(name == "bf16", what, " '", name, "': not a training precision (f32 or bf16)");
  return GemmPrecision::BF16;
}

}  // namespace kdnas
