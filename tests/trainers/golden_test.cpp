// Golden test against PyTorch: the baseline CNN (at 3x16x16) trained for five Adam steps on fixed
// data reaches the losses PyTorch computed (golden/baseline_adam.json, made by
// golden/make_baseline_adam.py, which is kept beside it). Parameters and data are closed-form
// functions of their index, computed here exactly as the script computes them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backends/backend.hpp"
#include "graph/models.hpp"
#include "trainers/trainer.hpp"

namespace onnxforge {
namespace {

struct Golden {
  int batch = 0;
  Shape input;
  std::vector<double> labels, losses;
  OptimizerSpec adam;
};

Golden read_golden() {
  const std::string path =
      std::string(ONNXFORGE_SOURCE_DIR) + "/tests/trainers/golden/baseline_adam.json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  const auto j = nlohmann::json::parse(in);
  Golden g;
  g.batch = j.at("batch").get<int>();
  g.input = j.at("input").get<Shape>();
  g.labels = j.at("labels").get<std::vector<double>>();
  g.losses = j.at("losses").get<std::vector<double>>();
  g.adam = {.kind = OptimizerSpec::Kind::adam,
            .learning_rate = j.at("adam").at("lr").get<double>(),
            .beta1 = j.at("adam").at("beta1").get<double>(),
            .beta2 = j.at("adam").at("beta2").get<double>(),
            .epsilon = j.at("adam").at("epsilon").get<double>()};
  return g;
}

// The script's closed_form: scale * sin(0.7 i + 1.3 j + 0.5), rounded to f32.
Tensor closed_form(const Shape& shape, int j, double scale) {
  std::vector<float> v(static_cast<std::size_t>(element_count(shape)));
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<float>(scale * std::sin(0.7 * static_cast<double>(i) + 1.3 * j + 0.5));
  }
  return Tensor::from<float>(shape, v);
}

Tensor images(const Golden& g) {
  Shape shape{g.batch};
  shape.insert(shape.end(), g.input.begin(), g.input.end());
  std::vector<float> v(static_cast<std::size_t>(element_count(shape)));
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double d = static_cast<double>(i);
    v[i] = static_cast<float>(std::sin(0.37 * d) * std::cos(0.011 * d));
  }
  return Tensor::from<float>(shape, v);
}

class GoldenPyTorch : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenPyTorch, BaselineLossesAfterAdamStepsMatchPyTorch) {
  auto backend = make_backend(GetParam());
  std::string why;
  if (!backend->available(&why)) GTEST_SKIP() << GetParam() << " is not available here: " << why;
  const Golden golden = read_golden();
  const auto tg = train::make_training_graph(build_model("baseline", {.input = golden.input}),
                                             golden.batch, {});
  Graph graph = tg.graph;
  // The script's canonical order: kernel then bias, layer by layer, with their fan-ins.
  ASSERT_EQ(graph.initializers.size(), 8u);
  for (std::size_t j = 0; j < graph.initializers.size(); ++j) {
    auto& init = graph.initializers[j];
    const Shape& s = init.value.shape();
    const Shape& kernel = graph.initializers[j - j % 2].value.shape();
    std::int64_t fan_in = 1;
    for (std::size_t d = 1; d < kernel.size(); ++d) fan_in *= kernel[d];
    const double scale = (j % 2 == 0 ? 1.0 : 0.1) / std::sqrt(static_cast<double>(fan_in));
    init.value = closed_form(s, static_cast<int>(j), scale);
  }
  const CompileOptions options{.training = true, .loss = tg.loss, .threads = 1};
  auto program = backend->compile(graph, options);
  program->set_input(tg.image, images(golden));
  program->set_input(
      tg.labels,
      Tensor::from<double>({golden.batch, 1}, golden.labels).to(graph.value(tg.labels).dtype));
  // Relative: the reference computes in double, as the script does, and only the fetched f32
  // loss is rounded; the others compute in f32.
  const double tolerance = GetParam() == "reference" ? 1e-7 : 1e-6;
  for (std::size_t step = 0; step < golden.losses.size(); ++step) {
    program->forward(Mode::training);
    const double loss = program->fetch(tg.loss).value(0);
    std::printf("    [%s] step %zu: loss %.9f, PyTorch %.9f, relative difference %.1e\n",
                GetParam().c_str(), step, loss, golden.losses[step],
                std::abs(loss - golden.losses[step]) / golden.losses[step]);
    EXPECT_NEAR(loss, golden.losses[step], tolerance * golden.losses[step])
        << GetParam() << ", loss before Adam step " << step + 1;
    if (step + 1 == golden.losses.size()) break;
    program->backward();
    program->update(golden.adam);
  }
}

INSTANTIATE_TEST_SUITE_P(AllBackends, GoldenPyTorch, ::testing::ValuesIn(backend_names()),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace onnxforge
