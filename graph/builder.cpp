#include "graph/builder.hpp"

#include <cmath>
#include <numbers>

#include "core/error.hpp"
#include "graph/ops.hpp"

namespace onnxforge {

Builder::Builder(std::string graph_name, std::uint64_t seed) : seed_(seed) {
  graph_.name = std::move(graph_name);
}

std::string Builder::input(const std::string& name, Shape shape, DType dtype) {
  graph_.inputs.push_back(ValueInfo{name, dtype, shape});
  graph_.values[name] = graph_.inputs.back();
  return name;
}

void Builder::output(const std::string& value) {
  graph_.value(value);  // must exist
  graph_.outputs.push_back(value);
}

std::string Builder::layer_name(const std::string& requested, const std::string& keras_type) {
  if (!requested.empty()) return requested;
  const int n = layer_counts_[keras_type]++;
  return n == 0 ? keras_type : keras_type + "_" + std::to_string(n);
}

std::string Builder::parameter(const std::string& name, Tensor value, bool trainable) {
  graph_.values[name] = ValueInfo{name, value.dtype(), value.shape()};
  graph_.initializers.push_back(Initializer{name, std::move(value), trainable});
  return name;
}

std::string Builder::node(OpId op, const std::vector<std::string>& inputs,
                          std::map<std::string, Attribute> attributes, const std::string& name) {
  return node(std::string(op_name(op)), inputs, std::move(attributes), name);
}

std::string Builder::node(const std::string& op, const std::vector<std::string>& inputs,
                          std::map<std::string, Attribute> attributes, const std::string& name) {
  Node n;
  n.name = name.empty() ? layer_name("", op) : name;
  n.op = op;
  n.inputs = inputs;
  n.outputs = {n.name};
  n.attributes = std::move(attributes);
  std::vector<const ValueInfo*> in;
  for (const auto& i : inputs) in.push_back(i.empty() ? nullptr : &graph_.value(i));
  const auto out = infer_node(n, in, graph_);
  graph_.values[n.name] = ValueInfo{n.name, out[0].dtype, out[0].shape};
  graph_.nodes.push_back(std::move(n));
  return graph_.nodes.back().outputs[0];
}

Tensor Builder::glorot_uniform(const std::string& name, Shape shape, std::int64_t fan_in,
                               std::int64_t fan_out) const {
  Tensor t(DType::f32, std::move(shape));
  const double limit = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  Random rng(hash_name(name, seed_));
  for (auto& v : t.data<float>()) v = static_cast<float>((2.0 * rng.uniform() - 1.0) * limit);
  return t;
}

std::array<std::int64_t, 4> Builder::resolve_pads(
    const std::string& x, Padding padding, const std::array<std::int64_t, 4>& pads,
    const std::array<std::int64_t, 2>& kernel, const std::array<std::int64_t, 2>& stride,
    const std::array<std::int64_t, 2>& dilation) const {
  if (padding == Padding::valid) return {0, 0, 0, 0};
  if (padding == Padding::explicit_pads) return pads;
  // 'same': output = ceil(input / stride), extra padding at the end (TensorFlow's rule).
  const auto& shape = graph_.value(x).shape;
  std::array<std::int64_t, 4> out{};
  for (int axis = 0; axis < 2; ++axis) {
    const std::int64_t in = shape[2 + static_cast<std::size_t>(axis)];
    if (in == kDynamic) fail("padding 'same' needs a known spatial size for '{}'", x);
    const std::int64_t out_size = (in + stride[axis] - 1) / stride[axis];
    const std::int64_t span = dilation[axis] * (kernel[axis] - 1) + 1;
    const std::int64_t total = std::max<std::int64_t>((out_size - 1) * stride[axis] + span - in, 0);
    out[static_cast<std::size_t>(axis)] = total / 2;
    out[static_cast<std::size_t>(axis) + 2] = total - total / 2;
  }
  return out;
}

std::string Builder::conv2d(const std::string& x, const Conv2dOptions& o) {
  const auto& in = graph_.value(x);
  if (in.shape.size() != 4)
    fail("conv2d on '{}': input must be N,C,H,W, got {}", x, to_string(in.shape));
  if (o.filters <= 0) fail("conv2d on '{}': filters must be positive", x);
  const std::string name = layer_name(o.name, "conv2d");
  const std::int64_t channels = in.shape[1];
  if (channels % o.groups != 0) {
    fail("conv2d '{}': {} input channels are not divisible by groups {}", name, channels, o.groups);
  }
  const std::int64_t per_group = channels / o.groups;
  const std::int64_t area = o.kernel[0] * o.kernel[1];
  std::vector<std::string> inputs{
      x,
      parameter(name + "/kernel",
                glorot_uniform(name + "/kernel", {o.filters, per_group, o.kernel[0], o.kernel[1]},
                               per_group * area, o.filters / o.groups * area))};
  if (o.bias) inputs.push_back(parameter(name + "/bias", Tensor(DType::f32, {o.filters})));
  const auto pads = resolve_pads(x, o.padding, o.pads, o.kernel, o.stride, o.dilation);
  return node(OpId::Conv, inputs,
              {{"strides", std::vector<std::int64_t>{o.stride[0], o.stride[1]}},
               {"pads", std::vector<std::int64_t>(pads.begin(), pads.end())},
               {"dilations", std::vector<std::int64_t>{o.dilation[0], o.dilation[1]}},
               {"group", o.groups}},
              name);
}

std::string Builder::relu(const std::string& x, const std::string& name) {
  return node(OpId::Relu, {x}, {}, layer_name(name, "relu"));
}

std::string Builder::sigmoid(const std::string& x, const std::string& name) {
  return node(OpId::Sigmoid, {x}, {}, layer_name(name, "sigmoid"));
}

std::string Builder::tanh(const std::string& x, const std::string& name) {
  return node(OpId::Tanh, {x}, {}, layer_name(name, "tanh"));
}

std::string Builder::leaky_relu(const std::string& x, double alpha, const std::string& name) {
  return node(OpId::LeakyRelu, {x}, {{"alpha", alpha}}, layer_name(name, "leaky_re_lu"));
}

std::string Builder::softmax(const std::string& x, std::int64_t axis, const std::string& name) {
  return node(OpId::Softmax, {x}, {{"axis", axis}}, layer_name(name, "softmax"));
}

std::string Builder::pool(OpId op, const std::string& keras_type, const std::string& x,
                          const Pool2dOptions& o) {
  const std::array<std::int64_t, 2> stride{o.stride[0] ? o.stride[0] : o.kernel[0],
                                           o.stride[1] ? o.stride[1] : o.kernel[1]};
  const auto pads = resolve_pads(x, o.padding, o.pads, o.kernel, stride, o.dilation);
  std::map<std::string, Attribute> attributes{
      {"kernel_shape", std::vector<std::int64_t>{o.kernel[0], o.kernel[1]}},
      {"strides", std::vector<std::int64_t>{stride[0], stride[1]}},
      {"pads", std::vector<std::int64_t>(pads.begin(), pads.end())},
      {"ceil_mode", std::int64_t{o.ceil_mode}}};
  if (op == OpId::MaxPool) {
    attributes["dilations"] = std::vector<std::int64_t>{o.dilation[0], o.dilation[1]};
  } else {
    attributes["count_include_pad"] = std::int64_t{o.count_include_pad};
  }
  return node(op, {x}, std::move(attributes), layer_name(o.name, keras_type));
}

std::string Builder::max_pool(const std::string& x, const Pool2dOptions& options) {
  return pool(OpId::MaxPool, "max_pooling2d", x, options);
}

std::string Builder::avg_pool(const std::string& x, const Pool2dOptions& options) {
  return pool(OpId::AveragePool, "average_pooling2d", x, options);
}

std::string Builder::global_avg_pool(const std::string& x, const std::string& name) {
  return node(OpId::GlobalAveragePool, {x}, {}, layer_name(name, "global_average_pooling2d"));
}

std::string Builder::flatten(const std::string& x, const std::string& name) {
  return node(OpId::Flatten, {x}, {{"axis", std::int64_t{1}}}, layer_name(name, "flatten"));
}

std::string Builder::reshape(const std::string& x, const std::vector<std::int64_t>& shape,
                             const std::string& name) {
  return node(OpId::Reshape, {x}, {{"shape", shape}}, layer_name(name, "reshape"));
}

std::string Builder::dense(const std::string& x, std::int64_t units, const DenseOptions& o) {
  const auto& in = graph_.value(x);
  if (in.shape.size() != 2) {
    fail("dense on '{}': input must be N,features (flatten first), got {}", x, to_string(in.shape));
  }
  if (units <= 0) fail("dense on '{}': units must be positive", x);
  const std::string name = layer_name(o.name, "dense");
  const std::int64_t features = in.shape[1];
  std::vector<std::string> inputs{
      x, parameter(name + "/kernel",
                   glorot_uniform(name + "/kernel", {units, features}, features, units))};
  if (o.bias) inputs.push_back(parameter(name + "/bias", Tensor(DType::f32, {units})));
  return node(OpId::Dense, inputs, {}, name);
}

std::string Builder::add(const std::string& a, const std::string& b, const std::string& name) {
  return node(OpId::Add, {a, b}, {}, layer_name(name, "add"));
}

std::string Builder::concat(const std::vector<std::string>& values, std::int64_t axis,
                            const std::string& name) {
  return node(OpId::Concat, values, {{"axis", axis}}, layer_name(name, "concatenate"));
}

std::string Builder::dropout(const std::string& x, double rate, const std::string& name) {
  return node(OpId::Dropout, {x}, {{"ratio", rate}}, layer_name(name, "dropout"));
}

std::string Builder::batch_norm(const std::string& x, const BatchNormOptions& o) {
  const auto& in = graph_.value(x);
  if (in.shape.size() < 2) fail("batch_norm on '{}': input must have a channel axis", x);
  const std::string name = layer_name(o.name, "batch_normalization");
  const std::int64_t channels = in.shape[1];
  Tensor ones(DType::f32, {channels});
  for (auto& v : ones.data<float>()) v = 1.0f;
  const auto gamma = parameter(name + "/gamma", ones);
  const auto beta = parameter(name + "/beta", Tensor(DType::f32, {channels}));
  const auto mean = parameter(name + "/moving_mean", Tensor(DType::f32, {channels}), false);
  const auto variance = parameter(name + "/moving_variance", ones, false);
  return node(OpId::BatchNormalization, {x, gamma, beta, mean, variance},
              {{"epsilon", o.epsilon}, {"momentum", o.momentum}}, name);
}

Graph Builder::build() {
  if (graph_.outputs.empty() && !graph_.nodes.empty()) {
    graph_.outputs.push_back(graph_.nodes.back().outputs[0]);
  }
  Graph g = graph_;
  g.validate();
  return g;
}

}  // namespace onnxforge
