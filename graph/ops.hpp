// The operator set of the IR: each op's inputs, attributes and shape inference, and the window
// geometry shared by convolution and pooling. Ops and attributes follow ONNX names and semantics
// (NCHW), except `Dense` (Y = X W^T + B, W: out x in) and the two losses.
//
//   Conv(X, W, [B])            strides, pads [top,left,bottom,right], dilations, group
//   MaxPool(X), AveragePool(X) kernel_shape, strides, pads, dilations, ceil_mode,
//                              count_include_pad (average only)
//   GlobalAveragePool(X)
//   Relu, Sigmoid, Tanh, Identity, LeakyRelu(alpha=0.01), Softmax(axis=-1)
//   Flatten(axis=1), Reshape(shape: ints with 0 = copy and -1 = infer)
//   Dense(X[N,K], W[M,K], [B[M]])
//   Add(A, B)                  numpy broadcasting
//   Concat(axis)
//   Dropout(ratio=0.5)         identity at inference; inverted dropout in training
//   BatchNormalization(X, scale, B, mean, var)  epsilon=1e-5, momentum=0.9 (ONNX convention)
//   BinaryCrossEntropyWithLogits(logits, labels) -> scalar mean; weight_positive,
//                              weight_negative (class weights, default 1)
//   SoftmaxCrossEntropy(logits[N,K], labels[N] i64) -> scalar mean
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "graph/graph.hpp"

namespace onnxforge {

struct OutputInfo {
  DType dtype;
  Shape shape;
};

// An op's arity and shape inference.
struct OpSchema {
  std::size_t min_inputs;
  std::size_t max_inputs;
  std::function<std::vector<OutputInfo>(const Node&, const std::vector<const ValueInfo*>&,
                                        const Graph&)>
      infer;
};

// Ops added for the ONNX importer (Transpose, MatMul, ...) live in ops_extra.cpp.
void add_extra_op_schemas(std::map<std::string, OpSchema>& table);

// Shapes and dtypes of a node's outputs; throws Error naming the node and the shapes involved.
// `inputs[i]` is null for an omitted optional input.
std::vector<OutputInfo> infer_node(const Node& node, const std::vector<const ValueInfo*>& inputs,
                                   const Graph& graph);

bool is_known_op(const std::string& op);
std::vector<std::string> known_ops();
bool is_loss_op(const std::string& op);

// Geometry of a 2-D sliding window (convolution or pooling) over an NCHW input.
struct Window2d {
  std::int64_t kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t dilation_h = 1, dilation_w = 1;
  std::int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool ceil_mode = false;

  std::int64_t out_h(std::int64_t in_h) const;
  std::int64_t out_w(std::int64_t in_w) const;
};

// The window of a Conv (kernel from the weight shape), MaxPool or AveragePool node.
Window2d window_of(const Node& node, const Graph& graph);

// Broadcast shape of two shapes (numpy rules); throws naming the node on a mismatch.
Shape broadcast_shapes(const Shape& a, const Shape& b, const Node& node);

// Reshape target with 0 (copy) and -1 (infer) resolved; throws naming the node.
Shape reshape_target(const Node& node, const Shape& input);

}  // namespace onnxforge
