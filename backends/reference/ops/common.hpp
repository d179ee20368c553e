// Helpers the reference kernels of several families share (internal to backends/reference/).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "backends/reference/kernels.hpp"
#include "core/error.hpp"
#include "core/strides.hpp"
#include "graph/ops.hpp"

namespace onnxforge::reference {

using std::int64_t;
using std::size_t;

// Offset of element (n, c, h, w) of an NCHW buffer of shape `s`.
inline size_t idx4(const Shape& s, int64_t n, int64_t c, int64_t h, int64_t w) {
  return static_cast<size_t>(((n * s[1] + c) * s[2] + h) * s[3] + w);
}

// The offset in `in` (broadcast to `out`, numpy rules) of output element `flat`.
inline size_t broadcast_index(const Shape& out, const Shape& in, int64_t flat) {
  return static_cast<size_t>(broadcast_offset(out, in, flat));
}

inline double sigmoid(double x) {
  return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
}

// Same data, another shape (Flatten, Reshape, Identity).
inline Kernel copy_kernel() {
  return {[](ForwardArgs& a) { a.outputs[0]->data = a.inputs[0]->data; },
          [](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            for (size_t i = 0; i < a.output_grads[0]->size(); ++i) {
              a.input_grads[0]->data[i] += a.output_grads[0]->data[i];
            }
          }};
}

// A tensor seen as [outer, extent, inner] around one axis (softmax, concat).
struct AxisView {
  size_t outer = 1, extent = 1, inner = 1;
};

inline AxisView axis_view(const Shape& shape, int64_t axis) {
  if (axis < 0) axis += static_cast<int64_t>(shape.size());
  AxisView v;
  for (size_t d = 0; d < shape.size(); ++d) {
    const auto dim = static_cast<size_t>(shape[d]);
    if (static_cast<int64_t>(d) < axis) {
      v.outer *= dim;
    } else if (static_cast<int64_t>(d) == axis) {
      v.extent = dim;
    } else {
      v.inner *= dim;
    }
  }
  return v;
}

}  // namespace onnxforge::reference
