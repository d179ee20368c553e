// Loss kernels: BinaryCrossEntropyWithLogits, SoftmaxCrossEntropy.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/reference/ops/common.hpp"

namespace onnxforge::reference {

namespace {

Kernel bce_with_logits_kernel() {
  // The class weights, read once per call: label * positive + (1 - label) * negative.
  struct Weights {
    double positive, negative;
    explicit Weights(const Node& node)
        : positive(attr_float(node, "weight_positive")),
          negative(attr_float(node, "weight_negative")) {}
    double of(double label) const { return label * positive + (1.0 - label) * negative; }
  };
  return {[](ForwardArgs& a) {
            const Weights weight(a.node);
            const auto& z = a.inputs[0]->data;
            const auto& y = a.inputs[1]->data;
            double sum = 0;
            for (size_t i = 0; i < z.size(); ++i) {
              // max(z,0) - z*y + log(1 + exp(-|z|)): never overflows.
              sum += weight.of(y[i]) *
                     (std::max(z[i], 0.0) - z[i] * y[i] + std::log1p(std::exp(-std::abs(z[i]))));
            }
            a.outputs[0]->data[0] = sum / static_cast<double>(z.size());
          },
          [](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const Weights weight(a.node);
            const auto& z = a.inputs[0]->data;
            const auto& y = a.inputs[1]->data;
            const double g = a.output_grads[0]->data[0] / static_cast<double>(z.size());
            for (size_t i = 0; i < z.size(); ++i) {
              a.input_grads[0]->data[i] += g * weight.of(y[i]) * (sigmoid(z[i]) - y[i]);
            }
          }};
}

Kernel softmax_cross_entropy_kernel() {
  return {[](ForwardArgs& a) {
            const auto& z = *a.inputs[0];
            const auto& labels = a.inputs[1]->data;
            const size_t batch = static_cast<size_t>(z.shape[0]);
            const size_t classes = static_cast<size_t>(z.shape[1]);
            a.state.saved.resize(z.size());  // softmax, for backward
            double sum = 0;
            for (size_t n = 0; n < batch; ++n) {
              const double* row = &z.data[n * classes];
              const double top = *std::max_element(row, row + classes);
              double total = 0;
              for (size_t k = 0; k < classes; ++k) total += std::exp(row[k] - top);
              for (size_t k = 0; k < classes; ++k) {
                a.state.saved[n * classes + k] = std::exp(row[k] - top) / total;
              }
              const auto label = static_cast<int64_t>(labels[n]);
              if (label < 0 || label >= static_cast<int64_t>(classes)) {
                fail("node '{}' (SoftmaxCrossEntropy): label {} is outside [0, {})", a.node.name,
                     label, classes);
              }
              sum += -(row[label] - top - std::log(total));
            }
            a.outputs[0]->data[0] = sum / static_cast<double>(batch);
          },
          [](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const auto& z = *a.inputs[0];
            const size_t batch = static_cast<size_t>(z.shape[0]);
            const size_t classes = static_cast<size_t>(z.shape[1]);
            const double g = a.output_grads[0]->data[0] / static_cast<double>(batch);
            for (size_t n = 0; n < batch; ++n) {
              const auto label = static_cast<size_t>(a.inputs[1]->data[n]);
              for (size_t k = 0; k < classes; ++k) {
                a.input_grads[0]->data[n * classes + k] +=
                    g * (a.state.saved[n * classes + k] - (k == label ? 1.0 : 0.0));
              }
            }
          }};
}

}  // namespace

void add_loss_kernels(KernelTable& table) {
  table.lower(OpId::BinaryCrossEntropyWithLogits, bce_with_logits_kernel());
  table.lower(OpId::SoftmaxCrossEntropy, softmax_cross_entropy_kernel());
}

}  // namespace onnxforge::reference
