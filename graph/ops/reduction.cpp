// Reductions over axes: ReduceMean, ReduceSum (axes and keepdims as attributes, ONNX semantics).
#include <algorithm>

#include "graph/ops/infer.hpp"

namespace onnxforge {

std::vector<std::size_t> reduced_axes(const Node& node, std::size_t rank) {
  const auto axes = attr_ints(node, "axes");
  std::vector<std::size_t> out;
  if (axes.empty()) {
    if (attr_int(node, "noop_with_empty_axes") != 0) return out;
    for (std::size_t d = 0; d < rank; ++d) out.push_back(d);
    return out;
  }
  for (const auto axis : axes) {
    out.push_back(static_cast<std::size_t>(ops::normalize_axis(node, axis, rank)));
  }
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end()) {
    fail("node '{}' ({}): axes [{}] name an axis twice", node.name, node.op, fmt::join(axes, ","));
  }
  return out;
}

Shape reduce_kept_shape(const Node& node, const Shape& input) {
  Shape kept = input;
  for (const auto d : reduced_axes(node, input.size())) kept[d] = 1;
  return kept;
}

namespace ops {

namespace {

std::vector<OutputInfo> infer_reduce(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  need_floating(node, x);
  const auto reduced = reduced_axes(node, x.shape.size());
  const bool keep = attr_int(node, "keepdims") != 0;
  Shape out;
  for (std::size_t d = 0; d < x.shape.size(); ++d) {
    const bool is_reduced = std::find(reduced.begin(), reduced.end(), d) != reduced.end();
    if (!is_reduced) {
      out.push_back(x.shape[d]);
    } else if (keep) {
      out.push_back(1);
    }
  }
  return {{x.dtype, out}};
}

OpDef reduce(OpId id, std::string_view summary) {
  using Ints = std::vector<std::int64_t>;
  return {.id = id,
          .summary = summary,
          .onnx_since = 1,
          .attributes = {{"axes", Ints{}},
                         {"keepdims", std::int64_t{1}},
                         {"noop_with_empty_axes", std::int64_t{0}}},
          .infer = infer_reduce,
          .export_rule = ExportRule::rewritten};
}

}  // namespace

std::vector<OpDef> reduction_ops() {
  return {
      reduce(OpId::ReduceMean,
             "mean over `axes` (empty: all, or none with noop_with_empty_axes); keepdims keeps "
             "them as 1s"),
      reduce(OpId::ReduceSum,
             "sum over `axes` (empty: all, or none with noop_with_empty_axes); keepdims keeps "
             "them as 1s"),
  };
}

}  // namespace ops

}  // namespace onnxforge
