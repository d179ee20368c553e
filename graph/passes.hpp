// Graph passes: pure IR -> IR transforms used by `onnxforge convert`, the importer and transfer
// learning. Each returns a validated graph (names, topological order, shapes) and throws Error
// naming what it could not do.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "graph/graph.hpp"

namespace onnxforge {

// Keeps the node `node_or_value` names (graph/node_lookup.hpp: a node or value name, a layer
// name such as block5_pool or features.30, or last-pool) and
// everything it depends on; its first output becomes the graph's only output. Inputs, nodes and
// initializers nothing depends on any more are dropped.
Graph cut_at(const Graph& graph, const std::string& node_or_value);

// The part of `graph` downstream of `value`, a node output: `value` becomes a graph input (its
// shape and dtype kept), its producer and whatever only that needed are dropped (other inputs
// stay while a kept node reads them). cut_at(graph, value) and cut_from(graph, value) are the two
// halves of the graph around `value`. Throws when `value` is not a node output, or when another
// output of its producer is still read.
Graph cut_from(const Graph& graph, const std::string& value);

// Gives graph input `name` a new shape (kDynamic allowed for the batch) and re-infers every shape;
// throws naming the first node the new shape does not fit.
Graph with_input_shape(Graph graph, const std::string& name, const Shape& shape);

// Drops nodes, initializers (and inputs, when `drop_inputs`) no graph output depends on.
Graph prune(Graph graph, bool drop_inputs = false);

// Removes Identity nodes (and Dropout nodes when `dropout`, as for inference), rewiring their
// consumers to the node's input. One whose output is a graph output stays.
Graph remove_identities(Graph graph, bool dropout = false);

// Replaces every node whose inputs are all non-trainable initializers, and whose op the folder
// can evaluate (see evaluate_constant), by an initializer holding its value.
Graph fold_constants(Graph graph);

// Folds a BatchNormalization that is the only consumer of a Conv (or Dense) output, with
// initializer statistics, into that node's weight and bias:
//   s = scale / sqrt(var + eps);  W' = W * s (per output channel);  b' = (b - mean) * s + B.
Graph fold_batchnorm(Graph graph);

// A graph input read only by a Transpose with perm [0,3,1,2] (NHWC -> NCHW, as tf2onnx writes
// Keras models) becomes an NCHW input of the same name and the Transpose goes: the graph then
// takes the NCHW batches the data pipeline produces. Other inputs are left as they are.
Graph absorb_input_transpose(Graph graph);

// Dense without bias followed by Add of a constant [M] (or [1,M]) becomes Dense with that bias.
Graph fuse_dense_bias(Graph graph);

// Mul by a per-channel constant followed by Add of one (how tf2onnx writes a Keras
// BatchNormalization it could not fold into a Conv, e.g. after a Dense) becomes a
// BatchNormalization with that scale and B (mean 0, variance 0.75, epsilon 0.25: the same values
// exactly), so that it is frozen, fine-tuned and summarised like one. Channels on axis 1: [N, C]
// with [C] constants, or [N, C, ...] with [C, 1, ...] / [1, C, 1, ...] ones.
Graph fuse_affine_batchnorm(Graph graph);

// The value of a node's first output from constant inputs, for the ops the folder knows
// (Identity, Dropout, Reshape, Flatten, Transpose, Concat, Add, Sub, Mul, Div, Relu, Sigmoid,
// Tanh, Clip); std::nullopt for any other op. Integer tensors use integer arithmetic.
std::optional<Tensor> evaluate_constant(const Node& node, const std::vector<const Tensor*>& inputs);

// Byte-level helpers on tensors of any dtype.
Tensor transpose_tensor(const Tensor& x, const std::vector<std::int64_t>& perm);
Tensor concat_tensors(const std::vector<const Tensor*>& parts, std::int64_t axis);

}  // namespace onnxforge
