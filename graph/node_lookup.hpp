// Finding the node a user means by a name: what `--cut-at` and `transfer.cut_at` take, on an IR
// graph (graph/passes.hpp cut_at) and on an ONNX file before it is imported (the importer cuts
// first, so the ops after the cut need no support). Pure string work on nodes in topological
// order; no ONNX dependency.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace onnxforge {

// One node as the lookup sees it: its name, its op (ONNX op_type or IR op) and its outputs.
struct NodeRef {
  std::string name;
  std::string op;
  std::vector<std::string> outputs;
};

// The index in `nodes` (topological order) of the node `query` names, tried in this order:
//  1. a node of exactly that name, or the node producing a value of that name;
//  2. "last-pool": the last pooling node (MaxPool, AveragePool, GlobalAveragePool,
//     GlobalMaxPool, ReduceMean) before the first Dense, Gemm or MatMul;
//  3. a layer name as the user knows it: a '/'-separated part of node names, as it is or with
//     the "_<digits>" suffix exporters append: Keras' block5_pool finds tf2onnx's
//     functional_1/block5_pool_1/MaxPool2d, torchvision's features.30 finds torch.onnx's
//     /features/features.30/MaxPool. A layer exported as several nodes is cut after the last.
// Otherwise throws Error: "<where>: no node named 'X'; did you mean A, B or C?" (the closest
// names by edit distance, and last-pool).
std::size_t find_node_for_cut(const std::vector<NodeRef>& nodes, const std::string& query,
                              const std::string& where);

// Levenshtein distance (exposed for tests).
std::size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace onnxforge
