// Shape ops: data moves or is regrouped, not computed.
#include "graph/ops/infer.hpp"

namespace onnxforge {

Shape reshape_target(const Node& node, const Shape& input) {
  const Shape requested = attr_ints(node, "shape");
  const bool allow_zero = attr_int(node, "allowzero") != 0;
  Shape target(requested.size());
  std::int64_t known = 1;  // product of the static target dimensions
  bool target_dynamic = false;
  int infer_at = -1;
  for (std::size_t i = 0; i < requested.size(); ++i) {
    const std::int64_t r = requested[i];
    if (r == 0 && !allow_zero) {
      if (i >= input.size()) {
        fail("node '{}' (Reshape): shape entry {} copies a dimension that input {} lacks",
             node.name, i, to_string(input));
      }
      target[i] = input[i];
      if (input[i] == kDynamic) {
        target_dynamic = true;
        continue;
      }
    } else if (r == -1) {
      if (infer_at >= 0) fail("node '{}' (Reshape): more than one -1 in the shape", node.name);
      infer_at = static_cast<int>(i);
      continue;
    } else if (r < 0) {
      fail("node '{}' (Reshape): invalid shape entry {}", node.name, r);
    } else {
      target[i] = r;
    }
    known *= target[i];
  }
  std::int64_t total = 1;
  bool input_dynamic = false;
  for (auto d : input) {
    if (d == kDynamic) {
      input_dynamic = true;
    } else {
      total *= d;
    }
  }
  if (input_dynamic) {
    // A copied dynamic dimension cancels the input's; otherwise the -1 becomes dynamic.
    if (infer_at >= 0) {
      if (target_dynamic && known != 0 && total % known == 0) {
        target[static_cast<std::size_t>(infer_at)] = total / known;
      } else {
        target[static_cast<std::size_t>(infer_at)] = kDynamic;
      }
    }
    return target;
  }
  if (infer_at >= 0) {
    if (known == 0 || total % known != 0) {
      fail("node '{}' (Reshape): cannot reshape {} to {}", node.name, to_string(input),
           to_string(requested));
    }
    target[static_cast<std::size_t>(infer_at)] = total / known;
  } else if (known != total) {
    fail("node '{}' (Reshape): cannot reshape {} ({} elements) to {}", node.name, to_string(input),
         total, to_string(target));
  }
  return target;
}

namespace ops {

namespace {

std::vector<OutputInfo> infer_flatten(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  const auto rank = x.shape.size();
  std::int64_t axis = attr_int(node, "axis");
  if (axis < 0) axis += static_cast<std::int64_t>(rank);
  if (axis < 0 || axis > static_cast<std::int64_t>(rank)) {
    fail("node '{}' (Flatten): axis {} is out of range for shape {}", node.name,
         attr_int(node, "axis"), to_string(x.shape));
  }
  auto product = [&](std::size_t from, std::size_t to) {
    std::int64_t p = 1;
    for (auto i = from; i < to; ++i) {
      if (x.shape[i] == kDynamic) return kDynamic;
      p *= x.shape[i];
    }
    return p;
  };
  const auto a = static_cast<std::size_t>(axis);
  return {{x.dtype, {product(0, a), product(a, rank)}}};
}

std::vector<OutputInfo> infer_reshape(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  return {{x.dtype, reshape_target(node, x.shape)}};
}

std::vector<OutputInfo> infer_transpose(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  const auto perm = attr_ints(node, "perm");
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

std::vector<OutputInfo> infer_concat(const Node& node, const Inputs& in, const Graph&) {
  const auto& first = need(node, in, 0);
  const auto axis =
      static_cast<std::size_t>(normalize_axis(node, attr_int(node, "axis"), first.shape.size()));
  Shape out = first.shape;
  for (std::size_t i = 1; i < in.size(); ++i) {
    const auto& v = need(node, in, i);
    bool compatible = v.shape.size() == out.size();
    for (std::size_t d = 0; compatible && d < out.size(); ++d) {
      if (d != axis && v.shape[d] != out[d]) compatible = false;
    }
    if (!compatible) {
      fail("node '{}' (Concat): shape {} of '{}' does not match {} outside axis {}", node.name,
           to_string(v.shape), v.name, to_string(first.shape), axis);
    }
    out[axis] =
        (out[axis] == kDynamic || v.shape[axis] == kDynamic) ? kDynamic : out[axis] + v.shape[axis];
  }
  return {{first.dtype, out}};
}

std::vector<OutputInfo> infer_pad(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  need_floating(node, x);
  const auto pads = attr_ints(node, "pads");
  const auto rank = x.shape.size();
  if (pads.size() != 2 * rank) {
    fail("node '{}' (Pad): pads has {} entries, input {} needs {}", node.name, pads.size(),
         to_string(x.shape), 2 * rank);
  }
  const auto mode = attr_string(node, "mode");
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

}  // namespace

std::vector<OpDef> shape_ops() {
  using Ints = std::vector<std::int64_t>;
  return {
      {.id = OpId::Flatten,
       .summary = "[d0..d(axis-1) | d(axis)..] to 2-D",
       .onnx_since = 1,
       .attributes = {{"axis", std::int64_t{1}}},
       .infer = infer_flatten},
      {.id = OpId::Reshape,
       .summary = "to `shape` (ints: 0 copies a dimension unless allowzero, -1 is inferred)",
       .onnx_since = 1,
       .attributes = {{"shape", Ints{}, false}, {"allowzero", std::int64_t{0}, false}},
       .infer = infer_reshape,
       .export_rule = ExportRule::rewritten},
      {.id = OpId::Transpose,
       .summary = "output dimension i is input dimension perm[i]",
       .onnx_since = 1,
       .attributes = {{"perm", Ints{}}},
       .infer = infer_transpose},
      {.id = OpId::Concat,
       .summary = "inputs joined along `axis`",
       .onnx_since = 1,
       .max_inputs = 64,
       .attributes = {{"axis", std::int64_t{1}}},
       .infer = infer_concat},
      {.id = OpId::Pad,
       .summary = "pads (2*rank, ONNX layout [b_1..b_r, e_1..e_r], >= 0); mode constant (with "
                  "value), reflect or edge",
       .onnx_since = 2,
       .attributes = {{"pads", Ints{}, false},
                      {"mode", std::string("constant")},
                      {"value", 0.0, false}},
       .infer = infer_pad,
       .export_rule = ExportRule::rewritten},
  };
}

}  // namespace ops

}  // namespace onnxforge
