#include "autograd/variable.h"

#include <unordered_set>
#include <utility>

#include "kernels/binary.h"

namespace kdnas {
namespace {

thread_local bool g_grad_enabled = true;

std::shared_ptr<GradNode> make_leaf_node(const Tensor& value, const std::string& name) {
  auto n = std::make_shared<GradNode>();
  n->label = name.empty() ? "leaf" : name;
  n->shape = value.shape();
  n->dtype = value.dtype();
  return n;
}

// True when nobody but `t` refers to its bytes and it covers them exactly, so a leaf may keep
// it as its gradient without a copy. A view of another tensor (say the dout that a reshape's
// backward passes on) must be copied: the optimizer and clip_grad_norm write leaves' gradients
// in place.
bool owns_its_storage(const Tensor& t) {
  return t.storage().use_count() == 1 && t.is_contiguous() && t.offset() == 0 &&
         t.nbytes() == t.storage()->nbytes();
}

// node.grad += g. Sums are out of place (a new tensor), so a gradient that is shared with
// another node or with the caller is never written through.
void accumulate(GradNode& node, Tensor g, Context* ctx) {
  KDNAS_CHECK(g.shape() == node.shape && g.dtype() == node.dtype, "autograd: gradient for ",
              node.label, " is ", g.shape(), " ", dtype_name(g.dtype()), " but its value is ",
              node.shape, " ", dtype_name(node.dtype));
  if (!node.grad.defined()) {
    node.grad = (node.is_leaf() && !owns_its_storage(g)) ? g.clone() : std::move(g);
  } else if (ctx) {
    node.grad = add(*ctx, node.grad, g);
  } else {
    // Only a leaf used as the root of backward() has no consuming op's Context.
    Context ref(Backend::Ref);
    node.grad = add(ref, node.grad, g);
  }
}

// Nodes reachable from root (through inputs that need gradients), every node after all the
// nodes that consume it: the order gradients must be propagated in. Iterative, so a deep graph
// (a long training sequence) cannot overflow the stack. The list owns the nodes, which keeps
// each one alive while backward() frees the edges that led to it.
std::vector<std::shared_ptr<GradNode>> topological_order(const std::shared_ptr<GradNode>& root) {
  std::vector<std::shared_ptr<GradNode>> post;  // each node after all its inputs
  std::unordered_set<GradNode*> seen{root.get()};
  std::vector<std::pair<std::shared_ptr<GradNode>, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [n, next] = stack.back();
    if (next < n->inputs.size()) {
      const std::shared_ptr<GradNode>& in = n->inputs[next++];
      if (in && seen.insert(in.get()).second) stack.push_back({in, 0});
    } else {
      post.push_back(std::move(n));
      stack.pop_back();
    }
  }
  return {post.rbegin(), post.rend()};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Variable

Variable::Variable(Tensor value, bool requires_grad, std::string name)
    : impl_(std::make_shared<Impl>()) {
  KDNAS_CHECK(value.defined(), "variable: ", name.empty() ? "a variable" : name,
              " was given an undefined tensor");
  KDNAS_CHECK(!requires_grad || is_floating(value.dtype()), "variable: ", name,
              " requires a gradient but has dtype ", dtype_name(value.dtype()), " (shape ",
              value.shape(), ")");
  impl_->value = std::move(value);
  impl_->name = std::move(name);
  if (requires_grad) impl_->node = make_leaf_node(impl_->value, impl_->name);
}

Variable Variable::parameter(Tensor value, std::string name) {
  return Variable(std::move(value), true, std::move(name));
}

Variable::Impl& Variable::impl() const {
  KDNAS_CHECK(impl_, "variable: use of an undefined variable");
  return *impl_;
}

const Tensor& Variable::value() const {
  return impl().value;
}

void Variable::set_value(Tensor value) const {
  Impl& im = impl();
  KDNAS_CHECK(is_leaf(), "variable: set_value on ",
              im.name.empty() ? "the result of an op" : im.name, "; only leaves can be replaced");
  KDNAS_CHECK(value.shape() == im.value.shape() && value.dtype() == im.value.dtype(),
              "variable: set_value of ", im.name, " with ", value.shape(), " ",
              dtype_name(value.dtype()), " but it is ", im.value.shape(), " ",
              dtype_name(im.value.dtype()));
  im.value = std::move(value);
}

const std::string& Variable::name() const {
  return impl().name;
}

void Variable::set_name(std::string name) const {
  Impl& im = impl();
  im.name = std::move(name);
  if (im.node && im.node->is_leaf()) im.node->label = im.name;
}

bool Variable::requires_grad() const {
  return impl().node != nullptr;
}

bool Variable::is_leaf() const {
  return !impl().node || impl().node->is_leaf();
}

void Variable::set_requires_grad(bool on) const {
  Impl& im = impl();
  KDNAS_CHECK(is_leaf(), "variable: set_requires_grad on the result of ", im.node->label,
              "; only leaves can be changed (use detach())");
  KDNAS_CHECK(!on || is_floating(im.value.dtype()), "variable: ", im.name,
              " cannot require a gradient with dtype ", dtype_name(im.value.dtype()));
  if (on && !im.node) im.node = make_leaf_node(im.value, im.name);
  if (!on) im.node.reset();
}

const Tensor& Variable::grad() const {
  static const Tensor kNone;
  const Impl& im = impl();
  return im.node ? im.node->grad : kNone;
}

void Variable::set_grad(Tensor grad) const {
  Impl& im = impl();
  KDNAS_CHECK(im.node && im.node->is_leaf(), "variable: set_grad on ", im.name,
              ", which is not a leaf that requires a gradient");
  if (!grad.defined()) {
    im.node->grad = Tensor();
    return;
  }
  KDNAS_CHECK(grad.shape() == im.value.shape() && grad.dtype() == im.value.dtype(),
              "variable: set_grad of ", im.name, " with ", grad.shape(), " ",
              dtype_name(grad.dtype()), " but the value is ", im.value.shape(), " ",
              dtype_name(im.value.dtype()));
  im.node->grad = std::move(grad);
}

void Variable::zero_grad() const {
  if (impl().node) impl().node->grad = Tensor();
}

const std::shared_ptr<GradNode>& Variable::node() const {
  return impl().node;
}

int64_t Variable::graph_size() const {
  return impl().node ? int64_t(topological_order(impl().node).size()) : 0;
}

void Variable::backward() const {
  const Tensor& v = value();
  KDNAS_CHECK(v.numel() == 1, "backward: called on a variable of shape ", v.shape(),
              "; it needs a one-element loss (or pass dL/dvariable to backward(dout))");
  backward(Tensor::ones(v.shape(), v.dtype(), v.device()));
}

void Variable::backward(const Tensor& dout) const {
  const Impl& im = impl();
  KDNAS_CHECK(im.node, "backward: the variable ", im.name.empty() ? "" : im.name + " ", "of shape ",
              im.value.shape(),
              " does not require a gradient (no parameter reaches it, "
              "or it was computed under NoGradGuard)");
  KDNAS_CHECK(dout.shape() == im.value.shape() && dout.dtype() == im.value.dtype(),
              "backward: dout is ", dout.shape(), " ", dtype_name(dout.dtype()),
              " but the variable is ", im.value.shape(), " ", dtype_name(im.value.dtype()));
  std::vector<std::shared_ptr<GradNode>> order = topological_order(im.node);
  for (const auto& n : order)
    KDNAS_CHECK(!n->freed, "backward: the graph through ", n->label, " of shape ", n->shape,
                " was already freed by an earlier backward(); recompute the forward pass");

  // The root's own gradient: for a leaf root this accumulates like any other arrival.
  GradNode& root = *order.front();
  accumulate(root, root.is_leaf() ? dout.clone() : dout, root.ctx);

  for (const auto& n : order) {
    if (n->is_leaf()) continue;
    // A node no gradient reached (all its consumers' gradients were undefined) passes none on.
    if (n->grad.defined()) {
      Grads grads = n->backward(*n->ctx, n->grad);
      KDNAS_CHECK(grads.size() == n->inputs.size(), "autograd: backward of ", n->label,
                  " returned ", grads.size(), " gradients for ", n->inputs.size(), " inputs");
      for (size_t i = 0; i < grads.size(); ++i)
        if (n->inputs[i] && grads[i].defined())
          accumulate(*n->inputs[i], std::move(grads[i]), n->ctx);
    }
    // Free as we go: the closure's saved tensors, the edges and the intermediate gradient.
    n->backward = nullptr;
    n->inputs.clear();
    n->grad = Tensor();
    n->freed = true;
  }
}

// ---------------------------------------------------------------------------------------------
// Grad mode and recording

bool grad_enabled() {
  return g_grad_enabled;
}

NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) {
  g_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  g_grad_enabled = previous_;
}

Variable record_op(Context& ctx, const char* op, Tensor value, const std::vector<Variable>& inputs,
                   BackwardFn backward) {
  Variable out(std::move(value));
  if (!grad_enabled()) return out;
  bool any = false;
  for (const Variable& in : inputs) any = any || (in.defined() && in.requires_grad());
  if (!any) return out;
  auto n = std::make_shared<GradNode>();
  n->label = op;
  n->shape = out.shape();
  n->dtype = out.dtype();
  for (const Variable& in : inputs)
    n->inputs.push_back(in.defined() ? in.node() : std::shared_ptr<GradNode>());
  n->backward = std::move(backward);
  n->ctx = &ctx;
  out.impl_->node = std::move(n);
  return out;
}

}  // namespace kdnas
