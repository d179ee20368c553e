// Helpers the op handlers share: axes, optional inputs and outputs, scalar inputs, and the 2-D
// window of convolution and pooling (pads from auto_pad, 1-D windows lifted to 2-D).
#include <algorithm>

#include "core/error.hpp"
#include "importers/onnx_import/importer.hpp"

namespace onnxforge::onnx_import {

std::int64_t normalize_axis(const Attrs& a, std::int64_t axis, std::size_t rank) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis >= r) fail("{}: axis {} is out of range for rank {}", a.where(), axis, r);
  return axis < 0 ? axis + r : axis;
}

const std::string& input_or_empty(const onnx::NodeProto& n, int i) {
  static const std::string none;
  return i < n.input_size() ? n.input(i) : none;
}

void only_first_output_used(Importer& im, const onnx::NodeProto& n, const Attrs& a) {
  for (int i = 1; i < n.output_size(); ++i) {
    if (!n.output(i).empty() && im.is_consumed(n.output(i))) {
      fail("{}: output {} ('{}') is used, but only the first output is supported", a.where(), i,
           n.output(i));
    }
  }
}

double scalar_value(const Tensor& t) {
  return t.dtype() == DType::f32 ? decimal_of(static_cast<float>(t.value(0))) : t.value(0);
}

std::vector<std::int64_t> window_pads(const Attrs& a, const Shape& x, const Shape& kernel,
                                      const std::vector<std::int64_t>& strides,
                                      const std::vector<std::int64_t>& dilations) {
  // Window sizes are divisors and factors below (and in shape inference): zero or huge values
  // would divide by zero or overflow.
  constexpr std::int64_t kMaxWindow = std::int64_t{1} << 20;
  for (std::size_t d = 0; d < 2; ++d) {
    for (const auto& [name, v] :
         {std::pair{"kernel_shape", kernel[d]}, std::pair{"strides", strides[d]},
          std::pair{"dilations", dilations[d]}}) {
      if (v < 1 || v > kMaxWindow) {
        a.unsupported(name, fmt::format("= {} is out of range (1 to {})", v, kMaxWindow));
      }
    }
  }
  const auto auto_pad = a.s("auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    auto pads = a.ints("pads", {0, 0, 0, 0});
    if (pads.size() != 4) a.unsupported("pads", "must have 4 values for a 2-D window");
    return pads;
  }
  if (a.has("pads")) a.unsupported("pads", "cannot be combined with auto_pad");
  if (auto_pad == "VALID") return {0, 0, 0, 0};
  if (auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER") {
    a.unsupported("auto_pad",
                  "= '" + auto_pad + "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
  }
  std::vector<std::int64_t> pads(4);
  for (std::size_t d = 0; d < 2; ++d) {
    const auto in = x[d + 2];
    if (in == kDynamic) a.unsupported("auto_pad", "needs static spatial dimensions");
    const auto out = (in + strides[d] - 1) / strides[d];
    const auto total =
        std::max<std::int64_t>(0, (out - 1) * strides[d] + (kernel[d] - 1) * dilations[d] + 1 - in);
    const auto small = total / 2;
    pads[d] = auto_pad == "SAME_UPPER" ? small : total - small;
    pads[d + 2] = total - pads[d];
  }
  return pads;
}

std::vector<std::int64_t> pair_attr(const Attrs& a, const char* name) {
  auto v = a.ints(name, {1, 1});
  if (v.size() != 2) a.unsupported(name, "must have 2 values (only 2-D windows are supported)");
  return v;
}

std::string lift_value(Importer& im, const std::string& name, const std::string& suffix) {
  const auto info = im.info(name);
  Shape lifted{info.shape[0], info.shape[1], 1, info.shape[2]};
  const auto out = im.temp(im.resolve(name) + suffix);
  if (im.is_const(name)) {
    im.set_const(out, im.constant(name).reshaped(lifted));
    im.inherit_trainable(out, name);
    return out;
  }
  std::vector<std::int64_t> target(lifted.begin(), lifted.end());
  if (target[0] == kDynamic) target[0] = 0;
  im.emit(OpId::Reshape, {im.use(name)}, {{"shape", target}}, out, "/lift");
  return out;
}

void lower_value(Importer& im, const std::string& name, const std::string& output) {
  const auto info = im.info(name);
  std::vector<std::int64_t> target{info.shape[0] == kDynamic ? 0 : info.shape[0], info.shape[1],
                                   info.shape[3]};
  im.emit(OpId::Reshape, {name}, {{"shape", target}}, output, "/lower");
}

std::vector<std::int64_t> ints_of(Importer& im, const std::string& name, const Attrs& a,
                                  const char* what) {
  const Tensor& t = im.constant(name);
  if (t.dtype() != DType::i64 || t.shape().size() > 1) {
    fail("{}: input '{}' ({}) must be a 1-D int64 tensor", a.where(), name, what);
  }
  const auto v = t.data<std::int64_t>();
  return {v.begin(), v.end()};
}

}  // namespace onnxforge::onnx_import
