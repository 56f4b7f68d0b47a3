// Where a tensor's bytes live, and the hooks through which a backend provides its memory.
//
// tensor/ never includes a CUDA header. The CUDA backend (kernels/cuda/) registers a
// DeviceHooks object for DeviceType::CUDA when it is compiled in; until then any attempt to
// allocate CUDA memory fails with a clear message.
#pragma once

#include <cstddef>
#include <string>

namespace kdnas {

enum class DeviceType : unsigned char { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  std::string str() const;  // "cpu", "cuda:0"
};

inline Device cpu_device() {
  return Device{};
}
Device parse_device(const std::string& s);  // "cpu", "cuda", "cuda:1"

// Memory services of one device type. Copies name both devices; a backend handles any copy
// that touches its device (host<->device and device<->device).
struct DeviceHooks {
  virtual ~DeviceHooks() = default;
  virtual void* allocate(size_t nbytes, int index) = 0;
  virtual void deallocate(void* p, size_t nbytes, int index) = 0;
  virtual void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) = 0;
};

// Registers the hooks for a non-CPU device type (the CPU's are built in). Not thread-safe:
// call it once at start-up, as the backend's registration does.
void register_device_hooks(DeviceType type, DeviceHooks* hooks);
// The hooks for a device type; throws "no backend for cuda in this build" when none registered.
DeviceHooks& device_hooks(DeviceType type);
bool device_available(DeviceType type);

// 64-byte aligned host memory: the alignment AVX-512 loads and oneDNN like best.
constexpr size_t kCpuAlignment = 64;
void* cpu_allocate(size_t nbytes);
// nbytes: what was asked of cpu_allocate for p.
void cpu_deallocate(void* p, size_t nbytes);

// The host block cache (tensor/device.cpp). Blocks of at least kCpuCacheMinBytes are kept when
// freed, up to a limit in bytes, and handed out again for a request of the same rounded size:
// without it glibc returns every large block to the kernel on free (mmap/munmap), so each
// forward pass page-faults its activations in again. The limit is KDNAS_CPU_CACHE_MB (MiB;
// 0 turns the cache off) read at the first large allocation, default 1024 (at most an eighth of
// the machine's memory); builds with AddressSanitizer start with it off so that use-after-free
// stays visible.
constexpr size_t kCpuCacheMinBytes = size_t(256) << 10;
struct CpuCacheStats {
  size_t limit_bytes = 0;   // 0: off
  size_t cached_bytes = 0;  // free blocks held now
  size_t cached_blocks = 0;
  size_t hits = 0;          // large allocations served from the cache
  size_t misses = 0;        // large allocations that went to the system
  size_t evictions = 0;     // cached blocks given back to make room
};
CpuCacheStats cpu_cache_stats();
// Sets the limit (0: off) and gives back whatever is cached beyond it; returns the old limit.
size_t cpu_cache_set_limit(size_t bytes);
// Gives every cached block back to the system.
void cpu_cache_release();

}  // namespace kdnas
