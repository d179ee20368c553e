// A Keras-like model summary: one row per node (layer, op, output shape, parameters, trainable)
// and the totals of total / trainable / non-trainable parameters; an imported model's unsupported
// nodes are shown in their place with the reason.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/graph.hpp"

namespace onnxforge {

std::string summary(const Graph& graph);

// A node of an imported file that the importer could not map (ImportOptions::unsupported): the
// summary shows it in its place, with the reason. Its outputs whose shapes ONNX shape inference
// knows are placeholder inputs of the partial graph, so the nodes after it are still mapped.
struct UnsupportedNode {
  std::string name;                  // the ONNX node's name
  std::string op;                    // its op_type
  std::string reason;                // why it cannot be mapped
  std::vector<std::string> outputs;  // the placeholder inputs standing for its outputs
  std::size_t position = 0;          // how many IR nodes come before it
  std::int64_t params = 0;           // floats in the initializers it reads
};

// The table with each unsupported node in its place ("not supported: <reason>"), and a last line
// counting them.
std::string summary(const Graph& graph, const std::vector<UnsupportedNode>& unsupported);

// 9050961 -> "9,050,961"
std::string with_thousands(std::int64_t value);

}  // namespace onnxforge
