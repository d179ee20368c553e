// The importer's entry points (onnx_import.hpp): a model's opset and checks, then the Importer
// (onnx_import/importer.cpp) with the op rules of onnx_import/<family>.cpp.
#include "importers/onnx_import.hpp"

#include <onnx/checker.h>

#include <algorithm>
#include <set>

#include "core/error.hpp"
#include "core/files.hpp"
#include "graph/passes.hpp"
#include "importers/onnx_import/importer.hpp"
#include "importers/onnx_proto.hpp"

namespace onnxforge {

namespace fs = std::filesystem;

namespace onnx_io {

Graph import_model(onnx::ModelProto& model, const fs::path& model_dir,
                   const std::string& model_path, const ImportOptions& options) {
  int opset = -1;
  for (const auto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = static_cast<int>(o.version());
  }
  if (!model.has_graph()) fail("the model has no graph");
  if (opset < 0) fail("the model imports no opset of the default ONNX domain");
  onnx_import::check_external_locations(model, model_dir);
  if (options.check) {
    try {
      if (onnx_import::has_external_data(model) && !model_path.empty()) {
        onnx::checker::check_model(model_path);
      } else {
        onnx::checker::check_model(model);
      }
    } catch (const onnx::checker::ValidationError& e) {
      std::string message = e.what();
      std::replace(message.begin(), message.end(), '\n', ' ');
      fail("the ONNX checker rejects the model: {}", message);
    }
  }
  if (opset < kMinOpset || opset > kMaxOpset) {
    fail("opset {} is not supported (supported: {} to {})", opset, kMinOpset, kMaxOpset);
  }
  onnx_import::Importer importer(model, model_dir, opset, options.cut_at, options.unsupported);
  return importer.run(options.input_shapes, options.constants);
}

}  // namespace onnx_io

std::vector<std::string> supported_onnx_ops() {
  std::set<std::string> names;
  for (const auto& rule : onnx_import::op_rules()) names.insert(rule.onnx_op);
  return {names.begin(), names.end()};
}

bool is_supported_onnx_op(const std::string& op, int opset) {
  return onnx_import::find_rule(op, opset) != nullptr;
}

Graph import_onnx(const std::string& path, const ImportOptions& options) {
  try {
    onnx::ModelProto model;
    {
      const std::string bytes = read_file(path);  // released once parsed
      onnx_io::parse_model(bytes, model, "model");
    }
    const auto dir = fs::absolute(fs::path(path)).parent_path();
    return onnx_io::import_model(model, dir, path, options);
  } catch (const Error& e) {
    const std::string message = e.what();
    if (message.find(path) != std::string::npos) throw;  // it names the file already
    fail("{}: {}", path, message);
  }
}

Graph import_onnx_bytes(const std::string& bytes, const std::string& model_dir,
                        const ImportOptions& options) {
  onnx::ModelProto model;
  onnx_io::parse_model(bytes, model, "model");
  return onnx_io::import_model(model, model_dir, "", options);
}

Graph load_model(const std::string& name_or_path, const ModelOptions& builtin,
                 const ImportOptions& onnx) {
  const bool looks_like_file =
      name_or_path.find('/') != std::string::npos || name_or_path.find('.') != std::string::npos;
  if (looks_like_file || fs::exists(name_or_path)) return import_onnx(name_or_path, onnx);
  Graph model = build_model(name_or_path, builtin);
  return onnx.cut_at.empty() ? model : cut_at(model, onnx.cut_at);
}

}  // namespace onnxforge
