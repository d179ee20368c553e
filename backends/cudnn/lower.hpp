// The cudnn backend's op table (backends/op_table.hpp): per OpId, the function that lowers a node
// of that op onto a CudnnProgram (lower/<family>.cpp) and what it covers, or a refusal. The
// backend's supports() and coverage() and the Program's lowering all come from it (lower.cpp).
#pragma once

#include <functional>

#include "backends/op_table.hpp"
#include "graph/graph.hpp"

namespace onnxforge::cudnn {

class CudnnProgram;

// Appends the node's forward step and, when training, its backward step; throws Error naming the
// node when cuDNN rejects its geometry.
using Lower = std::function<void(CudnnProgram&, const Node&)>;
using CudnnOpTable = OpTable<Lower>;

// Every op's answer, built once from the family files and complete()d.
const CudnnOpTable& op_table();

// Lowers one node by its op's entry in op_table().
void lower_node(CudnnProgram& program, const Node& node);

}  // namespace onnxforge::cudnn
