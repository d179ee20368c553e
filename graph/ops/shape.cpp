// Shape ops: data moves or is regrouped, not computed.
#include <algorithm>
#include <cmath>

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

std::vector<SliceAxis> slice_axes(const Node& node, const Shape& input) {
  const auto starts = attr_ints(node, "starts");
  const auto ends = attr_ints(node, "ends");
  auto axes = attr_ints(node, "axes");
  auto steps = attr_ints(node, "steps");
  const std::size_t rank = input.size();
  if (starts.size() != ends.size()) {
    fail("node '{}' (Slice): starts has {} entries, ends {}", node.name, starts.size(),
         ends.size());
  }
  if (axes.empty()) {
    for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<std::int64_t>(i));
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (axes.size() != starts.size() || steps.size() != starts.size()) {
    fail(
        "node '{}' (Slice): starts, ends, axes and steps must have as many entries ({}, {}, {}, "
        "{})",
        node.name, starts.size(), ends.size(), axes.size(), steps.size());
  }
  std::vector<SliceAxis> out(rank);
  for (std::size_t d = 0; d < rank; ++d) out[d] = {0, 1, input[d]};
  std::vector<bool> seen(rank, false);
  for (std::size_t i = 0; i < starts.size(); ++i) {
    const auto d = static_cast<std::size_t>(ops::normalize_axis(node, axes[i], rank));
    if (seen[d]) fail("node '{}' (Slice): axis {} is sliced twice", node.name, d);
    seen[d] = true;
    const std::int64_t step = steps[i];
    if (step == 0) fail("node '{}' (Slice): steps must not be 0 (axis {})", node.name, d);
    const std::int64_t size = input[d];
    std::int64_t start = starts[i];
    std::int64_t end = ends[i];
    if (size == kDynamic) {
      // The dynamic batch: only the whole axis (start 0, step 1, an end past any size).
      if (start != 0 || step != 1 || end < (std::int64_t{1} << 30)) {
        fail("node '{}' (Slice): cannot slice the dynamic axis {} (only all of it)", node.name, d);
      }
      out[d] = {0, 1, kDynamic};
      continue;
    }
    if (start < 0) start += size;
    if (end < 0) end += size;
    std::int64_t count = 0;
    if (step > 0) {
      start = std::clamp<std::int64_t>(start, 0, size);
      end = std::clamp<std::int64_t>(end, 0, size);
      count = end > start ? (end - start + step - 1) / step : 0;
    } else {
      start = std::clamp<std::int64_t>(start, 0, size - 1);
      end = std::clamp<std::int64_t>(end, -1, size - 1);
      count = start > end ? (start - end - step - 1) / -step : 0;
    }
    if (count <= 0) {
      fail(
          "node '{}' (Slice): axis {} of size {} sliced from {} to {} by {} is empty (the IR has "
          "no empty tensors)",
          node.name, d, size, starts[i], ends[i], step);
    }
    out[d] = {start, step, count};
  }
  return out;
}

namespace {

// The coordinate of output element `o` in the input along one axis (ONNX Resize).
double resize_coordinate(const std::string& mode, double o, double scale, std::int64_t in,
                         double length_resized) {
  if (mode == "half_pixel") return (o + 0.5) / scale - 0.5;
  if (mode == "pytorch_half_pixel") return length_resized > 1 ? (o + 0.5) / scale - 0.5 : 0.0;
  if (mode == "align_corners") {
    return length_resized == 1 ? 0.0 : o * static_cast<double>(in - 1) / (length_resized - 1);
  }
  if (mode == "tf_half_pixel_for_nn") return (o + 0.5) / scale;
  return o / scale;  // asymmetric
}

std::int64_t nearest_of(const std::string& mode, double x) {
  if (mode == "floor") return static_cast<std::int64_t>(std::floor(x));
  if (mode == "ceil") return static_cast<std::int64_t>(std::ceil(x));
  const double fl = std::floor(x);
  if (x - fl == 0.5) return static_cast<std::int64_t>(mode == "round_prefer_ceil" ? fl + 1 : fl);
  return static_cast<std::int64_t>(std::round(x));
}

}  // namespace

std::vector<ResizeTap> resize_taps(const Node& node, const Shape& input, const Shape& output,
                                   std::size_t axis) {
  const std::int64_t in = input[axis];
  const std::int64_t out = output[axis];
  const auto scales = attr_floats(node, "scales");
  // With scales, ONNX's coordinates use the scale itself and the unrounded resized length.
  const double scale =
      scales.empty() ? static_cast<double>(out) / static_cast<double>(in) : scales[axis];
  const double length_resized =
      scales.empty() ? static_cast<double>(out) : static_cast<double>(in) * scale;
  const std::string transform = attr_string(node, "coordinate_transformation_mode");
  const bool nearest = attr_string(node, "mode") == "nearest";
  const std::string nearest_mode = attr_string(node, "nearest_mode");
  std::vector<ResizeTap> taps(static_cast<std::size_t>(out));
  for (std::int64_t o = 0; o < out; ++o) {
    const double x =
        resize_coordinate(transform, static_cast<double>(o), scale, in, length_resized);
    ResizeTap& t = taps[static_cast<std::size_t>(o)];
    if (nearest) {
      t.i0 = t.i1 = std::clamp<std::int64_t>(nearest_of(nearest_mode, x), 0, in - 1);
      t.w = 0;
      continue;
    }
    const double fl = std::floor(x);
    const auto base = static_cast<std::int64_t>(fl);
    t.i0 = std::clamp<std::int64_t>(base, 0, in - 1);
    t.i1 = std::clamp<std::int64_t>(base + 1, 0, in - 1);
    t.w = t.i0 == t.i1 ? 0.0 : x - fl;
  }
  return taps;
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

std::vector<OutputInfo> infer_slice(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  need_floating(node, x);
  Shape out;
  for (const auto& a : slice_axes(node, x.shape)) out.push_back(a.count);
  return {{x.dtype, out}};
}

std::vector<OutputInfo> infer_expand(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  need_floating(node, x);
  const Shape shape = attr_ints(node, "shape");
  for (const auto d : shape) {
    if (d < 1 && d != kDynamic) {
      fail("node '{}' (Expand): shape [{}] has an entry below 1", node.name, fmt::join(shape, ","));
    }
  }
  return {{x.dtype, broadcast_shapes(x.shape, shape, node)}};
}

std::vector<OutputInfo> infer_resize(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  need_floating(node, x);
  need_rank(node, x, 4, "input");
  const auto mode = attr_string(node, "mode");
  if (mode != "nearest" && mode != "linear") {
    fail("node '{}' (Resize): attribute 'mode' is '{}'; supported: nearest, linear", node.name,
         mode);
  }
  const auto transform = attr_string(node, "coordinate_transformation_mode");
  if (transform != "half_pixel" && transform != "pytorch_half_pixel" &&
      transform != "align_corners" && transform != "asymmetric" &&
      transform != "tf_half_pixel_for_nn") {
    fail(
        "node '{}' (Resize): attribute 'coordinate_transformation_mode' is '{}'; supported: "
        "half_pixel, pytorch_half_pixel, align_corners, asymmetric, tf_half_pixel_for_nn",
        node.name, transform);
  }
  const auto nearest_mode = attr_string(node, "nearest_mode");
  if (nearest_mode != "round_prefer_floor" && nearest_mode != "round_prefer_ceil" &&
      nearest_mode != "floor" && nearest_mode != "ceil") {
    fail(
        "node '{}' (Resize): attribute 'nearest_mode' is '{}'; supported: round_prefer_floor, "
        "round_prefer_ceil, floor, ceil",
        node.name, nearest_mode);
  }
  const auto scales = attr_floats(node, "scales");
  const auto sizes = attr_ints(node, "sizes");
  if (scales.empty() == sizes.empty()) {
    fail("node '{}' (Resize): needs exactly one of the attributes 'scales' and 'sizes'", node.name);
  }
  if (!scales.empty() && scales.size() != 4) {
    fail("node '{}' (Resize): attribute 'scales' has {} entries for a 4-D input", node.name,
         scales.size());
  }
  if (!sizes.empty() && sizes.size() != 4) {
    fail("node '{}' (Resize): attribute 'sizes' has {} entries for a 4-D input", node.name,
         sizes.size());
  }
  Shape out = x.shape;
  for (std::size_t d = 0; d < 4; ++d) {
    if (d < 2) {
      const bool same =
          scales.empty() ? (sizes[d] == x.shape[d] || x.shape[d] == kDynamic) : scales[d] == 1.0;
      if (!same) {
        fail(
            "node '{}' (Resize): attribute '{}' resizes axis {} (N or C); only H and W can be "
            "resized",
            node.name, scales.empty() ? "sizes" : "scales", d);
      }
      continue;
    }
    if (x.shape[d] == kDynamic) {
      fail("node '{}' (Resize): cannot resize the dynamic axis {}", node.name, d);
    }
    if (!scales.empty() && !(scales[d] > 0)) {
      fail("node '{}' (Resize): attribute 'scales' must be positive, got {} for axis {}", node.name,
           scales[d], d);
    }
    out[d] =
        scales.empty()
            ? sizes[d]
            : static_cast<std::int64_t>(std::floor(static_cast<double>(x.shape[d]) * scales[d]));
    if (out[d] < 1) {
      fail("node '{}' (Resize): axis {} of size {} resizes to {} (the IR has no empty tensors)",
           node.name, d, x.shape[d], out[d]);
    }
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
      {.id = OpId::Slice,
       .summary = "starts, ends, axes (default: 0..), steps (default: 1s; may be negative), ONNX "
                  "clamping",
       .onnx_since = 1,
       .attributes = {{"starts", Ints{}, false},
                      {"ends", Ints{}, false},
                      {"axes", Ints{}, false},
                      {"steps", Ints{}, false}},
       .infer = infer_slice,
       .export_rule = ExportRule::rewritten},
      {.id = OpId::Expand,
       .summary = "broadcast (numpy rules, both ways) with `shape`",
       .onnx_since = 8,
       .attributes = {{"shape", Ints{}, false}},
       .infer = infer_expand,
       .export_rule = ExportRule::rewritten},
      {.id = OpId::Resize,
       .summary = "4-D, H and W by `scales` (floats) or `sizes` (ints); mode nearest or linear",
       .onnx_since = 11,
       .attributes = {{"mode", std::string("nearest")},
                      {"coordinate_transformation_mode", std::string("half_pixel")},
                      {"nearest_mode", std::string("round_prefer_floor")},
                      {"scales", std::vector<double>{}, false},
                      {"sizes", Ints{}, false}},
       .infer = infer_resize,
       .export_rule = ExportRule::rewritten},
  };
}

}  // namespace ops

}  // namespace onnxforge
