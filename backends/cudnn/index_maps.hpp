// Index maps shared by host code and CUDA kernels (compiled by g++ and nvcc alike): numpy
// broadcasting, transposition, padding and the dropout draw. The host builds them (plan.cpp) and
// tests them without a GPU; the kernels (kernels.cu) call the very same functions per element.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define ONNXFORGE_HD __host__ __device__ inline
#else
#define ONNXFORGE_HD inline
#endif

namespace onnxforge::cudnn {

inline constexpr int kMaxRank = 8;

// Output dims plus, per operand, the element stride of each output dim (0 where broadcast).
struct Broadcast {
  int rank = 0;
  std::int64_t dims[kMaxRank] = {};
  std::int64_t a_strides[kMaxRank] = {};
  std::int64_t b_strides[kMaxRank] = {};
  bool a_full = true, b_full = true;  // the operand has as many elements as the output
};

// Offset of output element `flat` in operand a (or b).
ONNXFORGE_HD std::int64_t broadcast_offset(const Broadcast& plan, std::int64_t flat,
                                           bool operand_b) {
  const std::int64_t* strides = operand_b ? plan.b_strides : plan.a_strides;
  std::int64_t offset = 0;
  for (int d = plan.rank - 1; d >= 0; --d) {
    offset += (flat % plan.dims[d]) * strides[d];
    flat /= plan.dims[d];
  }
  return offset;
}

// Transpose: output dims and, per output dim, the input's element stride.
struct Permutation {
  int rank = 0;
  std::int64_t dims[kMaxRank] = {};
  std::int64_t in_strides[kMaxRank] = {};
};

ONNXFORGE_HD std::int64_t permuted_offset(const Permutation& plan, std::int64_t flat) {
  std::int64_t offset = 0;
  for (int d = plan.rank - 1; d >= 0; --d) {
    offset += (flat % plan.dims[d]) * plan.in_strides[d];
    flat /= plan.dims[d];
  }
  return offset;
}

// A strided view: element `flat` of a row-major tensor of `dims` sits at offset
// base + sum of index[d] * strides[d] of another buffer. Slice: the input's strides times the
// steps (negative for negative steps), base at the starts; Expand and the reductions: broadcast
// strides (0 along a broadcast axis).
struct StridedView {
  int rank = 0;
  std::int64_t dims[kMaxRank] = {};
  std::int64_t strides[kMaxRank] = {};
  std::int64_t base = 0;
};

ONNXFORGE_HD std::int64_t strided_offset(const StridedView& view, std::int64_t flat) {
  std::int64_t offset = view.base;
  for (int d = view.rank - 1; d >= 0; --d) {
    offset += (flat % view.dims[d]) * view.strides[d];
    flat /= view.dims[d];
  }
  return offset;
}

// Pad (ONNX modes): the input offset of an output element, or -1 where it holds the constant.
struct Padding {
  enum Mode : int { constant = 0, reflect = 1, edge = 2 };
  int rank = 0;
  int mode = constant;
  float value = 0.f;
  std::int64_t in_dims[kMaxRank] = {};
  std::int64_t out_dims[kMaxRank] = {};
  std::int64_t begin[kMaxRank] = {};
};

ONNXFORGE_HD std::int64_t padded_source(const Padding& plan, std::int64_t flat) {
  std::int64_t offset = 0, stride = 1;
  for (int d = plan.rank - 1; d >= 0; --d) {
    std::int64_t c = flat % plan.out_dims[d] - plan.begin[d];
    flat /= plan.out_dims[d];
    const std::int64_t n = plan.in_dims[d];
    if (c < 0 || c >= n) {
      if (plan.mode == Padding::constant) return -1;
      if (plan.mode == Padding::edge) {
        c = c < 0 ? 0 : n - 1;
      } else if (n == 1) {
        c = 0;
      } else {  // reflect, without repeating the edge
        const std::int64_t period = 2 * (n - 1);
        c = ((c % period) + period) % period;
        if (c >= n) c = period - c;
      }
    }
    offset += c * stride;
    stride *= n;
  }
  return offset;
}

// splitmix64 of a counter: a device copy of core/random.hpp's mix64, the oneDNN backend's dropout
// draw (CudnnPlan.DropoutDrawsTheOnednnMasks checks the masks bit for bit).
ONNXFORGE_HD std::uint64_t splitmix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Whether dropout keeps element i: the top 24 bits of splitmix64(seed + i) reach the threshold.
ONNXFORGE_HD bool dropout_keeps(std::uint64_t seed, std::int64_t i, std::uint32_t threshold) {
  return static_cast<std::uint32_t>(splitmix(seed + static_cast<std::uint64_t>(i)) >> 40) >=
         threshold;
}

}  // namespace onnxforge::cudnn
