#include "backends/reference/reference_backend.hpp"

#include <cmath>

#include "backends/reference/kernels.hpp"
#include "core/error.hpp"
#include "graph/ops.hpp"

namespace onnxforge {

namespace {

using reference::Buffer;
using reference::KernelTable;
using reference::NodeState;

const KernelTable& kernels() {
  static const KernelTable table = [] {
    KernelTable t("reference");
    reference::add_elementwise_kernels(t);
    reference::add_binary_kernels(t);
    reference::add_pooling_kernels(t);
    reference::add_normalization_kernels(t);
    reference::add_linear_algebra_kernels(t);
    reference::add_shape_kernels(t);
    reference::add_loss_kernels(t);
    t.complete();
    return t;
  }();
  return table;
}

Buffer to_buffer(const Tensor& t) {
  Buffer b;
  b.shape = t.shape();
  b.data = t.to_doubles();
  return b;
}

Tensor to_tensor(const Buffer& b, DType dtype) {
  Tensor t(DType::f64, b.shape);
  std::copy(b.data.begin(), b.data.end(), t.data<double>().begin());
  return t.to(dtype);
}

class ReferenceProgram final : public Program {
 public:
  ReferenceProgram(const Graph& graph, const CompileOptions& options)
      : graph_(graph), options_(options), random_(options.seed), states_(graph.nodes.size()) {
    for (const auto& in : graph_.inputs) values_[in.name] = Buffer(in.shape);
    for (const auto& init : graph_.initializers) values_[init.name] = to_buffer(init.value);
    for (const auto& node : graph_.nodes) {
      for (const auto& out : node.outputs) values_[out] = Buffer(graph_.value(out).shape);
    }
    if (options_.training) {
      needs_gradient_ = values_needing_gradient(graph_, {options_.loss}, options_.input_gradients);
    }
  }

  void set_input(const std::string& name, const Tensor& value) override {
    if (!graph_.is_input(name)) fail("reference backend: '{}' is not an input of the graph", name);
    const auto& expected = graph_.value(name).shape;
    if (value.shape() != expected) {
      fail("reference backend: input '{}' expects shape {}, got {}", name, to_string(expected),
           to_string(value.shape()));
    }
    values_[name] = to_buffer(value);
  }

  void forward(Mode mode) override {
    if (mode == Mode::training && !options_.training) {
      fail("reference backend: training forward on a Program compiled for inference");
    }
    // Dropout masks depend on (seed, optimizer step) only, so a resumed run draws the same ones.
    random_ = Random(hash_name(std::to_string(step_), options_.seed));
    for (std::size_t i = 0; i < graph_.nodes.size(); ++i) {
      const auto& node = graph_.nodes[i];
      reference::ForwardArgs args{node, graph_, mode, {}, {}, states_[i], random_, {}};
      for (const auto& in : node.inputs) {
        args.inputs.push_back(in.empty() ? nullptr : &values_.at(in));
        args.mutable_inputs.push_back(graph_.find_initializer(in) ? &values_.at(in) : nullptr);
      }
      for (const auto& out : node.outputs) args.outputs.push_back(&values_.at(out));
      kernels().lowering(node).forward(args);
    }
    last_mode_ = mode;
  }

  Tensor fetch(const std::string& value) const override {
    auto it = values_.find(value);
    if (it == values_.end()) fail("reference backend: no value named '{}'", value);
    return to_tensor(it->second, graph_.value(value).dtype);
  }

  void backward() override {
    Tensor one(DType::f64, graph_.value(options_.loss).shape);
    one.data<double>()[0] = 1.0;
    run_backward({{options_.loss, one}}, needs_gradient_);
  }

  void backward(const std::map<std::string, Tensor>& seeds) override {
    if (!options_.training) fail("reference backend: backward on a Program compiled for inference");
    std::vector<std::string> roots;
    for (const auto& [name, grad] : seeds) roots.push_back(name);
    run_backward(seeds, values_needing_gradient(graph_, roots, options_.input_gradients));
  }

  Tensor gradient(const std::string& name) const override {
    const auto* init = graph_.find_initializer(name);
    const bool is_input = graph_.is_input(name) && options_.input_gradients;
    if (!is_input && !(init && init->trainable)) {
      fail("reference backend: '{}' is not a trainable parameter (no gradient is kept)", name);
    }
    auto it = gradients_.find(name);
    if (it == gradients_.end()) return Tensor(graph_.value(name).dtype, graph_.value(name).shape);
    return to_tensor(it->second, graph_.value(name).dtype);
  }

  void set_gradient(const std::string& name, const Tensor& value) override {
    const auto* init = graph_.find_initializer(name);
    if (!init || !init->trainable) fail("reference backend: '{}' is not trainable", name);
    if (value.shape() != init->value.shape()) {
      fail("reference backend: gradient for '{}' must have shape {}", name,
           to_string(init->value.shape()));
    }
    gradients_[name] = to_buffer(value);
  }

  double gradient_norm() const override {
    double sum = 0;
    for (const auto& init : graph_.initializers) {
      if (!init.trainable) continue;
      auto it = gradients_.find(init.name);
      if (it == gradients_.end()) continue;
      for (double g : it->second.data) sum += g * g;
    }
    return std::sqrt(sum);
  }

  void update(const OptimizerSpec& spec, double gradient_scale) override {
    ++step_;
    for (const auto& init : graph_.initializers) {
      if (!init.trainable) continue;
      auto& weights = values_.at(init.name).data;
      auto git = gradients_.find(init.name);
      const std::vector<double> zeros(weights.size(), 0.0);
      const auto& grad = git == gradients_.end() ? zeros : git->second.data;
      auto& a = slot(init.name + (spec.kind == OptimizerSpec::Kind::sgd ? "/velocity" : "/m"),
                     init.value.shape());
      auto& b = slot(init.name + "/v", init.value.shape());
      apply_optimizer<double>(spec, step_, gradient_scale, weights, grad, a.data,
                              spec.kind == OptimizerSpec::Kind::sgd ? std::span<double>{} : b.data);
    }
  }

  Tensor parameter(const std::string& name) const override {
    const auto* init = graph_.find_initializer(name);
    if (!init) fail("reference backend: no parameter named '{}'", name);
    return to_tensor(values_.at(name), init->value.dtype());
  }

  void set_parameter(const std::string& name, const Tensor& value) override {
    const auto* init = graph_.find_initializer(name);
    if (!init) fail("reference backend: no parameter named '{}'", name);
    if (value.shape() != init->value.shape()) {
      fail("reference backend: parameter '{}' has shape {}, got {}", name,
           to_string(init->value.shape()), to_string(value.shape()));
    }
    values_[name] = to_buffer(value);
  }

  std::map<std::string, Tensor> optimizer_state() const override {
    std::map<std::string, Tensor> state;
    for (const auto& [name, buffer] : slots_) state[name] = to_tensor(buffer, DType::f32);
    Tensor step(DType::i64, {1});
    step.data<std::int64_t>()[0] = step_;
    state["step"] = step;
    return state;
  }

  void set_optimizer_state(const std::map<std::string, Tensor>& state) override {
    slots_.clear();
    step_ = 0;
    for (const auto& [name, tensor] : state) {
      if (name == "step") {
        step_ = tensor.data<std::int64_t>()[0];
      } else {
        slots_[name] = to_buffer(tensor);
      }
    }
  }

  const Graph& graph() const override { return graph_; }

 private:
  Buffer& slot(const std::string& name, const Shape& shape) {
    auto it = slots_.find(name);
    if (it == slots_.end()) it = slots_.emplace(name, Buffer(shape)).first;
    return it->second;
  }

  void run_backward(const std::map<std::string, Tensor>& seeds,
                    const std::set<std::string>& needs) {
    if (last_mode_ != Mode::training) {
      fail("reference backend: backward needs a training-mode forward first");
    }
    gradients_.clear();
    for (const auto& [name, grad] : seeds) {
      if (grad.shape() != graph_.value(name).shape) {
        fail("reference backend: seed gradient for '{}' must have shape {}", name,
             to_string(graph_.value(name).shape));
      }
      gradients_[name] = to_buffer(grad);
    }
    for (std::size_t i = graph_.nodes.size(); i-- > 0;) {
      const auto& node = graph_.nodes[i];
      auto has_grad = [&](const std::string& v) { return gradients_.count(v) != 0; };
      if (!std::any_of(node.outputs.begin(), node.outputs.end(), has_grad)) continue;
      reference::BackwardArgs args{node, graph_, Mode::training, {}, {}, {}, {}, states_[i]};
      bool any_input = false;
      for (std::size_t k = 0; k < node.inputs.size(); ++k) {
        const auto& in = node.inputs[k];
        args.inputs.push_back(in.empty() ? nullptr : &values_.at(in));
        const bool wanted = !in.empty() && needs.count(in) && is_differentiable_input(node, k);
        if (wanted) {
          auto it = gradients_.find(in);
          if (it == gradients_.end())
            it = gradients_.emplace(in, Buffer(values_.at(in).shape)).first;
          args.input_grads.push_back(&it->second);
          any_input = true;
        } else {
          args.input_grads.push_back(nullptr);
        }
      }
      if (!any_input) continue;
      for (const auto& out : node.outputs) {
        args.outputs.push_back(&values_.at(out));
        auto it = gradients_.find(out);
        args.output_grads.push_back(it == gradients_.end() ? nullptr : &it->second);
      }
      const auto& kernel = kernels().lowering(node);
      if (!kernel.backward) {
        fail("reference backend: node '{}' ({}) is not differentiable", node.name, node.op);
      }
      kernel.backward(args);
    }
    // Only parameters' and inputs' gradients are kept.
    std::erase_if(gradients_, [&](const auto& entry) {
      const auto* init = graph_.find_initializer(entry.first);
      return !(init && init->trainable) && !graph_.is_input(entry.first);
    });
  }

  Graph graph_;
  CompileOptions options_;
  Random random_;
  std::vector<NodeState> states_;
  std::map<std::string, Buffer> values_;
  std::map<std::string, Buffer> gradients_;
  std::map<std::string, Buffer> slots_;
  std::set<std::string> needs_gradient_;
  std::int64_t step_ = 0;
  Mode last_mode_ = Mode::inference;
};

class ReferenceBackend final : public Backend {
 public:
  std::string name() const override { return "reference"; }

  Support supports(const Graph& graph, const Node& node, const CompileOptions&) const override {
    if (auto s = kernels().supports(op_of(node)); !s.ok) return s;
    for (const auto& out : node.outputs) {
      const auto dtype = graph.value(out).dtype;
      if (!is_floating(dtype) && dtype != DType::i64) {
        return {false, "output dtype " + std::string(to_string(dtype)) + " is not supported"};
      }
    }
    return {};
  }

  OpCoverage coverage(OpId op) const override {
    OpCoverage c = kernels().coverage(op);
    c.backward = c.lowered && kernels().at(op).lower.backward != nullptr;
    return c;
  }

  std::unique_ptr<Program> build(const Graph& graph, const CompileOptions& options) const override {
    return std::make_unique<ReferenceProgram>(graph, options);
  }
};

}  // namespace

std::unique_ptr<Backend> make_reference_backend() { return std::make_unique<ReferenceBackend>(); }

}  // namespace onnxforge
