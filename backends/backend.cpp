#include "backends/backend.hpp"

#include "core/error.hpp"
#include "graph/ops.hpp"

namespace onnxforge {

std::string to_string(Precision precision) {
  switch (precision) {
    case Precision::f32:
      return "fp32";
    case Precision::bf16:
      return "bf16";
    case Precision::automatic:
      return "auto";
  }
  return "?";
}

Precision parse_precision(const std::string& text) {
  if (text == "fp32" || text == "f32") return Precision::f32;
  if (text == "bf16") return Precision::bf16;
  if (text == "auto") return Precision::automatic;
  fail("precision '{}' is not one of fp32, bf16, auto", text);
}

std::unique_ptr<Program> Backend::compile(const Graph& graph, const CompileOptions& options) const {
  if (!graph.has_shapes()) {
    Graph copy = graph;
    copy.validate();
    return compile(copy, options);
  }
  check_compilable(*this, graph, options);
  std::string why;
  if (!available(&why)) fail("{} backend: cannot compile graph '{}': {}", name(), graph.name, why);
  return build(graph, options);
}

void check_compilable(const Backend& backend, const Graph& graph, const CompileOptions& options) {
  for (const auto& in : graph.inputs) {
    if (!is_static(in.shape)) {
      fail("{} backend: input '{}' has a dynamic shape {}; give it a batch size first",
           backend.name(), in.name, to_string(in.shape));
    }
  }
  if (options.training) {
    if (options.loss.empty()) fail("{} backend: training needs a loss value", backend.name());
    auto it = graph.values.find(options.loss);
    if (it == graph.values.end()) {
      fail("{} backend: the loss '{}' is not a value of graph '{}'", backend.name(), options.loss,
           graph.name);
    }
    if (element_count(it->second.shape) != 1) {
      fail("{} backend: the loss '{}' must be a scalar, got shape {}", backend.name(), options.loss,
           to_string(it->second.shape));
    }
  }
  for (const auto& name : options.keep) graph.value(name);
  for (const auto& node : graph.nodes) {
    const Support support = backend.supports(graph, node, options);
    if (!support.ok) {
      fail("{} backend cannot run node '{}' ({}): {}", backend.name(), node.name, node.op,
           support.reason);
    }
  }
}

std::set<std::string> values_needing_gradient(const Graph& graph,
                                              const std::vector<std::string>& roots,
                                              bool input_gradients) {
  // Forward: values that depend on something with a gradient.
  std::set<std::string> depends;
  for (const auto& init : graph.initializers) {
    if (init.trainable) depends.insert(init.name);
  }
  if (input_gradients) {
    for (const auto& in : graph.inputs) {
      if (is_floating(in.dtype)) depends.insert(in.name);
    }
  }
  for (const auto& node : graph.nodes) {
    bool any = false;
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
      if (!is_differentiable_input(node, i)) continue;
      any = any || depends.count(node.inputs[i]);
    }
    if (any) depends.insert(node.outputs.begin(), node.outputs.end());
  }
  // Backward: values that the roots depend on.
  std::set<std::string> reaches(roots.begin(), roots.end());
  for (auto it = graph.nodes.rbegin(); it != graph.nodes.rend(); ++it) {
    bool any = false;
    for (const auto& out : it->outputs) any = any || reaches.count(out);
    if (any) reaches.insert(it->inputs.begin(), it->inputs.end());
  }
  std::set<std::string> both;
  for (const auto& v : depends) {
    if (reaches.count(v)) both.insert(v);
  }
  return both;
}

}  // namespace onnxforge
