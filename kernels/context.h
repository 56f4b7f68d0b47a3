// The context every op runs in: which CPU backend to use, how many threads, and the state of
// the backends (oneDNN engine + stream + primitive cache, CUDA stream + cuBLAS handle).
//
// There is no global backend state: whoever runs ops owns a Context and passes it in. Tests
// make one Context per backend and compare them against Backend::Ref.
#pragma once

#include <memory>
#include <vector>

namespace kdnas {

// CPU backends, slowest to fastest. CUDA is chosen by a tensor's device, not here.
//   Ref    - kernels/ref: naive, single-threaded; the executable specification.
//   Omp    - kernels/cpu: OpenMP + vectorised loops, no oneDNN (the embedded build's path).
//   Onednn - kernels/cpu with oneDNN primitives where they are faster; the rest as Omp.
enum class Backend : unsigned char { Ref, Omp, Onednn };

class Profiler;  // kernels/profiler.h

const char* backend_name(Backend b);
bool onednn_compiled();                        // built with KDNAS_WITH_ONEDNN
bool openmp_compiled();                        // built with KDNAS_WITH_OPENMP
bool cuda_compiled();                          // built with the CUDA backend
std::vector<Backend> compiled_cpu_backends();  // {Ref, Omp[, Onednn]}
Backend best_cpu_backend();

// A backend's objects, owned by the Context; each backend derives its own.
struct BackendState {
  virtual ~BackendState() = default;
};

class Context {
 public:
  // threads = 0 keeps the OpenMP default (OMP_NUM_THREADS or the core count).
  explicit Context(Backend backend = best_cpu_backend(), int threads = 0);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  Backend backend() const { return backend_; }
  void set_backend(Backend b);
  int threads() const { return threads_; }  // the resolved thread count (>= 1)

  // Backend state slots, filled on first use by the backend that owns the slot.
  enum Slot { kOnednnSlot = 0, kCudaSlot = 1, kCpuSlot = 2, kSlotCount = 3 };
  BackendState* state(Slot s) const { return states_[s].get(); }
  void set_state(Slot s, std::unique_ptr<BackendState> st) { states_[s] = std::move(st); }

  // The per-op profiler (kernels/profiler.h, docs/profiling.md), or null: profiling off. A new
  // Context gets the one KDNAS_PROFILE asks for; set_profiler replaces it (null turns it off).
  Profiler* profiler() const { return profiler_.get(); }
  const std::shared_ptr<Profiler>& shared_profiler() const { return profiler_; }
  void set_profiler(std::shared_ptr<Profiler> p) { profiler_ = std::move(p); }

 private:
  Backend backend_;
  int threads_ = 1;
  std::shared_ptr<Profiler> profiler_;
  std::unique_ptr<BackendState> states_[kSlotCount];
};

}  // namespace kdnas
