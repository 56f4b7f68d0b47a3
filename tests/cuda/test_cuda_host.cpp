// The CUDA backend's checks that need no GPU (part of kdnas_tests in builds with the backend):
// device detection and the errors without a device, the allocator's size classes, the error
// text of KDNAS_CUDA_CHECK, argument checks that run before any device call, and the device
// code that is compiled for the host too (the dropout hash, the dtype conversions), compared
// with tensor/'s versions. Everything that needs a GPU is in kdnas_gpu_tests.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/binary_cuda.h"
#include "kernels/cuda/cast_cuda.h"
#include "kernels/cuda/cuda_allocator.h"
#include "kernels/cuda/cuda_context.h"
#include "kernels/cuda/dropout_cuda.h"
#include "kernels/cuda/matmul_cuda.h"
#include "tensor/rng.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

TEST_SUITE("cuda") {
TEST_CASE("cuda: device detection answers without crashing, and says why when it says no") {
  std::string why1, why2;
  const bool u1 = cuda_device_usable(&why1), u2 = cuda_device_usable(&why2);
  CHECK(u1 == u2);
  CHECK(why1 == why2);
  CHECK(cuda_device_usable() == u1);
  if (u1) {
    CHECK(why1.empty());
    MESSAGE("CUDA device: ", cuda_device_description());
  } else {
    CHECK(!why1.empty());
    MESSAGE("no usable CUDA device: ", why1);
  }
}

TEST_CASE("cuda: without a usable device, CUDA tensors and CUDA state are clear errors") {
  std::string why;
  if (cuda_device_usable(&why)) return;  // on a GPU machine, kdnas_gpu_tests covers the rest
  cuda_init();
  cuda_init();                                // idempotent
  CHECK(device_available(DeviceType::CUDA));  // the hooks are registered; allocating fails
  check_throws_with(
      [] {
        Tensor::zeros({2, 3}, DType::F32, Device{DeviceType::CUDA, 0});
      },
      {"cuda", "no usable CUDA device", why});
  check_throws_with(
      [] {
        Tensor::ones({4}).to(Device{DeviceType::CUDA, 0});
      },
      {"cannot allocate", "no usable CUDA device"});
  Context ctx;
  check_throws_with([&] { cuda_stream(ctx); }, {"no usable CUDA device", why});
  check_throws_with([&] { cuda_synchronize(ctx); }, {"no usable CUDA device"});
  check_throws_with([] { cuda_device_description(); }, {"no usable CUDA device"});
  // Nothing was allocated, and emptying an empty cache is harmless.
  const CudaAllocatorStats s = cuda_allocator_stats();
  CHECK(s.allocations == 0);
  CHECK(s.reserved_bytes == 0);
  CHECK(cuda_allocator_stats(3).allocations == 0);
  cuda_empty_cache();
}

TEST_CASE("cuda: allocator size classes round up by at most 512 bytes or 25 percent") {
  CHECK(cuda_size_class(0) == 512);
  CHECK(cuda_size_class(1) == 512);
  CHECK(cuda_size_class(512) == 512);
  CHECK(cuda_size_class(513) == 1024);
  CHECK(cuda_size_class(size_t(1) << 20) == size_t(1) << 20);
  CHECK(cuda_size_class((size_t(1) << 20) + 1) == size_t(5) << 18);  // 1.25 MiB
  CHECK(cuda_size_class(size_t(3) << 20) == size_t(3) << 20);        // 1.5 x 2 MiB
  CHECK(cuda_size_class((size_t(5) << 20) + 1) == size_t(6) << 20);  // step 1 MiB above 4 MiB
  CHECK(cuda_size_class((size_t(7) << 28) + 1) == size_t(2) << 30);  // 1.75 x 1 GiB -> 2 GiB
  // A sweep: never smaller than asked, monotone, a fixed point on classes, bounded slack.
  size_t prev = 0;
  int bad = 0;
  for (size_t n = 0; n < (size_t(1) << 34); n = n < 4096 ? n + 1 : n + n / 61 + 7) {
    const size_t c = cuda_size_class(n);
    const bool ok =
        c >= n && c >= 512 && c >= prev && cuda_size_class(c) == c &&
        (n <= (size_t(1) << 20) ? c - n < 512 || n == 0 : double(c) <= 1.25 * double(n));
    bad += ok ? 0 : 1;
    prev = c;
  }
  CHECK(bad == 0);
}

TEST_CASE("cuda: CUDA errors name the call, the place and CUDA's reason") {
  check_throws_with(
      [] {
        cuda_fail("cudaMalloc(&p, n)", "kernels/cuda/x.cu", 42, "cudaErrorMemoryAllocation",
                  "out of memory");
      },
      {"CUDA error", "cudaMalloc(&p, n)", "kernels/cuda/x.cu:42", "cudaErrorMemoryAllocation",
       "out of memory"});
}

TEST_CASE("cuda: kernel argument checks that come before any device work") {
  Context ctx;
  // The fused attention kernel's limits name the sizes.
  check_throws_with(
      [&] {
        attention_forward_cuda(ctx, nullptr, {}, nullptr, {}, nullptr, {}, nullptr, {}, nullptr,
                               1, 1, 1024, 64, 1.f);
      },
      {"attention", "T = 1024", "HS = 64", "512"});
  check_throws_with(
      [&] {
        attention_forward_cuda(ctx, nullptr, {}, nullptr, {}, nullptr, {}, nullptr, {}, nullptr,
                               1, 1, 8, 300, 1.f);
      },
      {"attention", "HS = 300", "256"});
  // The GEMM takes f32 and bf16 only.
  GemmLayout l;
  l.M = l.K = l.N = 2;
  check_throws_with(
      [&] {
        matmul_forward_cuda(ctx, nullptr, DType::F64, nullptr, nullptr, DType::F64, nullptr, l,
                            false);
      },
      {"matmul", "f64"});
  // Strided kernels take at most 8 dims that cannot be merged: 9 dims of size 2 whose strides
  // grow inward (a reversed layout) cannot merge.
  Shape shape(9, 2), sa(9), sb(9, 0);
  for (size_t k = 0; k < 9; ++k) sa[k] = int64_t(1) << k;
  check_throws_with(
      [&] { binary_forward_cuda(ctx, nullptr, nullptr, nullptr, BinaryOp::Add, shape, sa, sb); },
      {"add", "more than 8 dims"});
}

TEST_CASE("cuda: the dropout kernel's hash is tensor/rng.h's rng_hash") {
  int bad = 0;
  for (uint64_t seed : {uint64_t(0), uint64_t(1), uint64_t(42), uint64_t(0x8000000000000005ull)})
    for (uint64_t c = 0; c < 20000; ++c) {
      const uint64_t counter = c < 10000 ? c : c * 0x9e3779b97f4a7c15ull;
      bad += cuda_rng_hash(seed, counter) == rng_hash(seed, counter) ? 0 : 1;
    }
  CHECK(bad == 0);
}

TEST_CASE("cuda: the cast kernels' conversions are tensor/dtype.h's, bit for bit") {
  // f16 -> f32: every one of the 65536 patterns (NaNs compared by bits).
  int bad = 0;
  for (uint32_t h = 0; h < 65536; ++h)
    bad += bits(cuda_f16_bits_to_f32(uint16_t(h))) == bits(f16_to_f32(f16{uint16_t(h)})) ? 0 : 1;
  CHECK(bad == 0);
  // f32 -> bf16 / f16: a sweep over the 2^32 patterns (every sign, exponent, rounding case and
  // NaN payload class), plus the boundaries where the f16 code changes branch.
  std::vector<uint32_t> probes{0u,          0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u,
                               0x7f800001u, 0xffbfffffu, 0x7f7fffffu, 0x00000001u, 0x477fefffu,
                               0x477ff000u, 0x38800000u, 0x387fffffu, 0x33000000u, 0x32ffffffu,
                               0x3f808000u, 0x3f818000u, 0x3f80ffffu};
  for (uint64_t u = 0; u < (uint64_t(1) << 32); u += 4099) probes.push_back(uint32_t(u));
  int bad_bf16 = 0, bad_f16 = 0;
  for (uint32_t u : probes) {
    const float f = from_bits(u);
    bad_bf16 += cuda_f32_to_bf16_bits(f) == f32_to_bf16(f).bits ? 0 : 1;
    bad_f16 += cuda_f32_to_f16_bits(f) == f32_to_f16(f).bits ? 0 : 1;
  }
  CHECK(bad_bf16 == 0);
  CHECK(bad_f16 == 0);
}
}
