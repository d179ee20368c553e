// A Keras-like model summary: one row per node (layer, op, output shape, parameters, trainable)
// and the totals of total / trainable / non-trainable parameters.
#pragma once

#include <string>

#include "graph/graph.hpp"

namespace onnxforge {

std::string summary(const Graph& graph);

// 9050961 -> "9,050,961"
std::string with_thousands(std::int64_t value);

}  // namespace onnxforge
