// The operator set of the IR: one OpDef per op (graph/ops/<family>.cpp) with its arity,
// attributes and their defaults, shape inference, gradients and export rule; the window geometry
// shared by convolution and pooling. Ops and attributes follow ONNX names and semantics (NCHW),
// except `Dense` (Y = X W^T + B, W: out x in) and the two losses. docs/OPS.md lists every op with
// what each backend runs, generated from these definitions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "graph/graph.hpp"
#include "graph/op_id.hpp"
#include "graph/window.hpp"

namespace onnxforge {

struct OutputInfo {
  DType dtype;
  Shape shape;
};

using InferFn = std::vector<OutputInfo> (*)(const Node&, const std::vector<const ValueInfo*>&,
                                            const Graph&);

// The families graph/ops/ and every backend's lowering files are split by.
enum class OpFamily {
  elementwise,
  binary,
  pooling,
  normalization,
  linear_algebra,
  reduction,
  shape,
  loss
};
std::string_view family_name(OpFamily family);

// An attribute an op reads, with the value a node without it gets.
struct AttrDef {
  std::string_view name;
  Attribute fallback;
  bool onnx = true;  // an ONNX attribute of the same name (exported as such)
};

// How the exporter writes an op: as the ONNX op of the same name with its `onnx` attributes, as
// other ONNX nodes or inputs (Dense as Gemm, Reshape's shape as an input, ...), or not at all
// (the losses: the exporter drops them and what only they read).
enum class ExportRule { same_name, rewritten, ir_only };

// Everything the IR knows about one op. Backends, importer and exporter key on `id`.
struct OpDef {
  OpId id;
  OpFamily family = OpFamily::elementwise;  // set by the registry from the file that defines it
  std::string_view summary;                 // one line, for docs/OPS.md
  int onnx_since = 0;  // the first ONNX opset whose form the importer reads (0: IR-only)
  std::size_t min_inputs = 1;
  std::size_t max_inputs = 1;
  std::vector<AttrDef> attributes;
  InferFn infer = nullptr;
  std::vector<std::size_t> non_differentiable;  // inputs that never carry a gradient
  ExportRule export_rule = ExportRule::same_name;

  std::string_view name() const { return op_name(id); }
  const AttrDef* attribute(std::string_view attribute_name) const;
};

// The definition of an op; every OpId has one (a test checks it).
const OpDef& op_def(OpId id);
// The op of a node; throws Error naming the node and the known ops for an unknown one.
OpId op_of(const Node& node);
const OpDef& op_def(const Node& node);
// Whether input `index` of `node` can carry a gradient (not a loss's labels, not a batch norm's
// running statistics).
bool is_differentiable_input(const Node& node, std::size_t index);

// A node's attribute, or the default its OpDef gives; throws for an attribute the op does not
// declare (a typo in a kernel) and, as Node::get_* does, for a value of the wrong type.
std::int64_t attr_int(const Node& node, std::string_view attribute);
double attr_float(const Node& node, std::string_view attribute);
std::string attr_string(const Node& node, std::string_view attribute);
std::vector<std::int64_t> attr_ints(const Node& node, std::string_view attribute);
std::vector<double> attr_floats(const Node& node, std::string_view attribute);

// Shapes and dtypes of a node's outputs; throws Error naming the node and the shapes involved.
// `inputs[i]` is null for an omitted optional input.
std::vector<OutputInfo> infer_node(const Node& node, const std::vector<const ValueInfo*>& inputs,
                                   const Graph& graph);

bool is_known_op(const std::string& op);
std::vector<std::string> known_ops();
bool is_loss_op(const std::string& op);

// The window of a Conv (kernel from the weight shape), MaxPool or AveragePool node.
Window2d window_of(const Node& node, const Graph& graph);

// MatMul A[..., M, K] x B[..., K, N] -> Y[..., M, N] over row-major buffers: the product sizes and,
// per output batch (numpy broadcasting of the batch dimensions), the element offsets of its A, B
// and Y matrices.
struct MatMulBatches {
  std::int64_t m = 0, k = 0, n = 0;
  std::vector<std::int64_t> a_offset, b_offset, y_offset;
  std::size_t batches() const { return y_offset.size(); }
};
MatMulBatches matmul_batches(const Shape& a, const Shape& b, const Shape& y);

// Broadcast shape of two shapes (numpy rules); throws naming the node on a mismatch.
Shape broadcast_shapes(const Shape& a, const Shape& b, const Node& node);

// Reshape target with 0 (copy) and -1 (infer) resolved; throws naming the node.
Shape reshape_target(const Node& node, const Shape& input);

// A Slice node resolved against its input's shape, per input axis: the first element taken, the
// step and how many are taken (an axis the node does not slice: 0, 1, its size). ONNX rules:
// negative starts and ends count from the end of the axis, then both are clamped to it (to
// [0, size] for positive steps, [0, size - 1] and [-1, size - 1] for negative ones), so an end of
// INT64_MAX (or INT64_MIN with a negative step) runs to the end. Throws naming the node.
struct SliceAxis {
  std::int64_t start = 0, step = 1, count = 0;
};
std::vector<SliceAxis> slice_axes(const Node& node, const Shape& input);

// The axes a ReduceMean / ReduceSum node reduces for an input of `rank`, ascending: `axes` (empty:
// all of them, or none with noop_with_empty_axes). Throws naming the node.
std::vector<std::size_t> reduced_axes(const Node& node, std::size_t rank);
// The input's shape with the reduced axes set to 1 (the output's elements in the output's order,
// whatever keepdims).
Shape reduce_kept_shape(const Node& node, const Shape& input);

// Resize of a 4-D NCHW tensor along H and W: output coordinate o of an axis reads input
// coordinates i0 and i1 of that axis as (1 - w) * x[i0] + w * x[i1] (nearest: i0 == i1, w = 0).
struct ResizeTap {
  std::int64_t i0 = 0, i1 = 0;
  double w = 0;
};
// The taps of every output coordinate along `axis` (2 or 3) of a Resize node, by its mode,
// coordinate_transformation_mode and nearest_mode, from the input to the output shape.
std::vector<ResizeTap> resize_taps(const Node& node, const Shape& input, const Shape& output,
                                   std::size_t axis);

}  // namespace onnxforge
