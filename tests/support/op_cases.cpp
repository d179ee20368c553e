#include "tests/support/op_cases.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "core/error.hpp"

namespace onnxforge::testing {

double relative_l2(const Tensor& got, const Tensor& want) {
  double diff = 0.0, norm = 0.0;
  for (std::int64_t i = 0; i < want.size(); ++i) {
    const double d = got.value(i) - want.value(i);
    diff += d * d;
    norm += want.value(i) * want.value(i);
  }
  const double e = std::sqrt(diff / std::max(norm, 1e-300));
  return std::isnan(e) ? INFINITY : e;
}

Tensor random_tensor(const Shape& shape, Random& rng, double low, double high) {
  Tensor t(DType::f32, shape);
  for (auto& v : t.data<float>()) v = static_cast<float>(low + (high - low) * rng.uniform());
  return t;
}

Tensor rounded_to_bf16(const Tensor& t) { return t.to(DType::bf16).to(DType::f32); }

std::map<std::string, Tensor> random_feeds(const Graph& graph, Random& rng) {
  std::map<std::string, Tensor> feeds;
  for (const auto& in : graph.inputs) {
    if (in.dtype == DType::i64) {
      // Class labels of a SoftmaxCrossEntropy: the classes are its logits' last dimension.
      std::int64_t classes = 2;
      for (const auto& node : graph.nodes) {
        if (node.is(OpId::SoftmaxCrossEntropy) && node.input(1) == in.name) {
          classes = graph.value(node.input(0)).shape.back();
        }
      }
      Tensor labels(DType::i64, in.shape);
      for (auto& l : labels.data<std::int64_t>()) {
        l = static_cast<std::int64_t>(rng.uniform() * static_cast<double>(classes));
      }
      feeds[in.name] = labels;
    } else if (in.name == "labels") {
      feeds[in.name] = random_tensor(in.shape, rng, 0.0, 1.0);
    } else {
      feeds[in.name] = random_tensor(in.shape, rng);
    }
  }
  return feeds;
}

namespace {

using Build = std::function<void(Builder&)>;

OpCase make(const std::string& name, const Build& build, bool frozen = false, bool random = false) {
  Builder b("case", hash_name(name));
  build(b);
  OpCase c{name, b.build(), frozen, random};
  // Random parameters: the builder's zero biases and unit batch-norm scales would hide bugs.
  Random rng(hash_name(name, 7));
  for (auto& init : c.graph.initializers) {
    const std::string& n = init.name;
    if (n.ends_with("moving_variance") || n.ends_with("/var")) {
      init.value = random_tensor(init.value.shape(), rng, 0.5, 1.5);
    } else {
      init.value = random_tensor(init.value.shape(), rng, -0.5, 0.5);
    }
    if (frozen) init.trainable = false;
    if (name.ends_with("_frozen_kernel") && n.ends_with("/kernel")) init.trainable = false;
  }
  return c;
}

std::string conv(Builder& b, const std::string& x, std::int64_t filters, Conv2dOptions o) {
  o.filters = filters;
  return b.conv2d(x, o);
}

std::vector<OpCase> build_cases() {
  std::vector<OpCase> all;
  auto add = [&](const std::string& name, const Build& build, bool frozen = false,
                 bool random = false) { all.push_back(make(name, build, frozen, random)); };

  // ---- Conv ----
  add("Conv/basic_3x3", [](Builder& b) { b.output(conv(b, b.input("x", {2, 3, 7, 9}), 5, {})); });
  add("Conv/no_bias_odd", [](Builder& b) {
    b.output(conv(b, b.input("x", {3, 5, 11, 6}), 7, {.kernel = {3, 2}, .bias = false}));
  });
  add("Conv/stride2_asym_pads", [](Builder& b) {
    b.output(conv(b, b.input("x", {2, 4, 9, 10}), 6,
                  {.kernel = {3, 3},
                   .stride = {2, 2},
                   .padding = Padding::explicit_pads,
                   .pads = {1, 0, 2, 1}}));
  });
  add("Conv/same_stride_2x1", [](Builder& b) {
    b.output(conv(b, b.input("x", {1, 3, 8, 7}), 4,
                  {.kernel = {5, 3}, .stride = {2, 1}, .padding = Padding::same}));
  });
  add("Conv/dilation2", [](Builder& b) {
    b.output(conv(b, b.input("x", {2, 3, 12, 11}), 4,
                  {.kernel = {3, 3},
                   .padding = Padding::explicit_pads,
                   .pads = {2, 1, 2, 1},
                   .dilation = {2, 2}}));
  });
  add("Conv/groups2", [](Builder& b) {
    b.output(conv(b, b.input("x", {2, 4, 8, 8}), 6, {.kernel = {3, 3}, .groups = 2}));
  });
  add("Conv/depthwise", [](Builder& b) {
    b.output(conv(b, b.input("x", {2, 8, 9, 9}), 8,
                  {.kernel = {3, 3}, .padding = Padding::same, .groups = 8}));
  });
  add("Conv/pointwise_1x1_16ch", [](Builder& b) {
    b.output(conv(b, b.input("x", {2, 16, 6, 5}), 32, {.kernel = {1, 1}}));
  });
  add("Conv/chain_blocked", [](Builder& b) {
    // conv -> relu (fused) -> conv -> relu: blocked layouts between the two.
    auto x = b.input("x", {2, 3, 10, 10});
    x = b.relu(conv(b, x, 16, {.padding = Padding::same}));
    x = b.relu(conv(b, x, 16, {.padding = Padding::same}));
    b.output(x);
  });
  add("Conv/relu_fused_and_kept", [](Builder& b) {
    // The pre-activation is an output too: the ReLU must not be fused away.
    auto x = b.input("x", {2, 3, 6, 6});
    auto pre = conv(b, x, 8, {});
    b.output(pre);
    b.output(b.relu(pre));
  });
  add(
      "Conv/frozen_weights",
      [](Builder& b) {
        b.output(b.relu(conv(b, b.input("x", {2, 3, 7, 7}), 8, {})));
      },
      true);

  // ---- pooling ----
  add("MaxPool/2x2_stride1", [](Builder& b) {
    b.output(b.max_pool(b.input("x", {2, 3, 7, 8}), {.kernel = {2, 2}, .stride = {1, 1}}));
  });
  add("MaxPool/3x3_s2_pad1", [](Builder& b) {
    b.output(b.max_pool(b.input("x", {2, 5, 9, 10}), {.kernel = {3, 3},
                                                      .stride = {2, 2},
                                                      .padding = Padding::explicit_pads,
                                                      .pads = {1, 1, 1, 1}}));
  });
  add("MaxPool/ceil_mode", [](Builder& b) {
    b.output(b.max_pool(b.input("x", {1, 3, 8, 9}),
                        {.kernel = {3, 3}, .stride = {2, 2}, .ceil_mode = true}));
  });
  add("MaxPool/dilation2", [](Builder& b) {
    b.output(b.max_pool(b.input("x", {2, 2, 9, 9}),
                        {.kernel = {2, 2}, .stride = {1, 1}, .dilation = {2, 2}}));
  });
  add("MaxPool/blocked_16ch", [](Builder& b) {
    auto x = b.relu(conv(b, b.input("x", {2, 3, 9, 9}), 16, {}));
    b.output(b.max_pool(x, {.kernel = {2, 2}, .stride = {2, 2}}));
  });
  add("AveragePool/exclude_pad", [](Builder& b) {
    b.output(b.avg_pool(b.input("x", {2, 3, 7, 7}), {.kernel = {3, 3},
                                                     .stride = {2, 2},
                                                     .padding = Padding::explicit_pads,
                                                     .pads = {1, 1, 1, 1}}));
  });
  add("AveragePool/include_pad", [](Builder& b) {
    b.output(b.avg_pool(b.input("x", {2, 3, 7, 6}), {.kernel = {3, 2},
                                                     .stride = {1, 2},
                                                     .padding = Padding::explicit_pads,
                                                     .pads = {1, 0, 1, 1},
                                                     .count_include_pad = true}));
  });
  add("AveragePool/ceil_exclude", [](Builder& b) {
    b.output(b.avg_pool(b.input("x", {1, 2, 8, 8}),
                        {.kernel = {3, 3}, .stride = {2, 2}, .ceil_mode = true}));
  });
  add("AveragePool/ceil_include_overhang", [](Builder& b) {
    // The last windows overhang the padding: ONNX leaves the overhang out of the divisor.
    b.output(b.avg_pool(b.input("x", {1, 2, 8, 8}), {.kernel = {3, 3},
                                                     .stride = {2, 2},
                                                     .padding = Padding::explicit_pads,
                                                     .pads = {1, 1, 1, 1},
                                                     .ceil_mode = true,
                                                     .count_include_pad = true}));
  });
  add("GlobalAveragePool/odd", [](Builder& b) {
    b.output(b.global_avg_pool(b.input("x", {3, 5, 7, 6})));
  });

  // ---- element-wise ----
  add("Relu/4d", [](Builder& b) { b.output(b.relu(b.input("x", {2, 3, 5, 7}))); });
  add("LeakyRelu/alpha0.2", [](Builder& b) { b.output(b.leaky_relu(b.input("x", {3, 17}), 0.2)); });
  add("Sigmoid/2d", [](Builder& b) { b.output(b.sigmoid(b.input("x", {4, 13}))); });
  add("Tanh/3d", [](Builder& b) { b.output(b.tanh(b.input("x", {2, 5, 7}))); });
  add("Identity/4d", [](Builder& b) {
    b.output(b.node("Identity", {b.input("x", {2, 3, 4, 5})}, {}));
  });
  add("Softmax/last_axis", [](Builder& b) { b.output(b.softmax(b.input("x", {5, 11}))); });
  add("Softmax/axis1_4d", [](Builder& b) { b.output(b.softmax(b.input("x", {2, 6, 3, 4}), 1)); });
  add("Sigmoid/after_blocked_conv", [](Builder& b) {
    b.output(b.sigmoid(conv(b, b.input("x", {2, 3, 6, 6}), 16, {})));
  });

  // ---- shapes ----
  add("Flatten/axis1_after_conv", [](Builder& b) {
    // A blocked convolution output flattened in NCHW order.
    b.output(b.flatten(conv(b, b.input("x", {2, 3, 6, 5}), 16, {})));
  });
  add("Flatten/axis2", [](Builder& b) {
    b.output(b.node("Flatten", {b.input("x", {2, 3, 4, 5})}, {{"axis", std::int64_t{2}}}));
  });
  add("Reshape/infer", [](Builder& b) {
    b.output(b.reshape(b.input("x", {2, 3, 4, 5}), {0, -1, 10}));
  });

  // ---- Dense ----
  add("Dense/bias", [](Builder& b) { b.output(b.dense(b.input("x", {4, 37}), 9)); });
  add("Dense/bias_only_frozen_kernel", [](Builder& b) {
    b.output(b.dense(b.input("x", {4, 12}), 6));
  });
  add("Conv/bias_only_frozen_kernel", [](Builder& b) {
    b.output(conv(b, b.input("x", {2, 3, 7, 7}), 16, {}));
  });
  add("Dense/no_bias", [](Builder& b) {
    b.output(b.dense(b.input("x", {3, 20}), 5, {.bias = false}));
  });
  add("Dense/relu_fused_chain", [](Builder& b) {
    auto x = b.relu(b.dense(b.input("x", {5, 30}), 17));
    b.output(b.dense(x, 3));
  });
  add("Dense/after_flatten_conv_pool", [](Builder& b) {
    // The baseline's shape in miniature: conv relu pool conv relu pool flatten dense.
    auto x = b.input("x", {2, 3, 12, 12});
    x = b.relu(conv(b, x, 8, {}));
    x = b.max_pool(x, {.kernel = {2, 2}, .stride = {1, 1}});
    x = b.relu(conv(b, x, 16, {}));
    x = b.max_pool(x, {.kernel = {2, 2}, .stride = {1, 1}});
    b.output(b.dense(b.relu(b.dense(b.flatten(x), 10)), 1));
  });
  // bf16: four bf16 layers, each ReLU and max pool behind one; a rounded pre-activation that flips
  // a ReLU mask or a pooling winner moves a whole term of the gradients below it (measured
  // 1.7e-2 on the first kernel's gradient, Zen 4 avx512_core_bf16).
  all.back().bf16_gradient_tolerance = 5e-2;
  add(
      "Dense/frozen_weights",
      [](Builder& b) {
        b.output(b.dense(b.input("x", {4, 12}), 6));
      },
      true);

  // ---- Add, Concat ----
  add("Add/same_shape", [](Builder& b) {
    b.output(b.add(b.input("a", {2, 3, 4, 5}), b.input("b", {2, 3, 4, 5})));
  });
  add("Add/broadcast_channel", [](Builder& b) {
    b.output(b.add(b.input("a", {2, 3, 4, 5}), b.input("b", {3, 1, 1})));
  });
  add("Add/broadcast_both", [](Builder& b) {
    b.output(b.add(b.input("a", {2, 1, 5}), b.input("b", {3, 1})));
  });
  add("Add/residual_fanout", [](Builder& b) {
    // x feeds two branches: its gradient is the sum of both.
    auto x = b.input("x", {2, 16, 5, 5});
    auto y = conv(b, x, 16, {.padding = Padding::same});
    b.output(b.add(b.relu(y), x));
  });
  add("Add/same_value_twice", [](Builder& b) {
    auto x = b.input("x", {3, 4});
    b.output(b.add(x, x));
  });
  add("Concat/channels", [](Builder& b) {
    b.output(b.concat({b.input("a", {2, 3, 4, 5}), b.input("b", {2, 2, 4, 5})}, 1));
  });
  add("Concat/last_axis_three", [](Builder& b) {
    b.output(b.concat({b.input("a", {2, 3}), b.input("b", {2, 4}), b.input("c", {2, 1})}, -1));
  });

  // ---- Dropout ----
  add("Dropout/ratio0", [](Builder& b) { b.output(b.dropout(b.input("x", {3, 10}), 0.0)); });
  add(
      "Dropout/ratio0.5_random",
      [](Builder& b) {
        b.output(b.dropout(b.input("x", {4, 50}), 0.5));
      },
      false, true);

  // ---- BatchNormalization ----
  add("BatchNormalization/4d_training", [](Builder& b) {
    b.output(b.batch_norm(b.input("x", {4, 3, 5, 6}), {.epsilon = 1e-3, .momentum = 0.9}));
  });
  add("BatchNormalization/2d_training", [](Builder& b) {
    b.output(b.batch_norm(b.input("x", {6, 7})));
  });
  add("BatchNormalization/after_blocked_conv", [](Builder& b) {
    b.output(b.relu(b.batch_norm(conv(b, b.input("x", {3, 3, 6, 6}), 16, {.bias = false}))));
  });
  add(
      "BatchNormalization/frozen",
      [](Builder& b) {
        b.output(b.batch_norm(b.input("x", {2, 4, 3, 3})));
      },
      true);
  // A frozen batch norm with a fused ReLU (oneDNN: fuse_norm_relu with global statistics).
  add(
      "BatchNormalization/frozen_relu",
      [](Builder& b) {
        b.output(b.relu(b.batch_norm(b.input("x", {2, 16, 3, 3}))));
      },
      true);

  // ---- losses ----
  add("BinaryCrossEntropyWithLogits/weighted", [](Builder& b) {
    b.output(b.node("BinaryCrossEntropyWithLogits",
                    {b.dense(b.input("x", {6, 5}), 1), b.input("labels", {6, 1})},
                    {{"weight_positive", 2.5}, {"weight_negative", 0.5}}));
  });
  add("SoftmaxCrossEntropy/basic", [](Builder& b) {
    b.output(b.node("SoftmaxCrossEntropy",
                    {b.dense(b.input("x", {5, 8}), 4), b.input("classes", {5}, DType::i64)}, {}));
  });
  // ---- ops of imported models ----
  add("Mul/same_shape", [](Builder& b) {
    b.output(b.node("Mul", {b.input("a", {2, 3, 4, 5}), b.input("b", {2, 3, 4, 5})}, {}));
  });
  add("Mul/broadcast", [](Builder& b) {
    b.output(b.node("Mul", {b.input("a", {2, 3, 4, 5}), b.input("b", {3, 1, 5})}, {}));
  });
  add("Sub/broadcast_both", [](Builder& b) {
    b.output(b.node("Sub", {b.input("a", {4, 1, 3}), b.input("b", {2, 1})}, {}));
  });
  add("Div/by_sigmoid", [](Builder& b) {
    // The divisor stays in (0.26, 0.74): no blow-up near zero.
    auto d = b.sigmoid(b.input("b", {3, 7}));
    b.output(b.node("Div", {b.input("a", {3, 7}), d}, {}));
  });
  add("Div/broadcast_after_conv", [](Builder& b) {
    auto d = b.sigmoid(b.input("b", {16, 1, 1}));
    b.output(b.node("Div", {conv(b, b.input("x", {2, 3, 6, 6}), 16, {}), d}, {}));
  });
  add("Transpose/nchw_to_nhwc", [](Builder& b) {
    b.output(b.node("Transpose", {b.input("x", {2, 3, 4, 5})},
                    {{"perm", std::vector<std::int64_t>{0, 2, 3, 1}}}));
  });
  add("Transpose/2d_after_conv_flatten", [](Builder& b) {
    auto x = b.flatten(conv(b, b.input("x", {2, 3, 5, 5}), 8, {}));
    b.output(b.node("Transpose", {x}, {{"perm", std::vector<std::int64_t>{1, 0}}}));
  });
  add("LogSoftmax/last_axis", [](Builder& b) {
    b.output(b.node("LogSoftmax", {b.input("x", {4, 9})}, {}));
  });
  add("LogSoftmax/axis1_3d", [](Builder& b) {
    b.output(b.node("LogSoftmax", {b.input("x", {2, 5, 3})}, {{"axis", std::int64_t{1}}}));
  });
  add("Clip/min_max", [](Builder& b) {
    b.output(b.node("Clip", {b.input("x", {3, 4, 5})}, {{"min", -0.3}, {"max", 0.5}}));
  });
  add("Clip/min_only_blocked", [](Builder& b) {
    b.output(b.node("Clip", {conv(b, b.input("x", {2, 3, 5, 5}), 16, {})}, {{"min", 0.0}}));
  });
  add("Pad/constant_4d", [](Builder& b) {
    b.output(
        b.node("Pad", {b.input("x", {1, 2, 4, 5})},
               {{"pads", std::vector<std::int64_t>{0, 1, 2, 1, 0, 0, 1, 3}}, {"value", 0.25}}));
  });
  add("Pad/reflect", [](Builder& b) {
    b.output(b.node(
        "Pad", {b.input("x", {2, 5, 6})},
        {{"pads", std::vector<std::int64_t>{0, 2, 3, 0, 1, 2}}, {"mode", std::string("reflect")}}));
  });
  add("Pad/edge", [](Builder& b) {
    b.output(
        b.node("Pad", {b.input("x", {3, 4})},
               {{"pads", std::vector<std::int64_t>{1, 2, 2, 1}}, {"mode", std::string("edge")}}));
  });
  add("MatMul/2d", [](Builder& b) {
    b.output(b.node("MatMul", {b.input("a", {3, 7}), b.input("b", {7, 5})}, {}));
  });
  add("MatMul/batched", [](Builder& b) {
    b.output(b.node("MatMul", {b.input("a", {2, 3, 4}), b.input("b", {2, 4, 5})}, {}));
  });
  add("MatMul/broadcast_a", [](Builder& b) {
    b.output(b.node("MatMul", {b.input("a", {3, 4}), b.input("b", {2, 2, 4, 5})}, {}));
  });
  add("MatMul/batched_broadcast", [](Builder& b) {
    b.output(b.node("MatMul", {b.input("a", {2, 3, 4}), b.input("b", {4, 5})}, {}));
  });

  // ---- broadcasting paths of the oneDNN binary / reduction primitives, MatMul on blocked data
  // ----
  add("Add/first_operand_broadcast", [](Builder& b) {
    b.output(b.add(b.input("b", {3, 1, 1}), b.input("a", {2, 3, 4, 5})));
  });
  add("Mul/first_operand_broadcast", [](Builder& b) {
    b.output(b.node("Mul", {b.input("b", {1, 5}), b.input("a", {4, 3, 5})}, {}));
  });
  add("Add/trailing_reduction_after_conv", [](Builder& b) {
    b.output(b.add(conv(b, b.input("x", {2, 3, 6, 6}), 16, {}), b.input("b", {2, 16, 1, 1})));
  });
  add("Add/scalar_operand", [](Builder& b) {
    b.output(b.add(b.input("a", {2, 3, 4}), b.input("b", {1})));
  });
  add("Add/leading_ones", [](Builder& b) {
    b.output(b.add(b.input("a", {2, 3, 4}), b.input("b", {1, 1, 4})));
  });
  add("MatMul/on_conv_output", [](Builder& b) {
    b.output(
        b.node("MatMul", {conv(b, b.input("x", {2, 3, 9, 9}), 16, {}), b.input("w", {7, 5})}, {}));
  });

  // ---- Slice, Expand, reductions, Resize ----
  using Ints = std::vector<std::int64_t>;
  using Floats = std::vector<double>;
  constexpr std::int64_t kEnd = std::numeric_limits<std::int64_t>::max();
  constexpr std::int64_t kBegin = std::numeric_limits<std::int64_t>::min();
  add("Slice/two_axes_negative_start_max_end", [](Builder& b) {
    b.output(b.node("Slice", {b.input("x", {2, 5, 6, 7})},
                    {{"starts", Ints{1, -5}}, {"ends", Ints{4, kEnd}}, {"axes", Ints{1, 3}}}));
  });
  add("Slice/steps_negative_indices_clamped", [](Builder& b) {
    b.output(b.node("Slice", {b.input("x", {3, 8, 9})},
                    {{"starts", Ints{-7, 1}},
                     {"ends", Ints{-1, 100}},
                     {"axes", Ints{-2, 2}},
                     {"steps", Ints{2, 3}}}));
  });
  add("Slice/negative_steps", [](Builder& b) {
    b.output(b.node("Slice", {b.input("x", {2, 6, 5})},
                    {{"starts", Ints{-1, 3}},
                     {"ends", Ints{kBegin, 0}},
                     {"axes", Ints{1, 2}},
                     {"steps", Ints{-2, -1}}}));
  });
  add("Slice/default_axes", [](Builder& b) {
    b.output(
        b.node("Slice", {b.input("x", {3, 4})}, {{"starts", Ints{0, 1}}, {"ends", Ints{2, 3}}}));
  });
  add("Slice/channels_after_blocked_conv", [](Builder& b) {
    b.output(b.node("Slice", {conv(b, b.input("x", {2, 3, 6, 6}), 16, {})},
                    {{"starts", Ints{2}}, {"ends", Ints{13}}, {"axes", Ints{1}}}));
  });
  add("Expand/channel_to_4d", [](Builder& b) {
    b.output(b.node("Expand", {b.input("x", {3, 1, 1})}, {{"shape", Ints{2, 3, 4, 5}}}));
  });
  add("Expand/size1_dims_both_ways", [](Builder& b) {
    // x's 4 stays where the shape says 1; its 1s broadcast to the shape's 3 and 5.
    b.output(b.node("Expand", {b.input("x", {1, 4, 1})}, {{"shape", Ints{3, 1, 5}}}));
  });
  add("Expand/leading_ones_only", [](Builder& b) {
    b.output(b.node("Expand", {b.input("x", {4, 5})}, {{"shape", Ints{1, 1, 5}}}));
  });
  add("Expand/after_conv", [](Builder& b) {
    b.output(b.node("Expand", {conv(b, b.input("x", {2, 3, 3, 3}), 16, {})},
                    {{"shape", Ints{2, 16, 4, 4}}}));
  });
  add("ReduceMean/hw_keepdims", [](Builder& b) {
    b.output(b.node("ReduceMean", {b.input("x", {2, 3, 4, 5})}, {{"axes", Ints{2, 3}}}));
  });
  add("ReduceMean/negative_axis_no_keepdims", [](Builder& b) {
    b.output(b.node("ReduceMean", {b.input("x", {3, 4, 5})},
                    {{"axes", Ints{-2}}, {"keepdims", std::int64_t{0}}}));
  });
  add("ReduceMean/all_axes_to_scalar", [](Builder& b) {
    b.output(b.node("ReduceMean", {b.input("x", {2, 3, 4})}, {{"keepdims", std::int64_t{0}}}));
  });
  add("ReduceMean/channels_after_blocked_conv", [](Builder& b) {
    b.output(
        b.node("ReduceMean", {conv(b, b.input("x", {2, 3, 6, 6}), 16, {})}, {{"axes", Ints{1}}}));
  });
  add("ReduceSum/axis0_keepdims", [](Builder& b) {
    b.output(b.node("ReduceSum", {b.input("x", {4, 3, 5})}, {{"axes", Ints{0}}}));
  });
  add("ReduceSum/all_axes_keepdims", [](Builder& b) {
    b.output(b.node("ReduceSum", {b.input("x", {2, 3, 4, 5})}, {}));
  });
  add("ReduceSum/middle_axes_no_keepdims", [](Builder& b) {
    b.output(b.node("ReduceSum", {b.input("x", {2, 3, 4, 5})},
                    {{"axes", Ints{1, 2}}, {"keepdims", std::int64_t{0}}}));
  });
  add("ReduceSum/noop_with_empty_axes", [](Builder& b) {
    b.output(
        b.node("ReduceSum", {b.input("x", {3, 4})}, {{"noop_with_empty_axes", std::int64_t{1}}}));
  });
  add("ReduceSum/hw_after_blocked_conv", [](Builder& b) {
    b.output(b.node("ReduceSum", {conv(b, b.input("x", {2, 3, 6, 6}), 16, {})},
                    {{"axes", Ints{2, 3}}, {"keepdims", std::int64_t{0}}}));
  });
  add("Resize/nearest_x2", [](Builder& b) {
    b.output(b.node("Resize", {b.input("x", {2, 3, 4, 5})}, {{"scales", Floats{1, 1, 2, 2}}}));
  });
  add("Resize/linear_x2_half_pixel", [](Builder& b) {
    b.output(b.node("Resize", {b.input("x", {2, 3, 4, 5})},
                    {{"mode", std::string("linear")}, {"scales", Floats{1, 1, 2, 2}}}));
  });
  add("Resize/linear_non_integer_align_corners", [](Builder& b) {
    b.output(b.node("Resize", {b.input("x", {1, 2, 4, 6})},
                    {{"mode", std::string("linear")},
                     {"coordinate_transformation_mode", std::string("align_corners")},
                     {"scales", Floats{1, 1, 1.5, 1.7}}}));
  });
  add("Resize/linear_downsample_0.6", [](Builder& b) {
    b.output(b.node("Resize", {b.input("x", {2, 2, 5, 8})},
                    {{"mode", std::string("linear")}, {"scales", Floats{1, 1, 0.6, 0.6}}}));
  });
  add("Resize/nearest_non_integer_asymmetric_floor", [](Builder& b) {
    b.output(b.node("Resize", {b.input("x", {2, 3, 4, 6})},
                    {{"coordinate_transformation_mode", std::string("asymmetric")},
                     {"nearest_mode", std::string("floor")},
                     {"scales", Floats{1, 1, 2.5, 0.5}}}));
  });
  add("Resize/linear_sizes_pytorch_half_pixel", [](Builder& b) {
    // An output width of 1 reads coordinate 0.
    b.output(b.node("Resize", {b.input("x", {1, 2, 5, 4})},
                    {{"mode", std::string("linear")},
                     {"coordinate_transformation_mode", std::string("pytorch_half_pixel")},
                     {"sizes", Ints{1, 2, 9, 1}}}));
  });
  add("Resize/nearest_ceil_after_blocked_conv", [](Builder& b) {
    b.output(b.node(
        "Resize", {conv(b, b.input("x", {2, 3, 5, 5}), 16, {})},
        {{"nearest_mode", std::string("round_prefer_ceil")}, {"scales", Floats{1, 1, 2, 2}}}));
  });

  // ---- from the reference backend's finite-difference checks ----
  auto conv_in = [](Shape in, Conv2dOptions o) {
    return [in, o](Builder& b) { b.conv2d(b.input("x", in), o); };
  };
  add("Conv/3x3_valid", conv_in({2, 3, 7, 6}, {.filters = 4, .kernel = {3, 3}}));
  add("Conv/stride2_asymmetric_pads", conv_in({1, 2, 9, 8}, {.filters = 3,
                                                             .kernel = {3, 2},
                                                             .stride = {2, 3},
                                                             .padding = Padding::explicit_pads,
                                                             .pads = {1, 0, 2, 1}}));
  add("Conv/dilation2_same",
      conv_in({2, 2, 8, 7},
              {.filters = 2, .kernel = {3, 3}, .padding = Padding::same, .dilation = {2, 2}}));
  add("Conv/groups3_no_bias",
      conv_in({1, 6, 5, 5}, {.filters = 9, .kernel = {3, 3}, .groups = 3, .bias = false}));
  add("Conv/depthwise_1x1", conv_in({2, 4, 3, 5}, {.filters = 4, .kernel = {1, 1}, .groups = 4}));
  add("MaxPool/fd_2x2_stride1", [](Builder& b) {
    b.max_pool(b.input("x", {2, 3, 5, 6}), {.kernel = {2, 2}, .stride = {1, 1}});
  });
  add("MaxPool/3x3_stride2_pad1_ceil", [](Builder& b) {
    b.max_pool(b.input("x", {1, 2, 8, 7}), {.kernel = {3, 3},
                                            .stride = {2, 2},
                                            .padding = Padding::explicit_pads,
                                            .pads = {1, 1, 1, 1},
                                            .ceil_mode = true});
  });
  add("MaxPool/dilated", [](Builder& b) {
    b.max_pool(b.input("x", {1, 2, 7, 7}),
               {.kernel = {2, 2}, .stride = {1, 1}, .dilation = {2, 2}});
  });
  add("AveragePool/fd_exclude_pad", [](Builder& b) {
    b.avg_pool(b.input("x", {2, 2, 7, 5}), {.kernel = {3, 3},
                                            .stride = {2, 2},
                                            .padding = Padding::explicit_pads,
                                            .pads = {1, 1, 1, 0}});
  });
  add("AveragePool/include_pad_ceil", [](Builder& b) {
    b.avg_pool(b.input("x", {1, 3, 6, 6}), {.kernel = {3, 3},
                                            .stride = {2, 2},
                                            .padding = Padding::explicit_pads,
                                            .pads = {1, 1, 1, 1},
                                            .ceil_mode = true,
                                            .count_include_pad = true});
  });
  add("GlobalAveragePool/fd", [](Builder& b) { b.global_avg_pool(b.input("x", {2, 3, 4, 5})); });
  add("Relu/fd", [](Builder& b) { b.relu(b.input("x", {3, 7})); });
  add("Sigmoid/fd", [](Builder& b) { b.sigmoid(b.input("x", {2, 3, 5})); });
  add("Tanh/fd", [](Builder& b) { b.tanh(b.input("x", {4, 5})); });
  add("LeakyRelu/fd_alpha_0_2", [](Builder& b) { b.leaky_relu(b.input("x", {2, 9}), 0.2); });
  add("Softmax/fd_last_axis", [](Builder& b) { b.softmax(b.input("x", {3, 7})); });
  add("Softmax/channel_axis", [](Builder& b) { b.softmax(b.input("x", {2, 4, 3, 3}), 1); });
  add("Flatten/fd", [](Builder& b) { b.flatten(b.input("x", {2, 3, 2, 5})); });
  add("Reshape/zero_and_minus_one", [](Builder& b) {
    b.reshape(b.input("x", {2, 6, 5}), {0, 3, -1});
  });
  add("Dense/fd", [](Builder& b) { b.dense(b.input("x", {3, 11}), 5); });
  add("Dense/fd_no_bias", [](Builder& b) { b.dense(b.input("x", {4, 7}), 3, {.bias = false}); });
  add("Add/fd_same_shape", [](Builder& b) { b.add(b.input("a", {2, 5}), b.input("b", {2, 5})); });
  add("Add/fd_broadcast_channel", [](Builder& b) {
    b.add(b.input("a", {2, 3, 4, 5}), b.input("b", {3, 1, 1}));
  });
  add("Add/fd_broadcast_both", [](Builder& b) {
    b.add(b.input("a", {3, 1, 5}), b.input("b", {4, 1}));
  });
  add("Concat/fd_channels", [](Builder& b) {
    b.concat({b.input("a", {2, 3, 4, 3}), b.input("b", {2, 1, 4, 3}), b.input("c", {2, 2, 4, 3})},
             1);
  });
  add("Concat/last_axis", [](Builder& b) {
    b.concat({b.input("a", {3, 2}), b.input("b", {3, 5})}, -1);
  });
  add("BatchNormalization/training", [](Builder& b) { b.batch_norm(b.input("x", {4, 3, 3, 5})); });
  add("BatchNormalization/dense_training", [](Builder& b) { b.batch_norm(b.input("x", {6, 5})); });
  add(
      "BatchNormalization/frozen_runs_inference_mode",
      [](Builder& b) {
        b.batch_norm(b.input("x", {3, 2, 4, 4}));
      },
      true);
  add("BinaryCrossEntropyWithLogits/fd", [](Builder& b) {
    auto z = b.input("z", {7, 1});
    b.node("BinaryCrossEntropyWithLogits", {z, b.input("labels", {7, 1})}, {});
  });
  add("BinaryCrossEntropyWithLogits/class_weights", [](Builder& b) {
    auto z = b.input("z", {6});
    b.node("BinaryCrossEntropyWithLogits", {z, b.input("labels", {6})},
           {{"weight_positive", 2.5}, {"weight_negative", 0.5}});
  });
  add("SoftmaxCrossEntropy/fd", [](Builder& b) {
    auto z = b.input("z", {5, 4});
    b.node("SoftmaxCrossEntropy", {z, b.input("classes", {5}, DType::i64)}, {});
  });
  add("Conv/relu_pool_dense_chain", [](Builder& b) {
    auto x = b.relu(b.conv2d(b.input("x", {2, 2, 6, 6}), {.filters = 3, .kernel = {3, 3}}));
    x = b.max_pool(x, {.kernel = {2, 2}, .stride = {1, 1}});
    b.sigmoid(b.dense(b.flatten(x), 2));
  });

  // ---- from the extra ops' finite-difference checks (step 1e-6) ----
  auto fd = [&](const std::string& name, const Build& build) {
    add(name, build);
    all.back().fd_step = 1e-6;
  };
  fd("Mul/fd_broadcast", [](Builder& b) {
    b.output(b.node("Mul", {b.input("a", {2, 3, 4}), b.input("b", {3, 1})}, {}));
  });
  fd("Sub/fd_broadcast_last", [](Builder& b) {
    b.output(b.node("Sub", {b.input("a", {2, 3, 4}), b.input("b", {4})}, {}));
  });
  fd("Div/fd_broadcast_middle", [](Builder& b) {
    // The divisor stays in (0.27, 0.73): no blow-up near zero.
    auto d = b.sigmoid(b.input("b", {2, 1, 4}));
    b.output(b.node("Div", {b.input("a", {2, 3, 4}), d}, {}));
  });
  fd("MatMul/fd_batched_broadcast_both", [](Builder& b) {
    b.output(b.node("MatMul", {b.input("a", {2, 1, 3, 4}), b.input("b", {3, 4, 2})}, {}));
  });
  fd("Transpose/fd_rotate_3d", [](Builder& b) {
    b.output(b.node("Transpose", {b.input("x", {2, 3, 4})},
                    {{"perm", std::vector<std::int64_t>{2, 0, 1}}}));
  });
  fd("Clip/fd_min_only", [](Builder& b) {
    b.output(b.node("Clip", {b.input("x", {3, 5})}, {{"min", 0.1}}));
  });
  fd("Pad/fd_constant_4d", [](Builder& b) {
    b.output(
        b.node("Pad", {b.input("x", {1, 2, 3, 4})},
               {{"pads", std::vector<std::int64_t>{0, 0, 1, 2, 0, 1, 2, 1}}, {"value", 0.25}}));
  });
  fd("Pad/fd_reflect_4d", [](Builder& b) {
    b.output(b.node("Pad", {b.input("x", {1, 2, 3, 4})},
                    {{"pads", std::vector<std::int64_t>{0, 0, 2, 3, 0, 0, 1, 2}},
                     {"mode", std::string("reflect")}}));
  });
  fd("Pad/fd_edge_4d", [](Builder& b) {
    b.output(b.node("Pad", {b.input("x", {1, 2, 3, 4})},
                    {{"pads", std::vector<std::int64_t>{0, 1, 2, 3, 0, 0, 4, 1}},
                     {"mode", std::string("edge")}}));
  });
  return all;
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> all = build_cases();
  return all;
}

}  // namespace onnxforge::testing
