// Ops beyond the builder's set, added for imported models. Each entry: name, arity, inference.
// Semantics follow ONNX (opset 13 forms); the importer lowers older forms onto these.
//
//   Mul(A, B), Sub(A, B), Div(A, B)  numpy broadcasting, same dtype, floating
//   MatMul(A[..., M, K], B[..., K, N]) -> [..., M, N]; both of rank >= 2, batch dimensions
//                              broadcast (numpy); the importer turns 1-D operands into Reshapes
//   Transpose(X)               perm (ints, required): output dim i is input dim perm[i]
//   Clip(X)                    min, max (floats, each optional: absent means unbounded);
//                              gradient flows where min <= x <= max
//   Pad(X)                     pads (ints, 2*rank, ONNX layout [b_1..b_r, e_1..e_r], >= 0),
//                              mode ("constant" | "reflect" | "edge", default constant),
//                              value (float, default 0; constant mode only)
//   LogSoftmax(X)              axis (default -1): x - log(sum(exp(x))) along one axis
#include <algorithm>

#include "core/error.hpp"
#include "graph/ops.hpp"

namespace onnxforge {

namespace {

using Inputs = std::vector<const ValueInfo*>;

const ValueInfo& need(const Node& node, const Inputs& in, std::size_t i) {
  if (i >= in.size() || !in[i]) {
    fail("node '{}' ({}): input {} is required but missing", node.name, node.op, i);
  }
  return *in[i];
}

void need_floating(const Node& node, const ValueInfo& v) {
  if (!is_floating(v.dtype)) {
    fail("node '{}' ({}): input '{}' must be floating point, got {}", node.name, node.op, v.name,
         to_string(v.dtype));
  }
}

std::vector<OutputInfo> infer_binary(const Node& node, const Inputs& in, const Graph&) {
  const auto& a = need(node, in, 0);
  const auto& b = need(node, in, 1);
  need_floating(node, a);
  if (a.dtype != b.dtype) {
    fail("node '{}' ({}): inputs have different dtypes {} and {}", node.name, node.op,
         to_string(a.dtype), to_string(b.dtype));
  }
  return {{a.dtype, broadcast_shapes(a.shape, b.shape, node)}};
}

std::vector<OutputInfo> infer_matmul(const Node& node, const Inputs& in, const Graph&) {
  const auto& a = need(node, in, 0);
  const auto& b = need(node, in, 1);
  need_floating(node, a);
  if (a.dtype != b.dtype) {
    fail("node '{}' (MatMul): inputs have different dtypes {} and {}", node.name,
         to_string(a.dtype), to_string(b.dtype));
  }
  if (a.shape.size() < 2 || b.shape.size() < 2) {
    fail("node '{}' (MatMul): both inputs need rank >= 2, got {} and {}", node.name,
         to_string(a.shape), to_string(b.shape));
  }
  const auto k_a = a.shape[a.shape.size() - 1];
  const auto k_b = b.shape[b.shape.size() - 2];
  if (k_a != k_b && k_a != kDynamic && k_b != kDynamic) {
    fail("node '{}' (MatMul): inner dimensions of {} and {} differ", node.name, to_string(a.shape),
         to_string(b.shape));
  }
  const Shape batch_a(a.shape.begin(), a.shape.end() - 2);
  const Shape batch_b(b.shape.begin(), b.shape.end() - 2);
  Shape out = broadcast_shapes(batch_a, batch_b, node);
  out.push_back(a.shape[a.shape.size() - 2]);
  out.push_back(b.shape[b.shape.size() - 1]);
  return {{a.dtype, out}};
}

std::vector<OutputInfo> infer_transpose(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  const auto perm = node.get_ints("perm", {});
  if (perm.size() != x.shape.size()) {
    fail("node '{}' (Transpose): perm has {} entries for input {} of rank {}", node.name,
         perm.size(), to_string(x.shape), x.shape.size());
  }
  std::vector<bool> seen(perm.size(), false);
  Shape out(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i) {
    const auto p = perm[i];
    if (p < 0 || p >= static_cast<std::int64_t>(perm.size()) || seen[static_cast<std::size_t>(p)]) {
      fail("node '{}' (Transpose): perm [{}] is not a permutation of 0..{}", node.name,
           fmt::join(perm, ","), perm.size() - 1);
    }
    seen[static_cast<std::size_t>(p)] = true;
    out[i] = x.shape[static_cast<std::size_t>(p)];
  }
  return {{x.dtype, out}};
}

std::vector<OutputInfo> infer_clip(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  need_floating(node, x);
  if (node.has("min") && node.has("max") && node.get_float("min", 0) > node.get_float("max", 0)) {
    fail("node '{}' (Clip): min {} is greater than max {}", node.name, node.get_float("min", 0),
         node.get_float("max", 0));
  }
  return {{x.dtype, x.shape}};
}

std::vector<OutputInfo> infer_pad(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  need_floating(node, x);
  const auto pads = node.get_ints("pads", {});
  const auto rank = x.shape.size();
  if (pads.size() != 2 * rank) {
    fail("node '{}' (Pad): pads has {} entries, input {} needs {}", node.name, pads.size(),
         to_string(x.shape), 2 * rank);
  }
  const auto mode = node.get_string("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge") {
    fail("node '{}' (Pad): mode '{}' is not one of constant, reflect, edge", node.name, mode);
  }
  Shape out = x.shape;
  for (std::size_t i = 0; i < rank; ++i) {
    const auto begin = pads[i];
    const auto end = pads[i + rank];
    if (begin < 0 || end < 0) {
      fail("node '{}' (Pad): negative pads are not supported (axis {}: {}, {})", node.name, i,
           begin, end);
    }
    if (x.shape[i] == kDynamic) {
      if (begin != 0 || end != 0) {
        fail("node '{}' (Pad): cannot pad the dynamic axis {}", node.name, i);
      }
      continue;
    }
    if (mode == "reflect" && (begin >= x.shape[i] || end >= x.shape[i]) && (begin || end)) {
      fail("node '{}' (Pad): reflect pads ({}, {}) must be smaller than axis {} of size {}",
           node.name, begin, end, i, x.shape[i]);
    }
    if (mode == "edge" && x.shape[i] == 0 && (begin || end)) {
      fail("node '{}' (Pad): edge mode cannot pad the empty axis {}", node.name, i);
    }
    out[i] = x.shape[i] + begin + end;
  }
  return {{x.dtype, out}};
}

std::vector<OutputInfo> infer_log_softmax(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  need_floating(node, x);
  const auto rank = static_cast<std::int64_t>(x.shape.size());
  const auto axis = node.get_int("axis", -1);
  if (axis < -rank || axis >= rank) {
    fail("node '{}' (LogSoftmax): axis {} is out of range for rank {}", node.name, axis, rank);
  }
  return {{x.dtype, x.shape}};
}

}  // namespace

void add_extra_op_schemas(std::map<std::string, OpSchema>& table) {
  table["Mul"] = {2, 2, infer_binary};
  table["Sub"] = {2, 2, infer_binary};
  table["Div"] = {2, 2, infer_binary};
  table["MatMul"] = {2, 2, infer_matmul};
  table["Transpose"] = {1, 1, infer_transpose};
  table["Clip"] = {1, 1, infer_clip};
  table["Pad"] = {1, 1, infer_pad};
  table["LogSoftmax"] = {1, 1, infer_log_softmax};
}

}  // namespace onnxforge
