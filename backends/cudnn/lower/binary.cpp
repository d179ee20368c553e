// Binary ops with numpy broadcasting: Add, Sub, Mul, Div (kernels.cu).
#include <string>

#include "backends/cudnn/kernels.hpp"
#include "backends/cudnn/lower/common.hpp"
#include "backends/cudnn/plan.hpp"

namespace onnxforge::cudnn {

namespace {

void lower_binary(CudnnProgram& p, const Node& n, kernels::BinaryOp op) {
  const Broadcast plan =
      make_broadcast(shape_of(p, n.outputs[0]), shape_of(p, n.inputs[0]), shape_of(p, n.inputs[1]));
  const float* a = p.value(n.inputs[0]).f();
  const float* b = p.value(n.inputs[1]).f();
  float* y = p.value(n.outputs[0]).f();
  const std::int64_t count = p.value(n.outputs[0]).count;
  p.add_forward([&p, op, plan, a, b, y, count](Mode) {
    kernels::binary_forward(op, plan, a, b, y, count, p.stream());
  });
  float* da = p.input_gradient(n, 0);
  float* db = p.input_gradient(n, 1);
  if (!da && !db) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, op, plan, a, b, dy, da, db, count]() {
    kernels::binary_backward(op, plan, a, b, dy, da, db, count, p.stream());
  });
}

}  // namespace

void add_binary_ops(CudnnOpTable& t) {
  auto binary = [](kernels::BinaryOp op) {
    return [op](CudnnProgram& p, const Node& n) { lower_binary(p, n, op); };
  };
  const std::string broadcast = "a broadcast operand's gradient " + std::string(kAddsWithAtomics);
  t.lower(OpId::Add, binary(kernels::BinaryOp::add), with_backward(broadcast));
  t.lower(OpId::Sub, binary(kernels::BinaryOp::sub), with_backward(broadcast));
  t.lower(OpId::Mul, binary(kernels::BinaryOp::mul), with_backward(broadcast));
  t.lower(OpId::Div, binary(kernels::BinaryOp::div), with_backward(broadcast));
}

}  // namespace onnxforge::cudnn
