// Elementwise ops: one output element from one input element (Dropout: and a random draw).
#include <limits>

#include "graph/ops/infer.hpp"

namespace onnxforge::ops {

namespace {

std::vector<OutputInfo> infer_clip(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  need_floating(node, x);
  if (node.has("min") && node.has("max") && attr_float(node, "min") > attr_float(node, "max")) {
    fail("node '{}' (Clip): min {} is greater than max {}", node.name, attr_float(node, "min"),
         attr_float(node, "max"));
  }
  return {{x.dtype, x.shape}};
}

std::vector<OutputInfo> infer_dropout(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  const double ratio = attr_float(node, "ratio");
  if (ratio < 0.0 || ratio >= 1.0) {
    fail("node '{}' (Dropout): ratio must be in [0, 1), got {}", node.name, ratio);
  }
  return {{x.dtype, x.shape}};
}

}  // namespace

std::vector<OpDef> elementwise_ops() {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  return {
      {.id = OpId::Relu, .summary = "max(x, 0)", .onnx_since = 6, .infer = same_as_first},
      {.id = OpId::LeakyRelu,
       .summary = "x for x > 0, alpha * x otherwise",
       .onnx_since = 6,
       .attributes = {{"alpha", 0.01}},
       .infer = same_as_first},
      {.id = OpId::Sigmoid,
       .summary = "1 / (1 + exp(-x))",
       .onnx_since = 6,
       .infer = same_as_first},
      {.id = OpId::Tanh, .summary = "tanh(x)", .onnx_since = 6, .infer = same_as_first},
      {.id = OpId::Identity, .summary = "a copy of x", .onnx_since = 1, .infer = same_as_first},
      {.id = OpId::Clip,
       .summary =
           "x bounded to [min, max] (each optional); the gradient flows where min <= x <= max",
       .onnx_since = 6,
       .attributes = {{"min", -kInf, false}, {"max", kInf, false}},
       .infer = infer_clip,
       .export_rule = ExportRule::rewritten},
      {.id = OpId::Dropout,
       .summary = "identity at inference; inverted dropout of `ratio` in training",
       .onnx_since = 6,
       .attributes = {{"ratio", 0.5, false}},
       .infer = infer_dropout,
       .export_rule = ExportRule::rewritten},
  };
}

}  // namespace onnxforge::ops
