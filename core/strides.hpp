// Row-major strides and numpy broadcasting over dimension lists (a Shape is one), for every
// library that walks tensors by hand: constant folding, the reference kernels, the oneDNN loops and
// the cuDNN index plans.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace onnxforge {

// Element strides of a row-major tensor of `dims`.
inline std::vector<std::int64_t> row_major_strides(std::span<const std::int64_t> dims) {
  std::vector<std::int64_t> strides(dims.size(), 1);
  for (std::size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
  return strides;
}

// The multi-index of element `flat` of a row-major tensor of `dims`.
inline std::vector<std::int64_t> unravel(std::span<const std::int64_t> dims, std::int64_t flat) {
  std::vector<std::int64_t> index(dims.size());
  for (std::size_t d = dims.size(); d-- > 0;) {
    index[d] = flat % dims[d];
    flat /= dims[d];
  }
  return index;
}

// Strides of `in` right-aligned to `out` (numpy rules; rank of `out`), 0 where `in` broadcasts.
inline std::vector<std::int64_t> broadcast_strides(std::span<const std::int64_t> in,
                                                   std::span<const std::int64_t> out) {
  std::vector<std::int64_t> strides(out.size(), 0);
  std::int64_t stride = 1;
  for (std::size_t i = 0; i < in.size() && i < out.size(); ++i) {
    const std::size_t axis = in.size() - 1 - i;
    const std::size_t out_axis = out.size() - 1 - i;
    strides[out_axis] = in[axis] == 1 && out[out_axis] != 1 ? 0 : stride;
    stride *= in[axis];
  }
  return strides;
}

// Calls f(i, ia, ib) for every element i of `out` in row-major order, with the offsets that the
// strides `sa` and `sb` (from broadcast_strides) give it in two operands.
template <typename F>
void for_each_broadcast(std::span<const std::int64_t> out, const std::vector<std::int64_t>& sa,
                        const std::vector<std::int64_t>& sb, F f) {
  const std::size_t rank = out.size();
  std::int64_t total = 1;
  for (auto d : out) total *= d;
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

// The offset in `in` (broadcast to `out`) of every element of `out`, in order.
inline std::vector<std::int64_t> broadcast_offsets(std::span<const std::int64_t> in,
                                                   std::span<const std::int64_t> out) {
  std::vector<std::int64_t> offsets;
  const auto strides = broadcast_strides(in, out);
  for_each_broadcast(out, strides, strides, [&](std::int64_t, std::int64_t offset, std::int64_t) {
    offsets.push_back(offset);
  });
  return offsets;
}

// The offset in `in` (broadcast to `out`) of element `flat` of `out`.
inline std::int64_t broadcast_offset(std::span<const std::int64_t> out,
                                     std::span<const std::int64_t> in, std::int64_t flat) {
  const auto strides = broadcast_strides(in, out);
  std::int64_t offset = 0;
  for (std::size_t d = out.size(); d-- > 0;) {
    offset += (flat % out[d]) * strides[d];
    flat /= out[d];
  }
  return offset;
}

}  // namespace onnxforge
