#include "backends/reference/reference_backend.hpp"

#include <cmath>
#include <optional>
#include <span>

#include "backends/program_base.hpp"
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
    reference::add_reduction_kernels(t);
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

class ReferenceProgram final : public ProgramBase {
 public:
  ReferenceProgram(const Graph& graph, const CompileOptions& options)
      : ProgramBase(graph, options, "reference"),
        random_(options.seed),
        states_(graph.nodes.size()) {
    for (const auto& in : graph_.inputs) values_[in.name] = Buffer(in.shape);
    for (const auto& init : graph_.initializers) values_[init.name] = to_buffer(init.value);
    for (const auto& node : graph_.nodes) {
      for (const auto& out : node.outputs) values_[out] = Buffer(graph_.value(out).shape);
    }
    if (options_.training) {
      needs_gradient_ = values_needing_gradient(graph_, {options_.loss}, options_.input_gradients);
    }
  }

  void forward(Mode mode) override {
    if (mode == Mode::training && !options_.training) {
      fail("reference backend: training forward on a Program compiled for inference");
    }
    // Dropout masks depend on (seed, optimizer step) only, so a resumed run draws the same ones.
    random_ = Random(hash_name(std::to_string(step()), options_.seed));
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

 private:
  // ---- storage hooks of ProgramBase ----
  void write_input(const std::string& name, const Tensor& value) override {
    values_[name] = to_buffer(value);
  }

  Tensor read_parameter(const std::string& name) const override {
    return to_tensor(values_.at(name), graph_.find_initializer(name)->value.dtype());
  }

  void write_parameter(const std::string& name, const Tensor& value) override {
    values_[name] = to_buffer(value);
  }

  Tensor read_gradient(const std::string& name) const override {
    auto it = gradients_.find(name);
    if (it == gradients_.end()) return Tensor(graph_.value(name).dtype, graph_.value(name).shape);
    return to_tensor(it->second, graph_.value(name).dtype);
  }

  void write_gradient(const std::string& name, const Tensor& value) override {
    gradients_[name] = to_buffer(value);
  }

  double gradient_sum_of_squares(const std::string& name) const override {
    auto it = gradients_.find(name);
    if (it == gradients_.end()) return 0.0;
    double sum = 0;
    for (double g : it->second.data) sum += g * g;
    return sum;
  }

  void update_parameter(const std::string& name, const UpdateStep& step) override {
    auto& weights = values_.at(name).data;
    auto git = gradients_.find(name);
    const std::vector<double> zeros(git == gradients_.end() ? weights.size() : 0, 0.0);
    const auto& grad = git == gradients_.end() ? zeros : git->second.data;
    Slots& s = slots_[name];
    const Shape& shape = values_.at(name).shape;
    if (s.a.data.size() != weights.size()) s.a = Buffer(shape);
    if (step.adam() && s.b.data.size() != weights.size()) s.b = Buffer(shape);
    apply_optimizer<double>(step.constants, weights, grad, s.a.data,
                            step.adam() ? std::span<double>(s.b.data) : std::span<double>{});
  }

  std::optional<Tensor> read_optimizer_slot(const std::string& name, bool second) const override {
    auto it = slots_.find(name);
    if (it == slots_.end()) return std::nullopt;
    const Buffer& b = second ? it->second.b : it->second.a;
    if (b.data.empty()) return std::nullopt;
    return to_tensor(b, DType::f32);
  }

  void write_optimizer_slot(const std::string& name, bool second, const Tensor& value) override {
    Slots& s = slots_[name];
    (second ? s.b : s.a) = to_buffer(value);
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

  struct Slots {
    Buffer a, b;  // velocity (sgd) or m (adam); v (adam)
  };

  Random random_;
  std::vector<NodeState> states_;
  std::map<std::string, Buffer> values_;
  std::map<std::string, Buffer> gradients_;
  std::map<std::string, Slots> slots_;
  std::set<std::string> needs_gradient_;
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
