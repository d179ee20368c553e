// ONNX import / export: round trips, op lowering and folding, the VGG16 forms users have, and
// bad input (each case created here). Numbers come from the reference backend (the oracle) or
// are computed by hand in the test.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <utility>

#include "backends/backend.hpp"
#include "core/error.hpp"
#include "graph/builder.hpp"
#include "graph/models.hpp"
#include "graph/passes.hpp"
#include "graph/summary.hpp"
#include "importers/onnx_export.hpp"
#include "importers/onnx_import.hpp"
#include "importers/tensor_io.hpp"
#include "tests/support/op_cases.hpp"
#include "tests/support/temp_dir.hpp"

namespace onnxforge {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using onnxforge::testing::TempDir;

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

Tensor random_tensor(Shape shape, std::uint64_t seed) {
  Tensor t(DType::f32, std::move(shape));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& v : t.data<float>()) v = u(rng);
  return t;
}

// Runs the graph's first output on `backend` for one input.
Tensor run(const Graph& graph, const std::string& backend, const Tensor& input) {
  auto program = make_backend(backend)->compile(graph, {});
  program->set_input(graph.inputs.at(0).name, input);
  program->forward(Mode::inference);
  return program->fetch(graph.outputs.at(0));
}

bool has_backend(const std::string& name) {
  const auto names = backend_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

// ---- a small ModelProto builder for hand-made cases --------------------------------------------
struct Model {
  onnx::ModelProto proto;
  onnx::GraphProto* graph;

  explicit Model(int opset = 13) {
    proto.set_ir_version(8);
    auto* o = proto.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    graph = proto.mutable_graph();
    graph->set_name("test");
  }
  onnx::ValueInfoProto* value(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list,
                              const std::string& name, const std::vector<std::int64_t>& dims,
                              int type = onnx::TensorProto::FLOAT) {
    auto* v = list->Add();
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(type);
    auto* shape = t->mutable_shape();
    for (auto d : dims) {
      auto* dim = shape->add_dim();
      if (d < 0) {
        dim->set_dim_param("batch");
      } else {
        dim->set_dim_value(d);
      }
    }
    return v;
  }
  Model& input(const std::string& name, const std::vector<std::int64_t>& dims,
               int type = onnx::TensorProto::FLOAT) {
    value(graph->mutable_input(), name, dims, type);
    return *this;
  }
  Model& output(const std::string& name, const std::vector<std::int64_t>& dims) {
    value(graph->mutable_output(), name, dims);
    return *this;
  }
  onnx::TensorProto* floats(const std::string& name, const std::vector<std::int64_t>& dims,
                            const std::vector<float>& values) {
    auto* t = graph->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
    return t;
  }
  onnx::TensorProto* ints(const std::string& name, const std::vector<std::int64_t>& values) {
    auto* t = graph->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<std::int64_t>(values.size()));
    for (auto v : values) t->add_int64_data(v);
    return t;
  }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "") {
    auto* n = graph->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? outputs.at(0) : name);
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outputs) n->add_output(o);
    return n;
  }
  std::string bytes() const {
    std::string s;
    proto.SerializeToString(&s);
    return s;
  }
};

void attr(onnx::NodeProto* n, const std::string& name, std::int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void attr(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
void attr(onnx::NodeProto* n, const std::string& name, const std::vector<std::int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (auto x : v) a->add_ints(x);
}

// The message of the Error that importing `bytes` (from a file in `dir`) throws.
std::string import_error(const TempDir& dir, const std::string& bytes, bool check = true) {
  const auto path = dir / "bad.onnx";
  write_file(path, bytes);
  ImportOptions options;
  options.check = check;
  try {
    import_onnx(path.string(), options);
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_THAT(message, HasSubstr(path.string()));
    EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
    return message;
  }
  ADD_FAILURE() << "import succeeded";
  return "";
}

// ---- round trips -------------------------------------------------------------------------------

void expect_round_trip(const Graph& original) {
  TempDir dir;
  const auto path = (dir / "model.onnx").string();
  export_onnx(original, path);
  const Graph again = import_onnx(path);
  ASSERT_EQ(again.nodes.size(), original.nodes.size());
  for (std::size_t i = 0; i < again.nodes.size(); ++i) {
    EXPECT_EQ(again.nodes[i].name, original.nodes[i].name);
    EXPECT_EQ(again.nodes[i].op, original.nodes[i].op);
    EXPECT_EQ(again.nodes[i].inputs, original.nodes[i].inputs);
  }
  ASSERT_EQ(again.initializers.size(), original.initializers.size());
  for (const auto& init : original.initializers) {
    const auto* other = again.find_initializer(init.name);
    ASSERT_NE(other, nullptr) << init.name;
    EXPECT_TRUE(other->value == init.value) << init.name;
    EXPECT_EQ(other->trainable, init.trainable) << init.name;
  }
  EXPECT_EQ(again.parameter_count(), original.parameter_count());
  EXPECT_EQ(again.trainable_parameter_count(), original.trainable_parameter_count());
  // Bit-identical outputs.
  const Shape shape = with_batch(original, 2).inputs[0].shape;
  const Tensor x = random_tensor(shape, 7);
  const Tensor a = run(with_batch(original, 2), "reference", x);
  const Tensor b = run(with_batch(again, 2), "reference", x);
  EXPECT_TRUE(a == b);
}

TEST(OnnxRoundTrip, BaselineIsBitIdentical) {
  expect_round_trip(build_model("baseline", {.input = {3, 20, 20}}));
}

TEST(OnnxRoundTrip, SmallVgg16WithTopIsBitIdentical) {
  ModelOptions o;
  o.input = {3, 32, 32};
  o.include_top = true;
  o.width = 0.0625;
  o.classes = 10;
  expect_round_trip(build_model("vgg16", o));
}

TEST(OnnxRoundTrip, FrozenFlagsBatchNormAndExtraOpsSurvive) {
  Builder b("mixed", 3);
  auto x = b.input("x", {kDynamic, 2, 6, 6});
  x = b.conv2d(x, {.filters = 4, .padding = Padding::same});
  x = b.batch_norm(x);
  x = b.leaky_relu(x, 0.2);
  x = b.node("Pad", {x},
             {{"pads", std::vector<std::int64_t>{0, 0, 1, 1, 0, 0, 0, 1}}, {"value", 0.5}});
  x = b.node("Clip", {x}, {{"min", -0.75}, {"max", 2.5}});
  x = b.node("Transpose", {x}, {{"perm", std::vector<std::int64_t>{0, 2, 3, 1}}});
  x = b.reshape(x, {0, -1});
  x = b.dense(x, 3);
  x = b.dropout(x, 0.25);
  x = b.node("LogSoftmax", {x}, {{"axis", std::int64_t{1}}});
  b.output(x);
  Graph g = b.build();
  g.find_initializer("conv2d/kernel")->trainable = false;
  expect_round_trip(g);
}

TEST(OnnxRoundTrip, MetadataSurvives) {
  Graph g = build_model("baseline");
  g.metadata["onnxforge.preprocess"] = "order=bgr scale=1 mean=1,2,3 std=1,1,1";
  g.metadata["author"] = "test";
  const Graph back = import_onnx_bytes(export_onnx_bytes(g));
  EXPECT_EQ(back.metadata, g.metadata);
}

TEST(OnnxRoundTrip, LossNodesAreDroppedOnExport) {
  Builder b("with_loss");
  auto x = b.input("x", {kDynamic, 4});
  auto labels = b.input("labels", {kDynamic, 1});
  auto logits = b.dense(x, 1);
  b.output(logits);
  b.output(b.node("BinaryCrossEntropyWithLogits", {logits, labels}, {}));
  const Graph g = import_onnx_bytes(export_onnx_bytes(b.build()));
  EXPECT_EQ(g.outputs, std::vector<std::string>{"dense"});
  EXPECT_EQ(g.inputs.size(), 1u);
}

// Slice, Expand, ReduceMean, ReduceSum and Resize are exported with their attributes as the
// inputs opset 13 wants (the ONNX checker accepts them) and import back to the same values.
TEST(OnnxRoundTrip, AttributeInputOpsOfTheCatalogueComputeTheSame) {
  int checked = 0;
  for (const auto& c : testing::op_cases()) {
    const std::string op = c.name.substr(0, c.name.find('/'));
    if (op != "Slice" && op != "Expand" && op != "ReduceMean" && op != "ReduceSum" &&
        op != "Resize") {
      continue;
    }
    SCOPED_TRACE(c.name);
    const Graph again = import_onnx_bytes(export_onnx_bytes(c.graph));
    ASSERT_EQ(again.nodes.size(), c.graph.nodes.size());
    Random rng(11);
    const auto feeds = testing::random_feeds(c.graph, rng);
    auto outputs_of = [&](const Graph& g) {
      auto program = make_backend("reference")->compile(g, {});
      for (const auto& [name, value] : feeds) program->set_input(name, value);
      program->forward(Mode::inference);
      std::vector<Tensor> out;
      for (const auto& o : g.outputs) out.push_back(program->fetch(o));
      return out;
    };
    const auto want = outputs_of(c.graph);
    const auto got = outputs_of(again);
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(got[i] == want[i]) << i;
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

TEST(OnnxRoundTrip, ExternalDataIsWrittenAndRead) {
  TempDir dir;
  const Graph g = build_model("baseline", {.input = {3, 12, 12}});
  const auto path = (dir / "ext.onnx").string();
  export_onnx(g, path, {.external_data = true});
  EXPECT_TRUE(fs::exists(dir / "ext.data"));
  EXPECT_LT(fs::file_size(path), 4096u);
  const Graph again = import_onnx(path);
  for (const auto& init : g.initializers) {
    EXPECT_TRUE(again.find_initializer(init.name)->value == init.value) << init.name;
  }
}

// ---- lowering and folding
// ------------------------------------------------------------------------

TEST(OnnxImport, GemmVariantsMatchHandComputation) {
  // Y = alpha * A^T * B + beta * C with A [3,2] (transA), B [3,4], C [1,4].
  const std::vector<float> a{1, 2, 3, 4, 5, 6};
  const std::vector<float> bv{1, 0, -1, 2, 0.5f, 1, 1, -2, 3, 1, 0, 1};
  const std::vector<float> c{0.5f, -1, 2, 0};
  Model m;
  m.input("A", {3, 2}).output("Y", {2, 4});
  m.floats("B", {3, 4}, bv);
  m.floats("C", {1, 4}, c);
  auto* n = m.node("Gemm", {"A", "B", "C"}, {"Y"});
  attr(n, "transA", std::int64_t{1});
  attr(n, "alpha", 0.5f);
  attr(n, "beta", 2.0f);
  const Graph g = import_onnx_bytes(m.bytes());
  const Tensor y = run(g, "reference", Tensor::from<float>({3, 2}, a));
  ASSERT_EQ(y.shape(), (Shape{2, 4}));
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 4; ++j) {
      double sum = 0;
      for (int k = 0; k < 3; ++k)
        sum += a[static_cast<std::size_t>(k * 2 + i)] * bv[static_cast<std::size_t>(k * 4 + j)];
      EXPECT_NEAR(y.value(i * 4 + j), 0.5 * sum + 2.0 * c[static_cast<std::size_t>(j)], 1e-5);
    }
  }
}

TEST(OnnxImport, DynamicBatchShapeChainFoldsIntoReshape) {
  // PyTorch's x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
  Model m(13);
  m.input("x", {-1, 2, 3, 3}).output("y", {-1, 18});
  m.ints("zero", {0});
  m.graph->mutable_initializer(0)->clear_dims();  // a scalar index
  m.ints("axes", {0});
  m.ints("minus_one", {-1});
  m.node("Shape", {"x"}, {"s"});
  m.node("Gather", {"s", "zero"}, {"n"});
  m.node("Unsqueeze", {"n", "axes"}, {"n1"});
  attr(m.node("Concat", {"n1", "minus_one"}, {"target"}), "axis", std::int64_t{0});
  m.node("Reshape", {"x", "target"}, {"flat"});
  m.node("Relu", {"flat"}, {"y"});
  const Graph g = import_onnx_bytes(m.bytes());
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.nodes[0].op, "Reshape");
  EXPECT_EQ(g.value("y").shape, (Shape{kDynamic, 18}));
  const Tensor x = random_tensor({2, 2, 3, 3}, 1);
  const Tensor y = run(with_batch(g, 2), "reference", x);
  EXPECT_EQ(y.shape(), (Shape{2, 18}));
}

TEST(OnnxImport, SqueezeUnsqueezeFlattenIdentityAndConstantsFold) {
  Model m(11);
  m.input("x", {1, 4}).output("y", {1, 4});
  auto* c = m.node("Constant", {}, {"k"});
  auto* a = c->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  a->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  a->mutable_t()->add_dims(4);
  for (float v : {1.f, 2.f, 3.f, 4.f}) a->mutable_t()->add_float_data(v);
  m.node("Identity", {"k"}, {"k2"});
  attr(m.node("Unsqueeze", {"k2"}, {"k3"}), "axes", std::vector<std::int64_t>{0});
  attr(m.node("Unsqueeze", {"x"}, {"x3"}), "axes", std::vector<std::int64_t>{2});
  attr(m.node("Squeeze", {"x3"}, {"x2"}), "axes", std::vector<std::int64_t>{2});
  m.node("Mul", {"x2", "k3"}, {"y"});
  const Graph g = import_onnx_bytes(m.bytes());
  // The constant chain folds; Unsqueeze/Squeeze on the input become Reshapes.
  for (const auto& n : g.nodes) EXPECT_TRUE(n.op == "Reshape" || n.op == "Mul") << n.op;
  const Tensor y = run(g, "reference", Tensor::from<float>({1, 4}, std::vector<float>{1, 1, 2, 2}));
  EXPECT_EQ(y.to_doubles(), (std::vector<double>{1, 2, 6, 8}));
}

TEST(OnnxImport, MatMulAddBecomesDenseWithBias) {
  Model m(13);
  m.input("x", {-1, 3}).output("y", {-1, 2});
  m.floats("W", {3, 2}, {1, 2, 3, 4, 5, 6});
  m.floats("b", {2}, {0.5f, -0.5f});
  m.node("MatMul", {"x", "W"}, {"h"});
  m.node("Add", {"h", "b"}, {"y"});
  const Graph g = import_onnx_bytes(m.bytes());
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].op, "Dense");
  EXPECT_EQ(g.nodes[0].inputs.size(), 3u);
  EXPECT_TRUE(g.find_initializer("b")->trainable);
  // The transposed weight stays trainable like the file's W.
  EXPECT_TRUE(g.find_initializer(g.nodes[0].inputs[1])->trainable);
  const Tensor y =
      run(with_batch(g, 1), "reference", Tensor::from<float>({1, 3}, std::vector<float>{1, 1, 1}));
  EXPECT_EQ(y.to_doubles(), (std::vector<double>{9.5, 11.5}));
}

// A file with an op onnxforge cannot map: `summary` still prints the table, the node in its
// place with the reason, and the nodes after it mapped on a placeholder of its inferred shape; a
// cut before it imports without it.
Model with_unsupported_op() {
  Model m(13);
  m.input("x", {-1, 4}).output("y", {-1, 4});
  m.floats("b", {4}, {1, 2, 3, 4});
  m.node("Relu", {"x"}, {"r"}, "first_relu");
  m.node("Erf", {"r"}, {"e"}, "the_erf");
  m.node("Add", {"e", "b"}, {"a"}, "after_add");
  m.node("Relu", {"a"}, {"y"}, "last_relu");
  return m;
}

TEST(OnnxImport, UnsupportedNodesAreMarkedInTheSummary) {
  const Model m = with_unsupported_op();
  EXPECT_THAT([&] { import_onnx_bytes(m.bytes()); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr(
                  "node 'the_erf' (Erf, opset 13): op 'Erf' is not supported at opset 13")));
  std::vector<UnsupportedNode> unsupported;
  ImportOptions options;
  options.unsupported = &unsupported;
  const Graph g = import_onnx_bytes(m.bytes(), "", options);
  ASSERT_EQ(unsupported.size(), 1u);
  EXPECT_EQ(unsupported[0].name, "the_erf");
  EXPECT_EQ(unsupported[0].reason, "op 'Erf' is not supported at opset 13");
  EXPECT_EQ(unsupported[0].position, 1u);
  EXPECT_EQ(g.nodes.size(), 3u);  // first_relu, after_add, last_relu
  const std::string table = summary(g, unsupported);
  const auto erf = table.find("the_erf");
  ASSERT_NE(erf, std::string::npos) << table;
  EXPECT_LT(table.find("first_relu"), erf) << table;
  EXPECT_GT(table.find("after_add"), erf) << table;
  EXPECT_NE(table.find("Erf    [N,4]               0  not supported: op 'Erf' is not supported "
                       "at opset 13"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("1 node is not supported"), std::string::npos) << table;
  EXPECT_EQ(table.find("e           Input"), std::string::npos) << table;  // no placeholder row

  // Cut before it: the ops after the cut are never read.
  ImportOptions cut;
  cut.cut_at = "first_relu";
  const Graph head = import_onnx_bytes(m.bytes(), "", cut);
  EXPECT_EQ(head.nodes.size(), 1u);
  EXPECT_EQ(head.outputs, std::vector<std::string>{"r"});
}

TEST(OnnxImport, PerChannelMulAddBecomesBatchNormalization) {
  Model m(13);
  m.input("x", {-1, 3, 1, 2}).output("y", {-1, 3, 1, 2});
  m.floats("s", {1, 3, 1, 1}, {2, -1, 0.5f});
  m.floats("b", {3, 1, 1}, {1, 2, 3});
  m.node("Mul", {"x", "s"}, {"m"}, "bn/mul");
  m.node("Add", {"m", "b"}, {"y"}, "bn/add");
  const Graph g = import_onnx_bytes(m.bytes());
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].op, "BatchNormalization");
  EXPECT_EQ(g.nodes[0].outputs, std::vector<std::string>{"y"});
  EXPECT_TRUE(g.find_initializer(g.nodes[0].inputs[1])->trainable);
  EXPECT_FALSE(g.find_initializer(g.nodes[0].inputs[3])->trainable);
  EXPECT_FALSE(g.find_initializer("s"));
  const Tensor y = run(with_batch(g, 1), "reference",
                       Tensor::from<float>({1, 3, 1, 2}, std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(y.to_doubles(), (std::vector<double>{3, 5, -1, -2, 5.5, 6}));
  // A constant that is not per channel stays a Mul.
  Model other(13);
  other.input("x", {-1, 3, 1, 2}).output("y", {-1, 3, 1, 2});
  other.floats("s", {1, 1, 1, 2}, {2, 3});
  other.floats("b", {3, 1, 1}, {1, 2, 3});
  other.node("Mul", {"x", "s"}, {"m"});
  other.node("Add", {"m", "b"}, {"y"});
  EXPECT_EQ(import_onnx_bytes(other.bytes()).nodes[0].op, "Mul");
}

// tf2onnx's Flatten (Shape -> Slice -> Concat -> Reshape) with a dynamic batch, Split of a shape
// vector and ConstantOfShape fold at import; Slice of a run-time value is the IR's Slice.
TEST(OnnxImport, SliceSplitAndConstantOfShapeFoldShapes) {
  Model m(13);
  m.input("x", {-1, 2, 3}).output("y", {-1, 2});
  m.ints("zero", {0});
  m.ints("one", {1});
  m.ints("minus_one", {-1});
  m.ints("last", {-1});
  m.ints("end", {std::numeric_limits<std::int64_t>::max()});
  m.node("Shape", {"x"}, {"s"});
  m.node("Slice", {"s", "zero", "one", "zero"}, {"batch"});  // [N]
  m.node("Split", {"s"}, {"s0", "s12"}, "split");            // sizes [1, 2], added below
  m.ints("sizes", {1, 2});
  m.graph->mutable_node(2)->add_input("sizes");
  m.node("Concat", {"batch", "minus_one"}, {"flat_shape"});
  attr(m.graph->mutable_node(3), "axis", std::int64_t{0});
  m.node("Reshape", {"x", "flat_shape"}, {"flat"});           // [N, 6]
  m.node("ConstantOfShape", {"s12"}, {"zeros"});              // [2, 3] of 0
  m.node("Slice", {"flat", "last", "end", "one"}, {"tail"});  // [N, 1]: flat[:, -1:]
  m.node("Slice", {"flat", "zero", "one", "one"}, {"head"});  // [N, 1]
  m.node("Concat", {"head", "tail"}, {"y"});
  attr(m.graph->mutable_node(8), "axis", std::int64_t{1});
  const Graph g = import_onnx_bytes(m.bytes());
  for (const auto& node : g.nodes) {
    EXPECT_TRUE(node.op == "Reshape" || node.op == "Slice" || node.op == "Concat") << node.op;
  }
  const Tensor y = run(with_batch(g, 2), "reference",
                       Tensor::from<float>({2, 2, 3}, std::vector<float>{0, 1, 2, 3, 4, 5,  //
                                                                         6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(y.to_doubles(), (std::vector<double>{0, 5, 6, 11}));
}

TEST(OnnxImport, LegacySoftmaxFlattensTrailingAxes) {
  Model m(11);
  m.input("x", {2, 2, 2}).output("y", {2, 2, 2});
  attr(m.node("Softmax", {"x"}, {"y"}), "axis", std::int64_t{1});
  const Graph g = import_onnx_bytes(m.bytes());
  const Tensor y = run(g, "reference",
                       Tensor::from<float>({2, 2, 2}, std::vector<float>{0, 0, 0, 0, 1, 1, 1, 1}));
  // Each batch row of 4 values is one distribution.
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(y.value(i), 0.25, 1e-6);
}

TEST(OnnxImport, BatchNormStatisticsAreNotTrainable) {
  Model m(7);
  m.input("x", {1, 2, 2, 2}).output("y", {1, 2, 2, 2});
  m.floats("s", {2}, {1, 1});
  m.floats("b", {2}, {0, 0});
  m.floats("mean", {2}, {0, 0});
  m.floats("var", {2}, {1, 1});
  m.node("BatchNormalization", {"x", "s", "b", "mean", "var"}, {"y"});
  const Graph g = import_onnx_bytes(m.bytes());
  EXPECT_TRUE(g.find_initializer("s")->trainable);
  EXPECT_FALSE(g.find_initializer("mean")->trainable);
  EXPECT_FALSE(g.find_initializer("var")->trainable);
}

// ---- passes
// --------------------------------------------------------------------------------------

TEST(GraphPasses, FoldBatchNormKeepsOutputs) {
  Builder b("bn", 5);
  auto x = b.input("x", {1, 3, 8, 8});
  x = b.conv2d(x, {.filters = 4, .padding = Padding::same});
  x = b.batch_norm(x);
  b.output(b.relu(x));
  Graph g = b.build();
  // Non-trivial statistics.
  for (auto& init : g.initializers) {
    if (init.name.find("batch_normalization") == std::string::npos) continue;
    auto v = init.value.data<float>();
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.5f + 0.25f * static_cast<float>(i);
  }
  const Graph folded = fold_batchnorm(g);
  for (const auto& n : folded.nodes) EXPECT_NE(n.op, "BatchNormalization");
  const Tensor in = random_tensor({1, 3, 8, 8}, 3);
  const Tensor a = run(g, "reference", in);
  const Tensor c = run(folded, "reference", in);
  for (std::int64_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a.value(i), c.value(i), 1e-5);
}

TEST(GraphPasses, CutAtNodeAndNewInputShape) {
  const Graph g = build_model(
      "vgg16", {.input = {3, 64, 64}, .include_top = true, .classes = 5, .width = 0.0625});
  Graph cut = cut_at(g, "block5_pool");
  EXPECT_EQ(cut.outputs, std::vector<std::string>{"block5_pool"});
  for (const auto& n : cut.nodes) EXPECT_NE(n.op, "Dense");
  cut = with_input_shape(cut, "image", {kDynamic, 3, 100, 100});
  EXPECT_EQ(cut.value("block5_pool").shape, (Shape{kDynamic, 32, 3, 3}));
  EXPECT_THAT([&] { cut_at(g, "nope"); }, ::testing::Throws<Error>());
}

TEST(GraphPasses, FoldConstantsReplacesConstantSubgraphs) {
  Builder b("fold");
  auto x = b.input("x", {1, 2});
  auto c = b.parameter("c", Tensor::from<float>({2}, std::vector<float>{1, 2}), false);
  auto d = b.node("Mul", {c, c}, {});
  b.output(b.add(x, d));
  const Graph g = fold_constants(b.build());
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].op, "Add");
}

// ---- tensors in files
// ----------------------------------------------------------------------------

TEST(TensorFiles, NpyRoundTripAndPb) {
  TempDir dir;
  const Tensor t = random_tensor({2, 3, 4}, 11);
  write_npy((dir / "t.npy").string(), t);
  EXPECT_TRUE(read_npy((dir / "t.npy").string()) == t);
  const Tensor v = Tensor::from<std::int64_t>({3}, std::vector<std::int64_t>{1, -2, 3});
  write_npy((dir / "v.npy").string(), v);
  EXPECT_TRUE(read_tensor_file((dir / "v.npy").string()) == v);
  onnx::TensorProto p;
  p.set_data_type(onnx::TensorProto::FLOAT);
  p.add_dims(2);
  p.add_float_data(1.5f);
  p.add_float_data(-2.f);
  write_file(dir / "t.pb", p.SerializeAsString());
  EXPECT_EQ(read_tensor_file((dir / "t.pb").string()).to_doubles(), (std::vector<double>{1.5, -2}));
  // A truncated .npy is an error, not a crash.
  auto bytes = std::string(200, 'x');
  std::ifstream in(dir / "t.npy", std::ios::binary);
  in.read(bytes.data(), 100);
  write_file(dir / "short.npy", bytes.substr(0, 100));
  EXPECT_THROW(read_npy((dir / "short.npy").string()), Error);
}

// ---- bad input: one clear error each ------------------------------------------------------------

Model tiny() {
  Model m(13);
  m.input("x", {1, 2}).output("y", {1, 3});
  m.floats("W", {3, 2}, {1, 2, 3, 4, 5, 6});
  auto* n = m.node("Gemm", {"x", "W"}, {"y"});
  attr(n, "transB", std::int64_t{1});
  return m;
}

TEST(OnnxBadInput, TruncatedFile) {
  TempDir dir;
  const auto bytes = export_onnx_bytes(build_model("baseline", {.input = {3, 8, 8}}));
  EXPECT_THAT(import_error(dir, bytes.substr(0, bytes.size() / 2)), HasSubstr("cannot parse"));
  EXPECT_THAT(import_error(dir, "not a model at all"), HasSubstr("cannot parse"));
}

TEST(OnnxBadInput, NegativeZeroAndHugeDims) {
  TempDir dir;
  {
    Model m = tiny();
    m.graph->mutable_initializer(0)->set_dims(0, -3);
    EXPECT_THAT(import_error(dir, m.bytes(), false), HasSubstr("negative dimension"));
  }
  // The input's second dimension zero, then 2^40.
  for (const auto& [dim, expected] : {std::pair<std::int64_t, const char*>{0, "must be positive"},
                                      {std::int64_t{1} << 40, "huge dimension"}}) {
    Model m = tiny();
    m.graph->mutable_input(0)
        ->mutable_type()
        ->mutable_tensor_type()
        ->mutable_shape()
        ->mutable_dim(1)
        ->set_dim_value(dim);
    EXPECT_THAT(import_error(dir, m.bytes(), false), HasSubstr(expected));
  }
  {
    Model m = tiny();
    auto* w = m.graph->mutable_initializer(0);
    w->set_dims(0, std::int64_t{1} << 20);
    w->set_dims(1, std::int64_t{1} << 20);
    EXPECT_THAT(import_error(dir, m.bytes(), false), HasSubstr("1 TiB"));
  }
}

TEST(OnnxBadInput, RawDataOfTheWrongSize) {
  TempDir dir;
  Model m = tiny();
  m.graph->mutable_initializer(0)->mutable_raw_data()->resize(10);
  EXPECT_THAT(import_error(dir, m.bytes(), false), HasSubstr("raw_data holds 10 bytes"));
  Model typed = tiny();
  auto* w = typed.graph->mutable_initializer(0);
  w->clear_raw_data();
  w->add_float_data(1.0f);
  EXPECT_THAT(import_error(dir, typed.bytes(), false), HasSubstr("float_data holds 1 values"));
}

TEST(OnnxBadInput, DimsTimesDtypeOverflow) {
  TempDir dir;
  Model m = tiny();
  auto* w = m.graph->mutable_initializer(0);
  w->set_data_type(onnx::TensorProto::DOUBLE);
  w->set_dims(0, std::int64_t{1} << 31);
  w->set_dims(1, std::int64_t{1} << 31);  // 2^62 elements x 8 bytes
  EXPECT_THAT(import_error(dir, m.bytes(), false), HasSubstr("1 TiB"));
  w->set_dims(0, std::int64_t{1} << 40);
  w->set_dims(1, std::int64_t{1} << 40);  // the element count itself overflows
  EXPECT_THAT(import_error(dir, m.bytes(), false), HasSubstr("overflow"));
}

TEST(OnnxBadInput, DanglingInputsAndCycles) {
  TempDir dir;
  {
    Model m = tiny();
    m.node("Relu", {"nowhere"}, {"z"});
    EXPECT_THAT(import_error(dir, m.bytes(), false), HasSubstr("'nowhere'"));
    EXPECT_THAT(import_error(dir, m.bytes(), true), HasSubstr("checker"));
  }
  {
    Model m(13);
    m.input("x", {1, 2}).output("y", {1, 2});
    m.node("Add", {"x", "b"}, {"a"});
    m.node("Relu", {"a"}, {"b"});
    m.node("Relu", {"a"}, {"y"});
    EXPECT_THAT(import_error(dir, m.bytes(), false), HasSubstr("cycle"));
    EXPECT_THAT(import_error(dir, m.bytes(), true), HasSubstr("checker"));
  }
}

TEST(OnnxBadInput, UnknownDomainOpAndAttribute) {
  TempDir dir;
  {
    Model m = tiny();
    auto* o = m.proto.add_opset_import();
    o->set_domain("com.example");
    o->set_version(1);
    m.node("FancyOp", {"y"}, {"z"})->set_domain("com.example");
    EXPECT_THAT(import_error(dir, m.bytes()), HasSubstr("domain 'com.example'"));
  }
  {
    Model m = tiny();
    m.node("Elu", {"y"}, {"z"}, "my_elu");
    const auto message = import_error(dir, m.bytes());
    EXPECT_THAT(message, HasSubstr("node 'my_elu' (Elu, opset 13)"));
    EXPECT_THAT(message, HasSubstr("not supported"));
  }
  {
    Model m(7);
    m.input("x", {1, 2, 2, 2}).output("y", {1, 2, 2, 2});
    for (const char* p : {"s", "b", "m", "v"}) m.floats(p, {2}, {1, 1});
    attr(m.node("BatchNormalization", {"x", "s", "b", "m", "v"}, {"y"}, "bn"), "spatial",
         std::int64_t{0});
    const auto message = import_error(dir, m.bytes());
    EXPECT_THAT(message, HasSubstr("node 'bn' (BatchNormalization, opset 7)"));
    EXPECT_THAT(message, HasSubstr("attribute 'spatial'"));
  }
}

TEST(OnnxBadInput, ExternalDataEscapes) {
  TempDir dir;
  fs::create_directories(dir / "model");
  fs::create_directories(dir / "outside");
  const std::string weights(24, '\0');  // 3x2 floats
  write_file(dir / "outside" / "w.bin", weights);
  write_file(dir / "model" / "w.bin", weights);
  auto model_with = [&](const std::string& location, const std::string& length = "") {
    Model m = tiny();
    auto* w = m.graph->mutable_initializer(0);
    w->clear_raw_data();
    w->set_data_location(onnx::TensorProto::EXTERNAL);
    auto* e = w->add_external_data();
    e->set_key("location");
    e->set_value(location);
    if (!length.empty()) {
      auto* l = w->add_external_data();
      l->set_key("length");
      l->set_value(length);
    }
    return m.bytes();
  };
  auto error = [&](const std::string& bytes) -> std::string {
    const auto path = dir / "model" / "m.onnx";
    write_file(path, bytes);
    try {
      import_onnx(path.string());
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_THAT(error(model_with((dir / "outside" / "w.bin").string())), HasSubstr("relative"));
  EXPECT_THAT(error(model_with("../outside/w.bin")), HasSubstr("'..'"));
  fs::create_symlink(dir / "outside" / "w.bin", dir / "model" / "link.bin");
  EXPECT_THAT(error(model_with("link.bin")), HasSubstr("outside the model's folder"));
  fs::create_directory_symlink(dir / "outside", dir / "model" / "dirlink");
  EXPECT_THAT(error(model_with("dirlink/w.bin")), HasSubstr("outside the model's folder"));
  EXPECT_THAT(error(model_with("missing.bin")), HasSubstr("does not exist"));
  EXPECT_THAT(error(model_with("w.bin", "4096")), HasSubstr("holds 4096 bytes"));
  write_file(dir / "model" / "short.bin", std::string(8, '\0'));
  EXPECT_THAT(error(model_with("short.bin")), HasSubstr("holds 8 bytes"));
  // Inside the folder it works.
  EXPECT_EQ(error(model_with("w.bin")), "no error");
}

TEST(OnnxBadInput, MutatedBytesNeverCrash) {
  // Random byte flips and truncations of a valid model: each import either works or throws
  // Error (std::exception at worst), with the checker on and off.
  Builder b("fuzz", 1);
  auto x = b.input("x", {kDynamic, 2, 6, 6});
  x = b.relu(b.conv2d(x, {.filters = 3, .padding = Padding::same}));
  x = b.batch_norm(b.max_pool(x));
  b.output(b.softmax(b.dense(b.flatten(x), 4)));
  const std::string good = export_onnx_bytes(b.build());
  // ONNXFORGE_FUZZ_ROUNDS / ONNXFORGE_FUZZ_SEED run a longer search by hand.
  const char* rounds_env = std::getenv("ONNXFORGE_FUZZ_ROUNDS");
  const char* seed_env = std::getenv("ONNXFORGE_FUZZ_SEED");
  const int rounds = rounds_env ? std::atoi(rounds_env) : 300;
  std::mt19937 rng(seed_env ? static_cast<unsigned>(std::atoi(seed_env)) : 5u);
  int threw = 0;
  for (int round = 0; round < rounds; ++round) {
    std::string bytes = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      bytes[rng() % bytes.size()] = static_cast<char>(rng() & 0xff);
    }
    if (round % 5 == 0) bytes.resize(rng() % bytes.size());
    ImportOptions options;
    options.check = round % 2 == 0;
    try {
      import_onnx_bytes(bytes, "", options);
    } catch (const std::exception&) {
      ++threw;
    }
  }
  EXPECT_GT(threw, 0);
}

// ---- VGG16 as users have it -------------------------------------------------------------------

const char* kPython = "/usr/bin/python3";

// Runs the fixture script; false (with a reason) when python3-onnx is missing.
bool make_fixtures(const fs::path& dir, const std::string& args, std::string* why) {
  if (!fs::exists(kPython) ||
      std::system((std::string(kPython) + " -c 'import onnx, numpy' 2>/dev/null").c_str()) != 0) {
    *why = "needs /usr/bin/python3 with python3-onnx";
    return false;
  }
  const std::string script =
      std::string(ONNXFORGE_SOURCE_DIR) + "/tests/importers/make_vgg16_fixtures.py";
  const std::string command =
      std::string(kPython) + " " + script + " " + dir.string() + " " + args + " > /dev/null";
  if (std::system(command.c_str()) != 0) {
    *why = "fixture script failed: " + command;
    return false;
  }
  return true;
}

void expect_close(const Tensor& a, const Tensor& b, double tolerance) {
  ASSERT_EQ(a.shape(), b.shape());
  double scale = 0;
  for (std::int64_t i = 0; i < b.size(); ++i) scale = std::max(scale, std::abs(b.value(i)));
  for (std::int64_t i = 0; i < b.size(); ++i) {
    ASSERT_NEAR(a.value(i), b.value(i), tolerance * std::max(scale, 1e-6)) << "element " << i;
  }
}

// Reference vs oneDNN on a graph whose nodes oneDNN may not all run yet.
void expect_backends_agree(const Graph& graph, const Tensor& input) {
  const Tensor expected = run(graph, "reference", input);
  if (!has_backend("onednn")) GTEST_SKIP() << "no onednn backend in this build";
  const auto onednn = make_backend("onednn");
  for (const auto& n : graph.nodes) {
    const auto support = onednn->supports(graph, n, {});
    if (!support.ok) {
      GTEST_SKIP() << "onednn cannot run node '" << n.name << "' (" << n.op
                   << ") yet: " << support.reason;
    }
  }
  expect_close(run(graph, "onednn", input), expected, 1e-4);
}

class Vgg16Fixtures : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    if (!make_fixtures(dir_->path(), "--width 0.125", &why_)) why_ += " ";
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!why_.empty()) GTEST_SKIP() << why_;
  }
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }
  static TempDir* dir_;
  static std::string why_;
};
TempDir* Vgg16Fixtures::dir_ = nullptr;
std::string Vgg16Fixtures::why_;

TEST_F(Vgg16Fixtures, ZooFormImportsCutsTakes100x100AndBackendsAgree) {
  Graph zoo = import_onnx(path("vgg16_zoo.onnx"));
  EXPECT_EQ(zoo.inputs.size(), 1u);  // initializers listed as inputs are not inputs
  EXPECT_EQ(zoo.value(zoo.outputs[0]).shape, (Shape{1, 1000}));
  zoo = with_input_shape(cut_at(zoo, "vgg0_pool4"), "data", {1, 3, 100, 100});
  EXPECT_EQ(zoo.value(zoo.outputs[0]).shape, (Shape{1, 64, 3, 3}));
  // The same in one step at import (what `onnxforge convert --cut-at --input-shape` does).
  ImportOptions options;
  options.cut_at = "vgg0_pool4";
  options.input_shapes["data"] = {kDynamic, 3, 100, 100};
  const Graph direct = import_onnx(path("vgg16_zoo.onnx"), options);
  EXPECT_EQ(direct.nodes.size(), zoo.nodes.size());
  EXPECT_EQ(direct.parameter_count(), zoo.parameter_count());
  EXPECT_EQ(direct.value(direct.outputs[0]).shape, (Shape{kDynamic, 64, 3, 3}));
  expect_backends_agree(zoo, random_tensor({1, 3, 100, 100}, 21));
}

TEST_F(Vgg16Fixtures, KerasFormImportsCutsTakes100x100AndBackendsAgree) {
  Graph keras = import_onnx(path("vgg16_keras.onnx"));
  EXPECT_EQ(keras.inputs[0].shape, (Shape{kDynamic, 224, 224, 3}));
  EXPECT_EQ(keras.value("predictions").shape, (Shape{kDynamic, 1000}));
  std::size_t dense = 0;
  for (const auto& n : keras.nodes) {
    EXPECT_NE(n.op, "MatMul");
    EXPECT_NE(n.op, "Shape");
    dense += n.op == "Dense";
  }
  EXPECT_EQ(dense, 3u);
  keras = with_input_shape(cut_at(keras, "vgg16/block5_pool/MaxPool"), "input_1", {2, 100, 100, 3});
  EXPECT_EQ(keras.value(keras.outputs[0]).shape, (Shape{2, 64, 3, 3}));
  // Export and import again: still the same graph.
  const Graph again = import_onnx_bytes(export_onnx_bytes(keras));
  EXPECT_EQ(again.nodes.size(), keras.nodes.size());
  const Tensor x = random_tensor({2, 100, 100, 3}, 22);
  const Tensor expected = run(keras, "reference", x);
  EXPECT_TRUE(run(again, "reference", x) == expected);
  // Fed NCHW batches instead (what the data pipeline gives): the input Transpose goes.
  const Graph nchw = absorb_input_transpose(keras);
  EXPECT_EQ(nchw.inputs[0].shape, (Shape{2, 3, 100, 100}));
  for (const auto& n : nchw.nodes) EXPECT_NE(n.op, "Transpose");
  const Tensor x_nchw = transpose_tensor(x, {0, 3, 1, 2});
  EXPECT_TRUE(run(nchw, "reference", x_nchw) == expected);
  // oneDNN runs the NCHW form (the NHWC one needs a Transpose lowering there).
  expect_backends_agree(nchw, x_nchw);
}

TEST(Vgg16FullSize, ZooModelImportsWithTheRealParameterCount) {
  TempDir dir(true);
  std::string why;
  if (!make_fixtures(dir.path(), "--forms zoo", &why)) GTEST_SKIP() << why;
  const auto start = std::chrono::steady_clock::now();
  const Graph g = import_onnx((dir / "vgg16_zoo.onnx").string());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(g.parameter_count(), 138357544);
  EXPECT_EQ(g.trainable_parameter_count(), 138357544);
  EXPECT_EQ(g.value("vgg0_pool4_fwd").shape, (Shape{1, 512, 7, 7}));
  const Graph head = with_input_shape(cut_at(g, "vgg0_pool4"), "data", {1, 3, 100, 100});
  EXPECT_EQ(head.parameter_count(), 14714688);  // the 13 convolutions
  std::printf("full-size VGG16 import: %.1f s\n", seconds);
}

}  // namespace
}  // namespace onnxforge
