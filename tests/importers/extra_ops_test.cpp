// The ops added for imported models on the reference backend: forward values by hand and shape
// errors. Their gradients are checked by finite differences with every op's, over the one case
// catalogue (tests/backends/reference_gradients_test.cpp).
#include <gtest/gtest.h>

#include <cmath>

#include "backends/backend.hpp"
#include "core/error.hpp"
#include "graph/builder.hpp"

namespace onnxforge {
namespace {

using Ints = std::vector<std::int64_t>;

Tensor run_one(const std::string& op, std::map<std::string, Attribute> attributes,
               const std::vector<Tensor>& inputs) {
  Builder b(op);
  std::vector<std::string> names;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    names.push_back(
        b.input(std::string("x").append(std::to_string(i)), inputs[i].shape(), inputs[i].dtype()));
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
