// Transfer learning (DESIGN.md): a backbone cut at a node and given the model's input size, its
// kept parameters frozen (no gradients are computed or stored for them; they are byte-identical
// after training), a dense head attached and trained. When nothing before the cut trains and no
// augmentation applies, the backbone runs once per image and the head trains on the cached
// features.
#pragma once

#include <filesystem>
#include <string>

#include "graph/graph.hpp"
#include "trainers/trainer.hpp"

namespace onnxforge::train {

// Cuts `backbone` at `cut_at` (none when empty), makes an NHWC input read only through a
// Transpose NCHW (absorb_input_transpose: tf2onnx's Keras exports), gives its single image input
// the shape [N, C, H, W] of `chw`, and freezes every parameter. Throws naming the node the new size
// does not fit.
Graph prepare_backbone(const Graph& backbone, const std::string& cut_at, const Shape& chw);

// Phase two of transfer learning: makes trainable in `model` (the backbone with its head) either
// the parameters whose names start with transfer.unfreeze, or the weights and biases of the last
// transfer.unfreeze_last convolutions of `backbone`. Batch norms stay frozen, so they run in
// inference mode with their running statistics. Returns how many tensors it unfroze; throws when
// none or too few convolutions.
int unfreeze(Graph& model, const Graph& backbone, const TransferConfig& transfer);

// The head of `transfer` on an input "features" of `feature_shape` (without the batch):
// Flatten, then per hidden layer Dense -> [BatchNorm] -> activation -> [Dropout], then
// Dense 1 -> Sigmoid. Layers are named head_dense, head_dense_1, ...; seeded like the builder.
Graph make_head(const Shape& feature_shape, const TransferConfig& transfer, std::uint64_t seed);

// One graph: the backbone's output feeds the head (whose input disappears).
Graph attach_head(const Graph& backbone, const Graph& head);

struct TransferResult {
  TrainResult training;
  Graph model;  // backbone + trained head, trainable flags as trained
  bool cached = false;
  double feature_seconds = 0.0;  // running the backbone over every image, when cached
};

// Trains the head of config.transfer on top of a prepared backbone, with the feature cache when
// it applies (config.transfer.cache_features, no augmentation), then, when
// config.transfer.fine_tune_epochs > 0, unfreezes the parameters whose name starts with
// config.transfer.unfreeze and fine-tunes the whole model at fine_tune_lr into RUN/fine_tune/.
TransferResult train_transfer(const TrainConfig& config, const Graph& backbone,
                              const TrainData& data, const TrainOptions& options);

// Copies the parameters of a trained program into the graph's initializers.
void store_parameters(Graph& graph, const Program& program);

// The folder of the final model's evaluation: RUN/fine_tune when the config fine-tunes a
// backbone (a second phase), else RUN.
std::filesystem::path final_run_dir(const TrainConfig& config, const std::filesystem::path& run);

}  // namespace onnxforge::train
