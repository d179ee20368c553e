// Pooling: MaxPool and AveragePool (1-D windows lifted to 2-D, auto_pad resolved) and
// GlobalAveragePool.
#include "core/error.hpp"
#include "importers/onnx_import/importer.hpp"

namespace onnxforge::onnx_import {

namespace {

void pool(OpId op, Importer& im, const onnx::NodeProto& n, Attrs& a) {
  const bool max = op == OpId::MaxPool;
  if (max) {
    a.allow(
        {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"});
  } else {
    a.allow({"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"});
  }
  only_first_output_used(im, n, a);
  auto x = im.info(n.input(0));
  std::string x_name = n.input(0);
  const bool one_d = x.shape.size() == 3;
  if (one_d) {
    a.lift_1d();
    x_name = lift_value(im, x_name, "/2d");
    x = im.info(x_name);
  }
  if (x.shape.size() != 4) {
    fail("{}: only 1-D and 2-D pooling are supported (input {})", a.where(), to_string(x.shape));
  }
  const auto kernel = a.ints("kernel_shape", {});
  if (kernel.size() != 2) a.unsupported("kernel_shape", "must have 2 values (2-D pooling)");
  const auto strides = pair_attr(a, "strides");
  const auto dilations = max ? pair_attr(a, "dilations") : std::vector<std::int64_t>{1, 1};
  const auto pads = window_pads(a, x.shape, kernel, strides, dilations);
  std::map<std::string, Attribute> attrs{{"kernel_shape", kernel},
                                         {"strides", strides},
                                         {"pads", pads},
                                         {"ceil_mode", a.i("ceil_mode", 0)}};
  if (max) {
    attrs["dilations"] = dilations;
  } else {
    attrs["count_include_pad"] = a.i("count_include_pad", 0);
  }
  const auto out = one_d ? im.temp(n.output(0) + "/2d") : n.output(0);
  im.emit(op, {im.use(x_name)}, attrs, out);
  if (one_d) lower_value(im, out, n.output(0));
}

void global_average_pool(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({});
  const auto x = im.info(n.input(0));
  if (x.shape.size() != 4) {
    fail("{}: only 4-D (N,C,H,W) inputs are supported, got {}", a.where(), to_string(x.shape));
  }
  im.emit(OpId::GlobalAveragePool, {im.use(n.input(0))}, {}, n.output(0));
}

}  // namespace

std::vector<OpRule> pooling_rules() {
  return {
      rule(OpId::MaxPool, pool),
      rule(OpId::AveragePool, pool),
      rule(OpId::GlobalAveragePool, global_average_pool),
  };
}

}  // namespace onnxforge::onnx_import
