// Checks shared by the shape inference of graph/ops/<family>.cpp (internal to graph/).
#pragma once

#include <vector>

#include "core/error.hpp"
#include "graph/ops.hpp"

namespace onnxforge::ops {

using Inputs = std::vector<const ValueInfo*>;

inline const ValueInfo& need(const Node& node, const Inputs& in, std::size_t i) {
  if (i >= in.size() || !in[i]) {
    fail("node '{}' ({}): input {} is required but missing", node.name, node.op, i);
  }
  return *in[i];
}

inline void need_rank(const Node& node, const ValueInfo& v, std::size_t rank, const char* role) {
  if (v.shape.size() != rank) {
    fail("node '{}' ({}): {} '{}' must have rank {}, got shape {}", node.name, node.op, role,
         v.name, rank, to_string(v.shape));
  }
}

inline void need_floating(const Node& node, const ValueInfo& v) {
  if (!is_floating(v.dtype)) {
    fail("node '{}' ({}): input '{}' must be floating point, got {}", node.name, node.op, v.name,
         to_string(v.dtype));
  }
}

inline void need_same_dtype(const Node& node, const ValueInfo& a, const ValueInfo& b) {
  if (a.dtype != b.dtype) {
    fail("node '{}' ({}): inputs have different dtypes {} and {}", node.name, node.op,
         to_string(a.dtype), to_string(b.dtype));
  }
}

inline std::int64_t normalize_axis(const Node& node, std::int64_t axis, std::size_t rank) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis >= r) {
    fail("node '{}' ({}): axis {} is out of range for rank {}", node.name, node.op, axis, rank);
  }
  return axis < 0 ? axis + r : axis;
}

// Output = input 0's dtype and shape; input 0 must be floating point.
inline std::vector<OutputInfo> same_as_first(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  need_floating(node, x);
  return {{x.dtype, x.shape}};
}

// strides, pads [top,left,bottom,right] and dilations of a 2-D window (Conv, pools);
// `onnx_dilations`: whether the ONNX op (opset 13) has the dilations attribute.
std::vector<AttrDef> window_attributes(bool onnx_dilations);

// Each family's definitions, collected by graph/ops/registry.cpp.
std::vector<OpDef> elementwise_ops();
std::vector<OpDef> binary_ops();
std::vector<OpDef> pooling_ops();
std::vector<OpDef> normalization_ops();
std::vector<OpDef> linear_algebra_ops();
std::vector<OpDef> reduction_ops();
std::vector<OpDef> shape_ops();
std::vector<OpDef> loss_ops();

}  // namespace onnxforge::ops
