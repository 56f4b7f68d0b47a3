// Stand-ins for kernels/cuda/*.cu in a build without the CUDA backend (KDNAS_HAVE_CUDA = 0).
//
// They let the op API (kernels/*.cpp) name its CUDA kernels in every build, without #if around
// each call: a CUDA tensor cannot reach them, since route_for throws "op: built without CUDA"
// first, and no CUDA tensor can even be made (no device hooks are registered). Each stub that
// could still be called directly throws that message. cuda_init() and cuda_device_usable()
// answer truthfully: there is nothing to initialise and no usable device.
//
// A kernel added to kernels/cuda/ needs its stub here; the embedded build's link says so.
#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/binary_cuda.h"
#include "kernels/cuda/cast_cuda.h"
#include "kernels/cuda/concat_cuda.h"
#include "kernels/cuda/cuda_allocator.h"
#include "kernels/cuda/cuda_context.h"
#include "kernels/cuda/dropout_cuda.h"
#include "kernels/cuda/eltwise_cuda.h"
#include "kernels/cuda/embedding_cuda.h"
#include "kernels/cuda/layer_norm_cuda.h"
#include "kernels/cuda/loss_cuda.h"
#include "kernels/cuda/matmul_cuda.h"
#include "kernels/cuda/optim_cuda.h"
#include "kernels/cuda/permute_cuda.h"
#include "kernels/cuda/reduce_cuda.h"
#include "kernels/cuda/softmax_cuda.h"
#include "tensor/check.h"

namespace kdnas {
namespace {
[[noreturn]] void no_cuda(const char* what) {
  detail::fail(detail::concat(what, ": built without CUDA"));
}
}  // namespace

// ---- context and allocator ------------------------------------------------------------------
void cuda_init() {}
bool cuda_device_usable(std::string* why) {
  if (why) *why = "kdnas was built without CUDA";
  return false;
}
std::string cuda_device_description(int) {
  no_cuda("cuda_device_description");
}
void* cuda_stream(Context&) {
  no_cuda("cuda_stream");
}
void cuda_synchronize(Context&) {
  no_cuda("cuda_synchronize");
}
void cuda_set_allow_tf32(Context&, bool) {
  no_cuda("cuda_set_allow_tf32");
}
bool cuda_allow_tf32(Context&) {
  no_cuda("cuda_allow_tf32");
}
void cuda_fail(const char* call, const char* file, int line, const char* name, const char* text) {
  detail::fail(
      detail::concat("CUDA error: ", call, " failed at ", file, ":", line, ": ", name, ": ", text));
}
CudaAllocatorStats cuda_allocator_stats(int) {
  return {};
}
void cuda_allocator_reset_peak(int) {}
void cuda_empty_cache() {}
size_t cuda_size_class(size_t) {
  no_cuda("cuda_size_class");
}
CudaBuffer::CudaBuffer(size_t, int) {
  no_cuda("CudaBuffer");
}
CudaBuffer::~CudaBuffer() = default;
CudaBuffer::CudaBuffer(CudaBuffer&&) noexcept {}
CudaBuffer& CudaBuffer::operator=(CudaBuffer&&) noexcept {
  return *this;
}

// ---- kernels --------------------------------------------------------------------------------
void attention_forward_cuda(Context&, float*, AttentionStrides, const float*, AttentionStrides,
                            const float*, AttentionStrides, const float*, AttentionStrides,
                            const float*, int64_t, int64_t, int64_t, int64_t, float) {
  no_cuda("attention");
}
void binary_forward_cuda(Context&, float*, const float*, const float*, BinaryOp, const Shape&,
                         const Shape&, const Shape&) {
  no_cuda("binary");
}
void sum_to_shape_cuda(Context&, float*, const float*, const Shape&, const Shape&, float) {
  no_cuda("sum_to_shape");
}
void cast_f32_to_bf16_cuda(Context&, bf16*, const float*, int64_t) {
  no_cuda("cast");
}
void cast_bf16_to_f32_cuda(Context&, float*, const bf16*, int64_t) {
  no_cuda("cast");
}
void cast_f32_to_f16_cuda(Context&, f16*, const float*, int64_t) {
  no_cuda("cast");
}
void cast_f16_to_f32_cuda(Context&, float*, const f16*, int64_t) {
  no_cuda("cast");
}
void cast_cuda(Context&, void*, DType, const void*, DType, int64_t) {
  no_cuda("cast");
}
uint16_t cuda_f32_to_bf16_bits(float) {
  no_cuda("cast");
}
uint16_t cuda_f32_to_f16_bits(float) {
  no_cuda("cast");
}
float cuda_f16_bits_to_f32(uint16_t) {
  no_cuda("cast");
}
void concat_cuda(Context&, void*, const std::vector<const void*>&, const std::vector<int64_t>&,
                 int64_t) {
  no_cuda("concat");
}
void split_cuda(Context&, const std::vector<void*>&, const void*, const std::vector<int64_t>&,
                int64_t) {
  no_cuda("split");
}
void dropout_forward_cuda(Context&, float*, uint8_t*, const float*, double, uint64_t, uint64_t,
                          int64_t) {
  no_cuda("dropout");
}
void dropout_backward_cuda(Context&, float*, const float*, const uint8_t*, double, int64_t) {
  no_cuda("dropout_backward");
}
uint64_t cuda_rng_hash(uint64_t, uint64_t) {
  no_cuda("dropout");
}
void gelu_forward_cuda(Context&, float*, const float*, int64_t) {
  no_cuda("gelu");
}
void gelu_backward_cuda(Context&, float*, const float*, const float*, int64_t) {
  no_cuda("gelu_backward");
}
void tanh_forward_cuda(Context&, float*, const float*, int64_t) {
  no_cuda("tanh");
}
void tanh_backward_cuda(Context&, float*, const float*, const float*, int64_t) {
  no_cuda("tanh_backward");
}
void relu_forward_cuda(Context&, float*, const float*, int64_t) {
  no_cuda("relu");
}
void relu_backward_cuda(Context&, float*, const float*, const float*, int64_t) {
  no_cuda("relu_backward");
}
void scale_forward_cuda(Context&, float*, const float*, float, int64_t) {
  no_cuda("scale");
}
void embedding_forward_cuda(Context&, float*, const int64_t*, const float*, int64_t, int64_t) {
  no_cuda("embedding");
}
void embedding_backward_cuda(Context&, float*, const float*, const int64_t*, int64_t, int64_t,
                             int64_t, int64_t) {
  no_cuda("embedding_backward");
}
void embedding_backward_accumulate_cuda(Context&, float*, const float*, const int64_t*, int64_t,
                                        int64_t, int64_t) {
  no_cuda("embedding_backward_accumulate");
}
void layer_norm_forward_cuda(Context&, float*, float*, float*, const float*, const float*,
                             const float*, int64_t, int64_t, float) {
  no_cuda("layer_norm");
}
void layer_norm_backward_cuda(Context&, float*, float*, float*, const float*, const float*,
                              const float*, const float*, const float*, int64_t, int64_t) {
  no_cuda("layer_norm_backward");
}
void mse_forward_cuda(Context&, float*, const float*, const float*, const uint8_t*, int64_t,
                      int64_t) {
  no_cuda("mse");
}
void mse_backward_cuda(Context&, float*, float*, double, const float*, const float*, const uint8_t*,
                       int64_t, int64_t) {
  no_cuda("mse_backward");
}
void cross_entropy_forward_cuda(Context&, float*, const float*, const int64_t*, int64_t, int64_t,
                                int64_t) {
  no_cuda("cross_entropy");
}
void cross_entropy_backward_cuda(Context&, float*, double, const float*, const int64_t*, int64_t,
                                 int64_t, int64_t) {
  no_cuda("cross_entropy_backward");
}
void kl_div_forward_cuda(Context&, float*, const float*, const float*, const uint8_t*, double,
                         int64_t, int64_t) {
  no_cuda("kl_div");
}
void kl_div_backward_cuda(Context&, float*, double, const float*, const float*, const uint8_t*,
                          double, int64_t, int64_t) {
  no_cuda("kl_div_backward");
}
void matmul_forward_cuda(Context&, void*, DType, const void*, const void*, DType, const float*,
                         const GemmLayout&, bool) {
  no_cuda("matmul");
}
void matmul_backward_cuda(Context&, float*, float*, const float*, const float*, const float*,
                          int64_t, int64_t, int64_t) {
  no_cuda("matmul_backward");
}
void bias_backward_cuda(Context&, float*, const float*, int64_t, int64_t) {
  no_cuda("linear_backward");
}
void adamw_update_cuda(Context&, float*, float*, float*, const float*, double, double, double,
                       double, double, int64_t, int64_t) {
  no_cuda("adamw_update");
}
void sgd_update_cuda(Context&, float*, float*, const float*, double, double, double, double, bool,
                     int64_t, int64_t) {
  no_cuda("sgd_update");
}
void rmsprop_update_cuda(Context&, float*, float*, float*, const float*, double, double, double,
                         double, double, int64_t) {
  no_cuda("rmsprop_update");
}
void permute_copy_cuda(Context&, void*, const void*, size_t, const Shape&, const Shape&,
                       const std::vector<int64_t>&) {
  no_cuda("permute_copy");
}
void sum_forward_cuda(Context&, float*, const float*, int64_t, int64_t, int64_t, double) {
  no_cuda("sum");
}
void sum_backward_cuda(Context&, float*, const float*, int64_t, int64_t, int64_t, double) {
  no_cuda("sum_backward");
}
void max_forward_cuda(Context&, float*, int64_t*, const float*, int64_t, int64_t, int64_t) {
  no_cuda("max");
}
void max_backward_cuda(Context&, float*, const float*, const int64_t*, int64_t, int64_t, int64_t) {
  no_cuda("max_backward");
}
void softmax_forward_cuda(Context&, float*, const float*, const float*, const int64_t*, float,
                          int64_t, int64_t) {
  no_cuda("softmax");
}
void softmax_backward_cuda(Context&, float*, const float*, const float*, float, int64_t, int64_t) {
  no_cuda("softmax_backward");
}
void log_softmax_forward_cuda(Context&, float*, const float*, int64_t, int64_t) {
  no_cuda("log_softmax");
}
void log_softmax_backward_cuda(Context&, float*, const float*, const float*, int64_t, int64_t) {
  no_cuda("log_softmax_backward");
}

}  // namespace kdnas
