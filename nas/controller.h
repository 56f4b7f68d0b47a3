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
//
// Details of the LSTM predictor: a context architecture outside the space (Arch{} before any
// episode has a best) reads a learned "none" row of each embedding table. Each update trains
// train_epochs passes of shuffled mini-batches (batch_size) over all observations, the shuffle
// seeded by (seed, number of observations); the targets are the rewards standardised over the
// observations (mean and sd are part of the state, "reward_norm"), and predictions are mapped
// back to reward units. state() names: "embed.<dim>", "lstm.weight_ih" [4H, 4E] (gates i, f, g,
// o), "lstm.weight_hh" [4H, H], "lstm.bias" [4H], "head.weight" [1, H], "head.bias" [1],
// "reward_norm" f64 [2], and "optim.<param>.<slot>" for RMSprop's state (copies, not live).
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
  int64_t batch_size = 32;    // observations per RMSprop step within a pass
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

// kind: "lstm" or "random"; errors name an unknown kind and a bad option. propose() asking for
// more candidates than the space has valid architectures is an error.
std::unique_ptr<Controller> make_controller(const std::string& kind, const SearchSpace& space,
                                            const EncoderConfig& teacher,
                                            const ControllerOptions& opt);

// Exploration rate of an episode: max(eps_min, eps_start - eps_step * episode).
double exploration(const ControllerOptions& opt, int64_t episode);
// Random candidates of an episode of n: floor(eps * n), robust to rounding (eps = 0.85 and
// n = 20 give 17 although 1 - 3 * 0.05 is 0.8499999999999999 in double).
int64_t random_count(const ControllerOptions& opt, int64_t episode, int64_t n);

}  // namespace kdnas
