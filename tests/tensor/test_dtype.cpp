#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "tensor/dtype.h"
#include "tensor/tensor.h"

using namespace kdnas;

TEST_SUITE("tensor") {
  TEST_CASE("bf16 conversion rounds to nearest even") {
    CHECK(f32_to_bf16(1.0f).bits == 0x3f80);
    // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties go to even (1.0).
    CHECK(f32_to_bf16(1.00390625f).bits == 0x3f80);
    // 1 + 3*2^-8 is halfway between 1.0078125 (odd) and 1.015625 (even): rounds up.
    CHECK(f32_to_bf16(1.01171875f).bits == 0x3f82);
    // Just above halfway rounds up.
    CHECK(f32_to_bf16(std::nextafter(1.00390625f, 2.f)).bits == 0x3f81);
    CHECK(bf16_to_f32(f32_to_bf16(-2.5f)) == -2.5f);
    CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
    CHECK(std::isinf(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::infinity()))));
    // The largest finite f32 rounds to bf16 infinity.
    CHECK(std::isinf(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::max()))));
  }

  TEST_CASE("f16 conversion: normals, ties, subnormals, overflow") {
    CHECK(f32_to_f16(1.0f).bits == 0x3c00);
    CHECK(f32_to_f16(65504.f).bits == 0x7bff);
    CHECK(f32_to_f16(65520.f).bits == 0x7c00);  // halfway to 65536 rounds to even: inf
    CHECK(f32_to_f16(-2.0f).bits == 0xc000);
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even -> 1.
    CHECK(f32_to_f16(1.00048828125f).bits == 0x3c00);
    CHECK(f32_to_f16(1.00146484375f).bits == 0x3c02);  // 1 + 3*2^-11: up to even
    // Smallest subnormal 2^-24 and its halves.
    CHECK(f32_to_f16(5.9604644775390625e-8f).bits == 0x0001);
    CHECK(f32_to_f16(2.98023223876953125e-8f).bits == 0x0000);  // exactly half: to even (0)
    CHECK(f32_to_f16(4.5e-8f).bits == 0x0001);
    CHECK(f16_to_f32(f16{0x0001}) == 5.9604644775390625e-8f);
    CHECK(f16_to_f32(f16{0x3555}) == doctest::Approx(0.333251953125f));
    // Every f16 value survives f16 -> f32 -> f16.
    for (uint32_t b = 0; b < 0x10000; ++b) {
      f16 h{uint16_t(b)};
      float f = f16_to_f32(h);
      if (std::isnan(f)) continue;
      REQUIRE(f32_to_f16(f).bits == h.bits);
    }
  }

  TEST_CASE("dtype names round trip") {
    for (DType t : {DType::F32, DType::F64, DType::BF16, DType::F16, DType::I32, DType::I64,
                    DType::I8, DType::U8})
      CHECK(dtype_from_name(dtype_name(t)) == t);
    CHECK_THROWS_AS(dtype_from_name("f8"), Error);
    CHECK(dtype_size(DType::BF16) == 2);
    CHECK(dtype_size(DType::I64) == 8);
  }
}
