// Finite-difference gradient checks of every reference op (the oracle the other backends are
// tested against), over random and odd shapes and stride/padding/dilation/groups variants.
//
// Each case is a one-op graph in f64. With a random seed gradient R on the output, backward
// gives the gradient of L = sum(R * Y) with respect to every floating input and trainable
// parameter; it is compared with central differences (L(x+h) - L(x-h)) / 2h. Elements where the
// left and right one-sided differences disagree sit on a kink (ReLU at 0, a max-pool tie) and are
// skipped, as Caffe's GradientChecker does.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "backends/backend.hpp"
#include "core/error.hpp"
#include "graph/builder.hpp"
#include "graph/models.hpp"

namespace onnxforge {
namespace {

struct OpCase {
  std::string name;
  std::function<void(Builder&)> build;  // adds inputs, parameters and one op; output = last node
  bool frozen = false;                  // every parameter non-trainable (frozen batch norm)
};

// Converts every floating input and initializer to f64 and re-infers shapes.
Graph to_f64(Graph g) {
  for (auto& in : g.inputs) {
    if (is_floating(in.dtype)) in.dtype = DType::f64;
  }
  for (auto& init : g.initializers) {
    if (is_floating(init.value.dtype())) init.value = init.value.to(DType::f64);
  }
  g.validate();
  return g;
}

Tensor random_tensor(const Shape& shape, Random& rng, double low = -1.0, double high = 1.0) {
  Tensor t(DType::f64, shape);
  for (auto& v : t.data<double>()) v = low + (high - low) * rng.uniform();
  return t;
}

// Randomises every trainable parameter (the builder's zero biases would hide bias bugs).
void randomise_parameters(Graph& g, Random& rng) {
  for (auto& init : g.initializers) {
    if (init.trainable) init.value = random_tensor(init.value.shape(), rng);
  }
}

class ReferenceGradients : public ::testing::TestWithParam<OpCase> {};

TEST_P(ReferenceGradients, MatchFiniteDifferences) {
  const OpCase& c = GetParam();
  Builder b(c.name, 11);
  c.build(b);
  Graph g = to_f64(b.build());
  Random rng(hash_name(c.name));
  randomise_parameters(g, rng);
  if (c.frozen) {
    for (auto& init : g.initializers) init.trainable = false;
  }
  const std::string out = g.outputs.at(0);
  auto backend = make_backend("reference");

  std::map<std::string, Tensor> feeds;
  for (const auto& in : g.inputs) {
    if (in.dtype == DType::i64) {
      Tensor labels(DType::i64, in.shape);
      const auto classes = g.value(g.producer(out)->input(0)).shape.back();
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
  const Tensor seed = random_tensor(g.value(out).shape, rng);

  // Compiled for training (which needs a scalar loss); backward is seeded on the output.
  CompileOptions training{.training = true, .loss = out, .input_gradients = true};
  std::unique_ptr<Program> program;
  if (element_count(g.value(out).shape) == 1) {
    program = backend->compile(g, training);
  } else {
    Graph with_loss = g;
    with_loss.inputs.push_back({"unused_loss", DType::f64, {}});
    with_loss.validate();
    training.loss = "unused_loss";
    program = backend->compile(with_loss, training);
    feeds["unused_loss"] = Tensor(DType::f64, {});
  }
  for (const auto& [name, value] : feeds) program->set_input(name, value);

  auto objective = [&]() {
    program->forward(Mode::training);
    const Tensor y = program->fetch(out);
    double sum = 0;
    for (std::int64_t i = 0; i < y.size(); ++i) sum += y.value(i) * seed.value(i);
    return sum;
  };
  objective();
  program->backward({{out, seed}});

  // What to check: floating inputs (not labels) and trainable parameters.
  std::vector<std::string> targets;
  for (const auto& in : g.inputs) {
    if (in.dtype == DType::f64 && in.name != "labels") targets.push_back(in.name);
  }
  for (const auto& init : g.initializers) {
    if (init.trainable) targets.push_back(init.name);
  }
  ASSERT_FALSE(targets.empty());

  const double h = 1e-5;
  int checked = 0, skipped = 0;
  double worst = 0;
  for (const auto& target : targets) {
    const bool is_input = feeds.count(target) != 0;
    Tensor base = is_input ? feeds[target] : program->parameter(target);
    const Tensor analytic = program->gradient(target);
    ASSERT_EQ(analytic.shape(), base.shape()) << target;
    // Every element of small tensors, an evenly spread sample of 48 of large ones.
    const std::int64_t n = base.size();
    const std::int64_t step = std::max<std::int64_t>(1, n / 48);
    for (std::int64_t i = 0; i < n; i += step) {
      auto evaluate = [&](double delta) {
        Tensor t = base;
        t.data<double>()[static_cast<std::size_t>(i)] += delta;
        if (is_input) {
          program->set_input(target, t);
        } else {
          program->set_parameter(target, t);
        }
        return objective();
      };
      const double f0 = evaluate(0.0);
      const double fp = evaluate(h), fm = evaluate(-h);
      if (is_input) {
        program->set_input(target, base);
      } else {
        program->set_parameter(target, base);
      }
      const double right = (fp - f0) / h, left = (f0 - fm) / h;
      if (std::abs(right - left) > 1e-3 * std::max(1.0, std::abs(right) + std::abs(left))) {
        ++skipped;  // a kink: not differentiable here
        continue;
      }
      const double numeric = (fp - fm) / (2 * h);
      const double a = analytic.value(i);
      const double error = std::abs(a - numeric) / std::max(1.0, std::abs(numeric));
      worst = std::max(worst, error);
      EXPECT_LT(error, 1e-6) << c.name << ": d/d" << target << "[" << i << "] analytic " << a
                             << " numeric " << numeric;
      ++checked;
    }
  }
  EXPECT_GT(checked, 3 * skipped) << "too many non-smooth points";
  RecordProperty("worst_relative_error", std::to_string(worst));
}

std::vector<OpCase> cases() {
  std::vector<OpCase> all;
  auto add = [&](std::string name, std::function<void(Builder&)> f, bool frozen = false) {
    all.push_back({std::move(name), std::move(f), frozen});
  };
  auto conv = [](Shape in, Conv2dOptions o) {
    return [in, o](Builder& b) { b.conv2d(b.input("x", in), o); };
  };
  add("conv_3x3_valid", conv({2, 3, 7, 6}, {.filters = 4, .kernel = {3, 3}}));
  add("conv_stride2_asymmetric_pads", conv({1, 2, 9, 8}, {.filters = 3,
                                                          .kernel = {3, 2},
                                                          .stride = {2, 3},
                                                          .padding = Padding::explicit_pads,
                                                          .pads = {1, 0, 2, 1}}));
  add("conv_dilation2_same",
      conv({2, 2, 8, 7},
           {.filters = 2, .kernel = {3, 3}, .padding = Padding::same, .dilation = {2, 2}}));
  add("conv_groups3_no_bias",
      conv({1, 6, 5, 5}, {.filters = 9, .kernel = {3, 3}, .groups = 3, .bias = false}));
  add("conv_depthwise_1x1", conv({2, 4, 3, 5}, {.filters = 4, .kernel = {1, 1}, .groups = 4}));
  add("max_pool_2x2_stride1", [](Builder& b) {
    b.max_pool(b.input("x", {2, 3, 5, 6}), {.kernel = {2, 2}, .stride = {1, 1}});
  });
  add("max_pool_3x3_stride2_pad1_ceil", [](Builder& b) {
    b.max_pool(b.input("x", {1, 2, 8, 7}), {.kernel = {3, 3},
                                            .stride = {2, 2},
                                            .padding = Padding::explicit_pads,
                                            .pads = {1, 1, 1, 1},
                                            .ceil_mode = true});
  });
  add("max_pool_dilated", [](Builder& b) {
    b.max_pool(b.input("x", {1, 2, 7, 7}),
               {.kernel = {2, 2}, .stride = {1, 1}, .dilation = {2, 2}});
  });
  add("avg_pool_exclude_pad", [](Builder& b) {
    b.avg_pool(b.input("x", {2, 2, 7, 5}), {.kernel = {3, 3},
                                            .stride = {2, 2},
                                            .padding = Padding::explicit_pads,
                                            .pads = {1, 1, 1, 0}});
  });
  add("avg_pool_include_pad_ceil", [](Builder& b) {
    b.avg_pool(b.input("x", {1, 3, 6, 6}), {.kernel = {3, 3},
                                            .stride = {2, 2},
                                            .padding = Padding::explicit_pads,
                                            .pads = {1, 1, 1, 1},
                                            .ceil_mode = true,
                                            .count_include_pad = true});
  });
  add("global_avg_pool", [](Builder& b) { b.global_avg_pool(b.input("x", {2, 3, 4, 5})); });
  add("relu", [](Builder& b) { b.relu(b.input("x", {3, 7})); });
  add("sigmoid", [](Builder& b) { b.sigmoid(b.input("x", {2, 3, 5})); });
  add("tanh", [](Builder& b) { b.tanh(b.input("x", {4, 5})); });
  add("leaky_relu", [](Builder& b) { b.leaky_relu(b.input("x", {2, 9}), 0.2); });
  add("softmax_last_axis", [](Builder& b) { b.softmax(b.input("x", {3, 7})); });
  add("softmax_channel_axis", [](Builder& b) { b.softmax(b.input("x", {2, 4, 3, 3}), 1); });
  add("flatten", [](Builder& b) { b.flatten(b.input("x", {2, 3, 2, 5})); });
  add("reshape", [](Builder& b) { b.reshape(b.input("x", {2, 6, 5}), {0, 3, -1}); });
  add("dense", [](Builder& b) { b.dense(b.input("x", {3, 11}), 5); });
  add("dense_no_bias", [](Builder& b) { b.dense(b.input("x", {4, 7}), 3, {.bias = false}); });
  add("add_same_shape", [](Builder& b) { b.add(b.input("a", {2, 5}), b.input("b", {2, 5})); });
  add("add_broadcast_channel", [](Builder& b) {
    b.add(b.input("a", {2, 3, 4, 5}), b.input("b", {3, 1, 1}));
  });
  add("add_broadcast_both", [](Builder& b) {
    b.add(b.input("a", {3, 1, 5}), b.input("b", {4, 1}));
  });
  add("concat_channels", [](Builder& b) {
    b.concat({b.input("a", {2, 3, 4, 3}), b.input("b", {2, 1, 4, 3}), b.input("c", {2, 2, 4, 3})},
             1);
  });
  add("concat_last_axis", [](Builder& b) {
    b.concat({b.input("a", {3, 2}), b.input("b", {3, 5})}, -1);
  });
  add("batch_norm_training", [](Builder& b) { b.batch_norm(b.input("x", {4, 3, 3, 5})); });
  add("batch_norm_dense_training", [](Builder& b) { b.batch_norm(b.input("x", {6, 5})); });
  add(
      "batch_norm_frozen_runs_inference_mode",
      [](Builder& b) {
        b.batch_norm(b.input("x", {3, 2, 4, 4}));
      },
      true);
  add("bce_with_logits", [](Builder& b) {
    auto z = b.input("z", {7, 1});
    b.node("BinaryCrossEntropyWithLogits", {z, b.input("labels", {7, 1})}, {});
  });
  add("bce_with_logits_class_weights", [](Builder& b) {
    auto z = b.input("z", {6});
    b.node("BinaryCrossEntropyWithLogits", {z, b.input("labels", {6})},
           {{"weight_positive", 2.5}, {"weight_negative", 0.5}});
  });
  add("softmax_cross_entropy", [](Builder& b) {
    auto z = b.input("z", {5, 4});
    b.node("SoftmaxCrossEntropy", {z, b.input("classes", {5}, DType::i64)}, {});
  });
  add("conv_relu_pool_dense_chain", [](Builder& b) {
    auto x = b.relu(b.conv2d(b.input("x", {2, 2, 6, 6}), {.filters = 3, .kernel = {3, 3}}));
    x = b.max_pool(x, {.kernel = {2, 2}, .stride = {1, 1}});
    b.sigmoid(b.dense(b.flatten(x), 2));
  });
  return all;
}

INSTANTIATE_TEST_SUITE_P(AllOps, ReferenceGradients, ::testing::ValuesIn(cases()),
                         [](const auto& test_info) { return test_info.param.name; });

// ---- properties that finite differences cannot see -------------------------------------------

TEST(ReferenceSemantics, DropoutKeepsExpectationAndRoutesGradientThroughItsMask) {
  Builder b("dropout");
  b.dropout(b.input("x", {1000, 20}), 0.3);
  CompileOptions options{.training = true, .loss = "", .input_gradients = true};
  Graph g = b.build();
  g.inputs.push_back({"unused_loss", DType::f32, {}});
  g.validate();
  options.loss = "unused_loss";
  auto program = make_backend("reference")->compile(g, options);
  Tensor x(DType::f32, {1000, 20});
  for (auto& v : x.data<float>()) v = 2.0f;
  program->set_input("x", x);
  program->forward(Mode::training);
  const Tensor y = program->fetch("dropout");
  double kept = 0, sum = 0;
  for (std::int64_t i = 0; i < y.size(); ++i) {
    sum += y.value(i);
    if (y.value(i) != 0.0) {
      kept += 1;
      EXPECT_NEAR(y.value(i), 2.0 / 0.7, 1e-5);
    }
  }
  EXPECT_NEAR(kept / 20000.0, 0.7, 0.02);
  EXPECT_NEAR(sum / 20000.0, 2.0, 0.06);
  Tensor ones(DType::f32, {1000, 20});
  for (auto& v : ones.data<float>()) v = 1.0f;
  program->backward({{"dropout", ones}});
  const Tensor dx = program->gradient("x");
  for (std::int64_t i = 0; i < y.size(); ++i) {
    EXPECT_EQ(dx.value(i) == 0.0, y.value(i) == 0.0);
  }
  program->forward(Mode::inference);
  EXPECT_EQ(program->fetch("dropout"), x);
}

TEST(ReferenceSemantics, BatchNormUpdatesRunningStatisticsAndFrozenOneRunsInInferenceMode) {
  Builder b("bn");
  b.batch_norm(b.input("x", {2, 1, 1, 2}), {.epsilon = 0.0, .momentum = 0.5});
  Graph g = b.build();
  g.inputs.push_back({"unused_loss", DType::f32, {}});
  g.validate();
  CompileOptions options{.training = true, .loss = "unused_loss"};
  auto program = make_backend("reference")->compile(g, options);
  program->set_input("x", Tensor::from<float>({2, 1, 1, 2}, {1, 2, 3, 6}));
  program->forward(Mode::training);
  // mean 3, biased variance (4+1+0+9)/4 = 3.5; running = 0.5*init + 0.5*batch.
  EXPECT_NEAR(program->parameter("batch_normalization/moving_mean").value(0), 1.5, 1e-6);
  EXPECT_NEAR(program->parameter("batch_normalization/moving_variance").value(0), 2.25, 1e-6);
  EXPECT_NEAR(program->fetch("batch_normalization").value(3), 3.0 / std::sqrt(3.5), 1e-6);

  for (auto& init : g.initializers) init.trainable = false;  // frozen
  auto frozen = make_backend("reference")->compile(g, options);
  frozen->set_input("x", Tensor::from<float>({2, 1, 1, 2}, {1, 2, 3, 6}));
  frozen->forward(Mode::training);
  EXPECT_EQ(frozen->fetch("batch_normalization").value(3), 6.0);  // (6-0)/sqrt(1)*1+0
  EXPECT_EQ(frozen->parameter("batch_normalization/moving_mean").value(0), 0.0);
}

TEST(ReferenceSemantics, StableBinaryCrossEntropyOnHugeLogits) {
  Builder b("bce");
  auto z = b.input("z", {2});
  b.node("BinaryCrossEntropyWithLogits", {z, b.input("labels", {2})}, {}, "loss");
  auto program =
      make_backend("reference")
          ->compile(b.build(), {.training = true, .loss = "loss", .input_gradients = true});
  program->set_input("z", Tensor::from<float>({2}, {1000.0f, -1000.0f}));
  program->set_input("labels", Tensor::from<float>({2}, {0.0f, 1.0f}));
  program->forward(Mode::training);
  EXPECT_NEAR(program->fetch("loss").value(0), 1000.0, 1e-9);  // no inf, no nan
  program->backward();
  EXPECT_NEAR(program->gradient("z").value(0), 0.5, 1e-12);  // sigmoid(1000) - 0 over N=2
}

TEST(ReferenceBackend, RejectsDynamicShapesAndNonScalarLossAtCompileTime) {
  auto backend = make_backend("reference");
  try {
    backend->compile(build_model("baseline"), {});
    ADD_FAILURE() << "dynamic batch accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dynamic shape"), std::string::npos) << e.what();
  }
  try {
    backend->compile(with_batch(build_model("baseline"), 2), {.training = true, .loss = "dense"});
    ADD_FAILURE() << "non-scalar loss accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must be a scalar"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_backend("tpu"), Error);
}

TEST(ReferenceBackend, FrozenParametersGetNoGradientAndStayByteIdentical) {
  Builder b("frozen", 3);
  auto x = b.input("x", {4, 6});
  auto y = b.dense(b.relu(b.dense(x, 5)), 1);
  b.node("BinaryCrossEntropyWithLogits", {y, b.input("labels", {4, 1})}, {}, "loss");
  Graph g = b.build();
  g.find_initializer("dense/kernel")->trainable = false;
  g.find_initializer("dense/bias")->trainable = false;
  auto program = make_backend("reference")->compile(g, {.training = true, .loss = "loss"});
  Random rng(5);
  Tensor xv(DType::f32, {4, 6});
  for (auto& v : xv.data<float>()) v = static_cast<float>(rng.uniform());
  program->set_input("x", xv);
  program->set_input("labels", Tensor::from<float>({4, 1}, {0, 1, 1, 0}));
  const Tensor before = program->parameter("dense/kernel");
  const Tensor head_before = program->parameter("dense_1/kernel");
  for (int step = 0; step < 3; ++step) {
    program->forward(Mode::training);
    program->backward();
    program->update({.kind = OptimizerSpec::Kind::adam, .learning_rate = 0.1});
  }
  EXPECT_EQ(program->parameter("dense/kernel"), before);
  EXPECT_NE(program->parameter("dense_1/kernel"), head_before);
  EXPECT_THROW(program->gradient("dense/kernel"), Error);
}

}  // namespace
}  // namespace onnxforge
