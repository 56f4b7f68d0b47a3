#include "kernels/cpu/onednn_context.h"

namespace kdnas {

OnednnState& onednn_state(Context& ctx) {
  if (ctx.state(Context::kOnednnSlot) == nullptr)
    ctx.set_state(Context::kOnednnSlot, std::make_unique<OnednnState>());
  return static_cast<OnednnState&>(*ctx.state(Context::kOnednnSlot));
}

const OnednnState::Entry& onednn_cached(Context& ctx, const std::string& key,
                                        const std::function<OnednnState::Entry()>& make) {
  OnednnState& st = onednn_state(ctx);
  auto it = st.cache.find(key);
  if (it == st.cache.end()) it = st.cache.emplace(key, make()).first;
  return it->second;
}

dnnl::memory::dims onednn_dims(const Shape& s) {
  return dnnl::memory::dims(s.begin(), s.end());
}

dnnl::memory::data_type onednn_dtype(DType dt) {
  using dt_t = dnnl::memory::data_type;
  switch (dt) {
    case DType::F32:
      return dt_t::f32;
    case DType::BF16:
      return dt_t::bf16;
    case DType::F16:
      return dt_t::f16;
    case DType::I32:
      return dt_t::s32;
    case DType::I8:
      return dt_t::s8;
    case DType::U8:
      return dt_t::u8;
    default:
      break;
  }
  detail::fail(detail::concat("onednn: dtype ", dtype_name(dt), " has no oneDNN equivalent"));
}

dnnl::memory::desc onednn_desc(const Tensor& t) {
  return dnnl::memory::desc(onednn_dims(t.shape()), onednn_dtype(t.dtype()),
                            onednn_dims(t.strides()));
}

dnnl::memory onednn_memory(OnednnState& st, const Tensor& t) {
  return dnnl::memory(onednn_desc(t), st.engine, t.raw_data());
}

std::string onednn_key(const Tensor& t) {
  return detail::concat(dtype_name(t.dtype()), ":", t.shape(), "/", t.strides());
}

}  // namespace kdnas
