// oneDNN's objects for one Context: an engine, a stream, and a cache of primitives keyed by the
// op and its shapes, so a hot loop pays primitive creation once. Included only by kernel
// sources that are compiled when oneDNN is (the embedded build never sees this header).
#pragma once

#include <dnnl.hpp>
#include <functional>
#include <string>
#include <unordered_map>

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

struct OnednnState : BackendState {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  // Primitives by key (op name + shapes + strides + attributes). A primitive descriptor comes
  // along with its primitive since some ops need it again (scratchpad size, workspace).
  struct Entry {
    dnnl::primitive prim;
    dnnl::primitive_desc_base pd;
    dnnl::memory weights;  // constant weights reordered once into the primitive's layout, if any
  };
  std::unordered_map<std::string, Entry> cache;
};

// The Context's oneDNN state, created on first use.
OnednnState& onednn_state(Context& ctx);

// The cached primitive for `key`, created by `make` the first time.
const OnednnState::Entry& onednn_cached(Context& ctx, const std::string& key,
                                        const std::function<OnednnState::Entry()>& make);

dnnl::memory::dims onednn_dims(const Shape& s);
dnnl::memory::data_type onednn_dtype(DType dt);
// A memory object over a tensor's bytes (no copy), with the tensor's shape and strides.
dnnl::memory onednn_memory(OnednnState& st, const Tensor& t);
// A memory descriptor for a tensor's shape, dtype and strides.
dnnl::memory::desc onednn_desc(const Tensor& t);
// "f32:[2, 3]/[3, 1]" for cache keys.
std::string onednn_key(const Tensor& t);

}  // namespace kdnas
