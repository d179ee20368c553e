// ONNX -> IR. Reads a ModelProto with libonnx's classes, runs the ONNX checker (its message is
// shown on failure), and maps every node through an opset-versioned op table (opsets 7 to 17 of
// the default domain) onto the IR ops of graph/ops.hpp (the rules and their handlers:
// importers/onnx_import/, one file per op family). Constant subgraphs
// (Constant, Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains, Squeeze/Unsqueeze on
// constants, Identity) are folded at import; Squeeze/Unsqueeze on run-time values become Reshape,
// Gemm becomes Dense (plus Transpose/Mul/Add where needed).
//
// External data is read only from inside the model's folder: absolute locations, `..`, and
// symlinks that lead out are refused, and offset/length are checked against the file.
//
// Initializers of floating dtype are trainable, except batch-norm running statistics and those
// listed in the model's metadata entry "onnxforge.frozen" (written by export_onnx).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "graph/graph.hpp"
#include "graph/models.hpp"
#include "graph/summary.hpp"

namespace onnxforge {

struct ImportOptions {
  // Replaces the declared shape of graph inputs (e.g. {"data", {1, 3, 100, 100}}); kDynamic is
  // allowed for the batch (axis 0).
  std::map<std::string, Shape> input_shapes;
  // Graph inputs bound to a value at import time: they become non-trainable constants and are
  // no longer inputs (for inputs that the IR needs as constants: shapes, axes, pads, bounds).
  std::map<std::string, Tensor> constants;
  // Imports only the node of this name (or the node producing the value of this name) and what
  // it depends on; its first output becomes the only output. Unlike cut_at() after import, the
  // layers after the cut never see the input shape (so a new input size works on a backbone
  // whose classifier would not fit it).
  std::string cut_at;
  // Runs onnx::checker::check_model first.
  bool check = true;
  // When set, a node the importer cannot map (no rule for its op and opset, or an attribute or
  // input it cannot read) does not fail the import: it is recorded here with the reason, its
  // outputs become placeholder inputs where ONNX shape inference knows their shapes, and the rest
  // is imported. For `summary`; such a graph is not meant to be compiled.
  std::vector<UnsupportedNode>* unsupported = nullptr;
};

// Reads an .onnx file. Errors start with the path and name the node, op, opset and attribute.
Graph import_onnx(const std::string& path, const ImportOptions& options = {});
// The same from serialized bytes; external data is resolved against `model_dir` (refused when it
// is empty).
Graph import_onnx_bytes(const std::string& bytes, const std::string& model_dir = "",
                        const ImportOptions& options = {});

// A built-in model by name (graph/models.hpp) or an .onnx file by path: what every CLI command
// taking a MODEL argument calls. `onnx.cut_at` cuts a built-in model too (graph/passes.hpp).
Graph load_model(const std::string& name_or_path, const ModelOptions& builtin = {},
                 const ImportOptions& onnx = {});

// ONNX op types (default domain) the importer maps, for opsets 7..17 (and older forms where
// their semantics are mapped, e.g. opset 6 of pytorch-converted models; an op older than its
// mapped forms is an error naming the op and opset).
std::vector<std::string> supported_onnx_ops();
bool is_supported_onnx_op(const std::string& op, int opset);
inline constexpr int kMinOpset = 1;
inline constexpr int kMaxOpset = 17;

}  // namespace onnxforge
