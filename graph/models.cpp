#include "graph/models.hpp"

#include <cmath>

#include "core/error.hpp"
#include "graph/builder.hpp"

namespace onnxforge {

namespace {

Shape batched(const Shape& chw) {
  if (chw.size() != 3) fail("model input must be C x H x W, got {}", to_string(chw));
  return {kDynamic, chw[0], chw[1], chw[2]};
}

Graph baseline(const ModelOptions& o) {
  Builder b("baseline", o.seed);
  auto x = b.input("image", batched(o.input));
  x = b.relu(b.conv2d(x, {.filters = 16, .kernel = {3, 3}}));
  x = b.max_pool(x, {.kernel = {2, 2}, .stride = {1, 1}});
  x = b.relu(b.conv2d(x, {.filters = 16, .kernel = {3, 3}}));
  x = b.max_pool(x, {.kernel = {2, 2}, .stride = {1, 1}});
  x = b.flatten(x);
  x = b.relu(b.dense(x, 64));
  x = b.sigmoid(b.dense(x, 1));
  b.output(x);
  return b.build();
}

// Four 'same' convolution blocks (32, 64, 128, 128 filters) with batch normalization, global
// average pooling instead of the baseline's 9M-weight dense layer, dropout, a small dense head.
Graph improved(const ModelOptions& o) {
  Builder b("improved", o.seed);
  auto x = b.input("image", batched(o.input));
  const std::int64_t filters[] = {32, 64, 128, 128};
  for (int block = 0; block < 4; ++block) {
    x = b.conv2d(x, {.filters = filters[block], .padding = Padding::same, .bias = false});
    x = b.relu(b.batch_norm(x));
    if (block < 3) x = b.max_pool(x, {.kernel = {2, 2}});
  }
  x = b.dropout(b.global_avg_pool(x, "global_average_pooling2d"), 0.3);
  x = b.flatten(x);
  x = b.relu(b.dense(x, 64));
  x = b.sigmoid(b.dense(x, 1));
  b.output(x);
  return b.build();
}

Graph vgg16(const ModelOptions& o) {
  Builder b("vgg16", o.seed);
  auto x = b.input("image", batched(o.input));
  const int blocks[5][2] = {{64, 2}, {128, 2}, {256, 3}, {512, 3}, {512, 3}};
  for (int block = 0; block < 5; ++block) {
    const auto filters = std::max<std::int64_t>(
        1, static_cast<std::int64_t>(std::lround(blocks[block][0] * o.width)));
    for (int conv = 0; conv < blocks[block][1]; ++conv) {
      const auto name = "block" + std::to_string(block + 1) + "_conv" + std::to_string(conv + 1);
      x = b.conv2d(x, {.filters = filters, .padding = Padding::same, .name = name});
      if (o.batch_norm) x = b.batch_norm(x, {.name = name + "_bn"});
      x = b.relu(x, name + "_relu");
    }
    x = b.max_pool(x, {.name = "block" + std::to_string(block + 1) + "_pool"});
  }
  if (o.include_top) {
    const auto units = std::max<std::int64_t>(1, std::lround(4096 * o.width));
    x = b.flatten(x, "flatten");
    x = b.relu(b.dense(x, units, {.name = "fc1"}), "fc1_relu");
    x = b.relu(b.dense(x, units, {.name = "fc2"}), "fc2_relu");
    x = b.softmax(b.dense(x, o.classes, {.name = "predictions"}), -1, "predictions_softmax");
  }
  b.output(x);
  return b.build();
}

}  // namespace

std::vector<std::string> builtin_models() { return {"baseline", "improved", "vgg16"}; }

Graph build_model(const std::string& name, const ModelOptions& options) {
  if (name == "baseline") return baseline(options);
  if (name == "improved") return improved(options);
  if (name == "vgg16") return vgg16(options);
  fail("unknown model '{}' (built-in models: baseline, improved, vgg16; or an .onnx file)", name);
}

}  // namespace onnxforge
