// The op table: every family's OpDefs, indexed by OpId, and what reads them.
#include <algorithm>
#include <array>
#include <memory>

#include "graph/ops/infer.hpp"

namespace onnxforge {

namespace {

using Table = std::array<std::unique_ptr<const OpDef>, kOpCount>;

// Each family's file defines its ops; the family is stamped on them here.
struct Family {
  OpFamily id;
  std::string_view name;
  std::vector<OpDef> (*defs)();
};
constexpr Family kFamilies[] = {
    {OpFamily::elementwise, "elementwise", ops::elementwise_ops},
    {OpFamily::binary, "binary", ops::binary_ops},
    {OpFamily::pooling, "pooling", ops::pooling_ops},
    {OpFamily::normalization, "normalization", ops::normalization_ops},
    {OpFamily::linear_algebra, "linear algebra", ops::linear_algebra_ops},
    {OpFamily::reduction, "reduction", ops::reduction_ops},
    {OpFamily::shape, "shape", ops::shape_ops},
    {OpFamily::loss, "loss", ops::loss_ops},
};

const Table& table() {
  static const Table all = [] {
    Table t;
    for (const auto& family : kFamilies) {
      for (auto& def : family.defs()) {
        def.family = family.id;
        auto& slot = t[op_index(def.id)];
        if (slot) fail("op registry: op '{}' is defined twice", def.name());
        slot = std::make_unique<const OpDef>(std::move(def));
      }
    }
    for (auto id : all_op_ids()) {
      if (!t[op_index(id)]) fail("op registry: op '{}' has no definition", op_name(id));
    }
    return t;
  }();
  return all;
}

const AttrDef& declared(const Node& node, std::string_view attribute) {
  const AttrDef* a = op_def(node).attribute(attribute);
  if (!a) fail("node '{}' ({}): the op has no attribute '{}'", node.name, node.op, attribute);
  return *a;
}

template <typename T>
T fallback_of(const Node& node, std::string_view attribute) {
  const auto* v = std::get_if<T>(&declared(node, attribute).fallback);
  if (!v)
    fail("op registry: the default of {}'s attribute '{}' has another type", node.op, attribute);
  return *v;
}

}  // namespace

std::string_view family_name(OpFamily family) {
  for (const auto& f : kFamilies) {
    if (f.id == family) return f.name;
  }
  return "?";
}

const AttrDef* OpDef::attribute(std::string_view attribute_name) const {
  for (const auto& a : attributes) {
    if (a.name == attribute_name) return &a;
  }
  return nullptr;
}

const OpDef& op_def(OpId id) { return *table()[op_index(id)]; }

OpId op_of(const Node& node) {
  if (auto id = find_op(node.op)) return *id;
  fail("node '{}': unknown op '{}' (known: {})", node.name, node.op, fmt::join(known_ops(), ", "));
}

const OpDef& op_def(const Node& node) { return op_def(op_of(node)); }

bool is_differentiable_input(const Node& node, std::size_t index) {
  const auto& skip = op_def(node).non_differentiable;
  return std::find(skip.begin(), skip.end(), index) == skip.end();
}

std::int64_t attr_int(const Node& node, std::string_view attribute) {
  const std::string name(attribute);
  if (node.has(name)) return node.get_int(name, 0);
  return fallback_of<std::int64_t>(node, attribute);
}

double attr_float(const Node& node, std::string_view attribute) {
  const std::string name(attribute);
  if (node.has(name)) return node.get_float(name, 0.0);
  return fallback_of<double>(node, attribute);
}

std::string attr_string(const Node& node, std::string_view attribute) {
  const std::string name(attribute);
  if (node.has(name)) return node.get_string(name, "");
  return fallback_of<std::string>(node, attribute);
}

std::vector<std::int64_t> attr_ints(const Node& node, std::string_view attribute) {
  const std::string name(attribute);
  if (node.has(name)) return node.get_ints(name, {});
  return fallback_of<std::vector<std::int64_t>>(node, attribute);
}

std::vector<double> attr_floats(const Node& node, std::string_view attribute) {
  const std::string name(attribute);
  if (node.has(name)) return node.get_floats(name, {});
  return fallback_of<std::vector<double>>(node, attribute);
}

std::vector<OutputInfo> infer_node(const Node& node, const std::vector<const ValueInfo*>& inputs,
                                   const Graph& graph) {
  const OpDef& def = op_def(node);
  if (inputs.size() < def.min_inputs || inputs.size() > def.max_inputs) {
    fail("node '{}' ({}): takes {} to {} inputs, got {}", node.name, node.op, def.min_inputs,
         def.max_inputs, inputs.size());
  }
  if (node.outputs.empty()) fail("node '{}' ({}): has no output", node.name, node.op);
  return def.infer(node, inputs, graph);
}

bool is_known_op(const std::string& op) { return find_op(op).has_value(); }

std::vector<std::string> known_ops() {
  std::vector<std::string> names(std::begin(kOpNames), std::end(kOpNames));
  std::sort(names.begin(), names.end());
  return names;
}

bool is_loss_op(const std::string& op) {
  auto id = find_op(op);
  return id && op_def(*id).family == OpFamily::loss;
}

}  // namespace onnxforge
