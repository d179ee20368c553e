// Kernels of the reference backend: naive loops, double accumulation, obviously right. They are
// the oracle every other backend is tested against, so clarity beats speed here.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "backends/op_table.hpp"
#include "graph/builder.hpp"
#include "graph/graph.hpp"

namespace onnxforge::reference {

// A value held in double precision, whatever its graph dtype.
struct Buffer {
  Shape shape;
  std::vector<double> data;

  Buffer() = default;
  explicit Buffer(Shape s)
      : shape(std::move(s)), data(static_cast<std::size_t>(element_count(shape)), 0.0) {}
  std::size_t size() const { return data.size(); }
};

// What a node keeps between its training forward and its backward (argmax, masks, statistics).
struct NodeState {
  std::vector<double> saved;
  std::vector<std::int64_t> indices;
};

struct ForwardArgs {
  const Node& node;
  const Graph& graph;
  Mode mode;
  std::vector<const Buffer*> inputs;  // null for an omitted optional input
  std::vector<Buffer*> outputs;       // already shaped by shape inference
  NodeState& state;
  Random& random;
  // Batch-norm running statistics are updated in place in training mode.
  std::vector<Buffer*> mutable_inputs;
};

struct BackwardArgs {
  const Node& node;
  const Graph& graph;
  Mode mode;
  std::vector<const Buffer*> inputs;
  std::vector<const Buffer*> outputs;
  std::vector<const Buffer*> output_grads;  // null where no gradient flows
  std::vector<Buffer*> input_grads;         // null where none is wanted; accumulate (+=) into them
  const NodeState& state;
};

struct Kernel {
  std::function<void(ForwardArgs&)> forward;
  std::function<void(BackwardArgs&)> backward;  // null: not differentiable
};

// OpId -> kernels, one file per op family under ops/ (each adds its ops).
using KernelTable = OpTable<Kernel>;

void add_elementwise_kernels(KernelTable& table);
void add_binary_kernels(KernelTable& table);
void add_pooling_kernels(KernelTable& table);
void add_normalization_kernels(KernelTable& table);
void add_linear_algebra_kernels(KernelTable& table);
void add_reduction_kernels(KernelTable& table);
void add_shape_kernels(KernelTable& table);
void add_loss_kernels(KernelTable& table);

}  // namespace onnxforge::reference
