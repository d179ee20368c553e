// Numpy broadcasting on plain row-major buffers, for the elementwise ops oneDNN's binary
// primitive does not cover (Add/Sub/Mul/Div between different shapes, and their gradients).
#pragma once

#include <cstdint>
#include <vector>

#include "graph/shape.hpp"

namespace onnxforge::onednn {

// Strides of `shape` right-aligned to `out` (rank of out), 0 where it broadcasts.
inline std::vector<std::int64_t> broadcast_strides(const Shape& shape, const Shape& out) {
  const std::size_t rank = out.size();
  std::vector<std::int64_t> strides(rank, 0);
  std::int64_t stride = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const std::size_t axis = shape.size() - 1 - i;
    const std::size_t out_axis = rank - 1 - i;
    strides[out_axis] = shape[axis] == 1 && out[out_axis] != 1 ? 0 : stride;
    stride *= shape[axis];
  }
  return strides;
}

// Calls f(i, ia, ib) for every element i of `out` (row-major) with the broadcast offsets.
template <typename F>
void for_each_broadcast(const Shape& out, const std::vector<std::int64_t>& sa,
                        const std::vector<std::int64_t>& sb, F f) {
  const std::size_t rank = out.size();
  const std::int64_t total = element_count(out);
  std::vector<std::int64_t> index(rank, 0);
  std::int64_t ia = 0, ib = 0;
  for (std::int64_t i = 0; i < total; ++i) {
    f(i, ia, ib);
    for (std::size_t d = rank; d-- > 0;) {
      ++index[d];
      ia += sa[d];
      ib += sb[d];
      if (index[d] < out[d]) break;
      ia -= sa[d] * out[d];
      ib -= sb[d] * out[d];
      index[d] = 0;
    }
  }
}

}  // namespace onnxforge::onednn
