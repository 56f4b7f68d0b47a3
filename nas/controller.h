// Controllers that propose candidates (KDNAS.md, "Controller").
//
// LstmController: a reward predictor on the project's own autograd. An architecture is encoded
// as the concatenation of one learned 32-dim embedding per search dimension (4 x 32); an LSTM
// (hidden 32) reads the sequence [previous episode's best, best so far, candidate]; a linear
// layer maps its last hidden state to the predicted reward. After each episode it is trained
// with MSE on every (context, architecture, measured reward) seen so far, RMSprop (lr 1e-4 by
// default). Proposal: with exploration eps (1.0, minus 0.05 per episode, floor 0.05), an episode
// takes floor(eps * N) random valid architectures and the rest as the highest predicted rewards
// among a pool of P random valid architectures (no duplicates within an episode).
//
// RandomController: the same interface, N random valid architectures: the baseline that shows
// what the predictor is worth at the same budget.
//
// Both are deterministic given the seed and the history: episode e draws its randomness from
// Rng(rng_hash(seed, e)) (tensor/rng.h), so the only state to save for a resumable search is the
// predictor's weights and optimizer state, as named tensors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nas/space.h"
#include "tensor/tensor.h"
#include "transformer/config.h"

namespace kdnas {

// One measured candidate as the controller sees it.
struct Observation {
  Arch prev_best, best_so_far, arch;  // the context it was proposed in, and the candidate
  double reward = 0;
};

struct ControllerOptions {
  int64_t embed_dim = 32, hidden = 32;
  double lr = 1e-4;
  int64_t train_epochs = 50;  // passes over the observations after each episode
  double eps_start = 1.0, eps_step = 0.05, eps_min = 0.05;
  int64_t pool = 100;
  uint64_t seed = 0;
};

class Controller {
 public:
  virtual ~Controller() = default;
  virtual const char* name() const = 0;
  // N distinct valid candidates for episode `episode` (0-based) given the context.
  virtual std::vector<Arch> propose(int64_t episode, int64_t n, const Arch& prev_best,
                                    const Arch& best_so_far) = 0;
  // Learns from every observation so far (called once per episode, after its measurements).
  virtual void update(const std::vector<Observation>& all) = 0;
  // Predicted reward (the random controller returns NaN).
  virtual double predict(const Arch& prev_best, const Arch& best_so_far, const Arch& a) = 0;
  // Save / restore (weights and optimizer state; empty for the random controller).
  virtual std::vector<std::pair<std::string, Tensor>> state() const = 0;
  virtual void load_state(const std::vector<std::pair<std::string, Tensor>>& state) = 0;
};

// kind: "lstm" or "random"; errors name an unknown kind.
std::unique_ptr<Controller> make_controller(const std::string& kind, const SearchSpace& space,
                                            const EncoderConfig& teacher,
                                            const ControllerOptions& opt);

// Exploration rate of an episode: max(eps_min, eps_start - eps_step * episode).
double exploration(const ControllerOptions& opt, int64_t episode);

}  // namespace kdnas
