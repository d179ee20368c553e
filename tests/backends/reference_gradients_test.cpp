// Finite-difference gradient checks of every reference op (the oracle the other backends are
// tested against) over the one case catalogue (tests/support/op_cases.cpp: random and odd shapes,
// stride / padding / dilation / groups variants), by the one checker (tests/support/
// gradient_check.hpp), with each case's step and tolerance; then the properties finite
// differences cannot see.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <functional>

#include "backends/backend.hpp"
#include "core/error.hpp"
#include "graph/builder.hpp"
#include "graph/models.hpp"
#include "tests/support/gradient_check.hpp"

namespace onnxforge {
namespace {

class ReferenceGradients : public ::testing::TestWithParam<std::size_t> {};

TEST_P(ReferenceGradients, MatchFiniteDifferences) {
  const auto& c = testing::op_cases().at(GetParam());
  const auto check = testing::check_gradients(c);
  for (const auto& failure : check.failures) ADD_FAILURE() << c.name << ": " << failure;
  EXPECT_GT(check.checked, 3 * check.skipped) << "too many non-smooth points";
  std::printf("    %-52s %d elements checked (%d on kinks), worst relative error %.1e\n",
              c.name.c_str(), check.checked, check.skipped, check.worst);
  RecordProperty("worst_relative_error", std::to_string(check.worst));
}

// Every case but the random ones (Dropout draws a new mask per forward).
std::vector<std::size_t> deterministic_cases() {
  std::vector<std::size_t> indices;
  for (std::size_t i = 0; i < testing::op_cases().size(); ++i) {
    if (!testing::op_cases()[i].random) indices.push_back(i);
  }
  return indices;
}

INSTANTIATE_TEST_SUITE_P(AllOps, ReferenceGradients, ::testing::ValuesIn(deterministic_cases()),
                         [](const auto& p) {
                           std::string name = testing::op_cases()[p.param].name;
                           for (auto& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

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
