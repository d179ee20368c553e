// Elementwise kernels: Relu, LeakyRelu, Sigmoid, Tanh, Identity, Clip, Dropout.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/reference/ops/common.hpp"

namespace onnxforge::reference {

namespace {

Kernel unary(std::function<double(double)> f, std::function<double(double x, double y)> dfdx) {
  return {[f](ForwardArgs& a) {
            const auto& x = a.inputs[0]->data;
            auto& y = a.outputs[0]->data;
            for (size_t i = 0; i < x.size(); ++i) y[i] = f(x[i]);
          },
          [dfdx](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const auto& x = a.inputs[0]->data;
            const auto& y = a.outputs[0]->data;
            const auto& dy = a.output_grads[0]->data;
            auto& dx = a.input_grads[0]->data;
            for (size_t i = 0; i < x.size(); ++i) dx[i] += dy[i] * dfdx(x[i], y[i]);
          }};
}

Kernel clip_kernel() {
  auto bounds = [](const Node& node) {
    return std::pair{attr_float(node, "min"), attr_float(node, "max")};
  };
  return {[bounds](ForwardArgs& a) {
            const auto [lo, hi] = bounds(a.node);
            const auto& x = a.inputs[0]->data;
            for (size_t i = 0; i < x.size(); ++i) {
              a.outputs[0]->data[i] = std::isnan(x[i]) ? x[i] : std::min(std::max(x[i], lo), hi);
            }
          },
          [bounds](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const auto [lo, hi] = bounds(a.node);
            const auto& x = a.inputs[0]->data;
            for (size_t i = 0; i < x.size(); ++i) {
              if (x[i] >= lo && x[i] <= hi) a.input_grads[0]->data[i] += a.output_grads[0]->data[i];
            }
          }};
}

// ---- Pad: every output element reads one input element (or the constant) ---------------------
// Offset in x of every element of y, or -1 where y holds the constant.
Kernel dropout_kernel() {
  return {[](ForwardArgs& a) {
            const auto& x = a.inputs[0]->data;
            auto& y = a.outputs[0]->data;
            const double ratio = attr_float(a.node, "ratio");
            if (a.mode == Mode::inference || ratio == 0.0) {
              y = x;
              a.state.saved.assign(x.size(), 1.0);
              return;
            }
            a.state.saved.resize(x.size());
            for (size_t i = 0; i < x.size(); ++i) {
              a.state.saved[i] = a.random.uniform() >= ratio ? 1.0 / (1.0 - ratio) : 0.0;
              y[i] = x[i] * a.state.saved[i];
            }
          },
          [](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const auto& dy = a.output_grads[0]->data;
            for (size_t i = 0; i < dy.size(); ++i) {
              a.input_grads[0]->data[i] += dy[i] * a.state.saved[i];
            }
          }};
}

Kernel leaky_relu_kernel() {
  return {[](ForwardArgs& a) {
            const double alpha = attr_float(a.node, "alpha");
            for (size_t i = 0; i < a.inputs[0]->size(); ++i) {
              const double x = a.inputs[0]->data[i];
              a.outputs[0]->data[i] = x > 0 ? x : alpha * x;
            }
          },
          [](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const double alpha = attr_float(a.node, "alpha");
            for (size_t i = 0; i < a.inputs[0]->size(); ++i) {
              a.input_grads[0]->data[i] +=
                  a.output_grads[0]->data[i] * (a.inputs[0]->data[i] > 0 ? 1.0 : alpha);
            }
          }};
}

}  // namespace

void add_elementwise_kernels(KernelTable& table) {
  table.lower(OpId::Relu, unary([](double x) { return x > 0 ? x : 0.0; },
                                [](double x, double) { return x > 0 ? 1.0 : 0.0; }));
  table.lower(OpId::Sigmoid, unary(sigmoid, [](double, double y) { return y * (1.0 - y); }));
  table.lower(OpId::Tanh, unary([](double x) { return std::tanh(x); },
                                [](double, double y) { return 1.0 - y * y; }));
  table.lower(OpId::LeakyRelu, leaky_relu_kernel());
  table.lower(OpId::Identity, copy_kernel());
  table.lower(OpId::Clip, clip_kernel());
  table.lower(OpId::Dropout, dropout_kernel());
}

}  // namespace onnxforge::reference
