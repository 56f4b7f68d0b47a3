// GPU tests of the backend's foundation: host <-> device copies through the DeviceHooks, the
// caching allocator's reuse and statistics, Contexts and their streams, and CUDA errors.
#include <doctest/doctest.h>

#include "kernels/cuda/cuda_allocator.h"
#include "kernels/cuda/cuda_context.h"
#include "kernels/cuda/eltwise_cuda.h"
#include "kernels/ref/eltwise_ref.h"
#include "tests/cuda/gpu_test_util.h"

using namespace kdnas;
using namespace kdnas::test;

TEST_SUITE("gpu") {
TEST_CASE("gpu: tensors round-trip host -> device -> host for every dtype and odd sizes") {
  Rng rng(3);
  for (DType dt : {DType::F32, DType::F64, DType::BF16, DType::F16, DType::I64, DType::U8}) {
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(7), int64_t(769), int64_t(1) << 20}) {
      Tensor h = random_tensor({n}, rng, DType::F32, 0.f, 100.f).to(dt);
      Tensor d = h.to(gpu());
      CHECK(d.device() == gpu());
      Tensor back = to_host(d);
      KDNAS_CHECK_CLOSE(back, h, kExact, std::string("round trip ") + dtype_name(dt));
      // Device -> device (clone) and back.
      KDNAS_CHECK_CLOSE(to_host(d.clone()), h, kExact, std::string("clone ") + dtype_name(dt));
    }
  }
  // Factories and item() on the device.
  CHECK(Tensor::full({3, 5}, 2.5, DType::F32, gpu()).to_vector<float>() ==
        std::vector<float>(15, 2.5f));
  CHECK(Tensor::zeros({4}, DType::F32, gpu()).to_vector<float>() == std::vector<float>(4, 0.f));
  CHECK(Tensor::full({}, -3.0, DType::F32, gpu()).item() == -3.0);
}

TEST_CASE("gpu: the caching allocator reuses freed blocks and keeps honest statistics") {
  cuda_empty_cache();
  cuda_allocator_reset_peak();
  const CudaAllocatorStats s0 = cuda_allocator_stats();
  const size_t bytes = 3 << 20;  // 3 MiB: exactly a size class
  void* first = nullptr;
  {
    Tensor t = gpu_empty({int64_t(bytes / 4)});
    first = t.raw_data();
    const CudaAllocatorStats s1 = cuda_allocator_stats();
    CHECK(s1.in_use_bytes == s0.in_use_bytes + bytes);
    CHECK(s1.device_mallocs == s0.device_mallocs + 1);
    CHECK(s1.peak_in_use_bytes >= s1.in_use_bytes);
  }
  const CudaAllocatorStats s2 = cuda_allocator_stats();
  CHECK(s2.in_use_bytes == s0.in_use_bytes);
  CHECK(s2.cached_bytes == s0.cached_bytes + bytes);
  {
    // The same size class on the same stream comes back from the cache: same block, no malloc.
    Tensor t = gpu_empty({int64_t(bytes / 4) - 100});
    CHECK(t.raw_data() == first);
    const CudaAllocatorStats s3 = cuda_allocator_stats();
    CHECK(s3.device_mallocs == s2.device_mallocs);
    CHECK(s3.cache_hits == s2.cache_hits + 1);
  }
  CHECK(cuda_allocator_stats().reserved_bytes ==
        cuda_allocator_stats().in_use_bytes + cuda_allocator_stats().cached_bytes);
  cuda_empty_cache();
  const CudaAllocatorStats s4 = cuda_allocator_stats();
  CHECK(s4.cached_bytes == 0);
  CHECK(s4.reserved_bytes == s4.in_use_bytes);
  CHECK(s4.device_frees > s2.device_frees);
  // Scratch buffers come from the same cache.
  {
    CudaBuffer b(1000);
    CHECK(b.data() != nullptr);
    CudaBuffer moved = std::move(b);
    CHECK(b.data() == nullptr);
    CHECK(moved.nbytes() == 1000);
  }
}

TEST_CASE("gpu: an impossible allocation is an out-of-memory error, and the device survives it") {
  check_throws_with([] { gpu_empty({int64_t(1) << 42}); },  // 16 TiB
                    {"cuda", "out of memory", "17592186044416 bytes"});
  KDNAS_CHECK_CLOSE(to_host(Tensor::ones({5}, DType::F32, gpu())), Tensor::ones({5}), kExact,
                    "after out of memory");
}

TEST_CASE("gpu: two Contexts on one thread: switching streams keeps results ordered") {
  Rng rng(4);
  const int64_t n = 1 << 22;
  Tensor x = random_tensor({n}, rng);
  Tensor want = Tensor::empty({n});
  gelu_forward_ref(want.data<float>(), x.data<float>(), n);
  Context a, b;
  Tensor xg = to_gpu(x);
  for (int round = 0; round < 3; ++round) {
    // a writes y, b reads it and writes z, then y is freed and its block reused under a.
    Tensor y = gpu_empty({n}), z = gpu_empty({n});
    scale_forward_cuda(a, y.data<float>(), xg.data<float>(), 1.f, n);
    gelu_forward_cuda(b, z.data<float>(), y.data<float>(), n);
    y = Tensor();
    Tensor w = gpu_empty({n});
    scale_forward_cuda(a, w.data<float>(), xg.data<float>(), -1.f, n);
    KDNAS_CHECK_CLOSE(to_host(z), want, kF32, "gelu via two contexts");
  }
  CHECK(cuda_stream(a) != cuda_stream(b));
  cuda_synchronize(a);
  cuda_synchronize(b);
}

TEST_CASE("gpu: TF32 is off by default and can be switched per Context") {
  Context ctx;
  CHECK_FALSE(cuda_allow_tf32(ctx));
  cuda_set_allow_tf32(ctx, true);
  CHECK(cuda_allow_tf32(ctx));
  Context other;
  CHECK_FALSE(cuda_allow_tf32(other));
}
}
