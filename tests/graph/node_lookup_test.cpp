// Finding the cut node by the names users know (graph/node_lookup.hpp): exact names, Keras layer
// names in tf2onnx's node names, torchvision module paths in torch.onnx's, last-pool, and the
// "did you mean" of a name that matches nothing.
#include "graph/node_lookup.hpp"

#include <gtest/gtest.h>

#include "core/error.hpp"

namespace onnxforge {
namespace {

std::string error_of(const std::vector<NodeRef>& nodes, const std::string& query) {
  try {
    find_node_for_cut(nodes, query, "cut");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The node names tf2onnx 1.17 gives a Keras 3 VGG16 (abridged).
const std::vector<NodeRef> kKeras = {
    {"functional_1/block1_conv1_1/convolution", "Conv", {"c1"}},
    {"functional_1/block1_conv1_1/Relu", "Relu", {"r1"}},
    {"functional_1/block5_pool_1/MaxPool2d", "MaxPool", {"p5"}},
    {"functional_1/flatten_1/Shape", "Shape", {"s"}},
    {"functional_1/flatten_1/Reshape", "Reshape", {"f"}},
    {"functional_1/fc1_1/MatMul", "MatMul", {"m"}},
    {"functional_1/fc1_1/Add", "Add", {"a"}},
    {"functional_1/predictions_1/Softmax", "Softmax", {"y"}},
};

// torch.onnx 1.13's names for torchvision's vgg16 (abridged).
const std::vector<NodeRef> kTorch = {
    {"/features/features.0/Conv", "Conv", {"/features/features.0/Conv_output_0"}},
    {"/features/features.1/Relu", "Relu", {"/features/features.1/Relu_output_0"}},
    {"/features/features.30/MaxPool", "MaxPool", {"/features/features.30/MaxPool_output_0"}},
    {"/avgpool/AveragePool", "AveragePool", {"/avgpool/AveragePool_output_0"}},
    {"/Flatten", "Flatten", {"/Flatten_output_0"}},
    {"/classifier/classifier.0/Gemm", "Gemm", {"/classifier/classifier.0/Gemm_output_0"}},
};

TEST(NodeLookup, ExactNodeAndValueNames) {
  EXPECT_EQ(find_node_for_cut(kKeras, "functional_1/block5_pool_1/MaxPool2d", "cut"), 2u);
  EXPECT_EQ(find_node_for_cut(kKeras, "p5", "cut"), 2u);
  EXPECT_EQ(find_node_for_cut(kTorch, "/features/features.30/MaxPool_output_0", "cut"), 2u);
}

TEST(NodeLookup, KerasLayerNamesFindTf2onnxNodes) {
  EXPECT_EQ(find_node_for_cut(kKeras, "block5_pool", "cut"), 2u);
  // A layer of several nodes is cut after its last one (the Relu after the convolution).
  EXPECT_EQ(find_node_for_cut(kKeras, "block1_conv1", "cut"), 1u);
  EXPECT_EQ(find_node_for_cut(kKeras, "flatten", "cut"), 4u);
  EXPECT_EQ(find_node_for_cut(kKeras, "fc1", "cut"), 6u);
}

TEST(NodeLookup, TorchvisionModulePathsFindTorchNodes) {
  EXPECT_EQ(find_node_for_cut(kTorch, "features.30", "cut"), 2u);
  EXPECT_EQ(find_node_for_cut(kTorch, "features", "cut"), 2u);
  EXPECT_EQ(find_node_for_cut(kTorch, "avgpool", "cut"), 3u);
  // A part must match whole: features.3 is not features.30.
  EXPECT_NE(error_of(kTorch, "features.3"), "");
}

TEST(NodeLookup, LastPoolIsTheLastPoolingBeforeTheFirstDense) {
  EXPECT_EQ(find_node_for_cut(kKeras, "last-pool", "cut"), 2u);
  EXPECT_EQ(find_node_for_cut(kTorch, "last-pool", "cut"), 3u);
  const std::vector<NodeRef> no_pool = {{"conv", "Conv", {"c"}}, {"fc", "Gemm", {"y"}}};
  const auto message = error_of(no_pool, "last-pool");
  EXPECT_NE(message.find("before its first Dense/Gemm/MatMul"), std::string::npos) << message;
}

TEST(NodeLookup, AnUnknownNameSuggestsTheClosest) {
  const auto message = error_of(kKeras, "block5_pool2");
  EXPECT_NE(message.find("cut: no node named 'block5_pool2'; did you mean "
                         "functional_1/block5_pool_1/MaxPool2d"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("or last-pool?"), std::string::npos) << message;
  const auto torch = error_of(kTorch, "features.31");
  EXPECT_NE(torch.find("/features/features.30/MaxPool"), std::string::npos) << torch;
}

TEST(NodeLookup, EditDistance) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("block5_pool", "block5_pool_1"), 2u);
}

}  // namespace
}  // namespace onnxforge
