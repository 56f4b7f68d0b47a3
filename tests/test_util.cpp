#include "tests/test_util.h"

#include <stdlib.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace kdnas::test {

std::vector<Backend> fast_backends() {
  std::vector<Backend> v;
  for (Backend b : compiled_cpu_backends())
    if (b != Backend::Ref) v.push_back(b);
  return v;
}

Tensor random_tensor(const Shape& shape, Rng& rng, DType dtype, float lo, float hi) {
  Tensor t = Tensor::empty(shape, dtype);
  rng.fill_uniform(t, lo, hi);
  return t;
}

Tensor noncontiguous(const Tensor& t) {
  // Lay the values out in a buffer twice as wide in the last dim, then view every other column.
  if (t.dim() == 0) return t;
  Shape big = t.shape();
  big.back() *= 2;
  Tensor buf = Tensor::full(big, 1e30, t.dtype());  // poison: a kernel reading gaps shows it
  Tensor view = buf.slice(-1, 0, big.back(), 2);
  view.copy_(t);
  return view;
}

std::string Closeness::message(const std::string& what) const {
  std::ostringstream os;
  os << what << ": max abs err " << max_abs << ", max rel err " << max_rel;
  if (!ok)
    os << "; first bad index " << first_bad << " (got " << bad_got << ", want " << bad_want << ")";
  return os.str();
}

Closeness compare(const Tensor& got, const Tensor& want, Tol tol) {
  Closeness c;
  if (got.shape() != want.shape()) {
    c.ok = false;
    c.first_bad = -2;
    return c;
  }
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    double a = std::abs(g[i] - w[i]);
    bool bad = !(a <= tol.atol + tol.rtol * std::abs(w[i]));  // NaN counts as bad
    if (std::isnan(w[i]) && std::isnan(g[i])) bad = false;
    c.max_abs = std::max(c.max_abs, a);
    if (w[i] != 0) c.max_rel = std::max(c.max_rel, a / std::abs(w[i]));
    if (bad && c.ok) {
      c.ok = false;
      c.first_bad = int64_t(i);
      c.bad_got = g[i];
      c.bad_want = w[i];
    }
  }
  return c;
}

void gradcheck(
    const std::string& what, const std::function<Tensor(const std::vector<Tensor>&)>& forward,
    const std::function<std::vector<Tensor>(const std::vector<Tensor>&, const Tensor&)>& backward,
    std::vector<Tensor> inputs, double eps, Tol tol) {
  Rng rng(1234);
  Tensor out = forward(inputs);
  Tensor w = random_tensor(out.shape(), rng, DType::F64, -1.f, 1.f);
  auto loss = [&](const std::vector<Tensor>& in) {
    Tensor o = forward(in);
    std::vector<double> ov = o.to_vector<double>(), wv = w.to_vector<double>();
    double s = 0;
    for (size_t i = 0; i < ov.size(); ++i) s += ov[i] * wv[i];
    return s;
  };
  std::vector<Tensor> grads = backward(inputs, w);
  REQUIRE(grads.size() == inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!grads[k].defined()) continue;
    REQUIRE_MESSAGE(grads[k].shape() == inputs[k].shape(),
                    what << ": gradient " << k << " has the wrong shape");
    Tensor x = inputs[k].contiguous().clone();
    Tensor num = Tensor::empty(x.shape(), DType::F64);
    double* xp = x.data<double>();
    std::vector<Tensor> in = inputs;
    in[k] = x;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double orig = xp[i];
      xp[i] = orig + eps;
      double lp = loss(in);
      xp[i] = orig - eps;
      double lm = loss(in);
      xp[i] = orig;
      num.data<double>()[i] = (lp - lm) / (2 * eps);
    }
    KDNAS_CHECK_CLOSE(grads[k], num, tol, what + " gradient of input " + std::to_string(k));
  }
}

void check_throws_with(const std::function<void()>& f, const std::vector<std::string>& parts) {
  std::string msg;
  try {
    f();
  } catch (const Error& e) {
    msg = e.what();
  }
  INFO("error message: '" << msg << "'");
  REQUIRE_MESSAGE(!msg.empty(), "expected a kdnas::Error");
  for (const std::string& p : parts)
    CHECK_MESSAGE(msg.find(p) != std::string::npos, "missing '" << p << "'");
}

TempDir::TempDir() {
  std::string t = (std::filesystem::temp_directory_path() / "kdnas_test_XXXXXX").string();
  if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
  path = t;
}

TempDir::~TempDir() {
  std::filesystem::remove_all(path);
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace kdnas::test
