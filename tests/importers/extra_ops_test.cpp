// The ops added for imported models (graph/ops_extra.cpp) on the reference backend: forward
// values by hand, and backward against central finite differences in f64 (elements on a kink,
// where the one-sided differences disagree, are skipped).
#include <gtest/gtest.h>

#include <cmath>

#include "backends/backend.hpp"
#include "core/error.hpp"
#include "graph/builder.hpp"

namespace onnxforge {
namespace {

struct ExtraCase {
  std::string name;
  std::vector<Shape> inputs;
  std::string op;
  std::map<std::string, Attribute> attributes;
  double low = -1.0, high = 1.0;  // range of the second input (keeps Div away from 0)
};

Tensor random_f64(const Shape& shape, Random& rng, double low, double high) {
  Tensor t(DType::f64, shape);
  for (auto& v : t.data<double>()) v = low + (high - low) * rng.uniform();
  return t;
}

class ExtraOpGradients : public ::testing::TestWithParam<ExtraCase> {};

TEST_P(ExtraOpGradients, MatchFiniteDifferences) {
  const auto& c = GetParam();
  Builder b(c.name);
  std::vector<std::string> names;
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    names.push_back(b.input("x" + std::to_string(i), c.inputs[i], DType::f64));
  }
  b.output(b.node(c.op, names, c.attributes, "op"));
  b.input("unused_loss", {}, DType::f64);
  const Graph g = b.build();
  const CompileOptions options{.training = true, .loss = "unused_loss", .input_gradients = true};
  auto program = make_backend("reference")->compile(g, options);
  Random rng(hash_name(c.name));
  std::vector<Tensor> feeds;
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    feeds.push_back(i == 0 ? random_f64(c.inputs[i], rng, -1, 1)
                           : random_f64(c.inputs[i], rng, c.low, c.high));
  }
  program->set_input("unused_loss", Tensor(DType::f64, {}));
  auto set_all = [&] {
    for (std::size_t i = 0; i < feeds.size(); ++i) program->set_input(names[i], feeds[i]);
  };
  set_all();
  program->forward(Mode::training);
  const Tensor y = program->fetch("op");
  const Tensor seed = random_f64(y.shape(), rng, -1, 1);
  auto objective = [&] {
    set_all();
    program->forward(Mode::training);
    const Tensor out = program->fetch("op");
    double sum = 0;
    for (std::int64_t i = 0; i < out.size(); ++i) sum += out.value(i) * seed.value(i);
    return sum;
  };
  objective();
  program->backward({{"op", seed}});
  std::vector<Tensor> grads;
  for (const auto& n : names) grads.push_back(program->gradient(n));
  const double h = 1e-6;
  for (std::size_t k = 0; k < feeds.size(); ++k) {
    for (std::int64_t i = 0; i < feeds[k].size(); ++i) {
      auto& v = feeds[k].data<double>()[static_cast<std::size_t>(i)];
      const double original = v;
      const double f0 = objective();
      v = original + h;
      const double plus = objective();
      v = original - h;
      const double minus = objective();
      v = original;
      const double right = (plus - f0) / h, left = (f0 - minus) / h;
      if (std::abs(right - left) > 1e-3 * (1 + std::abs(right))) continue;  // a kink
      const double numeric = (plus - minus) / (2 * h);
      EXPECT_NEAR(grads[k].value(i), numeric, 1e-6 * (1 + std::abs(numeric)))
          << c.name << ": input " << k << " element " << i;
    }
  }
}

using Ints = std::vector<std::int64_t>;

INSTANTIATE_TEST_SUITE_P(
    ReferenceExtraOps, ExtraOpGradients,
    ::testing::Values(
        ExtraCase{"mul_broadcast", {{2, 3, 4}, {3, 1}}, "Mul", {}},
        ExtraCase{"sub_broadcast", {{2, 3, 4}, {4}}, "Sub", {}},
        ExtraCase{"div_broadcast", {{2, 3, 4}, {2, 1, 4}}, "Div", {}, 0.5, 1.5},
        ExtraCase{"matmul_2d", {{3, 4}, {4, 5}}, "MatMul", {}},
        ExtraCase{"matmul_batched_broadcast", {{2, 1, 3, 4}, {3, 4, 2}}, "MatMul", {}},
        ExtraCase{"transpose", {{2, 3, 4}}, "Transpose", {{"perm", Ints{2, 0, 1}}}},
        ExtraCase{"clip", {{3, 5}}, "Clip", {{"min", -0.5}, {"max", 0.3}}},
        ExtraCase{"clip_min_only", {{3, 5}}, "Clip", {{"min", 0.1}}},
        ExtraCase{"pad_constant",
                  {{1, 2, 3, 4}},
                  "Pad",
                  {{"pads", Ints{0, 0, 1, 2, 0, 1, 2, 1}}, {"value", 0.25}}},
        ExtraCase{"pad_reflect",
                  {{1, 2, 3, 4}},
                  "Pad",
                  {{"pads", Ints{0, 0, 2, 3, 0, 0, 1, 2}}, {"mode", std::string("reflect")}}},
        ExtraCase{"pad_edge",
                  {{1, 2, 3, 4}},
                  "Pad",
                  {{"pads", Ints{0, 1, 2, 3, 0, 0, 4, 1}}, {"mode", std::string("edge")}}},
        ExtraCase{"log_softmax_axis1", {{2, 5, 3}}, "LogSoftmax", {{"axis", std::int64_t{1}}}},
        ExtraCase{"log_softmax_last", {{4, 6}}, "LogSoftmax", {}}),
    [](const auto& param_info) { return param_info.param.name; });

Tensor run_one(const std::string& op, std::map<std::string, Attribute> attributes,
               const std::vector<Tensor>& inputs) {
  Builder b(op);
  std::vector<std::string> names;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    names.push_back(b.input("x" + std::to_string(i), inputs[i].shape(), inputs[i].dtype()));
  }
  b.output(b.node(op, names, std::move(attributes), "op"));
  auto program = make_backend("reference")->compile(b.build(), {});
  for (std::size_t i = 0; i < inputs.size(); ++i) program->set_input(names[i], inputs[i]);
  program->forward(Mode::inference);
  return program->fetch("op");
}

TEST(ReferenceExtraOps, ForwardValuesByHand) {
  const auto x = Tensor::from<float>({1, 3}, std::vector<float>{1, 2, 3});
  EXPECT_EQ(run_one("Pad", {{"pads", Ints{0, 2, 0, 1}}, {"mode", std::string("reflect")}}, {x})
                .to_doubles(),
            (std::vector<double>{3, 2, 1, 2, 3, 2}));
  EXPECT_EQ(
      run_one("Pad", {{"pads", Ints{0, 1, 0, 2}}, {"mode", std::string("edge")}}, {x}).to_doubles(),
      (std::vector<double>{1, 1, 2, 3, 3, 3}));
  EXPECT_EQ(run_one("Clip", {{"min", 1.5}, {"max", 2.5}}, {x}).to_doubles(),
            (std::vector<double>{1.5, 2, 2.5}));
  const auto t = run_one("Transpose", {{"perm", Ints{1, 0}}}, {x});
  EXPECT_EQ(t.shape(), (Shape{3, 1}));
  const auto m =
      run_one("MatMul", {}, {x, Tensor::from<float>({3, 1}, std::vector<float>{1, 1, 1})});
  EXPECT_EQ(m.to_doubles(), (std::vector<double>{6}));
  const auto l = run_one("LogSoftmax", {}, {Tensor::from<float>({1, 2}, std::vector<float>{0, 0})});
  EXPECT_NEAR(l.value(0), -std::log(2.0), 1e-6);
  const auto d = run_one("Div", {}, {x, Tensor::from<float>({1}, std::vector<float>{2})});
  EXPECT_EQ(d.to_doubles(), (std::vector<double>{0.5, 1, 1.5}));
}

TEST(ReferenceExtraOps, ShapeErrorsNameTheNode) {
  Builder b("bad");
  auto x = b.input("x", {2, 3});
  EXPECT_THROW(b.node("Transpose", {x}, {{"perm", Ints{0, 0}}}, "t"), Error);
  EXPECT_THROW(b.node("Pad", {x}, {{"pads", Ints{0, -1, 0, 0}}}, "p"), Error);
  EXPECT_THROW(b.node("MatMul", {x, x}, {}, "m"), Error);
  try {
    b.node("Pad", {x}, {{"pads", Ints{0, 1}}}, "my_pad");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("my_pad"), std::string::npos);
  }
}

}  // namespace
}  // namespace onnxforge
