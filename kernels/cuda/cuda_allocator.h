// The caching device allocator behind every CUDA tensor (registered as tensor/device.h's
// DeviceHooks for DeviceType::CUDA by cuda_init()).
//
// Why cache: cudaMalloc and cudaFree cost tens of microseconds to milliseconds and cudaFree
// synchronises the whole device, while a training step allocates and frees hundreds of
// activation tensors. Freed blocks therefore go to a free list and the next request of the same
// size class reuses them; cudaMalloc is called only on a miss (and, when it runs out of memory,
// once more after returning every cached block to the driver).
//
// Size classes: a request is rounded up to a multiple of 512 bytes below 1 MiB, and above that
// to the next of four steps per power of two (1, 1.25, 1.5, 1.75 x 2^k). A block is reused only
// for its own class, so at most 25% of a large block is slack, and lookup is one map find.
//
// Streams: a block remembers the stream that was current on the allocating thread (the stream of
// the Context that last ran a CUDA op there, or the legacy default stream) and is reused only
// for that stream, where stream order makes reuse safe without events. When a thread switches
// from one Context's stream to another's, the old stream is synchronised first (see
// cuda_context.cu), so a tensor made under one Context and used under another cannot be reused
// while the other stream still reads it. Tensors shared between threads that use different
// Contexts concurrently must be synchronised by the caller (cuda_synchronize).
//
// Plain C++ header: no CUDA types.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kdnas {

struct CudaAllocatorStats {
  size_t in_use_bytes = 0;       // in blocks handed out (rounded sizes)
  size_t peak_in_use_bytes = 0;  // maximum of in_use_bytes since start or reset_peak
  size_t cached_bytes = 0;       // in free blocks kept for reuse
  size_t reserved_bytes = 0;     // obtained from cudaMalloc and not yet freed = in use + cached
  int64_t allocations = 0;       // requests served
  int64_t cache_hits = 0;        // requests served from a free list
  int64_t device_mallocs = 0;    // cudaMalloc calls that succeeded
  int64_t device_frees = 0;      // cudaFree calls (empty_cache, out-of-memory retries)
};

// The statistics of device `index` (all counters are since process start).
CudaAllocatorStats cuda_allocator_stats(int index = 0);
void cuda_allocator_reset_peak(int index = 0);

// Returns every cached free block of every device to the driver (after synchronising the
// device, since a cached block may still be the target of queued work). Blocks in use stay.
void cuda_empty_cache();

// The size class a request of nbytes is served from (>= 512 and >= nbytes). Pure arithmetic,
// exposed for tests.
size_t cuda_size_class(size_t nbytes);

// Device memory for a kernel's scratch space, from the caching allocator, for the current stream;
// freed (returned to the cache) when it goes out of scope. Not copyable.
class CudaBuffer {
 public:
  CudaBuffer() = default;
  CudaBuffer(size_t nbytes, int index = 0);
  ~CudaBuffer();
  CudaBuffer(CudaBuffer&& o) noexcept;
  CudaBuffer& operator=(CudaBuffer&& o) noexcept;
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;

  void* data() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  size_t nbytes() const { return nbytes_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  int index_ = 0;
};

}  // namespace kdnas
