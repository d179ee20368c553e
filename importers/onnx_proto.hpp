// Helpers on libonnx's protobuf classes shared by the importer, the exporter and tensor I/O.
// Includes <onnx/onnx_pb.h>: keep it out of headers that graph/ or backends/ see.
#pragma once

#include <onnx/onnx_pb.h>

#include <filesystem>
#include <optional>
#include <string>

#include "graph/graph.hpp"
#include "importers/onnx_import.hpp"

namespace onnxforge::onnx_io {

// The IR dtype a TensorProto data type is read as (integers widen to i64, float16 to f32), or
// nullopt when there is none (strings, complex numbers).
std::optional<DType> ir_dtype_of(int onnx_type);
int onnx_type_of(DType dtype);
std::string onnx_type_name(int onnx_type);

// Reads a TensorProto (raw_data, typed fields or external data) into a Tensor, after checking
// dims, sizes and overflow. External data is resolved inside `model_dir` only (refused when it
// is empty). `what` names the tensor in errors.
Tensor read_tensor(const onnx::TensorProto& proto, const std::filesystem::path& model_dir,
                   const std::string& what);
// Checks an external-data location against the rules (relative, no `..`, no symlink escaping
// `model_dir`) and returns the file it names.
std::filesystem::path external_file(const std::string& location,
                                    const std::filesystem::path& model_dir,
                                    const std::string& what);

// Writes a Tensor into a TensorProto as raw_data (little-endian).
void write_tensor(const Tensor& tensor, const std::string& name, onnx::TensorProto& proto);

// Parses a serialized ModelProto of any size up to 2 GiB; throws naming `what` on failure.
void parse_model(const std::string& bytes, onnx::ModelProto& model, const std::string& what);

// Imports a parsed model (its raw data is released as it is read).
Graph import_model(onnx::ModelProto& model, const std::filesystem::path& model_dir,
                   const std::string& model_path, const ImportOptions& options);

}  // namespace onnxforge::onnx_io
