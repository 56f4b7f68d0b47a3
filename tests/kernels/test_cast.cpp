#include <doctest/doctest.h>

#include <cstring>
#include <limits>

#include "kernels/cast.h"
#include "tests/test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

// f32 bit patterns that cover every case of the roundings: a stride through all 2^32 patterns
// (an odd stride, so every low-bit combination shows up), plus the edges by hand: zeros,
// subnormals, the bf16 / f16 rounding ties, the f16 overflow and subnormal thresholds, inf, NaNs.
Tensor f32_patterns() {
  std::vector<uint32_t> bits;
  for (uint64_t u = 0; u < (1ull << 32); u += 4099) bits.push_back(uint32_t(u));
  for (uint32_t sign : {0u, 0x80000000u}) {
    for (uint32_t u :
         {0u,          1u,          2u,          0x7fffffu,   0x800000u,   0x7f7fffffu, 0x7f800000u,
          0x7f800001u, 0x7fc00000u, 0x7fffffffu, 0x7fbfffffu, 0x3f808000u, 0x3f818000u, 0x3f80ffffu,
          0x3f817fffu, 0x477fe000u, 0x477fefffu, 0x477ff000u, 0x477fffffu, 0x47800000u, 0x38800000u,
          0x387fffffu, 0x387fe000u, 0x33000000u, 0x33000001u, 0x32ffffffu, 0x33800000u, 0x33c00000u,
          0x34000000u, 0x387ff000u, 0x38801000u, 0x38803000u})
      bits.push_back(u | sign);
    // Every rounding tie and near-tie of f16's subnormal range.
    for (uint32_t u = 0x33000000u; u < 0x38800000u; u += 0x1000u - 1u) bits.push_back(u | sign);
  }
  Tensor t = Tensor::empty({int64_t(bits.size())});
  std::memcpy(t.raw_data(), bits.data(), bits.size() * 4);
  return t;
}

// All 2^16 patterns of a 16-bit float.
Tensor all_16bit(DType dt) {
  Tensor t = Tensor::empty({65536}, dt);
  uint16_t* p = static_cast<uint16_t*>(t.raw_data());
  for (uint32_t u = 0; u < 65536; ++u) p[u] = uint16_t(u);
  return t;
}

// Index of the first element whose bits differ, or -1.
template <typename T>
int64_t first_bit_mismatch(const Tensor& got, const std::vector<T>& want) {
  REQUIRE(got.numel() == int64_t(want.size()));
  REQUIRE(got.element_size() == sizeof(T));
  for (size_t i = 0; i < want.size(); ++i)
    if (std::memcmp(static_cast<const char*>(got.raw_data()) + i * sizeof(T), &want[i], sizeof(T)))
      return int64_t(i);
  return -1;
}

}  // namespace

TEST_SUITE("kernels") {
  TEST_CASE("cast f32 -> bf16 and f32 -> f16 are bit-identical to tensor/dtype.h") {
    Tensor x = f32_patterns();
    const float* xp = x.data<float>();
    std::vector<bf16> want_bf16;
    std::vector<f16> want_f16;
    for (int64_t i = 0; i < x.numel(); ++i) {
      want_bf16.push_back(f32_to_bf16(xp[i]));
      want_f16.push_back(f32_to_f16(xp[i]));
    }
    for (Backend be : compiled_cpu_backends()) {
      Context ctx(be);
      INFO(backend_name(be));
      int64_t bad = first_bit_mismatch(cast(ctx, x, DType::BF16), want_bf16);
      CHECK_MESSAGE(bad == -1, "bf16 mismatch for f32 bits 0x"
                                   << std::hex << (bad >= 0 ? f32_bits(xp[bad]) : 0u));
      bad = first_bit_mismatch(cast(ctx, x, DType::F16), want_f16);
      CHECK_MESSAGE(bad == -1, "f16 mismatch for f32 bits 0x"
                                   << std::hex << (bad >= 0 ? f32_bits(xp[bad]) : 0u));
    }
  }

  TEST_CASE("cast bf16 -> f32 and f16 -> f32 are exact for all 65536 patterns") {
    Tensor hb = all_16bit(DType::BF16), hf = all_16bit(DType::F16);
    std::vector<float> want_b, want_f;
    for (uint32_t u = 0; u < 65536; ++u) {
      want_b.push_back(bf16_to_f32(bf16{uint16_t(u)}));
      want_f.push_back(f16_to_f32(f16{uint16_t(u)}));
    }
    for (Backend be : compiled_cpu_backends()) {
      Context ctx(be);
      INFO(backend_name(be));
      CHECK(first_bit_mismatch(cast(ctx, hb, DType::F32), want_b) == -1);
      CHECK(first_bit_mismatch(cast(ctx, hf, DType::F32), want_f) == -1);
    }
  }

  TEST_CASE("cast on odd sizes and strided views matches the reference") {
    Context ref(Backend::Ref);
    Rng rng(1);
    for (int64_t n : kOddSizes) {
      for (Shape s : {Shape{n}, Shape{3, n}}) {
        Tensor x = random_tensor(s, rng, DType::F32, -70000.f, 70000.f);
        for (Backend be : fast_backends()) {
          Context ctx(be);
          for (bool strided : {false, true}) {
            Tensor xi = strided ? noncontiguous(x) : x;
            const std::string what =
                std::string(backend_name(be)) + " " + shape_str(s) + (strided ? " strided" : "");
            for (DType to : {DType::BF16, DType::F16}) {
              Tensor got = cast(ctx, xi, to), want = cast(ref, x, to);
              CHECK(got.is_contiguous());
              CHECK_MESSAGE(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()) == 0,
                            what << " to " << dtype_name(to));
              Tensor back = cast(ctx, strided ? noncontiguous(got) : got, DType::F32);
              CHECK_MESSAGE(std::memcmp(back.raw_data(), cast(ref, want, DType::F32).raw_data(),
                                        back.nbytes()) == 0,
                            what << " from " << dtype_name(to));
            }
          }
        }
      }
    }
  }

  TEST_CASE("cast between every pair of floating dtypes agrees with Tensor::to") {
    Rng rng(2);
    Tensor x = random_tensor({257}, rng, DType::F64, -3e4f, 3e4f);
    for (Backend be : compiled_cpu_backends()) {
      Context ctx(be);
      for (DType from : {DType::F32, DType::F64, DType::BF16, DType::F16}) {
        Tensor src = x.to(from);
        for (DType to : {DType::F32, DType::F64, DType::BF16, DType::F16}) {
          Tensor got = cast(ctx, src, to), want = src.to(to);
          CHECK(got.dtype() == to);
          CHECK_MESSAGE(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()) == 0,
                        backend_name(be) << " " << dtype_name(from) << " -> " << dtype_name(to));
        }
      }
    }
  }

  TEST_CASE("cast to the same dtype returns the tensor (contiguous) or a contiguous copy") {
    Context ctx;
    Tensor x = Tensor::arange(12).view({3, 4});
    CHECK(cast(ctx, x, DType::F32).raw_data() == x.raw_data());
    Tensor t = cast(ctx, x.transpose(0, 1), DType::F32);
    CHECK(t.is_contiguous());
    CHECK(t.to_vector<float>() == x.transpose(0, 1).contiguous().to_vector<float>());
  }

  TEST_CASE("cast misuse names the op, the dtypes and the shape") {
    Context ctx;
    check_throws_with(
        [&] {
          cast(ctx, Tensor::zeros({2, 3}), DType::I32);
        },
        {"cast", "f32", "[2, 3]", "i32"});
    check_throws_with([&] { cast(ctx, Tensor::zeros({2}, DType::I64), DType::F32); },
                      {"cast", "i64", "[2]"});
    check_throws_with([&] { cast(ctx, Tensor(), DType::F32); }, {"cast", "undefined"});
  }
}
