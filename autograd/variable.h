// Variable: a tensor that remembers how it was computed, so that gradients can flow back.
//
// The tape is dynamic (flashlight / micrograd style): every differentiable function in
// autograd/functions.h computes its value with the op's forward kernel and, when grad mode is on
// and an input requires a gradient, records a GradNode holding the inputs' nodes and a backward
// closure that calls the op's explicit backward kernel. backward() on a scalar walks those nodes
// once in reverse topological order, accumulating dL/dx into every node it reaches, then frees
// the graph. Leaves that require a gradient (the parameters) keep theirs, summed over backward()
// calls, until zero_grad().
//
// What the graph keeps alive: a node holds only its gradient, its inputs' nodes and its closure.
// A Variable's value lives beside its node, not in it, so an activation no backward closure
// captured (say the input of tanh, whose backward needs only the output) is freed as soon as the
// caller drops it, even while the graph is alive.
//
// Lifetime: each recorded closure refers to the Context its op ran in; that Context must outlive
// backward() (or the graph, if backward is never called). Not thread-safe: one graph, one thread
// (the grad-mode flag is per thread). A backward kernel that throws leaves the graph partly
// consumed: recompute the forward pass.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/context.h"
#include "tensor/tensor.h"

namespace kdnas {

// A backward closure: given dL/d(output), returns dL/d(input) for each recorded input, in order,
// each of that input's shape, computed with the op's backward kernel in the Context the forward
// ran in. An undefined tensor means "no gradient" (for example a constant argument such as class
// targets). The engine, not the closure, accumulates the gradients into the inputs: one place
// checks their shapes and decides when a sum may be skipped or a copy is needed.
using Grads = std::vector<Tensor>;
using BackwardFn = std::function<Grads(Context& ctx, const Tensor& dout)>;

// One vertex of the graph: the part of a Variable that gradients flow through.
struct GradNode {
  std::string label;  // the op that made it ("linear"), or the leaf's name, for messages
  Shape shape;        // the value's shape and dtype: every gradient must match them
  DType dtype = DType::F32;
  Tensor grad;  // dL/d(value); undefined until something is accumulated into it
  // Non-leaves only: the op's inputs (null where an input needs no gradient), the closure and
  // the Context that gradients of this node are accumulated in.
  std::vector<std::shared_ptr<GradNode>> inputs;
  BackwardFn backward;
  Context* ctx = nullptr;
  bool freed = false;  // a backward() has run through this non-leaf and released it
  bool is_leaf() const { return ctx == nullptr; }
};

class Variable {
 public:
  Variable() = default;  // undefined: defined() is false
  explicit Variable(Tensor value, bool requires_grad = false, std::string name = {});
  // A trainable leaf: requires_grad = true. The optimizers' no-decay rule reads the name.
  static Variable parameter(Tensor value, std::string name);

  bool defined() const { return impl_ != nullptr; }
  const Tensor& value() const;
  // Replaces the value (e.g. loading a checkpoint) of a leaf; the shape and dtype must stay.
  void set_value(Tensor value) const;
  const Shape& shape() const { return value().shape(); }
  DType dtype() const { return value().dtype(); }
  int64_t dim() const { return value().dim(); }
  int64_t numel() const { return value().numel(); }
  const std::string& name() const;
  void set_name(std::string name) const;

  // True for parameters and for every result computed from one while grad mode was on.
  bool requires_grad() const;
  // Turns a leaf into a trainable one or back; an op's result cannot be changed.
  void set_requires_grad(bool on) const;
  bool is_leaf() const;  // not the result of a recorded op

  // dL/d(value), summed over backward() calls since zero_grad(); undefined if none arrived.
  // Results of ops do not keep theirs after backward() (as in PyTorch): read leaves' grads.
  const Tensor& grad() const;
  bool has_grad() const { return grad().defined(); }
  // Replaces a leaf's gradient (an optimizer test, clipping); shape and dtype must match.
  void set_grad(Tensor grad) const;
  void zero_grad() const;  // drops the gradient (set to undefined, not filled with zeros)

  // Backpropagates from this one-element variable, with dL/dL = 1; any other shape is an
  // error naming it. Frees the graph: a second backward() through it is an error.
  void backward() const;
  // Backpropagates a given dL/d(this) (same shape and dtype as the value).
  void backward(const Tensor& dout) const;

  // The same value, cut from the graph: no gradient flows through it.
  Variable detach() const { return Variable(value()); }

  // Nodes reachable from this one, itself included (0 when it needs no gradient): for tests
  // that check what a graph holds.
  int64_t graph_size() const;
  const std::shared_ptr<GradNode>& node() const;

 private:
  struct Impl {
    Tensor value;
    std::string name;
    std::shared_ptr<GradNode> node;  // null when no gradient is needed
  };
  std::shared_ptr<Impl> impl_;
  Impl& impl() const;
  friend Variable record_op(Context&, const char*, Tensor, const std::vector<Variable>&,
                            BackwardFn);
};

// Grad mode: on by default; off inside a NoGradGuard, where ops record nothing (inference,
// optimizer steps, evaluation). The flag is per thread.
bool grad_enabled();

class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// How autograd/functions.cpp records an op: wraps the forward result `value`; when grad mode is
// on and any input requires a gradient, attaches a node with `backward` (which must return one
// gradient per input). `op` names the node in messages. `ctx` must outlive the backward pass.
Variable record_op(Context& ctx, const char* op, Tensor value, const std::vector<Variable>& inputs,
                   BackwardFn backward);

}  // namespace kdnas
