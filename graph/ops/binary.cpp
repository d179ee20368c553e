// Binary arithmetic with numpy broadcasting.
#include "graph/ops/infer.hpp"

namespace onnxforge {

Shape broadcast_shapes(const Shape& a, const Shape& b, const Node& node) {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da == db || db == 1) {
      out[i] = da;
    } else if (da == 1) {
      out[i] = db;
    } else if (da == kDynamic || db == kDynamic) {
      out[i] = da == kDynamic ? db : da;
    } else {
      fail("node '{}' ({}): shapes {} and {} do not broadcast", node.name, node.op, to_string(a),
           to_string(b));
    }
  }
  return out;
}

namespace ops {

namespace {

std::vector<OutputInfo> infer_add(const Node& node, const Inputs& in, const Graph&) {
  const auto& a = need(node, in, 0);
  const auto& b = need(node, in, 1);
  need_same_dtype(node, a, b);
  return {{a.dtype, broadcast_shapes(a.shape, b.shape, node)}};
}

std::vector<OutputInfo> infer_arithmetic(const Node& node, const Inputs& in, const Graph&) {
  const auto& a = need(node, in, 0);
  const auto& b = need(node, in, 1);
  need_floating(node, a);
  need_same_dtype(node, a, b);
  return {{a.dtype, broadcast_shapes(a.shape, b.shape, node)}};
}

OpDef arithmetic(OpId id, std::string_view summary) {
  return {.id = id,
          .summary = summary,
          .onnx_since = 6,
          .min_inputs = 2,
          .max_inputs = 2,
          .infer = infer_arithmetic};
}

}  // namespace

std::vector<OpDef> binary_ops() {
  return {
      {.id = OpId::Add,
       .summary = "A + B, numpy broadcasting",
       .onnx_since = 6,
       .min_inputs = 2,
       .max_inputs = 2,
       .infer = infer_add},
      arithmetic(OpId::Sub, "A - B, numpy broadcasting; floating point"),
      arithmetic(OpId::Mul, "A * B, numpy broadcasting; floating point"),
      arithmetic(OpId::Div, "A / B, numpy broadcasting; floating point"),
  };
}

}  // namespace ops

}  // namespace onnxforge
