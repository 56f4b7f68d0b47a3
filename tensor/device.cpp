#include "tensor/device.h"

#include <cstdlib>
#include <cstring>

#include "tensor/check.h"

namespace kdnas {

std::string Device::str() const {
  return type == DeviceType::CPU ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device{};
  if (s == "cuda") return Device{DeviceType::CUDA, 0};
  if (s.rfind("cuda:", 0) == 0) {
    const std::string idx = s.substr(5);
    KDNAS_CHECK(!idx.empty() && idx.find_first_not_of("0123456789") == std::string::npos,
                "device: bad device '", s, "' (expected cpu, cuda or cuda:N)");
    return Device{DeviceType::CUDA, std::stoi(idx)};
  }
  detail::fail(detail::concat("device: bad device '", s, "' (expected cpu, cuda or cuda:N)"));
}

namespace {
// One slot per non-CPU device type, written once by a backend's registration at start-up.
DeviceHooks* g_cuda_hooks = nullptr;
}  // namespace

void register_device_hooks(DeviceType type, DeviceHooks* hooks) {
  KDNAS_CHECK(type == DeviceType::CUDA, "register_device_hooks: only CUDA takes hooks");
  g_cuda_hooks = hooks;
}

bool device_available(DeviceType type) {
  return type == DeviceType::CPU || g_cuda_hooks != nullptr;
}

DeviceHooks& device_hooks(DeviceType type) {
  KDNAS_CHECK(type == DeviceType::CUDA && g_cuda_hooks != nullptr,
              "device: no backend for cuda in this build (built without CUDA, or no GPU)");
  return *g_cuda_hooks;
}

void* cpu_allocate(size_t nbytes) {
  // aligned_alloc wants a size that is a multiple of the alignment; zero bytes still gets a
  // valid pointer so that empty tensors have storage like any other.
  size_t rounded = (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
  if (rounded == 0) rounded = kCpuAlignment;
  void* p = std::aligned_alloc(kCpuAlignment, rounded);
  KDNAS_CHECK(p != nullptr, "out of memory allocating ", nbytes, " bytes");
  return p;
}

void cpu_deallocate(void* p) {
  std::free(p);
}

}  // namespace kdnas
