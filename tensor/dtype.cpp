#include "tensor/dtype.h"

#include "tensor/check.h"

namespace kdnas {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::BF16:
    case DType::F16:
      return 2;
    case DType::I8:
    case DType::U8:
      return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "f32";
    case DType::F64:
      return "f64";
    case DType::BF16:
      return "bf16";
    case DType::F16:
      return "f16";
    case DType::I32:
      return "i32";
    case DType::I64:
      return "i64";
    case DType::I8:
      return "i8";
    case DType::U8:
      return "u8";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  for (DType t : {DType::F32, DType::F64, DType::BF16, DType::F16, DType::I32, DType::I64,
                  DType::I8, DType::U8})
    if (name == dtype_name(t)) return t;
  detail::fail(detail::concat("unknown dtype '", name,
                              "' (expected f32, f64, bf16, f16, i32, i64, i8 or u8)"));
}

}  // namespace kdnas
