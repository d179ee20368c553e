// The IR: parameter counts of the built-in models, shape inference and its error messages,
// validation of names and cycles.
#include <gtest/gtest.h>

#include <set>

#include "core/error.hpp"
#include "graph/builder.hpp"
#include "graph/models.hpp"
#include "graph/ops.hpp"
#include "graph/summary.hpp"

namespace onnxforge {
namespace {

// Expects `statement` to throw onnxforge::Error whose message contains every fragment.
#define EXPECT_ERROR(statement, ...)                                       \
  do {                                                                     \
    try {                                                                  \
      statement;                                                           \
      ADD_FAILURE() << "no error from: " #statement;                       \
    } catch (const Error& e) {                                             \
      for (const char* fragment : {__VA_ARGS__}) {                         \
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) \
            << "message '" << e.what() << "' lacks '" << fragment << "'";  \
      }                                                                    \
    }                                                                      \
  } while (0)

TEST(DTypes, NamesSizesAndAliasesRoundTrip) {
  const std::pair<DType, std::size_t> all[] = {{DType::f32, 4},  {DType::f64, 8},
                                               {DType::bf16, 2}, {DType::i64, 8},
                                               {DType::u8, 1},   {DType::boolean, 1}};
  for (const auto& [dtype, size] : all) {
    EXPECT_EQ(size_of(dtype), size) << to_string(dtype);
    EXPECT_EQ(parse_dtype(to_string(dtype)), dtype) << to_string(dtype);
  }
  EXPECT_EQ(to_string(DType::boolean), "bool");
  EXPECT_EQ(parse_dtype("float"), DType::f32);
  EXPECT_EQ(parse_dtype("fp32"), DType::f32);
  EXPECT_EQ(parse_dtype("double"), DType::f64);
  EXPECT_EQ(parse_dtype("bfloat16"), DType::bf16);
  EXPECT_EQ(parse_dtype("int64"), DType::i64);
  EXPECT_EQ(parse_dtype("uint8"), DType::u8);
  EXPECT_THROW(parse_dtype(""), Error);
  EXPECT_THROW(parse_dtype("f16"), Error);
}

TEST(Models, BaselineHasExactlyTheSpecifiedParameters) {
  const Graph g = build_model("baseline");
  // conv 3*3*3*16+16 = 448; conv 3*3*16*16+16 = 2,320; dense 94*94*16*64+64 = 9,048,128; 65.
  EXPECT_EQ(g.parameter_count(), 9'050'961);
  EXPECT_EQ(g.trainable_parameter_count(), 9'050'961);
  EXPECT_EQ(g.value("conv2d").shape, (Shape{kDynamic, 16, 98, 98}));
  EXPECT_EQ(g.value("max_pooling2d").shape, (Shape{kDynamic, 16, 97, 97}));
  EXPECT_EQ(g.value("max_pooling2d_1").shape, (Shape{kDynamic, 16, 94, 94}));
  EXPECT_EQ(g.value(g.outputs.at(0)).shape, (Shape{kDynamic, 1}));
  EXPECT_EQ(g.producer(g.outputs.at(0))->op, "Sigmoid");
}

TEST(Models, Vgg16FeaturesAt100) {
  const Graph g = build_model("vgg16", {.input = {3, 100, 100}});
  EXPECT_EQ(g.parameter_count(), 14'714'688);
  EXPECT_EQ(g.value(g.outputs.at(0)).shape, (Shape{kDynamic, 512, 3, 3}));
  int convs = 0;
  for (const auto& n : g.nodes) convs += n.op == "Conv";
  EXPECT_EQ(convs, 13);
}

TEST(Models, Vgg16WithTopAt224HasTheKerasCount) {
  const Graph g = build_model("vgg16", {.input = {3, 224, 224}, .include_top = true});
  EXPECT_EQ(g.parameter_count(), 138'357'544);  // keras.applications.VGG16().count_params()
  EXPECT_EQ(g.value(g.outputs.at(0)).shape, (Shape{kDynamic, 1000}));
}

TEST(Models, UnknownModelNamesTheKnownOnes) {
  EXPECT_ERROR(build_model("resnet"), "unknown model 'resnet'", "baseline", "vgg16");
}

TEST(Summary, ListsLayersAndTotals) {
  const std::string text = summary(build_model("baseline"));
  EXPECT_NE(text.find("Total params: 9,050,961"), std::string::npos) << text;
  EXPECT_NE(text.find("Trainable params: 9,050,961"), std::string::npos);
  EXPECT_NE(text.find("Non-trainable params: 0"), std::string::npos);
  EXPECT_NE(text.find("[N,16,98,98]"), std::string::npos);
  EXPECT_NE(text.find("9,048,128"), std::string::npos);
}

TEST(Summary, CountsFrozenAndBatchNormStatisticsAsNonTrainable) {
  Builder b("bn", 1);
  auto x = b.input("x", {kDynamic, 4, 8, 8});
  x = b.batch_norm(b.conv2d(x, {.filters = 8, .kernel = {3, 3}}));
  b.output(x);
  Graph g = b.build();
  g.find_initializer("conv2d/kernel")->trainable = false;
  const std::string text = summary(g);
  // conv 4*9*8 + 8 = 296 (kernel 288 frozen), bn 4*8 = 32 (16 trainable).
  EXPECT_NE(text.find("Total params: 328"), std::string::npos) << text;
  EXPECT_NE(text.find("Trainable params: 24"), std::string::npos) << text;
  EXPECT_NE(text.find("Non-trainable params: 304"), std::string::npos) << text;
  EXPECT_NE(text.find("partly"), std::string::npos) << text;
}

TEST(Builder, SamePaddingKeepsSizeAndPutsExtraPaddingAtTheEnd) {
  Builder b("same");
  auto x = b.input("x", {1, 3, 10, 9});
  auto y =
      b.conv2d(x, {.filters = 2, .kernel = {4, 3}, .stride = {2, 2}, .padding = Padding::same});
  EXPECT_EQ(b.value(y).shape, (Shape{1, 2, 5, 5}));
  const Graph g = b.build();
  // H: out 5, needs (5-1)*2+4-10 = 2 -> 1,1; W: (5-1)*2+3-9 = 2 -> 1,1.
  EXPECT_EQ(g.nodes[0].get_ints("pads", {}), (std::vector<std::int64_t>{1, 1, 1, 1}));
}

TEST(Builder, GlorotUniformIsSeededAndBounded) {
  auto kernel = [](std::uint64_t seed) {
    return build_model("baseline", {.seed = seed}).find_initializer("conv2d/kernel")->value;
  };
  EXPECT_EQ(kernel(7), kernel(7));
  EXPECT_NE(kernel(7), kernel(8));
  const double limit = std::sqrt(6.0 / (27 + 144));
  const Tensor k7 = kernel(7);  // a named copy: data() of a temporary would dangle
  for (float v : k7.data<float>()) EXPECT_LE(std::abs(v), limit);
  const Graph g = build_model("baseline");
  for (float v : g.find_initializer("dense/bias")->value.data<float>()) {
    EXPECT_EQ(v, 0.0f);
  }
}

TEST(ShapeInference, ConvWithStrideDilationGroups) {
  Builder b("conv");
  auto x = b.input("x", {2, 6, 11, 13});
  auto y = b.conv2d(x, {.filters = 9,
                        .kernel = {3, 2},
                        .stride = {2, 3},
                        .padding = Padding::explicit_pads,
                        .pads = {1, 0, 2, 1},
                        .dilation = {2, 1},
                        .groups = 3});
  // H: (11+1+2-5)/2+1 = 5; W: (13+0+1-2)/3+1 = 5.
  EXPECT_EQ(b.value(y).shape, (Shape{2, 9, 5, 5}));
}

TEST(ShapeInference, PoolCeilMode) {
  Builder b("pool");
  auto x = b.input("x", {1, 2, 7, 7});
  EXPECT_EQ(b.value(b.max_pool(x, {.kernel = {2, 2}, .ceil_mode = true})).shape,
            (Shape{1, 2, 4, 4}));
  EXPECT_EQ(b.value(b.max_pool(x, {.kernel = {2, 2}})).shape, (Shape{1, 2, 3, 3}));
}

TEST(ShapeInference, ErrorsNameTheNodeAndBothShapes) {
  Builder b("bad");
  auto x = b.input("x", {1, 3, 8, 8});
  auto flat = b.flatten(x);  // [1,192]
  Tensor w(DType::f32, {10, 100});
  b.parameter("w", w);
  EXPECT_ERROR(b.node("Dense", {flat, "w"}, {}, "my_dense"), "my_dense", "[1,192]", "[10,100]",
               "192");
  auto y = b.input("y", {1, 4, 8, 8});
  EXPECT_ERROR(b.add(x, y, "sum"), "sum", "[1,3,8,8]", "[1,4,8,8]", "do not broadcast");
  Tensor k(DType::f32, {4, 5, 3, 3});
  b.parameter("k", k);
  EXPECT_ERROR(b.node("Conv", {x, "k"}, {}, "c"), "node 'c'", "3 channels", "[4,5,3,3]");
  EXPECT_ERROR(b.node("Frobnicate", {x}, {}, "f"), "node 'f'", "unknown op 'Frobnicate'");
  EXPECT_ERROR(b.max_pool(x, {.kernel = {9, 9}, .name = "p"}), "node 'p'", "does not fit");
}

TEST(ShapeInference, ReshapeWithZeroMinusOneAndDynamicBatch) {
  Builder b("reshape");
  auto x = b.input("x", {kDynamic, 4, 3, 2});
  EXPECT_EQ(b.value(b.reshape(x, {0, -1})).shape, (Shape{kDynamic, 24}));
  auto s = b.input("s", {5, 4, 3});
  EXPECT_EQ(b.value(b.reshape(s, {-1, 6})).shape, (Shape{10, 6}));
  EXPECT_ERROR(b.reshape(s, {7, -1}, "r"), "node 'r'", "cannot reshape");
}

TEST(ShapeInference, BroadcastingAdd) {
  Builder b("add");
  auto x = b.input("x", {2, 3, 4, 5});
  Tensor c(DType::f32, {3, 1, 1});
  EXPECT_EQ(b.value(b.add(x, b.parameter("c", c, false))).shape, (Shape{2, 3, 4, 5}));
}

TEST(WithBatch, ResolvesTheDynamicDimension) {
  const Graph g = with_batch(build_model("baseline"), 4);
  EXPECT_EQ(g.value("flatten").shape, (Shape{4, 141376}));
  EXPECT_ERROR(with_batch(build_model("baseline"), 0), "batch size must be positive");
}

TEST(Validate, RejectsDanglingInputsDuplicatesAndCycles) {
  Graph g;
  g.name = "g";
  g.inputs.push_back({"x", DType::f32, {1, 4}});
  g.nodes.push_back({"a", "Relu", {"x"}, {"y"}, {}});
  g.nodes.push_back({"b", "Relu", {"missing"}, {"z"}, {}});
  g.outputs = {"y"};
  EXPECT_ERROR(g.validate(), "node 'b'", "'missing'");

  g.nodes[1] = {"b", "Relu", {"x"}, {"y"}, {}};
  EXPECT_ERROR(g.validate(), "'y' is defined twice");

  g.nodes[0] = {"a", "Add", {"x", "w"}, {"v"}, {}};
  g.nodes[1] = {"b", "Relu", {"v"}, {"w"}, {}};
  g.outputs = {"w"};
  EXPECT_ERROR(g.validate(), "cycle");
}

TEST(Validate, SortsNodesTopologically) {
  Graph g;
  g.inputs.push_back({"x", DType::f32, {2, 3}});
  g.nodes.push_back({"second", "Sigmoid", {"h"}, {"y"}, {}});
  g.nodes.push_back({"first", "Relu", {"x"}, {"h"}, {}});
  g.outputs = {"y"};
  g.validate();
  EXPECT_EQ(g.nodes[0].name, "first");
  EXPECT_EQ(g.value("y").shape, (Shape{2, 3}));
}

TEST(Tensors, SizesAndBf16Rounding) {
  EXPECT_ERROR(Tensor(DType::f32, {1LL << 40, 1LL << 40}), "too many elements");
  EXPECT_EQ(to_float(to_bf16(1.0f)), 1.0f);
  EXPECT_EQ(to_float(to_bf16(1.00390625f)), 1.0f);  // halfway: rounds to even
  EXPECT_EQ(to_float(to_bf16(1.01171875f)), 1.015625f);
  EXPECT_TRUE(std::isnan(to_float(to_bf16(std::nanf("")))));
  EXPECT_EQ(parse_shape("3x100x100", "--input"), (Shape{3, 100, 100}));
  EXPECT_ERROR(parse_shape("3x0x2", "--input"), "--input", "3x0x2");
}

// ---- the op registry (graph/op_id.hpp, graph/ops/) ----

TEST(OpRegistry, EveryOpHasOneConsistentDefinition) {
  std::set<std::string_view> names;
  for (const auto id : all_op_ids()) {
    const OpDef& def = op_def(id);
    EXPECT_EQ(def.id, id);
    EXPECT_TRUE(names.insert(def.name()).second) << def.name();
    EXPECT_EQ(find_op(def.name()), id);
    EXPECT_FALSE(def.summary.empty()) << def.name();
    EXPECT_NE(def.infer, nullptr) << def.name();
    EXPECT_GE(def.min_inputs, 1u) << def.name();
    EXPECT_LE(def.min_inputs, def.max_inputs) << def.name();
    for (auto i : def.non_differentiable) EXPECT_LT(i, def.max_inputs) << def.name();
    std::set<std::string_view> attributes;
    for (const auto& a : def.attributes) {
      EXPECT_TRUE(attributes.insert(a.name).second) << def.name() << "." << a.name;
    }
    // IR-only ops (no ONNX opset) are exported rewritten or not at all.
    if (def.onnx_since == 0) {
      EXPECT_NE(def.export_rule, ExportRule::same_name) << def.name();
    }
    EXPECT_EQ(def.family == OpFamily::loss, def.export_rule == ExportRule::ir_only) << def.name();
    EXPECT_EQ(is_loss_op(std::string(def.name())), def.family == OpFamily::loss);
  }
  EXPECT_EQ(names.size(), kOpCount);
  EXPECT_FALSE(find_op("Gemm").has_value());
}

TEST(OpRegistry, AttributeDefaultsComeFromTheDefinition) {
  Node n{"lr", "LeakyRelu", {"x"}, {"y"}, {}};
  EXPECT_DOUBLE_EQ(attr_float(n, "alpha"), 0.01);
  n.attributes["alpha"] = 0.2;
  EXPECT_DOUBLE_EQ(attr_float(n, "alpha"), 0.2);
  EXPECT_ERROR(attr_float(n, "beta"), "node 'lr' (LeakyRelu): the op has no attribute 'beta'");
  Node pool{"p", "MaxPool", {"x"}, {"y"}, {}};
  EXPECT_EQ(attr_ints(pool, "strides"), (std::vector<std::int64_t>{1, 1}));
  EXPECT_EQ(attr_int(pool, "ceil_mode"), 0);
  pool.attributes["ceil_mode"] = std::string("yes");
  EXPECT_ERROR(attr_int(pool, "ceil_mode"), "must be an integer");
}

TEST(OpRegistry, GradientInputsFollowTheDefinitions) {
  const Node bn{"bn", "BatchNormalization", {"x", "s", "b", "m", "v"}, {"y"}, {}};
  EXPECT_TRUE(is_differentiable_input(bn, 0));
  EXPECT_TRUE(is_differentiable_input(bn, 2));
  EXPECT_FALSE(is_differentiable_input(bn, 3));
  EXPECT_FALSE(is_differentiable_input(bn, 4));
  const Node loss{"l", "SoftmaxCrossEntropy", {"z", "labels"}, {"loss"}, {}};
  EXPECT_TRUE(is_differentiable_input(loss, 0));
  EXPECT_FALSE(is_differentiable_input(loss, 1));
}

TEST(OpRegistry, UnknownOpsAreNamedWithTheKnownOnes) {
  const Node n{"g", "Gemm", {"a", "b"}, {"y"}, {}};
  EXPECT_ERROR(op_of(n), "node 'g': unknown op 'Gemm' (known: Add, AveragePool, ", "Transpose)");
  EXPECT_TRUE(n.is(OpId::Conv) == false);
  Builder b("ids");
  const auto x = b.input("x", {1, 4});
  EXPECT_EQ(b.node(OpId::Relu, {x}, {}, "r"), "r");
  EXPECT_TRUE(b.build().nodes.back().is(OpId::Relu));
}

}  // namespace
}  // namespace onnxforge
