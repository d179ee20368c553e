// The transfer backbone of a config, ready to train on: what `run` and `train` both check before
// anything trains (a wrong file, cut node or input size fails in seconds, not after the CNNs).
#pragma once

#include <string>

#include "graph/graph.hpp"
#include "trainers/config.hpp"

namespace onnxforge::cli {

// config.transfer.backbone (an .onnx file or a built-in model) imported up to
// config.transfer.cut_at (graph/node_lookup.hpp names: block5_pool, features.30, last-pool, ...;
// the nodes after the cut are never imported, so their ops need no support), an NHWC input read
// only through a Transpose made NCHW, given the config's input size and frozen
// (train::prepare_backbone).
// data.preprocess "auto" becomes the backbone's own (its "onnxforge.preprocess" metadata, which
// onnxforge's exports write); a backbone without it is refused, asking for one.
Graph load_backbone(train::TrainConfig& config);

// What --preprocess auto means for a model: its metadata's, else unit ([0, 1] RGB).
std::string preprocessing_of(const Graph& model, const std::string& requested);

}  // namespace onnxforge::cli
