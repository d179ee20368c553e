// What the op lowerings of several families share (internal to backends/cudnn/lower/): cuDNN's
// scaling constants, naming the node in a failed call, the device copy of Identity, Flatten and
// Reshape, and how each family adds its ops to the op table (lower.hpp).
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "backends/cudnn/lower.hpp"
#include "backends/cudnn/program.hpp"
#include "core/error.hpp"
#include "graph/ops.hpp"

namespace onnxforge::cudnn {

// alpha / beta of cuDNN calls (passed by address).
inline constexpr float kOne = 1.0f;
inline constexpr float kZero = 0.0f;

// A failed cuDNN / cuBLAS call while lowering names the node.
template <typename Status>
inline void check_node(Status status, const Node& node, const char* what) {
  try {
    check(status, what);
  } catch (const Error& e) {
    fail("cudnn backend cannot run node '{}' ({}): {}", node.name, node.op, e.what());
  }
}

inline const Shape& shape_of(CudnnProgram& p, const std::string& name) {
  return p.value(name).shape;
}

// Same data, another shape (Identity, Flatten, Reshape): a device copy; dx += dy (lower.cpp).
void lower_copy(CudnnProgram& p, const Node& n);

// Coverage of a lowering that builds its backward step, with a limit worth knowing.
inline OpCoverage with_backward(std::string note = {}) {
  return OpCoverage{.backward = true, .note = std::move(note)};
}
// Part of the note of a backward whose sums depend on the order atomics land in.
inline constexpr std::string_view kAddsWithAtomics = "adds with atomics (not bit-reproducible)";

// Each family's lowerings (lower/<family>.cpp), added to the table by op_table() (lower.cpp).
void add_elementwise_ops(CudnnOpTable& t);
void add_binary_ops(CudnnOpTable& t);
void add_pooling_ops(CudnnOpTable& t);
void add_normalization_ops(CudnnOpTable& t);
void add_linear_algebra_ops(CudnnOpTable& t);
void add_reduction_ops(CudnnOpTable& t);
void add_shape_ops(CudnnOpTable& t);
void add_loss_ops(CudnnOpTable& t);

}  // namespace onnxforge::cudnn
