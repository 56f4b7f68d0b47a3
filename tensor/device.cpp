#include "tensor/device.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

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

namespace {

size_t round_to_alignment(size_t nbytes) {
  // aligned_alloc wants a size that is a multiple of the alignment; zero bytes still gets a
  // valid pointer so that empty tensors have storage like any other.
  const size_t rounded = (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
  return rounded == 0 ? kCpuAlignment : rounded;
}

void* system_allocate(size_t rounded, size_t nbytes) {
  void* p = std::aligned_alloc(kCpuAlignment, rounded);
  KDNAS_CHECK(p != nullptr, "out of memory allocating ", nbytes, " bytes");
  return p;
}

// The block cache. Large blocks are rounded up to 64 KiB so that sizes that differ by a little
// (a last partial batch) can share blocks; a free block goes to the list of its rounded size.
// When the cache is full, the blocks freed longest ago are given back first. One mutex: large
// blocks are rare next to the work done on them (a 256 KiB block is 64k floats).
constexpr size_t kCacheGranule = size_t(64) << 10;

#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kDefaultLimitMiB = 0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr size_t kDefaultLimitMiB = 0;
#else
constexpr size_t kDefaultLimitMiB = 1024;
#endif
#else
constexpr size_t kDefaultLimitMiB = 1024;
#endif

class BlockCache {
 public:
  void* allocate(size_t rounded, size_t nbytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      init_limit();
      auto it = free_.find(rounded);
      if (it != free_.end()) {
        void* p = it->second.p;
        cached_ -= rounded;
        free_.erase(it);
        ++stats_.hits;
        return p;
      }
      ++stats_.misses;
    }
    if (void* p = std::aligned_alloc(kCpuAlignment, rounded)) return p;
    release();  // out of memory: give back what the cache holds, and try once more
    return system_allocate(rounded, nbytes);
  }

  void deallocate(void* p, size_t rounded) {
    std::vector<void*> give_back;
    {
      std::lock_guard<std::mutex> lock(mu_);
      init_limit();
      if (rounded > limit_) {
        give_back.push_back(p);
      } else {
        evict_until(limit_ - rounded, give_back);
        free_.emplace(rounded, Block{p, ++clock_});
        cached_ += rounded;
      }
    }
    for (void* q : give_back) std::free(q);
  }

  CpuCacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    init_limit();
    CpuCacheStats s = stats_;
    s.limit_bytes = limit_;
    s.cached_bytes = cached_;
    s.cached_blocks = free_.size();
    return s;
  }

  size_t set_limit(size_t bytes) {
    std::vector<void*> give_back;
    size_t old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      init_limit();
      old = limit_;
      limit_ = bytes;
      evict_until(limit_, give_back);
    }
    for (void* q : give_back) std::free(q);
    return old;
  }

  // Gives every cached block back, keeping the limit.
  void release() { set_limit(set_limit(0)); }

 private:
  struct Block {
    void* p;
    uint64_t freed_at;  // clock_ at the free: the smallest is the oldest
  };

  void init_limit() {
    if (limit_known_) return;
    limit_known_ = true;
    // The default, capped at an eighth of the machine's memory for small (embedded) boxes.
    limit_ = kDefaultLimitMiB << 20;
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page > 0) limit_ = std::min(limit_, size_t(pages) / 8 * size_t(page));
    if (const char* env = std::getenv("KDNAS_CPU_CACHE_MB")) {
      char* end = nullptr;
      const unsigned long long mib = std::strtoull(env, &end, 10);
      // A bad value keeps the default: an allocator has no good way to fail here.
      if (end != env && *end == '\0' && mib <= (size_t(1) << 24)) limit_ = size_t(mib) << 20;
    }
  }

  // Gives back the oldest blocks until at most `target` bytes are cached.
  void evict_until(size_t target, std::vector<void*>& give_back) {
    while (cached_ > target) {
      auto oldest = free_.begin();
      for (auto it = free_.begin(); it != free_.end(); ++it)
        if (it->second.freed_at < oldest->second.freed_at) oldest = it;
      cached_ -= oldest->first;
      give_back.push_back(oldest->second.p);
      free_.erase(oldest);
      ++stats_.evictions;
    }
  }

  std::mutex mu_;
  std::multimap<size_t, Block> free_;  // rounded size -> free block
  size_t cached_ = 0, limit_ = 0;
  bool limit_known_ = false;
  uint64_t clock_ = 0;
  CpuCacheStats stats_;
};

BlockCache& block_cache() {
  // Never destroyed: tensors with static storage duration may free their blocks after main().
  static BlockCache* cache = new BlockCache();
  return *cache;
}

size_t cache_rounding(size_t nbytes) {
  return (nbytes + kCacheGranule - 1) / kCacheGranule * kCacheGranule;
}

}  // namespace

void* cpu_allocate(size_t nbytes) {
  if (nbytes >= kCpuCacheMinBytes) return block_cache().allocate(cache_rounding(nbytes), nbytes);
  return system_allocate(round_to_alignment(nbytes), nbytes);
}

void cpu_deallocate(void* p, size_t nbytes) {
  if (p == nullptr) return;
  if (nbytes >= kCpuCacheMinBytes)
    block_cache().deallocate(p, cache_rounding(nbytes));
  else
    std::free(p);
}

CpuCacheStats cpu_cache_stats() {
  return block_cache().stats();
}

size_t cpu_cache_set_limit(size_t bytes) {
  return block_cache().set_limit(bytes);
}

void cpu_cache_release() {
  block_cache().release();
}

}  // namespace kdnas
