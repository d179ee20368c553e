// Losses: BinaryCrossEntropyWithLogits and SoftmaxCrossEntropy (kernels.cu).
#include <cstdint>

#include "backends/cudnn/kernels.hpp"
#include "backends/cudnn/lower/common.hpp"

namespace onnxforge::cudnn {

namespace {

void lower_bce(CudnnProgram& p, const Node& n) {
  const double wp = attr_float(n, "weight_positive");
  const double wn = attr_float(n, "weight_negative");
  const float* z = p.value(n.inputs[0]).f();
  const float* labels = p.value(n.inputs[1]).f();
  float* loss = p.value(n.outputs[0]).f();
  const std::int64_t count = p.value(n.inputs[0]).count;
  p.add_forward([&p, z, labels, loss, count, wp, wn](Mode) {
    kernels::bce_with_logits_forward(z, labels, loss, count, wp, wn, p.stream());
  });
  float* dz = p.input_gradient(n, 0);
  if (!dz) return;
  const float* dloss = p.output_gradient(n);
  p.add_backward([&p, z, labels, dloss, dz, count, wp, wn]() {
    kernels::bce_with_logits_backward(z, labels, dloss, dz, count, wp, wn, p.stream());
  });
}

void lower_softmax_cross_entropy(CudnnProgram& p, const Node& n) {
  const Shape& zs = shape_of(p, n.inputs[0]);
  const std::int64_t rows = zs[0], classes = zs[1];
  const float* z = p.value(n.inputs[0]).f();
  const auto* labels = static_cast<const std::int64_t*>(p.value(n.inputs[1]).data.get());
  float* loss = p.value(n.outputs[0]).f();
  float* probabilities = p.scratch(static_cast<std::size_t>(rows * classes) * sizeof(float));
  p.watch_labels(n.name);
  p.add_forward([&p, z, labels, probabilities, loss, rows, classes](Mode) {
    kernels::softmax_cross_entropy_forward(z, labels, probabilities, loss, p.bad_label_flag(), rows,
                                           classes, p.stream());
  });
  float* dz = p.input_gradient(n, 0);
  if (!dz) return;
  const float* dloss = p.output_gradient(n);
  p.add_backward([&p, probabilities, labels, dloss, dz, rows, classes]() {
    kernels::softmax_cross_entropy_backward(probabilities, labels, dloss, dz, rows, classes,
                                            p.stream());
  });
}

}  // namespace

void add_loss_ops(CudnnOpTable& t) {
  t.lower(OpId::BinaryCrossEntropyWithLogits, lower_bce, with_backward());
  t.lower(OpId::SoftmaxCrossEntropy, lower_softmax_cross_entropy,
          with_backward("i64 labels; a label outside [0, classes) fails the forward"));
}

}  // namespace onnxforge::cudnn
