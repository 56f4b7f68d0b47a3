// The caching device allocator and the CUDA DeviceHooks (design: cuda_allocator.h).
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kernels/cuda/cuda_allocator.h"
#include "kernels/cuda/cuda_common.cuh"
#include "tensor/check.h"
#include "tensor/device.h"

namespace kdnas {

size_t cuda_size_class(size_t nbytes) {
  constexpr size_t kSmallStep = 512, kLarge = size_t(1) << 20;
  if (nbytes <= kLarge)
    return nbytes == 0 ? kSmallStep : (nbytes + kSmallStep - 1) / kSmallStep * kSmallStep;
  if (nbytes > (size_t(1) << 62)) return nbytes;  // no GPU has this; let cudaMalloc refuse it
  // Four steps per power of two: step = 2^k / 4 for 2^k <= nbytes < 2^(k+1).
  size_t pow2 = kLarge;
  while (pow2 * 2 <= nbytes) pow2 *= 2;
  const size_t step = pow2 / 4;
  return (nbytes + step - 1) / step * step;
}

namespace {

// Makes device `index` current for the scope (allocations and frees act on the current device).
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    if (cudaGetDevice(&old_) == cudaSuccess && old_ != index) {
      KDNAS_CUDA_CHECK(cudaSetDevice(index));
      switched_ = true;
    }
  }
  ~DeviceGuard() {
    if (switched_) cudaSetDevice(old_);
  }

 private:
  int old_ = 0;
  bool switched_ = false;
};

class CachingAllocator {
 public:
  void* allocate(size_t nbytes, int index, cudaStream_t stream) {
    std::string why;
    KDNAS_CHECK(cuda_device_usable(&why), "cuda: cannot allocate ", nbytes,
                " bytes on cuda:", index, ": no usable CUDA device (", why, ")");
    const size_t size = cuda_size_class(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    Device& d = device(index);
    if (stream != nullptr && live_streams_.count(stream) == 0) stream = nullptr;
    ++d.stats.allocations;
    void* p = nullptr;
    auto it = d.free.find({stream, size});
    if (it != d.free.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      d.stats.cached_bytes -= size;
      ++d.stats.cache_hits;
    } else {
      p = device_malloc(d, index, size, nbytes);
    }
    d.live[p] = Block{size, stream};
    d.stats.in_use_bytes += size;
    if (d.stats.in_use_bytes > d.stats.peak_in_use_bytes)
      d.stats.peak_in_use_bytes = d.stats.in_use_bytes;
    return p;
  }

  // Called from ~Storage: must not throw. An unknown pointer is ignored (it cannot come from a
  // tensor, since every CUDA Storage was allocated here).
  void deallocate(void* p, int index) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    if (index < 0 || size_t(index) >= devices_.size()) return;
    Device& d = devices_[size_t(index)];
    auto it = d.live.find(p);
    if (it == d.live.end()) return;
    Block b = it->second;
    d.live.erase(it);
    // A retired stream's blocks go to the default stream's list (its work has finished).
    if (b.stream != nullptr && live_streams_.count(b.stream) == 0) b.stream = nullptr;
    d.free[{b.stream, b.size}].push_back(p);
    d.stats.in_use_bytes -= b.size;
    d.stats.cached_bytes += b.size;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < devices_.size(); ++i) {
      DeviceGuard guard(static_cast<int>(i));
      KDNAS_CUDA_CHECK(cudaDeviceSynchronize());
      release_cached(devices_[i]);
    }
  }

  CudaAllocatorStats stats(int index) {
    std::lock_guard<std::mutex> lock(mu_);
    return index >= 0 && size_t(index) < devices_.size() ? devices_[size_t(index)].stats
                                                         : CudaAllocatorStats{};
  }
  void reset_peak(int index) {
    std::lock_guard<std::mutex> lock(mu_);
    Device& d = device(index);
    d.stats.peak_in_use_bytes = d.stats.in_use_bytes;
  }

  void add_stream(cudaStream_t s) {
    std::lock_guard<std::mutex> lock(mu_);
    live_streams_.insert(s);
  }
  void retire_stream(cudaStream_t s) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    live_streams_.erase(s);
    for (Device& d : devices_) {
      for (auto it = d.free.begin(); it != d.free.end();) {
        if (it->first.first != s) {
          ++it;
          continue;
        }
        auto& dst = d.free[{nullptr, it->first.second}];
        dst.insert(dst.end(), it->second.begin(), it->second.end());
        it = d.free.erase(it);
      }
    }
  }
  bool stream_live(cudaStream_t s) {
    std::lock_guard<std::mutex> lock(mu_);
    return live_streams_.count(s) != 0;
  }

 private:
  struct Block {
    size_t size;          // the size class
    cudaStream_t stream;  // the stream it may be reused on
  };
  struct Device {
    std::unordered_map<void*, Block> live;
    std::map<std::pair<cudaStream_t, size_t>, std::vector<void*>> free;
    CudaAllocatorStats stats;
  };

  Device& device(int index) {
    KDNAS_CHECK(index >= 0 && index < 1024, "cuda: bad device index ", index);
    if (size_t(index) >= devices_.size()) devices_.resize(size_t(index) + 1);
    return devices_[size_t(index)];
  }

  // cudaMalloc, and on failure once more after giving every cached block of the device back to
  // the driver (a cache full of the wrong size classes must not cause an out-of-memory error).
  void* device_malloc(Device& d, int index, size_t size, size_t requested) {
    DeviceGuard guard(index);
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation && d.stats.cached_bytes > 0) {
      cudaGetLastError();  // clear it before retrying
      KDNAS_CUDA_CHECK(cudaDeviceSynchronize());
      release_cached(d);
      e = cudaMalloc(&p, size);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      detail::fail(detail::concat("cuda: out of memory allocating ", requested,
                                  " bytes on cuda:", index, " (", cudaGetErrorString(e), "; ",
                                  d.stats.in_use_bytes, " bytes in use by tensors)"));
    }
    ++d.stats.device_mallocs;
    d.stats.reserved_bytes += size;
    return p;
  }

  // Frees every cached block of d (caller holds the lock and has synchronised the device).
  void release_cached(Device& d) {
    for (auto& [key, blocks] : d.free) {
      for (void* p : blocks) {
        KDNAS_CUDA_CHECK(cudaFree(p));
        ++d.stats.device_frees;
        d.stats.reserved_bytes -= key.second;
        d.stats.cached_bytes -= key.second;
      }
    }
    d.free.clear();
  }

  std::mutex mu_;
  std::vector<Device> devices_;
  std::set<cudaStream_t> live_streams_;
};

// Never destroyed: tensors in static objects may be freed during process exit, after any static
// allocator would have been torn down; the driver reclaims device memory at exit anyway.
CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

class CudaDeviceHooks final : public DeviceHooks {
 public:
  void* allocate(size_t nbytes, int index) override {
    return allocator().allocate(nbytes, index, cuda_current_stream());
  }
  void deallocate(void* p, size_t, int index) override { allocator().deallocate(p, index); }

  // Runs on this thread's current stream, so it is ordered after the kernels that produced src.
  // cudaMemcpyDefault lets unified addressing tell host from device pointers.
  void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) override {
    if (nbytes == 0) return;
    const cudaStream_t s = cuda_current_stream();
    if (!dst_dev.is_cpu() && !src_dev.is_cpu() && dst_dev.index != src_dev.index) {
      KDNAS_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_dev.index, src, src_dev.index, nbytes, s));
    } else {
      DeviceGuard guard(dst_dev.is_cpu() ? src_dev.index : dst_dev.index);
      KDNAS_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, s));
    }
    // A copy that touches host memory is waited for: the host may read the destination, or
    // free the (pageable) source, as soon as Tensor::copy_ returns. CUDA documents that a copy
    // from pageable memory returns once the bytes are staged, but waiting does not depend on
    // how a driver stages them, and host <-> device copies are rare (weights, inputs, results).
    if (dst_dev.is_cpu() || src_dev.is_cpu()) KDNAS_CUDA_CHECK(cudaStreamSynchronize(s));
  }
};

}  // namespace

void cuda_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    static CudaDeviceHooks* hooks = new CudaDeviceHooks();
    register_device_hooks(DeviceType::CUDA, hooks);
  });
}

CudaAllocatorStats cuda_allocator_stats(int index) {
  return allocator().stats(index);
}
void cuda_allocator_reset_peak(int index) {
  allocator().reset_peak(index);
}
void cuda_empty_cache() {
  allocator().empty_cache();
}

void cuda_allocator_add_stream(cudaStream_t s) {
  allocator().add_stream(s);
}
void cuda_allocator_retire_stream(cudaStream_t s) {
  allocator().retire_stream(s);
}
bool cuda_allocator_stream_live(cudaStream_t s) {
  return allocator().stream_live(s);
}

CudaBuffer::CudaBuffer(size_t nbytes, int index)
    : data_(allocator().allocate(nbytes, index, cuda_current_stream())),
      nbytes_(nbytes),
      index_(index) {}

CudaBuffer::~CudaBuffer() {
  if (data_) allocator().deallocate(data_, index_);
}

CudaBuffer::CudaBuffer(CudaBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), nbytes_(o.nbytes_), index_(o.index_) {}

CudaBuffer& CudaBuffer::operator=(CudaBuffer&& o) noexcept {
  if (this != &o) {
    if (data_) allocator().deallocate(data_, index_);
    data_ = std::exchange(o.data_, nullptr);
    nbytes_ = o.nbytes_;
    index_ = o.index_;
  }
  return *this;
}

}  // namespace kdnas
