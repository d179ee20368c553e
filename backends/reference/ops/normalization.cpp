// Normalization kernels: BatchNormalization, Softmax, LogSoftmax.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/reference/ops/common.hpp"

namespace onnxforge::reference {

namespace {

bool uses_batch_statistics(const Node& node, const Graph& graph, Mode mode) {
  const auto* scale = graph.find_initializer(node.input(1));
  return mode == Mode::training && (!scale || scale->trainable);
}

Kernel batch_norm_kernel() {
  return {[](ForwardArgs& a) {
            const auto& x = *a.inputs[0];
            const auto& scale = a.inputs[1]->data;
            const auto& bias = a.inputs[2]->data;
            const size_t channels = static_cast<size_t>(x.shape[1]);
            const size_t inner = x.size() / static_cast<size_t>(x.shape[0]) / channels;
            const size_t batch = static_cast<size_t>(x.shape[0]);
            const double eps = attr_float(a.node, "epsilon");
            const double momentum = attr_float(a.node, "momentum");
            const bool batch_stats = uses_batch_statistics(a.node, a.graph, a.mode);
            // saved: per channel mean, then inverse standard deviation.
            a.state.saved.assign(2 * channels, 0.0);
            for (size_t c = 0; c < channels; ++c) {
              double mean = a.inputs[3]->data[c], var = a.inputs[4]->data[c];
              if (batch_stats) {
                double sum = 0, sq = 0;
                for (size_t n = 0; n < batch; ++n)
                  for (size_t i = 0; i < inner; ++i) sum += x.data[(n * channels + c) * inner + i];
                const double count = static_cast<double>(batch * inner);
                mean = sum / count;
                for (size_t n = 0; n < batch; ++n)
                  for (size_t i = 0; i < inner; ++i) {
                    const double d = x.data[(n * channels + c) * inner + i] - mean;
                    sq += d * d;
                  }
                var = sq / count;
                if (a.mutable_inputs.size() > 4 && a.mutable_inputs[3] && a.mutable_inputs[4]) {
                  auto& running_mean = a.mutable_inputs[3]->data[c];
                  auto& running_var = a.mutable_inputs[4]->data[c];
                  running_mean = momentum * running_mean + (1.0 - momentum) * mean;
                  running_var = momentum * running_var + (1.0 - momentum) * var;
                }
              }
              const double inv_std = 1.0 / std::sqrt(var + eps);
              a.state.saved[c] = mean;
              a.state.saved[channels + c] = inv_std;
              for (size_t n = 0; n < batch; ++n)
                for (size_t i = 0; i < inner; ++i) {
                  const size_t at = (n * channels + c) * inner + i;
                  a.outputs[0]->data[at] = (x.data[at] - mean) * inv_std * scale[c] + bias[c];
                }
            }
            a.state.indices.assign(1, batch_stats ? 1 : 0);
          },
          [](BackwardArgs& a) {
            const auto& x = *a.inputs[0];
            const auto& scale = a.inputs[1]->data;
            const auto& dy = a.output_grads[0]->data;
            const size_t channels = static_cast<size_t>(x.shape[1]);
            const size_t batch = static_cast<size_t>(x.shape[0]);
            const size_t inner = x.size() / batch / channels;
            const bool batch_stats = a.state.indices.at(0) != 0;
            const double count = static_cast<double>(batch * inner);
            for (size_t c = 0; c < channels; ++c) {
              const double mean = a.state.saved[c], inv_std = a.state.saved[channels + c];
              double sum_dy = 0, sum_dy_xhat = 0;
              for (size_t n = 0; n < batch; ++n)
                for (size_t i = 0; i < inner; ++i) {
                  const size_t at = (n * channels + c) * inner + i;
                  sum_dy += dy[at];
                  sum_dy_xhat += dy[at] * (x.data[at] - mean) * inv_std;
                }
              if (a.input_grads[1]) a.input_grads[1]->data[c] += sum_dy_xhat;
              if (a.input_grads[2]) a.input_grads[2]->data[c] += sum_dy;
              if (!a.input_grads[0]) continue;
              for (size_t n = 0; n < batch; ++n)
                for (size_t i = 0; i < inner; ++i) {
                  const size_t at = (n * channels + c) * inner + i;
                  const double xhat = (x.data[at] - mean) * inv_std;
                  const double g = batch_stats ? scale[c] * inv_std / count *
                                                     (count * dy[at] - sum_dy - xhat * sum_dy_xhat)
                                               : scale[c] * inv_std * dy[at];
                  a.input_grads[0]->data[at] += g;
                }
            }
          }};
}

// ---- losses ------------------------------------------------------------------------------------

Kernel softmax_kernel() {
  return {[](ForwardArgs& a) {
            const auto v = axis_view(a.inputs[0]->shape, attr_int(a.node, "axis"));
            const auto& x = a.inputs[0]->data;
            auto& y = a.outputs[0]->data;
            for (size_t o = 0; o < v.outer; ++o) {
              for (size_t i = 0; i < v.inner; ++i) {
                auto at = [&](size_t k) { return (o * v.extent + k) * v.inner + i; };
                double top = -std::numeric_limits<double>::infinity();
                for (size_t k = 0; k < v.extent; ++k) top = std::max(top, x[at(k)]);
                double sum = 0;
                for (size_t k = 0; k < v.extent; ++k) sum += (y[at(k)] = std::exp(x[at(k)] - top));
                for (size_t k = 0; k < v.extent; ++k) y[at(k)] /= sum;
              }
            }
          },
          [](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const auto v = axis_view(a.inputs[0]->shape, attr_int(a.node, "axis"));
            const auto& y = a.outputs[0]->data;
            const auto& dy = a.output_grads[0]->data;
            auto& dx = a.input_grads[0]->data;
            for (size_t o = 0; o < v.outer; ++o) {
              for (size_t i = 0; i < v.inner; ++i) {
                auto at = [&](size_t k) { return (o * v.extent + k) * v.inner + i; };
                double dot = 0;
                for (size_t k = 0; k < v.extent; ++k) dot += dy[at(k)] * y[at(k)];
                for (size_t k = 0; k < v.extent; ++k) dx[at(k)] += y[at(k)] * (dy[at(k)] - dot);
              }
            }
          }};
}

// ---- LogSoftmax along one axis ---------------------------------------------------------------
struct AxisGeometry {
  int64_t outer = 1, axis = 1, inner = 1;
};

AxisGeometry axis_geometry(const Node& node, const Shape& shape) {
  const auto v = axis_view(shape, attr_int(node, "axis"));
  return {static_cast<int64_t>(v.outer), static_cast<int64_t>(v.extent),
          static_cast<int64_t>(v.inner)};
}

Kernel log_softmax_kernel() {
  return {[](ForwardArgs& a) {
            const auto g = axis_geometry(a.node, a.inputs[0]->shape);
            const auto& x = a.inputs[0]->data;
            auto& y = a.outputs[0]->data;
            for (int64_t o = 0; o < g.outer; ++o) {
              for (int64_t in = 0; in < g.inner; ++in) {
                auto at = [&](int64_t k) {
                  return static_cast<size_t>((o * g.axis + k) * g.inner + in);
                };
                double top = -std::numeric_limits<double>::infinity();
                for (int64_t k = 0; k < g.axis; ++k) top = std::max(top, x[at(k)]);
                double sum = 0.0;
                for (int64_t k = 0; k < g.axis; ++k) sum += std::exp(x[at(k)] - top);
                const double log_sum = top + std::log(sum);
                for (int64_t k = 0; k < g.axis; ++k) y[at(k)] = x[at(k)] - log_sum;
              }
            }
          },
          [](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            // dx = dy - softmax(x) * sum(dy)
            const auto g = axis_geometry(a.node, a.inputs[0]->shape);
            const auto& y = a.outputs[0]->data;
            const auto& dy = a.output_grads[0]->data;
            auto& dx = a.input_grads[0]->data;
            for (int64_t o = 0; o < g.outer; ++o) {
              for (int64_t in = 0; in < g.inner; ++in) {
                auto at = [&](int64_t k) {
                  return static_cast<size_t>((o * g.axis + k) * g.inner + in);
                };
                double sum = 0.0;
                for (int64_t k = 0; k < g.axis; ++k) sum += dy[at(k)];
                for (int64_t k = 0; k < g.axis; ++k)
                  dx[at(k)] += dy[at(k)] - std::exp(y[at(k)]) * sum;
              }
            }
          }};
}

}  // namespace

void add_normalization_kernels(KernelTable& table) {
  table.lower(OpId::BatchNormalization, batch_norm_kernel());
  table.lower(OpId::Softmax, softmax_kernel());
  table.lower(OpId::LogSoftmax, log_softmax_kernel());
}

}  // namespace onnxforge::reference
