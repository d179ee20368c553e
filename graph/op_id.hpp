// The ops of the IR, listed once. `OpId` is what the code keys on; the op's name (its ONNX
// op_type where ONNX has the op) comes from this list and is written nowhere else. Each op's
// definition (arity, attributes, shape inference, gradients, export) is an `OpDef` in
// graph/ops/<family>.cpp; each backend maps OpId to its lowering (docs/DESIGN.md, docs/OPS.md).
//
// Adding an op: a line here, its OpDef in its family's file, and its kernels or a refusal with a
// reason in each backend's table (a test fails until every backend answers for it).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string_view>

namespace onnxforge {

// X(op) for every op, grouped by family as graph/ops/ is.
#define ONNXFORGE_OPS(X)                                                                          \
  /* elementwise */ X(Relu) X(LeakyRelu) X(Sigmoid) X(Tanh) X(Identity) X(Clip)                   \
      X(Dropout) /* binary */ X(Add) X(Sub) X(Mul) X(Div) /* pooling */ X(MaxPool) X(AveragePool) \
          X(GlobalAveragePool) /* normalization */ X(BatchNormalization) X(Softmax)               \
              X(LogSoftmax) /* linear algebra */ X(Conv) X(Dense)                                 \
                  X(MatMul) /* reduction */ X(ReduceMean) X(ReduceSum) /* shape */ X(Flatten)     \
                      X(Reshape) X(Transpose) X(Concat) X(Pad) X(Slice) X(Expand)                 \
                          X(Resize) /* losses */ X(BinaryCrossEntropyWithLogits)                  \
                              X(SoftmaxCrossEntropy)

enum class OpId : std::uint8_t {
#define ONNXFORGE_OP_ENUM(op) op,
  ONNXFORGE_OPS(ONNXFORGE_OP_ENUM)
#undef ONNXFORGE_OP_ENUM
};

inline constexpr std::string_view kOpNames[] = {
#define ONNXFORGE_OP_NAME(op) #op,
    ONNXFORGE_OPS(ONNXFORGE_OP_NAME)
#undef ONNXFORGE_OP_NAME
};

inline constexpr std::size_t kOpCount = std::size(kOpNames);

constexpr std::size_t op_index(OpId id) { return static_cast<std::size_t>(id); }
constexpr std::string_view op_name(OpId id) { return kOpNames[op_index(id)]; }

// The op of a name, or nothing for a name that is not an IR op.
constexpr std::optional<OpId> find_op(std::string_view name) {
  for (std::size_t i = 0; i < kOpCount; ++i) {
    if (kOpNames[i] == name) return static_cast<OpId>(i);
  }
  return std::nullopt;
}

// Every op, in OpId order.
constexpr std::array<OpId, kOpCount> all_op_ids() {
  std::array<OpId, kOpCount> ids{};
  for (std::size_t i = 0; i < kOpCount; ++i) ids[i] = static_cast<OpId>(i);
  return ids;
}

}  // namespace onnxforge
