// Tensor: a typed, strided view over reference-counted storage.
//
// A Tensor is cheap to copy (it shares its Storage). Views (narrow, transpose, permute, view,
// expand, select) share storage and only change shape/strides/offset; contiguous() and clone()
// copy. Shapes and strides count elements, not bytes. Storage is 64-byte aligned on the CPU.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "tensor/check.h"
#include "tensor/device.h"
#include "tensor/dtype.h"

namespace kdnas {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);
std::string shape_str(const Shape& s);  // "[2, 3]"

// Bytes on one device. Owns them unless built over external memory (an mmapped file), in which
// case `keep_alive` holds whatever keeps that memory valid.
class Storage {
 public:
  Storage(size_t nbytes, Device device);
  Storage(void* external, size_t nbytes, Device device, std::shared_ptr<void> keep_alive);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  std::shared_ptr<void> keep_alive_;  // set for external memory: we do not free it
};

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false

  // --- factories -------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = {});
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = {});
  static Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = {});
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32,
                     Device device = {});
  static Tensor arange(int64_t n, DType dtype = DType::F32);
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);
  static Tensor scalar(double value, DType dtype = DType::F32) { return full({}, value, dtype); }
  // A tensor over memory we do not own (e.g. an mmapped file); keep_alive keeps it valid.
  static Tensor from_external(void* data, const Shape& shape, DType dtype,
                              std::shared_ptr<void> keep_alive, Device device = {});

  // --- metadata --------------------------------------------------------------------------
  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device{}; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  int64_t dim() const { return int64_t(shape_.size()); }
  int64_t size(int64_t d) const { return shape_[size_t(wrap_dim(d))]; }
  int64_t stride(int64_t d) const { return strides_[size_t(wrap_dim(d))]; }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  size_t element_size() const { return dtype_size(dtype_); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  // Negative dims count from the end; throws if out of range.
  int64_t wrap_dim(int64_t d) const;

  // Pointer to the first element (storage + offset). data<T>() checks the dtype.
  void* raw_data() const;
  template <typename T>
  T* data() const {
    KDNAS_CHECK(dtype_ == dtype_of<T>(), "tensor: data<", dtype_name(dtype_of<T>()), ">() on a ",
                dtype_name(dtype_), " tensor");
    return static_cast<T*>(raw_data());
  }

  // --- views (share storage) -------------------------------------------------------------
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // drops the dim
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor permute(const std::vector<int64_t>& order) const;
  // view: a new shape over the same elements; legal only when strides allow it (one -1 is
  // inferred). reshape: a view when legal, otherwise a contiguous copy.
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;
  Tensor expand(const Shape& shape) const;  // size-1 dims broadcast with stride 0
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor flatten() const { return reshape({numel()}); }

  // --- copies ----------------------------------------------------------------------------
  Tensor contiguous() const;  // *this if already contiguous
  Tensor clone() const;       // always a new contiguous tensor
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  // Element-wise copy from src (same shape; any strides; converts dtype). CPU only.
  void copy_(const Tensor& src);
  void fill_(double value);

  // --- element access (CPU; for tests, printing and small host-side work) ----------------
  double item() const;  // one-element tensors
  double at(const std::vector<int64_t>& index) const;
  template <typename T>
  std::vector<T> to_vector() const;  // row-major, converted

  std::string str(int64_t max_per_dim = 6) const;  // readable printing

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_, strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::F32;

  Tensor with_view(Shape shape, Shape strides, int64_t offset) const;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Reads element i (row-major over the view) as double / writes it from double, for any dtype.
double load_as_double(const void* p, DType dtype);
void store_from_double(void* p, DType dtype, double v);

}  // namespace kdnas
