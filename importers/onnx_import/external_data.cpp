// External data: reading the model file, and checking every external location (relative, inside
// the model's folder; onnx_io::external_file) before the checker or the tensor reader opens it.

#include "core/error.hpp"
#include "importers/onnx_import/importer.hpp"

namespace onnxforge::onnx_import {

namespace fs = std::filesystem;

void check_external_locations(const onnx::ModelProto& model, const fs::path& dir) {
  auto check = [&](const onnx::TensorProto& t, const std::string& what) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) return;
    for (const auto& e : t.external_data()) {
      if (e.key() == "location") onnx_io::external_file(e.value(), dir, what);
    }
  };
  for (const auto& t : model.graph().initializer()) check(t, "initializer '" + t.name() + "'");
  for (const auto& n : model.graph().node()) {
    for (const auto& a : n.attribute()) {
      if (a.has_t()) check(a.t(), "node '" + n.name() + "' attribute '" + a.name() + "'");
    }
  }
}

bool has_external_data(const onnx::ModelProto& model) {
  for (const auto& t : model.graph().initializer()) {
    if (t.data_location() == onnx::TensorProto::EXTERNAL) return true;
  }
  for (const auto& n : model.graph().node()) {
    for (const auto& a : n.attribute()) {
      if (a.has_t() && a.t().data_location() == onnx::TensorProto::EXTERNAL) return true;
    }
  }
  return false;
}

}  // namespace onnxforge::onnx_import
