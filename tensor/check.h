// KDNAS_CHECK: the one way kdnas reports a broken precondition.
//
// Every message names what failed and where ("matmul: a is [2, 3] but b is [4, 5]"), so that
// a user who passes a wrong shape or a corrupt file reads one clear line instead of a crash.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace kdnas {

// The exception type for every error kdnas raises on purpose.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {

// Shapes print as [2, 3, 4]; everything else through its operator<<.
inline void append(std::ostringstream& os, const std::vector<int64_t>& v) {
  os << '[';
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << ']';
}
template <typename T>
void append(std::ostringstream& os, const T& v) {
  os << v;
}

template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (append(os, args), ...);
  return os.str();
}

[[noreturn]] inline void fail(const std::string& msg) {
  throw Error(msg);
}

}  // namespace detail
}  // namespace kdnas

// KDNAS_CHECK(cond, "op: a is ", a.shape(), " but b is ", b.shape());
#define KDNAS_CHECK(cond, ...)                                                \
  do {                                                                        \
    if (!(cond)) ::kdnas::detail::fail(::kdnas::detail::concat(__VA_ARGS__)); \
  } while (0)

// For internal invariants: the message also says where, since it is our bug, not the user's.
#define KDNAS_ASSERT(cond)                                                                      \
  do {                                                                                          \
    if (!(cond))                                                                                \
      ::kdnas::detail::fail(                                                                    \
          ::kdnas::detail::concat("internal error: ", #cond, " at ", __FILE__, ":", __LINE__)); \
  } while (0)
