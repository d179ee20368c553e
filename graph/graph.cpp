#include "graph/graph.hpp"

#include <algorithm>
#include <set>

#include "core/error.hpp"
#include "graph/ops.hpp"

namespace onnxforge {

namespace {

template <typename T>
const T* attribute_as(const Node& node, const std::string& attribute, const char* type) {
  auto it = node.attributes.find(attribute);
  if (it == node.attributes.end()) return nullptr;
  const T* value = std::get_if<T>(&it->second);
  if (!value)
    fail("node '{}' ({}): attribute '{}' must be {}", node.name, node.op, attribute, type);
  return value;
}

}  // namespace

std::int64_t Node::get_int(const std::string& attribute, std::int64_t fallback) const {
  const auto* v = attribute_as<std::int64_t>(*this, attribute, "an integer");
  return v ? *v : fallback;
}

double Node::get_float(const std::string& attribute, double fallback) const {
  auto it = attributes.find(attribute);
  if (it != attributes.end() && std::holds_alternative<std::int64_t>(it->second)) {
    return static_cast<double>(std::get<std::int64_t>(it->second));
  }
  const auto* v = attribute_as<double>(*this, attribute, "a float");
  return v ? *v : fallback;
}

std::string Node::get_string(const std::string& attribute, const std::string& fallback) const {
  const auto* v = attribute_as<std::string>(*this, attribute, "a string");
  return v ? *v : fallback;
}

std::vector<std::int64_t> Node::get_ints(const std::string& attribute,
                                         std::vector<std::int64_t> fallback) const {
  const auto* v = attribute_as<std::vector<std::int64_t>>(*this, attribute, "a list of integers");
  return v ? *v : fallback;
}

std::vector<double> Node::get_floats(const std::string& attribute,
                                     std::vector<double> fallback) const {
  const auto* v = attribute_as<std::vector<double>>(*this, attribute, "a list of numbers");
  return v ? *v : fallback;
}

const std::string& Node::input(std::size_t index) const {
  static const std::string none;
  return index < inputs.size() ? inputs[index] : none;
}

bool Graph::has_shapes() const {
  if (values.empty()) return false;
  for (const auto& in : inputs) {
    if (!values.count(in.name)) return false;
  }
  for (const auto& init : initializers) {
    if (!values.count(init.name)) return false;
  }
  for (const auto& node : nodes) {
    for (const auto& out : node.outputs) {
      if (!out.empty() && !values.count(out)) return false;
    }
  }
  return true;
}

const Initializer* Graph::find_initializer(const std::string& value_name) const {
  for (const auto& init : initializers) {
    if (init.name == value_name) return &init;
  }
  return nullptr;
}

Initializer* Graph::find_initializer(const std::string& value_name) {
  for (auto& init : initializers) {
    if (init.name == value_name) return &init;
  }
  return nullptr;
}

const Node* Graph::producer(const std::string& value_name) const {
  for (const auto& node : nodes) {
    if (std::find(node.outputs.begin(), node.outputs.end(), value_name) != node.outputs.end()) {
      return &node;
    }
  }
  return nullptr;
}

const ValueInfo& Graph::value(const std::string& value_name) const {
  auto it = values.find(value_name);
  if (it == values.end()) fail("graph '{}' has no value named '{}'", name, value_name);
  return it->second;
}

bool Graph::is_input(const std::string& value_name) const {
  return std::any_of(inputs.begin(), inputs.end(),
                     [&](const ValueInfo& v) { return v.name == value_name; });
}

void Graph::validate() {
  // Every value name is defined once: inputs, initializers, node outputs.
  std::map<std::string, std::string> defined_by;
  auto define = [&](const std::string& value_name, const std::string& by) {
    if (value_name.empty()) fail("graph '{}': {} defines a value with an empty name", name, by);
    auto [it, inserted] = defined_by.emplace(value_name, by);
    if (!inserted) {
      fail("graph '{}': value '{}' is defined twice (by {} and by {})", name, value_name,
           it->second, by);
    }
  };
  for (const auto& in : inputs) define(in.name, "graph input");
  for (const auto& init : initializers) define(init.name, "initializer");
  std::set<std::string> node_names;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    auto& node = nodes[i];
    if (node.name.empty()) node.name = node.op + "_" + std::to_string(i);
    if (!node_names.insert(node.name).second) {
      fail("graph '{}': two nodes are named '{}'", name, node.name);
    }
    for (const auto& out : node.outputs) define(out, "node '" + node.name + "'");
  }
  for (const auto& node : nodes) {
    for (const auto& in : node.inputs) {
      if (!in.empty() && !defined_by.count(in)) {
        fail("graph '{}': node '{}' ({}) reads '{}', which no input, initializer or node defines",
             name, node.name, node.op, in);
      }
    }
  }
  for (const auto& out : outputs) {
    if (!defined_by.count(out)) fail("graph '{}': output '{}' is never defined", name, out);
  }

  // Topological sort (Kahn), stable with respect to the given order.
  std::map<std::string, std::size_t> producer_index;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& out : nodes[i].outputs) producer_index[out] = i;
  }
  std::vector<int> pending(nodes.size(), 0);
  std::vector<std::vector<std::size_t>> consumers(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& in : nodes[i].inputs) {
      auto it = producer_index.find(in);
      if (it != producer_index.end()) {
        ++pending[i];
        consumers[it->second].push_back(i);
      }
    }
  }
  std::vector<Node> sorted;
  sorted.reserve(nodes.size());
  std::set<std::size_t> ready;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (pending[i] == 0) ready.insert(i);
  }
  while (!ready.empty()) {
    const std::size_t i = *ready.begin();
    ready.erase(ready.begin());
    sorted.push_back(nodes[i]);
    for (auto c : consumers[i]) {
      if (--pending[c] == 0) ready.insert(c);
    }
  }
  if (sorted.size() != nodes.size()) {
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (pending[i] > 0) {
        fail("graph '{}': node '{}' ({}) is part of a cycle", name, nodes[i].name, nodes[i].op);
      }
    }
  }
  nodes = std::move(sorted);
  infer_shapes();
}

void Graph::infer_shapes() {
  values.clear();
  for (const auto& in : inputs) values[in.name] = in;
  for (const auto& init : initializers) {
    values[init.name] = ValueInfo{init.name, init.value.dtype(), init.value.shape()};
  }
  for (const auto& node : nodes) {
    std::vector<const ValueInfo*> in;
    for (const auto& name_in : node.inputs) {
      in.push_back(name_in.empty() ? nullptr : &values.at(name_in));
    }
    const auto out = infer_node(node, in, *this);
    for (std::size_t i = 0; i < node.outputs.size() && i < out.size(); ++i) {
      values[node.outputs[i]] = ValueInfo{node.outputs[i], out[i].dtype, out[i].shape};
    }
  }
}

std::int64_t Graph::parameter_count() const {
  std::int64_t total = 0;
  for (const auto& init : initializers) {
    if (is_floating(init.value.dtype())) total += init.value.size();
  }
  return total;
}

std::int64_t Graph::trainable_parameter_count() const {
  std::int64_t total = 0;
  for (const auto& init : initializers) {
    if (init.trainable) total += init.value.size();
  }
  return total;
}

Graph with_batch(Graph graph, std::int64_t batch) {
  if (batch <= 0) fail("batch size must be positive, got {}", batch);
  for (auto& in : graph.inputs) {
    for (auto& d : in.shape) {
      if (d == kDynamic) d = batch;
    }
  }
  graph.infer_shapes();
  return graph;
}

}  // namespace onnxforge
