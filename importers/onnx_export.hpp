// IR -> ONNX. Any graph, built-in or trained, becomes an ONNX model (opset 13, or 14 when a
// Reshape needs allowzero) that passes the ONNX checker; importing it again gives the same graph
// (names, attributes, weights, trainable flags) and so bit-identical outputs.
//
//   Dense(X, W, B)      -> Gemm(X, W, B, transB=1)
//   Reshape shape=...   -> Reshape(X, shape initializer "<node>/shape")
//   Dropout ratio=r     -> Dropout(X, ratio initializer)
//   Clip min/max        -> Clip(X, min, max initializers)
//   Pad pads/value      -> Pad(X, pads initializer, value initializer)
//   loss nodes          -> dropped (with the inputs only they read), unless keep_losses is set,
//                          which fails since ONNX has no such ops
// Frozen floating initializers are listed in metadata "onnxforge.frozen" (comma separated); the
// graph's own metadata (Graph::metadata: "onnxforge.preprocess", ...) is written as it is.
#pragma once

#include <string>

#include "graph/graph.hpp"

namespace onnxforge {

struct ExportOptions {
  std::string producer = "onnxforge";
  // Write weights into "<model stem>.data" next to the model (external data) instead of inline;
  // needed above 2 GiB.
  bool external_data = false;
  // Runs onnx::checker::check_model on the result.
  bool check = true;
};

// Serialized ModelProto bytes (weights inline).
std::string export_onnx_bytes(const Graph& graph, const ExportOptions& options = {});
// Writes `path` (and its .data file with external_data).
void export_onnx(const Graph& graph, const std::string& path, const ExportOptions& options = {});

}  // namespace onnxforge
