// The CUDA backend's entry points that plain C++ code may call: start-up, "is there a usable
// GPU?", the Context's stream, and synchronisation.
//
// This header, like every kernels/cuda/*.h, includes no CUDA header: .cpp files (the op API,
// tests, benches) see only C++ declarations, raw device pointers and sizes. The CUDA types live
// in kernels/cuda/cuda_common.cuh, which only .cu files include. It exists only in builds with
// the backend (KDNAS_HAVE_CUDA); callers in other builds never reach it (route_for throws
// "op: built without CUDA" first).
//
// One Context = one CUDA stream + one cuBLAS handle + one cuBLASLt handle (CudaState, created on
// the first CUDA op that the Context runs). Kernels are asynchronous on that stream; copies
// between host and device (Tensor::to, item(), to_vector()) wait for it.
#pragma once

#include <string>

#include "kernels/context.h"

namespace kdnas {

// Registers the CUDA DeviceHooks (tensor/device.h: the caching allocator and the copies) so that
// CUDA tensors can be made. Idempotent and thread-safe; it does not touch the driver, so it is
// cheap and safe on a machine without a GPU (allocating is what then fails, with a clear
// error). Every Context constructor in a CUDA build calls it; calling it directly is harmless.
void cuda_init();

// True when the CUDA runtime finds at least one device it can use. Never crashes or throws:
// without a driver or a GPU it returns false and, when `why` is given, stores the runtime's
// reason ("cudaGetDeviceCount: cudaErrorNoDevice: no CUDA-capable device is detected"). The
// answer is computed once per process.
bool cuda_device_usable(std::string* why = nullptr);

// "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB, 132 SMs" for device `index`; throws without a device.
std::string cuda_device_description(int index = 0);

// The Context's stream as an opaque handle (a cudaStream_t), creating the CUDA state if needed.
void* cuda_stream(Context& ctx);

// Waits until every kernel and copy queued on the Context's stream has finished, and reports
// any error an asynchronous kernel raised (as a kdnas::Error naming the failing call).
void cuda_synchronize(Context& ctx);

// TF32 tensor cores for f32 GEMMs: off by default (f32 GEMMs then match the CPU reference to
// f32 tolerance); on trades ~3 decimal digits of the inputs' mantissa for ~8x throughput.
void cuda_set_allow_tf32(Context& ctx, bool allow);
bool cuda_allow_tf32(Context& ctx);

// Throws a kdnas::Error "CUDA error: <call> failed at <file>:<line>: <name>: <description>".
// What KDNAS_CUDA_CHECK / KDNAS_CUBLAS_CHECK (cuda_common.cuh) call on failure.
[[noreturn]] void cuda_fail(const char* call, const char* file, int line, const char* error_name,
                            const char* error_string);

}  // namespace kdnas
