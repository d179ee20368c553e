// Import rules of Expand, ReduceMean, ReduceSum and Resize (Slice: shape.cpp, which also folds it
// on shape vectors and constants): what ONNX passes as attributes
// or as constant inputs becomes the IR op's attributes (graph/ops/shape.cpp, reduction.cpp).
// Straightforward forms only: the inputs must be constants (initializers or computable at import
// time).
#include <string>
#include <vector>

#include "core/error.hpp"
#include "importers/onnx_import/importer.hpp"

namespace onnxforge::onnx_import {

namespace {

void expand(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({});
  im.emit_or_fold(OpId::Expand, {n.input(0)}, {{"shape", ints_of(im, n.input(1), a, "shape")}},
                  n.output(0));
}

// ReduceMean (opsets 1-17) and ReduceSum before opset 13: axes is an attribute.
void reduce_v1(OpId op, Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"axes", "keepdims"});
  im.emit_or_fold(op, {n.input(0)},
                  {{"axes", a.ints("axes", {})}, {"keepdims", a.i("keepdims", 1)}}, n.output(0));
}

// ReduceSum from opset 13: axes is an optional constant input.
void reduce_sum_v13(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"keepdims", "noop_with_empty_axes"});
  std::vector<std::int64_t> axes;
  if (n.input_size() > 1 && !n.input(1).empty()) axes = ints_of(im, n.input(1), a, "axes");
  im.emit_or_fold(OpId::ReduceSum, {n.input(0)},
                  {{"axes", axes},
                   {"keepdims", a.i("keepdims", 1)},
                   {"noop_with_empty_axes", a.i("noop_with_empty_axes", 0)}},
                  n.output(0));
}

// Resize from opset 11: X, roi, scales, sizes (the last three constants or omitted).
void resize(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
           "exclude_outside", "extrapolation_value"});
  if (a.i("exclude_outside", 0) != 0) a.unsupported("exclude_outside", "only 0 is supported");
  const auto transform = a.s("coordinate_transformation_mode", "half_pixel");
  if (transform == "tf_crop_and_resize") {
    a.unsupported("coordinate_transformation_mode", "tf_crop_and_resize (roi) is not supported");
  }
  std::map<std::string, Attribute> attributes{
      {"mode", a.s("mode", "nearest")},
      {"coordinate_transformation_mode", transform},
      {"nearest_mode", a.s("nearest_mode", "round_prefer_floor")}};
  const Tensor* scales = im.optional_constant(n, 2);
  if (scales && scales->size() > 0) {
    std::vector<double> values;
    for (std::int64_t i = 0; i < scales->size(); ++i) {
      values.push_back(decimal_of(static_cast<float>(scales->value(i))));
    }
    attributes["scales"] = values;
  } else if (n.input_size() > 3 && !n.input(3).empty()) {
    attributes["sizes"] = ints_of(im, n.input(3), a, "sizes");
  } else {
    fail("{}: needs the scales or the sizes input", a.where());
  }
  im.emit_or_fold(OpId::Resize, {n.input(0)}, std::move(attributes), n.output(0));
}

}  // namespace

std::vector<OpRule> new_op_rules() {
  return {
      rule(OpId::Expand, expand, 2),
      rule(OpId::ReduceMean, reduce_v1),
      rule(OpId::ReduceSum, reduce_v1, 1, {.until = 12}),
      rule(OpId::ReduceSum, reduce_sum_v13, 1, {.since = 13}),
      rule(OpId::Resize, resize),
  };
}

}  // namespace onnxforge::onnx_import
