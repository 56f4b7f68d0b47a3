// The CUDA backend's start-up and per-Context state: device detection that cannot crash, the
// error reporting behind KDNAS_CUDA_CHECK, the stream + cuBLAS/cuBLASLt handles of a Context,
// and the per-thread current stream the allocator tags blocks with.
#include <cstdio>
#include <utility>

#include "kernels/cuda/cuda_common.cuh"
#include "tensor/check.h"

namespace kdnas {

void cuda_fail(const char* call, const char* file, int line, const char* error_name,
               const char* error_string) {
  detail::fail(detail::concat("CUDA error: ", call, " failed at ", file, ":", line, ": ",
                              error_name ? error_name : "?", ": ",
                              error_string ? error_string : "?"));
}

namespace {

// A kernel that proves the device runs our code: the driver is new enough for this runtime and
// the binary holds machine code or PTX for the device's architecture. cudaGetDeviceCount alone
// says neither.
__global__ void probe_kernel(int* flag) {
  *flag = 42;
}

std::pair<bool, std::string> detect_device() {
  auto failed = [](const char* what, cudaError_t e) {
    cudaGetLastError();  // clear a non-sticky error so later calls start clean
    return std::pair<bool, std::string>(
        false, detail::concat(what, ": ", cudaGetErrorName(e), ": ", cudaGetErrorString(e)));
  };
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) return failed("cudaGetDeviceCount", e);
  if (count == 0) return {false, "cudaGetDeviceCount found no device"};
  int* flag = nullptr;
  if ((e = cudaMalloc(&flag, sizeof(int))) != cudaSuccess) return failed("cudaMalloc", e);
  probe_kernel<<<1, 1>>>(flag);
  int host = 0;
  e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaMemcpy(&host, flag, sizeof(int), cudaMemcpyDeviceToHost);
  cudaFree(flag);
  if (e != cudaSuccess) return failed("probe kernel", e);
  if (host != 42) return {false, "probe kernel ran but wrote a wrong value"};
  return {true, ""};
}

// The stream current on this thread; nullptr is the legacy default stream.
thread_local cudaStream_t t_current_stream = nullptr;

}  // namespace

bool cuda_device_usable(std::string* why) {
  static const std::pair<bool, std::string> result = detect_device();
  if (why) *why = result.second;
  return result.first;
}

std::string cuda_device_description(int index) {
  std::string why;
  KDNAS_CHECK(cuda_device_usable(&why), "cuda: no usable CUDA device (", why, ")");
  cudaDeviceProp p{};
  KDNAS_CUDA_CHECK(cudaGetDeviceProperties(&p, index));
  char buf[320];
  std::snprintf(buf, sizeof buf, "%s, sm_%d%d, %.1f GiB, %d SMs", p.name, p.major, p.minor,
                double(p.totalGlobalMem) / double(1u << 30), p.multiProcessorCount);
  return buf;
}

Dims make_dims(const char* what, const int64_t* shape, int nd, const int64_t* s0,
               const int64_t* s1) {
  Dims d;
  for (int k = 0; k < nd; ++k) {
    if (shape[k] == 1) continue;
    const int64_t a = s0[k], b = s1 ? s1[k] : 0;
    // Merge into the previous kept dim when stepping it is the same as wrapping this one.
    if (d.nd > 0 && d.stride[0][d.nd - 1] == a * shape[k] &&
        d.stride[1][d.nd - 1] == b * shape[k]) {
      d.size[d.nd - 1] *= shape[k];
      d.stride[0][d.nd - 1] = a;
      d.stride[1][d.nd - 1] = b;
      continue;
    }
    KDNAS_CHECK(d.nd < kMaxDims, what, ": more than ", kMaxDims,
                " dims that cannot be merged; the CUDA kernel takes at most that many");
    d.size[d.nd] = shape[k];
    d.stride[0][d.nd] = a;
    d.stride[1][d.nd] = b;
    ++d.nd;
  }
  return d;
}

cudaStream_t cuda_current_stream() {
  return t_current_stream;
}

void cuda_make_current(cudaStream_t s) {
  if (s == t_current_stream) return;
  // Work queued on the old stream may still use blocks that are tagged with it, or that are
  // tagged with the new stream but were handed to the old one (a tensor made under one Context
  // and used under another). Waiting here makes every such block idle before the new stream can
  // be handed it. Switching Contexts on a thread is rare, so this costs nothing in a loop.
  if (t_current_stream == nullptr || cuda_allocator_stream_live(t_current_stream))
    KDNAS_CUDA_CHECK(cudaStreamSynchronize(t_current_stream));
  t_current_stream = s;
}

LtPlan::~LtPlan() {
  // Destructors must not throw; a failure to destroy a descriptor only leaks it.
  if (layout_a) cublasLtMatrixLayoutDestroy(layout_a);
  if (layout_b) cublasLtMatrixLayoutDestroy(layout_b);
  if (layout_d) cublasLtMatrixLayoutDestroy(layout_d);
  if (desc) cublasLtMatmulDescDestroy(desc);
}

CudaState::CudaState() {
  std::string why;
  KDNAS_CHECK(cuda_device_usable(&why), "cuda: no usable CUDA device (", why, ")");
  try {
    KDNAS_CUDA_CHECK(cudaGetDevice(&device));
    KDNAS_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device));
    // A blocking stream (not cudaStreamNonBlocking): it also orders against the legacy default
    // stream, which is what plain cudaMemcpy and third-party code use.
    KDNAS_CUDA_CHECK(cudaStreamCreate(&stream));
    cuda_allocator_add_stream(stream);
    KDNAS_CUBLAS_CHECK(cublasCreate(&cublas));
    KDNAS_CUBLAS_CHECK(cublasSetStream(cublas, stream));
    // Default math: no TF32 for f32 GEMMs unless the Context asks for it (cuda_set_allow_tf32).
    KDNAS_CUBLAS_CHECK(cublasSetMathMode(cublas, CUBLAS_DEFAULT_MATH));
    KDNAS_CUBLAS_CHECK(cublasLtCreate(&cublaslt));
    KDNAS_CUDA_CHECK(cudaMalloc(&lt_workspace, lt_workspace_bytes));
  } catch (...) {
    release();  // a constructor that throws gets no destructor call
    throw;
  }
}

CudaState::~CudaState() {
  release();
}

void CudaState::release() noexcept {
  // Nothing here may throw. Wait for the stream first: its queued kernels may still use the
  // workspace and cached blocks.
  if (stream) cudaStreamSynchronize(stream);
  lt_plans.clear();
  if (lt_workspace) cudaFree(lt_workspace);
  if (cublaslt) cublasLtDestroy(cublaslt);
  if (cublas) cublasDestroy(cublas);
  if (stream) {
    cuda_allocator_retire_stream(stream);
    if (t_current_stream == stream) t_current_stream = nullptr;
    cudaStreamDestroy(stream);
  }
  lt_workspace = nullptr;
  cublaslt = nullptr;
  cublas = nullptr;
  stream = nullptr;
}

CudaState& cuda_state(Context& ctx) {
  auto* st = static_cast<CudaState*>(ctx.state(Context::kCudaSlot));
  if (st == nullptr) {
    cuda_init();
    auto fresh = std::make_unique<CudaState>();
    st = fresh.get();
    ctx.set_state(Context::kCudaSlot, std::move(fresh));
  }
  cuda_make_current(st->stream);
  return *st;
}

void* cuda_stream(Context& ctx) {
  return cuda_state(ctx).stream;
}

void cuda_synchronize(Context& ctx) {
  KDNAS_CUDA_CHECK(cudaStreamSynchronize(stream_of(ctx)));
}

void cuda_set_allow_tf32(Context& ctx, bool allow) {
  CudaState& st = cuda_state(ctx);
  st.allow_tf32 = allow;
  st.lt_plans.clear();  // plans were made for the other compute type
  KDNAS_CUBLAS_CHECK(
      cublasSetMathMode(st.cublas, allow ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

bool cuda_allow_tf32(Context& ctx) {
  return cuda_state(ctx).allow_tf32;
}

}  // namespace kdnas
