#include "tensor/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace kdnas {

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

std::string shape_str(const Shape& s) {
  return detail::concat(s);
}

// ---------------------------------------------------------------------------------------------
// Storage

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  data_ = device.is_cpu() ? cpu_allocate(nbytes)
                          : device_hooks(device.type).allocate(nbytes, device.index);
}

Storage::Storage(void* external, size_t nbytes, Device device, std::shared_ptr<void> keep_alive)
    : data_(external), nbytes_(nbytes), device_(device), keep_alive_(std::move(keep_alive)) {}

Storage::~Storage() {
  if (keep_alive_ || data_ == nullptr) return;
  if (device_.is_cpu())
    cpu_deallocate(data_, nbytes_);
  else
    device_hooks(device_.type).deallocate(data_, nbytes_, device_.index);
}

// ---------------------------------------------------------------------------------------------
// Factories

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) KDNAS_CHECK(d >= 0, "tensor: negative size in shape ", shape);
  Tensor t;
  t.storage_ = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype), device);
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device.is_cpu()) {
    std::memset(t.raw_data(), 0, t.nbytes());
  } else {
    t.copy_(zeros(shape, dtype));
  }
  return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype);
  t.fill_(value);
  return device.is_cpu() ? t : t.to(device);
}

Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, dtype);
  char* p = static_cast<char*>(t.raw_data());
  for (int64_t i = 0; i < n; ++i) store_from_double(p + i * t.element_size(), dtype, double(i));
  return t;
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  KDNAS_CHECK(int64_t(values.size()) == shape_numel(shape), "tensor: from_vector got ",
              values.size(), " values for shape ", shape);
  Tensor t = empty(shape, dtype_of<T>());
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<double>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int32_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int64_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<uint8_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int8_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<bf16>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<f16>&, const Shape&);

Tensor Tensor::from_external(void* data, const Shape& shape, DType dtype,
                             std::shared_ptr<void> keep_alive, Device device) {
  Tensor t;
  size_t nbytes = size_t(shape_numel(shape)) * dtype_size(dtype);
  t.storage_ = std::make_shared<Storage>(
      data, nbytes, device,
      keep_alive ? std::move(keep_alive) : std::shared_ptr<void>(data, [](void*) {}));
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

// ---------------------------------------------------------------------------------------------
// Metadata

int64_t Tensor::wrap_dim(int64_t d) const {
  int64_t n = dim();
  KDNAS_CHECK(d >= -n && d < n, "tensor: dim ", d, " out of range for shape ", shape_);
  return d < 0 ? d + n : d;
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;  // a size-1 dim's stride does not matter
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  KDNAS_CHECK(defined(), "tensor: access to an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * int64_t(dtype_size(dtype_));
}

// ---------------------------------------------------------------------------------------------
// Views

Tensor Tensor::with_view(Shape shape, Shape strides, int64_t offset) const {
  Tensor t = *this;
  t.shape_ = std::move(shape);
  t.strides_ = std::move(strides);
  t.offset_ = offset;
  return t;
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d);
  KDNAS_CHECK(start >= 0 && length >= 0 && start + length <= shape_[d], "tensor: narrow(dim ", d,
              ", start ", start, ", length ", length, ") out of range for shape ", shape_);
  Shape s = shape_;
  s[d] = length;
  return with_view(s, strides_, offset_ + start * strides_[d]);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d);
  KDNAS_CHECK(step > 0, "tensor: slice step must be positive, got ", step);
  if (start < 0) start += shape_[d];
  if (end < 0) end += shape_[d];
  start = std::clamp<int64_t>(start, 0, shape_[d]);
  end = std::clamp<int64_t>(end, start, shape_[d]);
  Shape s = shape_, st = strides_;
  s[d] = (end - start + step - 1) / step;
  st[d] *= step;
  return with_view(s, st, offset_ + start * strides_[d]);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d);
  if (index < 0) index += shape_[d];
  KDNAS_CHECK(index >= 0 && index < shape_[d], "tensor: select index ", index,
              " out of range for dim ", d, " of shape ", shape_);
  Shape s = shape_, st = strides_;
  int64_t off = offset_ + index * strides_[d];
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return with_view(s, st, off);
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  d0 = wrap_dim(d0);
  d1 = wrap_dim(d1);
  Shape s = shape_, st = strides_;
  std::swap(s[d0], s[d1]);
  std::swap(st[d0], st[d1]);
  return with_view(s, st, offset_);
}

Tensor Tensor::permute(const std::vector<int64_t>& order) const {
  KDNAS_CHECK(int64_t(order.size()) == dim(), "tensor: permute order ", order,
              " does not match shape ", shape_);
  std::vector<bool> seen(order.size(), false);
  Shape s(order.size()), st(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    int64_t d = wrap_dim(order[i]);
    KDNAS_CHECK(!seen[d], "tensor: permute order ", order, " repeats dim ", d);
    seen[d] = true;
    s[i] = shape_[d];
    st[i] = strides_[d];
  }
  return with_view(s, st, offset_);
}

namespace {
// Resolves one -1 in a requested shape against numel.
Shape infer_shape(const Shape& req, int64_t numel, const Shape& from) {
  Shape s = req;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      KDNAS_CHECK(infer < 0, "tensor: view/reshape to ", req, " has more than one -1");
      infer = int64_t(i);
    } else {
      KDNAS_CHECK(s[i] >= 0, "tensor: bad size in shape ", req);
      known *= s[i];
    }
  }
  if (infer >= 0) {
    KDNAS_CHECK(known > 0 && numel % known == 0, "tensor: cannot view shape ", from, " as ", req);
    s[infer] = numel / known;
  }
  KDNAS_CHECK(shape_numel(s) == numel, "tensor: cannot view shape ", from, " (", numel,
              " elements) as ", req);
  return s;
}

// Strides for viewing (shape, strides) as new_shape without copying; false if impossible.
// Walks the old dims from the innermost out in "chunks" of dims that are laid out
// contiguously with respect to each other; each chunk must be matched exactly by a run of new
// dims, which then get strides within that chunk. (The same rule PyTorch's view uses.)
bool view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape, Shape& out) {
  out.assign(new_shape.size(), 0);
  if (shape_numel(shape) == 0 || shape.empty()) {
    out = contiguous_strides(new_shape);
    return shape_numel(shape) == 0 || shape_numel(new_shape) == 1;
  }
  int64_t view_d = int64_t(new_shape.size()) - 1;
  int64_t chunk_base_stride = strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[size_t(d)];
    const bool chunk_ends = d == 0 || (shape[size_t(d - 1)] != 1 &&
                                       strides[size_t(d - 1)] != tensor_numel * chunk_base_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || new_shape[size_t(view_d)] == 1)) {
      out[size_t(view_d)] = view_numel * chunk_base_stride;
      view_numel *= new_shape[size_t(view_d)];
      --view_d;
    }
    if (view_numel != tensor_numel) return false;
    if (d > 0) {
      chunk_base_stride = strides[size_t(d - 1)];
      tensor_numel = 1;
      view_numel = 1;
    }
  }
  return view_d == -1;
}
}  // namespace

Tensor Tensor::view(const Shape& shape) const {
  Shape s = infer_shape(shape, numel(), shape_);
  Shape st;
  KDNAS_CHECK(view_strides(shape_, strides_, s, st), "tensor: view of shape ", shape_,
              " with strides ", strides_, " as ", s, " needs a copy; use reshape()");
  return with_view(s, st, offset_);
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape s = infer_shape(shape, numel(), shape_);
  Shape st;
  if (view_strides(shape_, strides_, s, st)) return with_view(s, st, offset_);
  return contiguous().view(s);
}

Tensor Tensor::expand(const Shape& shape) const {
  KDNAS_CHECK(shape.size() >= shape_.size(), "tensor: cannot expand ", shape_, " to ", shape);
  size_t lead = shape.size() - shape_.size();
  Shape st(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) continue;  // new leading dims broadcast: stride 0
    int64_t have = shape_[i - lead];
    KDNAS_CHECK(have == shape[i] || have == 1, "tensor: cannot expand ", shape_, " to ", shape);
    st[i] = have == shape[i] ? strides_[i - lead] : 0;
  }
  return with_view(shape, st, offset_);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  int64_t n = dim() + 1;
  KDNAS_CHECK(d >= -n && d < n, "tensor: unsqueeze dim ", d, " out of range for shape ", shape_);
  if (d < 0) d += n;
  Shape s = shape_, st = strides_;
  int64_t stride = d < dim() ? strides_[d] * shape_[d] : 1;
  s.insert(s.begin() + d, 1);
  st.insert(st.begin() + d, stride);
  return with_view(s, st, offset_);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d);
  KDNAS_CHECK(shape_[d] == 1, "tensor: squeeze of dim ", d, " of shape ", shape_,
              " which is not 1");
  return select(d, 0);
}

// ---------------------------------------------------------------------------------------------
// Copies

double load_as_double(const void* p, DType dtype) {
  switch (dtype) {
    case DType::F32:
      return *static_cast<const float*>(p);
    case DType::F64:
      return *static_cast<const double*>(p);
    case DType::BF16:
      return bf16_to_f32(*static_cast<const bf16*>(p));
    case DType::F16:
      return f16_to_f32(*static_cast<const f16*>(p));
    case DType::I32:
      return *static_cast<const int32_t*>(p);
    case DType::I64:
      return double(*static_cast<const int64_t*>(p));
    case DType::I8:
      return *static_cast<const int8_t*>(p);
    case DType::U8:
      return *static_cast<const uint8_t*>(p);
  }
  return 0;
}

void store_from_double(void* p, DType dtype, double v) {
  switch (dtype) {
    case DType::F32:
      *static_cast<float*>(p) = float(v);
      break;
    case DType::F64:
      *static_cast<double*>(p) = v;
      break;
    case DType::BF16:
      *static_cast<bf16*>(p) = f32_to_bf16(float(v));
      break;
    case DType::F16:
      *static_cast<f16*>(p) = f32_to_f16(float(v));
      break;
    case DType::I32:
      *static_cast<int32_t*>(p) = int32_t(v);
      break;
    case DType::I64:
      *static_cast<int64_t*>(p) = int64_t(v);
      break;
    case DType::I8:
      *static_cast<int8_t*>(p) = int8_t(v);
      break;
    case DType::U8:
      *static_cast<uint8_t*>(p) = uint8_t(v);
      break;
  }
}

namespace {

// Calls f(dst_offset, src_offset) for every element, in row-major order of `shape`, with the
// offsets (in elements) given by the two stride vectors. The innermost dim is the tight loop.
template <typename F>
void for_each_offset(const Shape& shape, const Shape& dst_st, const Shape& src_st, F&& f) {
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  const size_t nd = shape.size();
  if (nd == 0) {
    f(int64_t(0), int64_t(0));
    return;
  }
  std::vector<int64_t> idx(nd, 0);
  const int64_t inner = shape[nd - 1], ds = dst_st[nd - 1], ss = src_st[nd - 1];
  int64_t d = 0, s = 0;
  for (int64_t done = 0; done < n; done += inner) {
    for (int64_t i = 0; i < inner; ++i) f(d + i * ds, s + i * ss);
    // Advance the outer index like an odometer.
    for (size_t k = nd - 1; k-- > 0;) {
      d += dst_st[k];
      s += src_st[k];
      if (++idx[k] < shape[k]) break;
      d -= dst_st[k] * shape[k];
      s -= src_st[k] * shape[k];
      idx[k] = 0;
    }
  }
}

template <typename T>
void strided_copy_same(T* dst, const Shape& dst_st, const T* src, const Shape& src_st,
                       const Shape& shape) {
  for_each_offset(shape, dst_st, src_st, [&](int64_t d, int64_t s) { dst[d] = src[s]; });
}

}  // namespace

void Tensor::copy_(const Tensor& src) {
  KDNAS_CHECK(src.shape() == shape_, "tensor: copy_ from shape ", src.shape(), " into shape ",
              shape_);
  if (numel() == 0) return;
  if (!device().is_cpu() || !src.device().is_cpu()) {
    KDNAS_CHECK(dtype_ == src.dtype() && is_contiguous() && src.is_contiguous(),
                "tensor: copy_ between devices needs contiguous tensors of one dtype");
    DeviceType backend = device().is_cpu() ? src.device().type : device().type;
    device_hooks(backend).copy(raw_data(), device(), src.raw_data(), src.device(), nbytes());
    return;
  }
  if (dtype_ == src.dtype() && is_contiguous() && src.is_contiguous()) {
    std::memcpy(raw_data(), src.raw_data(), nbytes());
    return;
  }
  if (dtype_ == src.dtype()) {
    switch (element_size()) {
      case 8:
        return strided_copy_same(static_cast<uint64_t*>(raw_data()), strides_,
                                 static_cast<const uint64_t*>(src.raw_data()), src.strides(),
                                 shape_);
      case 4:
        return strided_copy_same(static_cast<uint32_t*>(raw_data()), strides_,
                                 static_cast<const uint32_t*>(src.raw_data()), src.strides(),
                                 shape_);
      case 2:
        return strided_copy_same(static_cast<uint16_t*>(raw_data()), strides_,
                                 static_cast<const uint16_t*>(src.raw_data()), src.strides(),
                                 shape_);
      default:
        return strided_copy_same(static_cast<uint8_t*>(raw_data()), strides_,
                                 static_cast<const uint8_t*>(src.raw_data()), src.strides(),
                                 shape_);
    }
  }
  // Different dtypes: convert element by element through double (exact for every pair here).
  char* dst = static_cast<char*>(raw_data());
  const char* s = static_cast<const char*>(src.raw_data());
  const int64_t desz = int64_t(element_size()), sesz = int64_t(src.element_size());
  const DType dt = dtype_, st = src.dtype();
  for_each_offset(shape_, strides_, src.strides(), [&](int64_t d, int64_t o) {
    store_from_double(dst + d * desz, dt, load_as_double(s + o * sesz, st));
  });
}

void Tensor::fill_(double value) {
  KDNAS_CHECK(device().is_cpu(), "tensor: fill_ on ", device().str(), " (CPU only)");
  char buf[8];
  store_from_double(buf, dtype_, value);
  char* dst = static_cast<char*>(raw_data());
  const int64_t esz = int64_t(element_size());
  for_each_offset(shape_, strides_, strides_,
                  [&](int64_t d, int64_t) { std::memcpy(dst + d * esz, buf, size_t(esz)); });
}

Tensor Tensor::contiguous() const {
  if (!defined() || is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device());
  if (device().is_cpu()) {
    t.copy_(*this);
  } else {
    KDNAS_CHECK(is_contiguous(), "tensor: clone of a non-contiguous ", device().str(),
                " tensor is not supported; use the permute op");
    t.copy_(*this);
  }
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  KDNAS_CHECK(device().is_cpu(), "tensor: dtype conversion on ", device().str(),
              " goes through the cast op");
  Tensor t = empty(shape_, dtype);
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor src = contiguous();
  Tensor t = empty(shape_, dtype_, device);
  t.copy_(src);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Element access and printing

double Tensor::item() const {
  KDNAS_CHECK(numel() == 1, "tensor: item() on a tensor of shape ", shape_);
  return to(Device{}).at(Shape(shape_.size(), 0));
}

double Tensor::at(const std::vector<int64_t>& index) const {
  KDNAS_CHECK(index.size() == shape_.size(), "tensor: index ", index, " for shape ", shape_);
  KDNAS_CHECK(device().is_cpu(), "tensor: at() on ", device().str());
  int64_t off = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    KDNAS_CHECK(index[i] >= 0 && index[i] < shape_[i], "tensor: index ", index,
                " out of range for shape ", shape_);
    off += index[i] * strides_[i];
  }
  return load_as_double(static_cast<const char*>(raw_data()) + off * int64_t(element_size()),
                        dtype_);
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = to(Device{}).to(dtype_of<T>()).contiguous();
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<int32_t> Tensor::to_vector() const;
template std::vector<int64_t> Tensor::to_vector() const;
template std::vector<uint8_t> Tensor::to_vector() const;

namespace {
void print_rec(std::ostream& os, const Tensor& t, std::vector<int64_t>& idx, size_t d, int64_t max,
               int indent) {
  const int64_t n = t.shape()[d];
  os << '[';
  auto item = [&](int64_t i) {
    idx[d] = i;
    if (d + 1 == t.shape().size()) {
      double v = t.at(idx);
      if (is_floating(t.dtype()))
        os << std::setprecision(5) << std::setw(11) << v;
      else
        os << int64_t(v);
    } else {
      print_rec(os, t, idx, d + 1, max, indent + 1);
    }
  };
  const bool last = d + 1 == t.shape().size();
  const char* sep = last ? ", " : ",\n";
  for (int64_t i = 0; i < n; ++i) {
    if (n > max && i == max / 2) {
      os << (last ? "..., " : "...,\n");
      i = n - max / 2;
    }
    if (i > 0 && !(n > max && i == n - max / 2)) {
      os << sep;
    }
    if (!last && i > 0) os << std::string(size_t(indent + 1), ' ');
    item(i);
  }
  os << ']';
}
}  // namespace

std::string Tensor::str(int64_t max_per_dim) const {
  std::ostringstream os;
  if (!defined()) return "Tensor(undefined)";
  os << "Tensor(" << dtype_name(dtype_) << ", shape=" << shape_str(shape_) << ", " << device().str()
     << ")\n";
  Tensor c = to(Device{});
  if (c.dim() == 0) {
    os << c.item();
  } else if (c.numel() > 0) {
    std::vector<int64_t> idx(size_t(c.dim()), 0);
    print_rec(os, c, idx, 0, std::max<int64_t>(max_per_dim, 2), 0);
  } else {
    os << "[]";
  }
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  return os << t.str();
}

}  // namespace kdnas
