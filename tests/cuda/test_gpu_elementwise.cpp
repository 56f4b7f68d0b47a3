// GPU tests of the element-wise kernels against the CPU reference kernels: activations,
// dropout (bit-exact masks), casts (bit-exact), optimizer updates, broadcasting binary ops and
// their gradient reduction, permute_copy and concat/split (exact copies).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "kernels/cuda/binary_cuda.h"
#include "kernels/cuda/cast_cuda.h"
#include "kernels/cuda/concat_cuda.h"
#include "kernels/cuda/dropout_cuda.h"
#include "kernels/cuda/eltwise_cuda.h"
#include "kernels/cuda/optim_cuda.h"
#include "kernels/cuda/permute_cuda.h"
#include "kernels/ref/binary_ref.h"
#include "kernels/ref/cast_ref.h"
#include "kernels/ref/concat_ref.h"
#include "kernels/ref/dropout_ref.h"
#include "kernels/ref/eltwise_ref.h"
#include "kernels/ref/optim_ref.h"
#include "kernels/ref/permute_ref.h"
#include "tests/cuda/gpu_test_util.h"

using namespace kdnas;
using namespace kdnas::test;

namespace {

std::vector<int64_t> sizes() {
  std::vector<int64_t> v = kOddSizes;
  v.push_back(kB * kT * kFF);  // XLM-R's FFN activation
  return v;
}

using Fwd = void (*)(Context&, float*, const float*, int64_t);
using Bwd = void (*)(Context&, float*, const float*, const float*, int64_t);
using RefFwd = void (*)(float*, const float*, int64_t);
using RefBwd = void (*)(float*, const float*, const float*, int64_t);

void check_activation(const char* name, Fwd fwd, RefFwd ref_fwd, Bwd bwd, RefBwd ref_bwd,
                      bool saves_output) {
  Context ctx;
  Rng rng(1);
  for (int64_t n : sizes()) {
    Tensor x = random_tensor({n}, rng, DType::F32, -6.f, 6.f), d = random_tensor({n}, rng);
    Tensor y = Tensor::empty({n}), dx = Tensor::empty({n});
    ref_fwd(y.data<float>(), x.data<float>(), n);
    ref_bwd(dx.data<float>(), d.data<float>(), (saves_output ? y : x).data<float>(), n);
    Tensor xg = to_gpu(x), dg = to_gpu(d), yg = gpu_empty({n}), dxg = gpu_empty({n});
    fwd(ctx, yg.data<float>(), xg.data<float>(), n);
    const std::string what = std::string(name) + " n=" + std::to_string(n);
    KDNAS_CHECK_CLOSE(to_host(yg), y, kF32, what);
    Tensor saved = saves_output ? to_gpu(y) : xg;
    bwd(ctx, dxg.data<float>(), dg.data<float>(), saved.data<float>(), n);
    KDNAS_CHECK_CLOSE(to_host(dxg), dx, kF32, what + " backward");
  }
}

}  // namespace

TEST_SUITE("gpu") {
TEST_CASE("gpu: gelu, tanh, relu forward and backward match the reference") {
  check_activation("gelu", gelu_forward_cuda, gelu_forward_ref<float>, gelu_backward_cuda,
                   gelu_backward_ref<float>, false);
  check_activation("tanh", tanh_forward_cuda, tanh_forward_ref<float>, tanh_backward_cuda,
                   tanh_backward_ref<float>, true);
  check_activation("relu", relu_forward_cuda, relu_forward_ref<float>, relu_backward_cuda,
                   relu_backward_ref<float>, false);
}

TEST_CASE("gpu: scale matches the reference") {
  Context ctx;
  Rng rng(2);
  for (int64_t n : sizes()) {
    Tensor x = random_tensor({n}, rng), y = Tensor::empty({n});
    scale_forward_ref(y.data<float>(), x.data<float>(), -0.37f, n);
    Tensor xg = to_gpu(x), yg = gpu_empty({n});
    scale_forward_cuda(ctx, yg.data<float>(), xg.data<float>(), -0.37f, n);
    KDNAS_CHECK_CLOSE(to_host(yg), y, kExact, "scale n=" + std::to_string(n));
  }
}

TEST_CASE("gpu: dropout masks and outputs are the reference's bits") {
  Context ctx;
  Rng rng(5);
  for (int64_t n : sizes())
    for (double p : {0.0, 0.1, 0.5, 1.0}) {
      const uint64_t seed = 1234, counter = 99 + uint64_t(n);
      Tensor x = random_tensor({n}, rng), d = random_tensor({n}, rng);
      Tensor y = Tensor::empty({n}), m = Tensor::empty({n}, DType::U8), dx = Tensor::empty({n});
      dropout_forward_ref(y.data<float>(), m.data<uint8_t>(), x.data<float>(), p, seed, counter,
                          n);
      dropout_backward_ref(dx.data<float>(), d.data<float>(), m.data<uint8_t>(), p, n);
      Tensor xg = to_gpu(x), dg = to_gpu(d), yg = gpu_empty({n}), mg = gpu_empty({n}, DType::U8);
      Tensor dxg = gpu_empty({n});
      dropout_forward_cuda(ctx, yg.data<float>(), mg.data<uint8_t>(), xg.data<float>(), p, seed,
                           counter, n);
      dropout_backward_cuda(ctx, dxg.data<float>(), dg.data<float>(), mg.data<uint8_t>(), p, n);
      const std::string what = "dropout n=" + std::to_string(n) + " p=" + std::to_string(p);
      KDNAS_CHECK_CLOSE(to_host(mg), m, kExact, what + " mask");
      KDNAS_CHECK_CLOSE(to_host(yg), y, kExact, what);
      KDNAS_CHECK_CLOSE(to_host(dxg), dx, kExact, what + " backward");
    }
}

TEST_CASE("gpu: casts between f32, bf16 and f16 are the reference's bits") {
  Context ctx;
  Rng rng(6);
  const int64_t n = 1 << 20;
  // Random bit patterns: every exponent, NaN payloads, infinities, subnormals.
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& f : v) {
    const uint32_t u = uint32_t(rng.next_u64());
    std::memcpy(&f, &u, 4);
  }
  v[0] = 65504.f, v[1] = 65520.f, v[2] = -0.f, v[3] = std::numeric_limits<float>::infinity();
  Tensor x = Tensor::from_vector(v, {n}), xg = to_gpu(x);
  Tensor b = Tensor::empty({n}, DType::BF16), h = Tensor::empty({n}, DType::F16);
  cast_ref(b.data<bf16>(), x.data<float>(), n);
  cast_ref(h.data<f16>(), x.data<float>(), n);
  Tensor bg = gpu_empty({n}, DType::BF16), hg = gpu_empty({n}, DType::F16);
  cast_f32_to_bf16_cuda(ctx, bg.data<bf16>(), xg.data<float>(), n);
  cast_f32_to_f16_cuda(ctx, hg.data<f16>(), xg.data<float>(), n);
  // Compare the 16-bit patterns, so NaNs are compared too.
  auto bits16 = [](const Tensor& t) {
    const uint16_t* p = static_cast<const uint16_t*>(t.raw_data());
    return std::vector<uint16_t>(p, p + t.numel());
  };
  CHECK(bits16(to_host(bg)) == bits16(b));
  CHECK(bits16(to_host(hg)) == bits16(h));
  // And back to f32 (exact), through the generic entry point too.
  Tensor fb = Tensor::empty({n}), fh = Tensor::empty({n});
  cast_ref(fb.data<float>(), b.data<bf16>(), n);
  cast_ref(fh.data<float>(), h.data<f16>(), n);
  Tensor fbg = gpu_empty({n}), fhg = gpu_empty({n});
  cast_bf16_to_f32_cuda(ctx, fbg.data<float>(), bg.data<bf16>(), n);
  cast_cuda(ctx, fhg.raw_data(), DType::F32, hg.raw_data(), DType::F16, n);
  KDNAS_CHECK_CLOSE(to_host(fbg), fb, kExact, "bf16 -> f32");
  KDNAS_CHECK_CLOSE(to_host(fhg), fh, kExact, "f16 -> f32");
  check_throws_with(
      [&] { cast_cuda(ctx, fbg.raw_data(), DType::I32, xg.raw_data(), DType::F32, n); },
      {"cast", "i32"});
}

TEST_CASE("gpu: AdamW, SGD and RMSprop updates match the reference over several steps") {
  Context ctx;
  Rng rng(7);
  for (int64_t n : {int64_t(1), int64_t(769), int64_t(1) << 20}) {
    Tensor p = random_tensor({n}, rng), z = Tensor::zeros({n});
    // Host state (reference) and device state, updated side by side for 3 steps.
    Tensor hp = p.clone(), hm = z.clone(), hv = z.clone();
    Tensor dp = to_gpu(p), dm = to_gpu(z), dv = to_gpu(z);
    for (int64_t step = 1; step <= 3; ++step) {
      Tensor g = random_tensor({n}, rng), gg = to_gpu(g);
      adamw_update_ref(hp.data<float>(), hm.data<float>(), hv.data<float>(), g.data<float>(),
                       1e-3, 0.9, 0.999, 1e-8, 0.01, step, n);
      adamw_update_cuda(ctx, dp.data<float>(), dm.data<float>(), dv.data<float>(),
                        gg.data<float>(), 1e-3, 0.9, 0.999, 1e-8, 0.01, step, n);
    }
    KDNAS_CHECK_CLOSE(to_host(dp), hp, kF32, "adamw param");
    KDNAS_CHECK_CLOSE(to_host(dm), hm, kF32, "adamw m");
    KDNAS_CHECK_CLOSE(to_host(dv), hv, kF32, "adamw v");

    for (bool nesterov : {false, true}) {
      Tensor sp = p.clone(), sb = z.clone(), gp = to_gpu(p), gb = to_gpu(z);
      for (int64_t step = 1; step <= 3; ++step) {
        Tensor g = random_tensor({n}, rng), gg = to_gpu(g);
        sgd_update_ref(sp.data<float>(), sb.data<float>(), g.data<float>(), 0.1, 0.9,
                       nesterov ? 0.0 : 0.1, 1e-4, nesterov, step, n);
        sgd_update_cuda(ctx, gp.data<float>(), gb.data<float>(), gg.data<float>(), 0.1, 0.9,
                        nesterov ? 0.0 : 0.1, 1e-4, nesterov, step, n);
      }
      KDNAS_CHECK_CLOSE(to_host(gp), sp, kF32, "sgd param");
      KDNAS_CHECK_CLOSE(to_host(gb), sb, kF32, "sgd buffer");
    }

    for (double momentum : {0.0, 0.5}) {
      Tensor rp = p.clone(), rs = z.clone(), rb = z.clone();
      Tensor gp = to_gpu(p), gs = to_gpu(z), gb = to_gpu(z);
      for (int64_t step = 1; step <= 3; ++step) {
        Tensor g = random_tensor({n}, rng), gg = to_gpu(g);
        rmsprop_update_ref(rp.data<float>(), rs.data<float>(),
                           momentum > 0 ? rb.data<float>() : nullptr, g.data<float>(), 1e-2, 0.99,
                           1e-8, 1e-4, momentum, n);
        rmsprop_update_cuda(ctx, gp.data<float>(), gs.data<float>(),
                            momentum > 0 ? gb.data<float>() : nullptr, gg.data<float>(), 1e-2,
                            0.99, 1e-8, 1e-4, momentum, n);
      }
      // A few parameters with a tiny square_avg divide by ~eps: compare with a relative margin.
      KDNAS_CHECK_CLOSE(to_host(gp), rp, (Tol{1e-5, 1e-4}), "rmsprop param");
      KDNAS_CHECK_CLOSE(to_host(gs), rs, kF32, "rmsprop square_avg");
    }
  }
}

TEST_CASE("gpu: broadcasting binary ops match the reference, contiguous and strided") {
  Context ctx;
  Rng rng(8);
  struct Case {
    Shape a, b;
  };
  const std::vector<Case> cases{{{769}, {769}},
                                {{kB * kT, kC}, {kC}},
                                {{3, 1, 5}, {1, 4, 1}},
                                {{7, 13}, {7, 1}},
                                {{2, 3, 4, 5}, {5}},
                                {{1}, {33, 1}},
                                {{kB, 1, 1, kT}, {kB, kNH, kT, kT}}};
  for (const Case& c : cases)
    for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div})
      for (bool strided : {false, true}) {
        Tensor a = random_tensor(c.a, rng, DType::F32, 0.5f, 2.f);
        Tensor b = random_tensor(c.b, rng, DType::F32, 0.5f, 2.f);
        // The broadcast shape and per-output-dim strides, as kernels/binary.cpp builds them.
        const size_t nd = std::max(c.a.size(), c.b.size());
        Shape shape(nd);
        for (size_t k = 0; k < nd; ++k) {
          const int64_t x = k + c.a.size() >= nd ? c.a[k + c.a.size() - nd] : 1;
          const int64_t y = k + c.b.size() >= nd ? c.b[k + c.b.size() - nd] : 1;
          shape[k] = x == 1 ? y : x;
        }
        // a on the device, contiguous or as every other column of a buffer twice as wide.
        Tensor ag = to_gpu(a);
        if (strided) {
          Shape big = a.shape();
          big.back() *= 2;
          Tensor host_buf = Tensor::full(big, 1e30);
          host_buf.slice(-1, 0, big.back(), 2).copy_(a);
          ag = host_buf.to(gpu()).slice(-1, 0, big.back(), 2);
        }
        Tensor bg = to_gpu(b);
        auto strides_of = [&](const Tensor& t) {
          Shape st(nd, 0);
          const size_t lead = nd - size_t(t.dim());
          for (size_t k = 0; k < size_t(t.dim()); ++k)
            st[lead + k] = t.shape()[k] == 1 ? 0 : t.strides()[k];
          return st;
        };
        Tensor want = Tensor::empty(shape), got = gpu_empty(shape);
        binary_forward_ref(want.data<float>(), a.data<float>(), b.data<float>(), op, shape,
                           strides_of(a), strides_of(b));
        binary_forward_cuda(ctx, got.data<float>(), ag.data<float>(), bg.data<float>(), op, shape,
                            strides_of(ag), strides_of(bg));
        KDNAS_CHECK_CLOSE(to_host(got), want, kF32,
                          std::string(binary_op_name(op)) + " " + shape_str(c.a) + " " +
                              shape_str(c.b) + (strided ? " strided" : ""));
      }
}

TEST_CASE("gpu: sum_to_shape reduces broadcast gradients like the reference backward") {
  Context ctx;
  Rng rng(9);
  struct Case {
    Shape x, out;
  };
  const std::vector<Case> cases{
      {{kB * kT, kC}, {kC}},     {{3, 4, 5}, {3, 1, 5}}, {{3, 4, 5}, {1}},   {{7, 13}, {7, 1}},
      {{2, 3, 4, 5}, {3, 1, 1}}, {{769}, {769}},         {{4096, 3}, {1, 3}}};
  for (const Case& c : cases) {
    Tensor x = random_tensor(c.x, rng);
    // The reference: add's backward into db, with out broadcast to x's shape (db starts at 0).
    Tensor want = Tensor::zeros(c.out), dummy = Tensor::zeros(c.x);
    const size_t nd = c.x.size(), lead = nd - c.out.size();
    Shape so(nd, 0), sx = contiguous_strides(c.x), oc = contiguous_strides(c.out);
    for (size_t k = lead; k < nd; ++k) so[k] = c.out[k - lead] == 1 ? 0 : oc[k - lead];
    binary_backward_ref<float>(nullptr, want.data<float>(), x.data<float>(), dummy.data<float>(),
                               want.data<float>(), BinaryOp::Add, c.x, sx, so);
    scale_forward_ref(want.data<float>(), want.data<float>(), -2.f, want.numel());
    Tensor got = gpu_empty(c.out), xg = to_gpu(x);
    sum_to_shape_cuda(ctx, got.data<float>(), xg.data<float>(), c.x, c.out, -2.f);
    // The reference adds the terms one by one in f32, the kernel in double: allow for the
    // reference's own rounding over up to 1024 terms.
    KDNAS_CHECK_CLOSE(to_host(got), want, (Tol{1e-4, 1e-5}),
                      "sum_to_shape " + shape_str(c.x) + " -> " + shape_str(c.out));
  }
}

TEST_CASE("gpu: permute_copy is the reference's copy for every element size") {
  Context ctx;
  Rng rng(10);
  struct Case {
    Shape x;
    std::vector<int64_t> order;
  };
  const std::vector<Case> cases{{{kB, kT, kNH, kHS}, {0, 2, 1, 3}},
                                {{kB, kNH, kT, kHS}, {0, 2, 1, 3}},
                                {{33, 7}, {1, 0}},
                                {{2, 3, 5, 7, 11}, {4, 2, 0, 3, 1}},
                                {{769}, {0}},
                                {{1, 13, 1}, {2, 0, 1}}};
  for (const Case& c : cases)
    for (DType dt : {DType::U8, DType::BF16, DType::F32, DType::I64}) {
      Tensor x = random_tensor(c.x, rng, DType::F32, 0.f, 100.f).to(dt);
      Shape out_shape;
      for (int64_t d : c.order) out_shape.push_back(c.x[size_t(d)]);
      Tensor want = Tensor::empty(out_shape, dt), got = gpu_empty(out_shape, dt), xg = to_gpu(x);
      const int64_t es = int64_t(x.element_size());
      auto ref = [&]<typename T>() {
        permute_copy_ref(static_cast<T*>(want.raw_data()), static_cast<const T*>(x.raw_data()),
                         x.shape(), x.strides(), c.order);
      };
      if (es == 1) ref.template operator()<uint8_t>();
      if (es == 2) ref.template operator()<uint16_t>();
      if (es == 4) ref.template operator()<uint32_t>();
      if (es == 8) ref.template operator()<uint64_t>();
      permute_copy_cuda(ctx, got.raw_data(), xg.raw_data(), x.element_size(), x.shape(),
                        x.strides(), c.order);
      KDNAS_CHECK_CLOSE(to_host(got), want, kExact,
                        "permute " + shape_str(c.x) + " " + dtype_name(dt));
    }
}

TEST_CASE("gpu: concat and split are the reference's copies") {
  Context ctx;
  Rng rng(11);
  const int64_t outer = 37, inner = 5;
  const std::vector<int64_t> sizes{3, 0, 7, 1};
  const int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t(0));
  std::vector<Tensor> xs, xgs;
  std::vector<const uint32_t*> hp;  // the reference moves elements by size: f32 as 4 bytes
  std::vector<const void*> dp;
  std::vector<int64_t> seg;
  for (int64_t s : sizes) {
    xs.push_back(random_tensor({outer, s, inner}, rng));
    xgs.push_back(to_gpu(xs.back()));
    hp.push_back(static_cast<const uint32_t*>(xs.back().raw_data()));
    dp.push_back(xgs.back().raw_data());
    seg.push_back(s * inner * 4);
  }
  Tensor want = Tensor::empty({outer, total, inner}), got = gpu_empty({outer, total, inner});
  concat_ref(static_cast<uint32_t*>(want.raw_data()), hp, sizes, outer, inner);
  concat_cuda(ctx, got.raw_data(), dp, seg, outer);
  KDNAS_CHECK_CLOSE(to_host(got), want, kExact, "concat");
  std::vector<Tensor> outs;
  std::vector<void*> op;
  for (int64_t s : sizes) {
    outs.push_back(gpu_empty({outer, s, inner}));
    op.push_back(outs.back().raw_data());
  }
  split_cuda(ctx, op, got.raw_data(), seg, outer);
  for (size_t k = 0; k < sizes.size(); ++k)
    KDNAS_CHECK_CLOSE(to_host(outs[k]), xs[k], kExact, "split piece " + std::to_string(k));
}
}
