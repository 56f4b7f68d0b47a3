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
void cpu_deallocate(void* p);

}  // namespace kdnas
