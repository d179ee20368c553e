#include "graph/ops.hpp"

#include <algorithm>
#include <functional>
#include <map>

#include "core/error.hpp"

namespace onnxforge {

namespace {

using Inputs = std::vector<const ValueInfo*>;

const ValueInfo& need(const Node& node, const Inputs& in, std::size_t i) {
  if (i >= in.size() || !in[i]) {
    fail("node '{}' ({}): input {} is required but missing", node.name, node.op, i);
  }
  return *in[i];
}

void need_rank(const Node& node, const ValueInfo& v, std::size_t rank, const char* role) {
  if (v.shape.size() != rank) {
    fail("node '{}' ({}): {} '{}' must have rank {}, got shape {}", node.name, node.op, role,
         v.name, rank, to_string(v.shape));
  }
}

void need_floating(const Node& node, const ValueInfo& v) {
  if (!is_floating(v.dtype)) {
    fail("node '{}' ({}): input '{}' must be floating point, got {}", node.name, node.op, v.name,
         to_string(v.dtype));
  }
}

std::int64_t normalize_axis(const Node& node, std::int64_t axis, std::size_t rank) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis >= r) {
    fail("node '{}' ({}): axis {} is out of range for rank {}", node.name, node.op, axis, rank);
  }
  return axis < 0 ? axis + r : axis;
}

std::vector<OutputInfo> same_as_first(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  need_floating(node, x);
  return {{x.dtype, x.shape}};
}

std::vector<OutputInfo> infer_conv(const Node& node, const Inputs& in, const Graph& graph) {
  const auto& x = need(node, in, 0);
  const auto& w = need(node, in, 1);
  need_rank(node, x, 4, "input");
  need_rank(node, w, 4, "weight");
  const std::int64_t group = node.get_int("group", 1);
  if (group < 1) fail("node '{}' (Conv): group must be >= 1, got {}", node.name, group);
  const std::int64_t channels = x.shape[1];
  if (channels != kDynamic && channels != w.shape[1] * group) {
    fail("node '{}' (Conv): input {} has {} channels but weight {} with group {} expects {}",
         node.name, to_string(x.shape), channels, to_string(w.shape), group, w.shape[1] * group);
  }
  if (w.shape[0] % group != 0) {
    fail("node '{}' (Conv): {} filters are not divisible by group {}", node.name, w.shape[0],
         group);
  }
  if (in.size() > 2 && in[2]) {
    const auto& b = *in[2];
    if (b.shape != Shape{w.shape[0]}) {
      fail("node '{}' (Conv): bias shape {} does not match {} filters", node.name,
           to_string(b.shape), w.shape[0]);
    }
  }
  const Window2d win = window_of(node, graph);
  return {{x.dtype, {x.shape[0], w.shape[0], win.out_h(x.shape[2]), win.out_w(x.shape[3])}}};
}

std::vector<OutputInfo> infer_pool(const Node& node, const Inputs& in, const Graph& graph) {
  const auto& x = need(node, in, 0);
  need_rank(node, x, 4, "input");
  const Window2d win = window_of(node, graph);
  auto out_h = win.out_h(x.shape[2]);
  auto out_w = win.out_w(x.shape[3]);
  if (out_h <= 0 || out_w <= 0) {
    fail("node '{}' ({}): window {}x{} does not fit input {}", node.name, node.op, win.kernel_h,
         win.kernel_w, to_string(x.shape));
  }
  return {{x.dtype, {x.shape[0], x.shape[1], out_h, out_w}}};
}

std::vector<OutputInfo> infer_global_pool(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  need_rank(node, x, 4, "input");
  return {{x.dtype, {x.shape[0], x.shape[1], 1, 1}}};
}

std::vector<OutputInfo> infer_softmax(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  normalize_axis(node, node.get_int("axis", -1), x.shape.size());
  return {{x.dtype, x.shape}};
}

std::vector<OutputInfo> infer_flatten(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  const auto rank = x.shape.size();
  std::int64_t axis = node.get_int("axis", 1);
  if (axis < 0) axis += static_cast<std::int64_t>(rank);
  if (axis < 0 || axis > static_cast<std::int64_t>(rank)) {
    fail("node '{}' (Flatten): axis {} is out of range for shape {}", node.name,
         node.get_int("axis", 1), to_string(x.shape));
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

std::vector<OutputInfo> infer_dense(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  const auto& w = need(node, in, 1);
  need_rank(node, x, 2, "input");
  need_rank(node, w, 2, "weight");
  if (x.shape[1] != kDynamic && x.shape[1] != w.shape[1]) {
    fail("node '{}' (Dense): input {} has {} features but weight {} expects {}", node.name,
         to_string(x.shape), x.shape[1], to_string(w.shape), w.shape[1]);
  }
  if (in.size() > 2 && in[2] && in[2]->shape != Shape{w.shape[0]}) {
    fail("node '{}' (Dense): bias shape {} does not match {} units", node.name,
         to_string(in[2]->shape), w.shape[0]);
  }
  return {{x.dtype, {x.shape[0], w.shape[0]}}};
}

std::vector<OutputInfo> infer_add(const Node& node, const Inputs& in, const Graph&) {
  const auto& a = need(node, in, 0);
  const auto& b = need(node, in, 1);
  if (a.dtype != b.dtype) {
    fail("node '{}' (Add): inputs have different dtypes {} and {}", node.name, to_string(a.dtype),
         to_string(b.dtype));
  }
  return {{a.dtype, broadcast_shapes(a.shape, b.shape, node)}};
}

std::vector<OutputInfo> infer_concat(const Node& node, const Inputs& in, const Graph&) {
  const auto& first = need(node, in, 0);
  const auto axis =
      static_cast<std::size_t>(normalize_axis(node, node.get_int("axis", 1), first.shape.size()));
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

std::vector<OutputInfo> infer_dropout(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  const double ratio = node.get_float("ratio", 0.5);
  if (ratio < 0.0 || ratio >= 1.0) {
    fail("node '{}' (Dropout): ratio must be in [0, 1), got {}", node.name, ratio);
  }
  return {{x.dtype, x.shape}};
}

std::vector<OutputInfo> infer_batch_norm(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  if (x.shape.size() < 2) {
    fail("node '{}' (BatchNormalization): input must have rank >= 2, got {}", node.name,
         to_string(x.shape));
  }
  const char* roles[] = {"scale", "bias", "mean", "variance"};
  for (std::size_t i = 1; i <= 4; ++i) {
    const auto& p = need(node, in, i);
    if (p.shape != Shape{x.shape[1]}) {
      fail("node '{}' (BatchNormalization): {} '{}' has shape {}, expected [{}] for input {}",
           node.name, roles[i - 1], p.name, to_string(p.shape), x.shape[1], to_string(x.shape));
    }
  }
  return {{x.dtype, x.shape}};
}

std::vector<OutputInfo> infer_bce(const Node& node, const Inputs& in, const Graph&) {
  const auto& logits = need(node, in, 0);
  const auto& labels = need(node, in, 1);
  if (logits.shape != labels.shape) {
    fail("node '{}' ({}): logits {} and labels {} must have the same shape", node.name, node.op,
         to_string(logits.shape), to_string(labels.shape));
  }
  return {{logits.dtype, {}}};
}

std::vector<OutputInfo> infer_softmax_ce(const Node& node, const Inputs& in, const Graph&) {
  const auto& logits = need(node, in, 0);
  const auto& labels = need(node, in, 1);
  need_rank(node, logits, 2, "logits");
  if (labels.dtype != DType::i64 || labels.shape != Shape{logits.shape[0]}) {
    fail("node '{}' (SoftmaxCrossEntropy): labels must be i64 of shape [{}], got {} {}", node.name,
         logits.shape[0] == kDynamic ? "N" : std::to_string(logits.shape[0]),
         to_string(labels.dtype), to_string(labels.shape));
  }
  return {{logits.dtype, {}}};
}

const std::map<std::string, OpSchema>& schemas() {
  static const std::map<std::string, OpSchema> table = [] {
    std::map<std::string, OpSchema> all = {
        {"Conv", {2, 3, infer_conv}},
        {"MaxPool", {1, 1, infer_pool}},
        {"AveragePool", {1, 1, infer_pool}},
        {"GlobalAveragePool", {1, 1, infer_global_pool}},
        {"Relu", {1, 1, same_as_first}},
        {"Sigmoid", {1, 1, same_as_first}},
        {"Tanh", {1, 1, same_as_first}},
        {"LeakyRelu", {1, 1, same_as_first}},
        {"Identity", {1, 1, same_as_first}},
        {"Softmax", {1, 1, infer_softmax}},
        {"Flatten", {1, 1, infer_flatten}},
        {"Reshape", {1, 1, infer_reshape}},
        {"Dense", {2, 3, infer_dense}},
        {"Add", {2, 2, infer_add}},
        {"Concat", {1, 64, infer_concat}},
        {"Dropout", {1, 1, infer_dropout}},
        {"BatchNormalization", {5, 5, infer_batch_norm}},
        {"BinaryCrossEntropyWithLogits", {2, 2, infer_bce}},
        {"SoftmaxCrossEntropy", {2, 2, infer_softmax_ce}},
    };
    add_extra_op_schemas(all);
    return all;
  }();
  return table;
}

std::int64_t window_out(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                        std::int64_t dilation, std::int64_t pad_begin, std::int64_t pad_end,
                        bool ceil_mode) {
  if (in == kDynamic) return kDynamic;
  const std::int64_t span = dilation * (kernel - 1) + 1;
  const std::int64_t room = in + pad_begin + pad_end - span;
  if (room < 0) return 0;
  std::int64_t out = (ceil_mode ? (room + stride - 1) / stride : room / stride) + 1;
  // ONNX/PyTorch: the last window must start inside the input or the begin padding.
  if (ceil_mode && (out - 1) * stride >= in + pad_begin) --out;
  return out;
}

}  // namespace

std::int64_t Window2d::out_h(std::int64_t in_h) const {
  return window_out(in_h, kernel_h, stride_h, dilation_h, pad_top, pad_bottom, ceil_mode);
}

std::int64_t Window2d::out_w(std::int64_t in_w) const {
  return window_out(in_w, kernel_w, stride_w, dilation_w, pad_left, pad_right, ceil_mode);
}

Window2d window_of(const Node& node, const Graph& graph) {
  Window2d win;
  std::vector<std::int64_t> kernel;
  if (node.op == "Conv") {
    const auto& w = graph.value(node.input(1)).shape;
    kernel = {w[2], w[3]};
  } else {
    kernel = node.get_ints("kernel_shape", {});
  }
  auto pair = [&](const std::string& attribute, std::int64_t fallback) {
    auto v = node.get_ints(attribute, {fallback, fallback});
    if (v.size() != 2) {
      fail("node '{}' ({}): attribute '{}' must have 2 values for a 2-D window, got {}", node.name,
           node.op, attribute, v.size());
    }
    if (v[0] < 1 || v[1] < 1) {
      fail("node '{}' ({}): attribute '{}' must be positive, got [{},{}]", node.name, node.op,
           attribute, v[0], v[1]);
    }
    return v;
  };
  if (kernel.size() != 2 || kernel[0] < 1 || kernel[1] < 1) {
    fail("node '{}' ({}): needs a 2-D kernel of positive sizes", node.name, node.op);
  }
  const auto strides = pair("strides", 1);
  const auto dilations = pair("dilations", 1);
  const auto pads = node.get_ints("pads", {0, 0, 0, 0});
  if (pads.size() != 4 || std::any_of(pads.begin(), pads.end(), [](auto p) { return p < 0; })) {
    fail("node '{}' ({}): attribute 'pads' must be 4 non-negative values [top,left,bottom,right]",
         node.name, node.op);
  }
  win.kernel_h = kernel[0];
  win.kernel_w = kernel[1];
  win.stride_h = strides[0];
  win.stride_w = strides[1];
  win.dilation_h = dilations[0];
  win.dilation_w = dilations[1];
  win.pad_top = pads[0];
  win.pad_left = pads[1];
  win.pad_bottom = pads[2];
  win.pad_right = pads[3];
  win.ceil_mode = node.get_int("ceil_mode", 0) != 0;
  return win;
}

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

Shape reshape_target(const Node& node, const Shape& input) {
  const Shape requested = node.get_ints("shape", {});
  const bool allow_zero = node.get_int("allowzero", 0) != 0;
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

std::vector<OutputInfo> infer_node(const Node& node, const std::vector<const ValueInfo*>& inputs,
                                   const Graph& graph) {
  auto it = schemas().find(node.op);
  if (it == schemas().end()) {
    fail("node '{}': unknown op '{}' (known: {})", node.name, node.op,
         fmt::join(known_ops(), ", "));
  }
  const auto& schema = it->second;
  if (inputs.size() < schema.min_inputs || inputs.size() > schema.max_inputs) {
    fail("node '{}' ({}): takes {} to {} inputs, got {}", node.name, node.op, schema.min_inputs,
         schema.max_inputs, inputs.size());
  }
  if (node.outputs.empty()) fail("node '{}' ({}): has no output", node.name, node.op);
  return schema.infer(node, inputs, graph);
}

bool is_known_op(const std::string& op) { return schemas().count(op) != 0; }

std::vector<std::string> known_ops() {
  std::vector<std::string> names;
  for (const auto& [name, schema] : schemas()) names.push_back(name);
  return names;
}

bool is_loss_op(const std::string& op) {
  return op == "BinaryCrossEntropyWithLogits" || op == "SoftmaxCrossEntropy";
}

}  // namespace onnxforge
