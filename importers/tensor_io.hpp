// Tensors in files: NumPy .npy (read and write) and ONNX TensorProto .pb (read), for
// `onnxforge infer` inputs/outputs and the conformance runner.
#pragma once

#include <string>

#include "graph/tensor.hpp"

namespace onnxforge {

// .npy version 1.0-3.0, little-endian C order: f4, f8, i8, i4 (read as i64), u1, b1.
Tensor read_npy(const std::string& path);
void write_npy(const std::string& path, const Tensor& tensor);
// A serialized onnx.TensorProto (the test_data_set_*/input_*.pb files).
Tensor read_tensor_pb(const std::string& path);
// By extension: .npy or .pb.
Tensor read_tensor_file(const std::string& path);

}  // namespace onnxforge
