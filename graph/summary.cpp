#include "graph/summary.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace onnxforge {

std::string with_thousands(std::int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

std::string summary(const Graph& graph) { return summary(graph, {}); }

std::string summary(const Graph& graph, const std::vector<UnsupportedNode>& unsupported) {
  struct Row {
    std::string layer, op, shape, params, trainable;
  };
  std::set<std::string> placeholders;
  for (const auto& u : unsupported) placeholders.insert(u.outputs.begin(), u.outputs.end());
  std::vector<Row> rows;
  for (const auto& in : graph.inputs) {
    if (!placeholders.count(in.name)) {
      rows.push_back({in.name, "Input", to_string(in.shape), "0", ""});
    }
  }
  auto next = unsupported.begin();
  auto add_unsupported = [&](std::size_t position) {
    for (; next != unsupported.end() && next->position <= position; ++next) {
      const auto it =
          next->outputs.empty() ? graph.values.end() : graph.values.find(next->outputs[0]);
      rows.push_back({next->name, next->op,
                      it == graph.values.end() ? "?" : to_string(it->second.shape),
                      with_thousands(next->params), "not supported: " + next->reason});
    }
  };
  for (std::size_t index = 0; index < graph.nodes.size(); ++index) {
    add_unsupported(index);
    const auto& node = graph.nodes[index];
    std::int64_t params = 0, trainable = 0;
    for (const auto& in : node.inputs) {
      if (const auto* init = graph.find_initializer(in)) {
        if (!is_floating(init->value.dtype())) continue;
        params += init->value.size();
        if (init->trainable) trainable += init->value.size();
      }
    }
    const auto it = graph.values.find(node.outputs[0]);
    const std::string shape = it == graph.values.end() ? "?" : to_string(it->second.shape);
    const std::string flag = params == 0           ? ""
                             : trainable == params ? "yes"
                             : trainable == 0      ? "no"
                                                   : "partly";
    rows.push_back({node.name, node.op, shape, with_thousands(params), flag});
  }
  add_unsupported(graph.nodes.size());
  std::size_t w_layer = 5, w_op = 2, w_shape = 12, w_params = 7, w_train = 9;
  for (const auto& r : rows) {
    w_layer = std::max(w_layer, r.layer.size());
    w_op = std::max(w_op, r.op.size());
    w_shape = std::max(w_shape, r.shape.size());
    w_params = std::max(w_params, r.params.size());
  }
  const std::size_t width = w_layer + w_op + w_shape + w_params + w_train + 8;
  std::string out = fmt::format("Model: \"{}\"\n", graph.name);
  const std::string heavy(width, '=');
  const std::string light(width, '-');
  out += heavy + "\n";
  out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>{}}  {:<{}}\n", "Layer", w_layer, "Op", w_op,
                     "Output Shape", w_shape, "Param #", w_params, "Trainable", w_train);
  out += heavy + "\n";
  for (const auto& r : rows) {
    std::string line = fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>{}}  {}", r.layer, w_layer, r.op,
                                   w_op, r.shape, w_shape, r.params, w_params, r.trainable);
    out += line.substr(0, line.find_last_not_of(' ') + 1) + "\n";
  }
  out += heavy + "\n";
  const auto total = graph.parameter_count();
  const auto trainable = graph.trainable_parameter_count();
  out += fmt::format("Total params: {}\n", with_thousands(total));
  out += fmt::format("Trainable params: {}\n", with_thousands(trainable));
  out += fmt::format("Non-trainable params: {}\n", with_thousands(total - trainable));
  out += light + "\n";
  if (!unsupported.empty()) {
    out += fmt::format(
        "{} node{} not supported (the counts above leave out their parameters): the model cannot "
        "run as it is; a cut before the first (--cut-at) keeps what is supported.\n",
        unsupported.size(), unsupported.size() == 1 ? " is" : "s are");
  }
  return out;
}

}  // namespace onnxforge
