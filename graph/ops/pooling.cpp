// Pooling, and the 2-D window geometry that convolution shares.
#include <algorithm>

#include "graph/ops/infer.hpp"

namespace onnxforge {

namespace {

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
  if (node.is(OpId::Conv)) {
    const auto& w = graph.value(node.input(1)).shape;
    kernel = {w[2], w[3]};
  } else {
    kernel = attr_ints(node, "kernel_shape");
  }
  auto pair = [&](std::string_view attribute) {
    auto v = attr_ints(node, attribute);
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
  const auto strides = pair("strides");
  const auto dilations = pair("dilations");
  const auto pads = attr_ints(node, "pads");
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
  win.ceil_mode = node.is(OpId::Conv) ? false : attr_int(node, "ceil_mode") != 0;
  return win;
}

namespace ops {

namespace {

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

}  // namespace

std::vector<AttrDef> window_attributes(bool onnx_dilations) {
  using Ints = std::vector<std::int64_t>;
  return {{"strides", Ints{1, 1}},
          {"pads", Ints{0, 0, 0, 0}},
          {"dilations", Ints{1, 1}, onnx_dilations}};
}

std::vector<OpDef> pooling_ops() {
  using Ints = std::vector<std::int64_t>;
  auto max_attributes = window_attributes(true);
  max_attributes.insert(max_attributes.begin(), {"kernel_shape", Ints{}});
  max_attributes.push_back({"ceil_mode", std::int64_t{0}});
  auto average_attributes = window_attributes(false);
  average_attributes.insert(average_attributes.begin(), {"kernel_shape", Ints{}});
  average_attributes.push_back({"ceil_mode", std::int64_t{0}});
  average_attributes.push_back({"count_include_pad", std::int64_t{0}});
  return {
      {.id = OpId::MaxPool,
       .summary = "2-D max over windows; pads [top,left,bottom,right]",
       .onnx_since = 1,
       .attributes = max_attributes,
       .infer = infer_pool},
      {.id = OpId::AveragePool,
       .summary = "2-D mean over windows, padding counted when count_include_pad",
       .onnx_since = 1,
       .attributes = average_attributes,
       .infer = infer_pool},
      {.id = OpId::GlobalAveragePool,
       .summary = "mean over H and W: [N, C, 1, 1]",
       .onnx_since = 1,
       .infer = infer_global_pool},
  };
}

}  // namespace ops

}  // namespace onnxforge
