// The cudnn backend's op table, from one file per op family (lower/<family>.cpp: each op's
// lowering appends a forward step and, when the node has a gradient to pass, a backward step that
// accumulates into its inputs' gradients), and the dispatch through it.
// cuDNN: convolution, pooling (when its geometry fits), activations, batch normalization, softmax;
// cuBLAS: Dense and MatMul; kernels.cu: the rest.
#include "backends/cudnn/lower.hpp"

#include <string>
#include <vector>

#include "backends/cudnn/kernels.hpp"
#include "backends/cudnn/lower/common.hpp"
#include "backends/cudnn/plan.hpp"

namespace onnxforge::cudnn {

void lower_copy(CudnnProgram& p, const Node& n) {
  const Value& x = p.value(n.inputs[0]);
  const Value& y = p.value(n.outputs[0]);
  const float* xd = x.f();
  float* yd = y.f();
  const auto bytes = static_cast<std::size_t>(x.count) * sizeof(float);
  p.add_forward([&p, xd, yd, bytes](Mode) {
    check(cudaMemcpyAsync(yd, xd, bytes, cudaMemcpyDeviceToDevice, p.stream()), "copy");
  });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  const auto count = x.count;
  p.add_backward([&p, dx, dy, count]() { kernels::accumulate(dx, dy, count, p.stream()); });
}

// Every op builds its backward step; precision bf16 is refused (node_support), so none computes
// in bf16.
const CudnnOpTable& op_table() {
  static const CudnnOpTable table = [] {
    CudnnOpTable t("cudnn");
    add_elementwise_ops(t);
    add_binary_ops(t);
    add_pooling_ops(t);
    add_normalization_ops(t);
    add_linear_algebra_ops(t);
    add_reduction_ops(t);
    add_shape_ops(t);
    add_loss_ops(t);
    t.complete();
    return t;
  }();
  return table;
}

void lower_node(CudnnProgram& p, const Node& n) { op_table().lowering(n)(p, n); }

}  // namespace onnxforge::cudnn
