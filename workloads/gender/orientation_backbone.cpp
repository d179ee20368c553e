#include "workloads/gender/orientation_backbone.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "graph/models.hpp"
#include "trainers/transfer.hpp"

namespace onnxforge::gender {

using train::TrainConfig;
using train::TrainData;
using train::TrainOptions;
using train::TrainResult;
using train::TransferConfig;

data::ImageCache orientation_task(const data::ImageCache& images) {
  data::ImageCache out;
  out.height = images.height;
  out.width = images.width;
  out.classes = {"upright", "upside_down"};
  const std::size_t bytes = images.image_bytes();
  out.pixels.resize(2 * images.pixels.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    const std::uint8_t* src = images.image(i);
    std::uint8_t* upright = out.pixels.data() + (2 * i) * bytes;
    std::uint8_t* turned = out.pixels.data() + (2 * i + 1) * bytes;
    std::copy(src, src + bytes, upright);
    // 180 degrees: pixel (y, x) goes to (H-1-y, W-1-x); channels stay.
    const std::size_t pixels = bytes / 3;
    for (std::size_t p = 0; p < pixels; ++p) {
      std::copy(src + 3 * p, src + 3 * p + 3, turned + 3 * (pixels - 1 - p));
    }
    for (int label : {0, 1}) {
      out.labels.push_back(label);
      out.paths.push_back(images.paths[i]);
    }
  }
  return out;
}

Graph pretrain_orientation_backbone(const TrainConfig& base, const TrainData& data, double width,
                                    int epochs, const TrainOptions& options) {
  TrainConfig config = base;
  config.name = fmt::format("vgg16-w{}-orientation", width);
  config.model.name = "vgg16";
  config.train.epochs = epochs;
  config.augment = {};
  config.early_stopping = {};
  config.schedule = {};
  config.transfer = {};
  config.optimizer.kind = OptimizerSpec::Kind::adam;
  config.optimizer.learning_rate = 1e-3;
  config.train.positive_class = "upside_down";
  // Under auto the pretraining runs in fp32: this deep VGG16 without batch norm starts on a
  // plateau at ln 2, and bf16 rounding delays its escape (docs/BENCHMARKS.md: fp32 left it by step
  // 20-38 for seeds 42-45; bf16 by step 34-85, and never for seed 42, the default, in its one
  // epoch: the auto run with bf16 activations stayed there too, leaving the default transfer at
  // chance). An explicit --dtype bf16 is kept.
  if (config.train.dtype == "auto") config.train.dtype = "fp32";
  ModelOptions vgg;
  vgg.input = config.model.input;
  vgg.width = width;
  vgg.seed = config.train.seed;
  const Graph features = build_model("vgg16", vgg);
  const Shape& out = features.value(features.outputs.at(0)).shape;
  TransferConfig head;
  head.head_units = {64};
  head.head_dropout = 0.0;
  const Graph model = train::attach_head(
      features, train::make_head(Shape(out.begin() + 1, out.end()), head, config.train.seed + 1));
  TrainData task{orientation_task(data.train), orientation_task(data.val), std::nullopt};
  TrainOptions pretrain = options;
  pretrain.final_evaluation = false;
  const TrainResult trained = train::train_model(config, model, task, pretrain);
  Graph result = model;
  train::store_parameters(result, *trained.program);
  result.name = config.name;
  return result;
}

}  // namespace onnxforge::gender
