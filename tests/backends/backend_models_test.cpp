// Whole-model checks: the built-in baseline CNN and the VGG16 feature extractor (3x100x100) on
// every backend of this build against the reference backend, forward (training and inference
// mode) and the gradients of all parameters, seeded with a random gradient on the model output.
// Same error measure and tolerances as the op harness (backend_ops_test.cpp).
//
// The reference backend is naive (double accumulation, no blocking): the full-width VGG16 at
// batch 4 would take minutes there, so VGG16 runs width-reduced (ModelOptions::width = 0.25:
// 16-32-64-128-128 channels, the same 13 convolutions, 5 pools and geometry) at batch 2.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "backends/backend.hpp"
#include "graph/models.hpp"
#include "tests/support/op_cases.hpp"

namespace onnxforge::testing {
namespace {

std::vector<std::string> backends_under_test() {
  std::vector<std::string> names;
  for (const auto& name : backend_names()) {
    if (name != "reference") names.push_back(name);
  }
  return names;
}

double relative_error(const Tensor& got, const Tensor& want, std::int64_t* worst) {
  double scale = 1e-6, error = 0.0;
  for (std::int64_t i = 0; i < want.size(); ++i) scale = std::max(scale, std::abs(want.value(i)));
  for (std::int64_t i = 0; i < want.size(); ++i) {
    const double e = std::abs(got.value(i) - want.value(i)) / scale;
    if (!(e <= error)) {
      error = std::isnan(e) ? INFINITY : e;
      *worst = i;
    }
  }
  return error;
}

void expect_close(const std::string& what, const Tensor& got, const Tensor& want,
                  double tolerance) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  std::int64_t worst = -1;
  const double error = relative_error(got, want, &worst);
  std::printf("    %-44s max rel err %.2e at %lld\n", what.c_str(), error,
              static_cast<long long>(worst));
  EXPECT_LE(error, tolerance) << what << " worst element " << worst << ": got "
                              << got.value(std::max<std::int64_t>(worst, 0)) << " want "
                              << want.value(std::max<std::int64_t>(worst, 0));
}

struct ModelCase {
  std::string model;
  ModelOptions options;
  std::int64_t batch;
};

class ModelCheck : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(ModelCheck, ForwardAndAllGradientsMatchReference) {
  const auto& [backend_name, model] = GetParam();
  auto backend = make_backend(backend_name);
  std::string why;
  if (!backend->available(&why)) GTEST_SKIP() << backend_name << " is not available here: " << why;
  const ModelCase mc =
      model == "baseline" ? ModelCase{"baseline", {}, 4} : ModelCase{"vgg16", {.width = 0.25}, 2};
  Graph g = with_batch(build_model(mc.model, mc.options), mc.batch);
  // Non-zero biases, so that bias bugs show.
  Random rng(hash_name(model));
  for (auto& init : g.initializers) {
    if (init.name.ends_with("/bias"))
      init.value = random_tensor(init.value.shape(), rng, -0.1, 0.1);
  }
  g.inputs.push_back({"unused_loss", DType::f32, {}});
  g.validate();
  const CompileOptions options{.training = true, .loss = "unused_loss"};
  auto want = make_backend("reference")->compile(g, options);
  auto got = backend->compile(g, options);
  const std::string input = g.inputs[0].name;
  const Tensor image = random_tensor(g.value(input).shape, rng, 0.0, 1.0);
  for (auto* p : {want.get(), got.get()}) {
    p->set_input(input, image);
    p->set_input("unused_loss", Tensor(DType::f32, {}));
  }
  const std::string out = g.outputs.at(0);
  const Tensor seed = random_tensor(g.value(out).shape, rng);

  const auto start = std::chrono::steady_clock::now();
  want->forward(Mode::training);
  want->backward({{out, seed}});
  const double reference_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("    reference forward+backward: %.1f s\n", reference_seconds);
  got->forward(Mode::training);
  got->backward({{out, seed}});

  expect_close(model + " forward(training) " + out, got->fetch(out), want->fetch(out), 1e-5);
  int checked = 0;
  for (const auto& init : g.initializers) {
    if (!init.trainable) continue;
    expect_close("gradient " + init.name, got->gradient(init.name), want->gradient(init.name),
                 1e-4);
    ++checked;
  }
  EXPECT_EQ(checked, mc.model == "baseline" ? 8 : 26);
  want->forward(Mode::inference);
  got->forward(Mode::inference);
  expect_close(model + " forward(inference) " + out, got->fetch(out), want->fetch(out), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(BuiltinModels, ModelCheck,
                         ::testing::Combine(::testing::ValuesIn(backends_under_test()),
                                            ::testing::Values(std::string("baseline"),
                                                              std::string("vgg16"))),
                         [](const auto& param_info) {
                           return std::get<0>(param_info.param) + "_" +
                                  std::get<1>(param_info.param);
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ModelCheck);

}  // namespace
}  // namespace onnxforge::testing
