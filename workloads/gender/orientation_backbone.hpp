// The default backbone of the gender workload's transfer learning: no pretrained VGG16 can be
// downloaded on these machines, so onnxforge pretrains a width-reduced one on a source task that
// is not gender (every image upright, label 0, and turned upside down, label 1).
#pragma once

#include "data/loader.hpp"
#include "trainers/trainer.hpp"

namespace onnxforge::gender {

// Every image upright (label 0) and turned upside down (label 1).
data::ImageCache orientation_task(const data::ImageCache& images);

// Pretrains the width-reduced VGG16 of `width` (graph/models.hpp) with a small head on the
// orientation task of `data` (training and validation images), into `options.run_dir`, and
// returns the trained graph (block5_pool, then head_* layers).
Graph pretrain_orientation_backbone(const train::TrainConfig& base, const train::TrainData& data,
                                    double width, int epochs, const train::TrainOptions& options);

}  // namespace onnxforge::gender
