// The IR: values, nodes with typed attributes, and a graph with inputs, outputs and initializers
// (each with a trainable flag). Layout is NCHW throughout, as in ONNX.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "graph/dtype.hpp"
#include "graph/op_id.hpp"
#include "graph/shape.hpp"
#include "graph/tensor.hpp"

namespace onnxforge {

using Attribute =
    std::variant<std::int64_t, double, std::string, std::vector<std::int64_t>, std::vector<double>>;

// A value flowing between nodes: a graph input, an initializer or a node output.
struct ValueInfo {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
};

struct Node {
  std::string name;
  std::string op;
  std::vector<std::string> inputs;  // "" marks an omitted optional input
  std::vector<std::string> outputs;
  std::map<std::string, Attribute> attributes;

  bool has(const std::string& attribute) const { return attributes.count(attribute) != 0; }
  // Typed getters; a missing attribute returns the default, a wrong type throws Error naming the
  // node and the attribute.
  std::int64_t get_int(const std::string& attribute, std::int64_t fallback) const;
  double get_float(const std::string& attribute, double fallback) const;
  std::string get_string(const std::string& attribute, const std::string& fallback) const;
  std::vector<std::int64_t> get_ints(const std::string& attribute,
                                     std::vector<std::int64_t> fallback) const;
  std::vector<double> get_floats(const std::string& attribute, std::vector<double> fallback) const;
  bool is(OpId id) const { return op == op_name(id); }
  // The input at `index`, or "" when it is absent.
  const std::string& input(std::size_t index) const;
};

// A constant or parameter of the graph. Trainable parameters receive gradients and updates;
// non-trainable ones (frozen weights, batch-norm running statistics) never get a gradient.
struct Initializer {
  std::string name;
  Tensor value;
  bool trainable = false;
};

class Graph {
 public:
  std::string name = "graph";
  std::vector<ValueInfo> inputs;
  std::vector<std::string> outputs;
  std::vector<Initializer> initializers;
  std::vector<Node> nodes;  // kept in topological order by validate()

  // Key-value notes carried through import and export (ONNX metadata_props), such as
  // "onnxforge.preprocess": the input preprocessing the model was trained with
  // (data::Preprocess::describe()).
  std::map<std::string, std::string> metadata;

  // Shapes and dtypes of every value, filled by infer_shapes().
  std::map<std::string, ValueInfo> values;

  const Initializer* find_initializer(const std::string& name) const;
  Initializer* find_initializer(const std::string& name);
  const Node* producer(const std::string& value) const;
  const ValueInfo& value(const std::string& name) const;  // throws if unknown
  bool is_input(const std::string& name) const;

  // Checks names (no duplicates, no dangling inputs), sorts nodes topologically (throws on a
  // cycle), then infers every value's shape and dtype. Error messages name the node.
  void validate();
  // Whether every input, initializer and node output has its shape and dtype in `values` (as
  // validate() leaves them).
  bool has_shapes() const;
  // Shape and dtype inference alone (assumes topological order).
  void infer_shapes();

  // Parameters: counts by trainable flag.
  std::int64_t parameter_count() const;
  std::int64_t trainable_parameter_count() const;
};

// Gives every dynamic dimension of the inputs `batch`, then re-infers shapes.
Graph with_batch(Graph graph, std::int64_t batch);

}  // namespace onnxforge
