// Built-in models by name.
//   baseline: Conv 16@3x3 ReLU -> MaxPool 2x2/1 -> Conv 16@3x3 ReLU -> MaxPool 2x2/1 -> Dense 64
//             ReLU -> Dense 1 sigmoid, 'valid' padding (9,050,961 parameters at 3x100x100).
//   improved: four 'same' conv blocks (32-64-128-128) with batch norm, global average pooling,
//             dropout 0.3, Dense 64 ReLU, Dense 1 sigmoid (configs/improved.toml says why).
//   vgg16:    the 13-convolution VGG16 feature extractor (Keras layer names), optionally with its
//             three fully connected layers (include_top).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/graph.hpp"

namespace onnxforge {

struct ModelOptions {
  Shape input{3, 100, 100};  // C,H,W; the batch stays dynamic
  bool include_top = false;  // vgg16: fc1, fc2 (4096 each) and predictions
  std::int64_t classes = 1000;
  double width = 1.0;  // vgg16: channel multiplier (a width-reduced variant when < 1)
  // vgg16: a BatchNormalization after every convolution, before its ReLU (torchvision's
  // vgg16_bn; "blockB_convC_bn"), which trains from scratch in a fraction of the steps.
  bool batch_norm = false;
  std::uint64_t seed = 0;
};

Graph build_model(const std::string& name, const ModelOptions& options = {});
std::vector<std::string> builtin_models();

}  // namespace onnxforge
