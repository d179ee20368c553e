// Binary arithmetic (Add, Sub, Mul, Div) on constants, on shape vectors (import time) or on
// run-time values; opset 6's explicit broadcast becomes a Reshape of B.
#include "core/error.hpp"
#include "importers/onnx_import/importer.hpp"

namespace onnxforge::onnx_import {

namespace {

void arithmetic(OpId op, Importer& im, const onnx::NodeProto& n, Attrs& a) {
  std::string second = n.input(1);
  if (im.opset() < 7) {
    // Opset 6: no implicit broadcasting; broadcast=1 aligns B with A at `axis` (or the end).
    a.allow({"broadcast", "axis"});
    const auto ra = im.info(n.input(0)).shape.size();
    const auto b = im.info(n.input(1));
    if (a.i("broadcast", 0) != 0 && a.has("axis")) {
      const auto axis = normalize_axis(a, a.i("axis", 0), ra);
      Shape aligned = b.shape;
      while (static_cast<std::int64_t>(aligned.size()) + axis < static_cast<std::int64_t>(ra)) {
        aligned.push_back(1);
      }
      if (aligned != b.shape) {
        std::vector<std::int64_t> target(aligned.begin(), aligned.end());
        second = im.temp(im.resolve(n.input(1)) + "/aligned");
        if (im.is_const(n.input(1))) {
          im.set_const(second, im.constant(n.input(1)).reshaped(aligned));
        } else {
          im.emit(OpId::Reshape, {im.use(n.input(1))}, {{"shape", target}}, second, "/align");
        }
      }
    }
  } else {
    a.allow({});
  }
  if (im.is_sym(n.input(0)) || im.is_sym(n.input(1))) {
    if (!im.is_const(n.input(0)) || !im.is_const(n.input(1))) {
      fail(
          "{}: arithmetic on a shape that depends on the dynamic batch; import with a fixed "
          "input shape",
          a.where());
    }
  }
  im.emit_or_fold(op, {n.input(0), second}, {}, n.output(0));
}

}  // namespace

std::vector<OpRule> binary_rules() {
  return {
      rule(OpId::Add, arithmetic, 2),
      rule(OpId::Sub, arithmetic, 2),
      rule(OpId::Mul, arithmetic, 2),
      rule(OpId::Div, arithmetic, 2),
  };
}

}  // namespace onnxforge::onnx_import
