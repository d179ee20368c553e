// Normalization: BatchNormalization (inference form; its running statistics stay frozen),
// Softmax and LogSoftmax (the pre-13 form over trailing axes becomes Flatten, the op, Reshape).
#include "core/error.hpp"
#include "importers/onnx_import/importer.hpp"

namespace onnxforge::onnx_import {

namespace {

void batch_norm(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  if (im.opset() < 9) {
    a.allow({"epsilon", "momentum", "spatial", "is_test"});
    if (a.i("spatial", 1) != 1)
      a.unsupported("spatial", "= 0 (per-activation statistics) is not supported");
  } else if (im.opset() < 14) {
    a.allow({"epsilon", "momentum"});
  } else {
    a.allow({"epsilon", "momentum", "training_mode"});
    if (a.i("training_mode", 0) != 0) {
      a.unsupported("training_mode", "= 1 is not supported (the trainer sets the mode)");
    }
  }
  only_first_output_used(im, n, a);
  std::vector<std::string> inputs;
  for (int i = 0; i < 5; ++i) inputs.push_back(im.use(n.input(i)));
  im.bn_statistics.insert(inputs[3]);
  im.bn_statistics.insert(inputs[4]);
  im.emit(OpId::BatchNormalization, inputs,
          {{"epsilon", a.f("epsilon", 1e-5)}, {"momentum", a.f("momentum", 0.9)}}, n.output(0));
}

void softmax(OpId op, Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"axis"});
  const bool legacy = im.opset() < 13;
  const auto x = im.info(n.input(0));
  const auto rank = x.shape.size();
  const auto axis = normalize_axis(a, a.i("axis", legacy ? 1 : -1), rank);
  bool single_axis = !legacy || axis == static_cast<std::int64_t>(rank) - 1;
  if (legacy && !single_axis) {
    // The old form normalises over all axes from `axis` on: the same as one axis when the
    // trailing ones have size 1.
    single_axis = true;
    for (auto d = static_cast<std::size_t>(axis) + 1; d < rank; ++d) single_axis &= x.shape[d] == 1;
  }
  if (single_axis) {
    im.emit(op, {im.use(n.input(0))}, {{"axis", axis}}, n.output(0));
    return;
  }
  // Flatten to 2-D at `axis`, normalise the rows, restore the shape.
  const auto flat = im.emit(OpId::Flatten, {im.use(n.input(0))}, {{"axis", axis}},
                            im.temp(n.output(0) + "/flat"), "/flatten");
  const auto soft =
      im.emit(op, {flat}, {{"axis", std::int64_t{-1}}}, im.temp(n.output(0) + "/2d"), "/2d");
  std::vector<std::int64_t> back(x.shape.begin(), x.shape.end());
  for (auto& d : back) d = d == kDynamic ? 0 : d;
  im.emit(OpId::Reshape, {soft}, {{"shape", back}}, n.output(0), "/reshape");
}

}  // namespace

std::vector<OpRule> normalization_rules() {
  return {
      rule(OpId::BatchNormalization, batch_norm, 5),
      rule(OpId::Softmax, softmax),
      rule(OpId::LogSoftmax, softmax),
  };
}

}  // namespace onnxforge::onnx_import
