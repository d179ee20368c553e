// Core reference kernels, one forward and one backward per op of graph/ops.hpp.
// Layout is NCHW; every sum accumulates in double.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/reference/kernels.hpp"
#include "core/error.hpp"
#include "graph/ops.hpp"

namespace onnxforge::reference {

namespace {

using std::int64_t;
using std::size_t;

size_t idx4(const Shape& s, int64_t n, int64_t c, int64_t h, int64_t w) {
  return static_cast<size_t>(((n * s[1] + c) * s[2] + h) * s[3] + w);
}

// ---- elementwise -------------------------------------------------------------------------------

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

double sigmoid(double x) {
  return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
}

// Numpy-style broadcasting: the offset in `in` of output element `flat`.
size_t broadcast_offset(const Shape& out, const Shape& in, size_t flat) {
  size_t offset = 0, stride = 1;
  auto rem = static_cast<int64_t>(flat);
  for (size_t k = 0; k < out.size(); ++k) {
    const size_t d = out.size() - 1 - k;
    const int64_t coord = rem % out[d];
    rem /= out[d];
    if (k < in.size()) {
      const size_t di = in.size() - 1 - k;
      if (in[di] != 1) offset += static_cast<size_t>(coord) * stride;
      stride *= static_cast<size_t>(in[di]);
    }
  }
  return offset;
}

Kernel add_kernel() {
  return {[](ForwardArgs& a) {
            auto& y = *a.outputs[0];
            for (size_t i = 0; i < y.size(); ++i) {
              y.data[i] = a.inputs[0]->data[broadcast_offset(y.shape, a.inputs[0]->shape, i)] +
                          a.inputs[1]->data[broadcast_offset(y.shape, a.inputs[1]->shape, i)];
            }
          },
          [](BackwardArgs& a) {
            const auto& dy = *a.output_grads[0];
            for (size_t k = 0; k < 2; ++k) {
              if (!a.input_grads[k]) continue;
              for (size_t i = 0; i < dy.size(); ++i) {
                a.input_grads[k]->data[broadcast_offset(dy.shape, a.inputs[k]->shape, i)] +=
                    dy.data[i];
              }
            }
          }};
}

// Same data, another shape (Flatten, Reshape, Identity, Dropout at inference).
Kernel copy_kernel() {
  return {[](ForwardArgs& a) { a.outputs[0]->data = a.inputs[0]->data; },
          [](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            for (size_t i = 0; i < a.output_grads[0]->size(); ++i) {
              a.input_grads[0]->data[i] += a.output_grads[0]->data[i];
            }
          }};
}

Kernel dropout_kernel() {
  return {[](ForwardArgs& a) {
            const auto& x = a.inputs[0]->data;
            auto& y = a.outputs[0]->data;
            const double ratio = a.node.get_float("ratio", 0.5);
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

// ---- softmax along one axis --------------------------------------------------------------------

struct AxisView {
  size_t outer = 1, extent = 1, inner = 1;
};

AxisView axis_view(const Shape& shape, int64_t axis) {
  if (axis < 0) axis += static_cast<int64_t>(shape.size());
  AxisView v;
  for (size_t d = 0; d < shape.size(); ++d) {
    const auto dim = static_cast<size_t>(shape[d]);
    if (static_cast<int64_t>(d) < axis) {
      v.outer *= dim;
    } else if (static_cast<int64_t>(d) == axis) {
      v.extent = dim;
    } else {
      v.inner *= dim;
    }
  }
  return v;
}

Kernel softmax_kernel() {
  return {[](ForwardArgs& a) {
            const auto v = axis_view(a.inputs[0]->shape, a.node.get_int("axis", -1));
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
            const auto v = axis_view(a.inputs[0]->shape, a.node.get_int("axis", -1));
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

// ---- convolution -------------------------------------------------------------------------------

// Calls visit(n, m, oh, ow, c, kh, kw, ih, iw) for every in-bounds product of a convolution.
template <typename Visit>
void for_each_conv_tap(const Shape& xs, const Shape& ws, const Shape& ys, const Window2d& win,
                       int64_t group, Visit&& visit) {
  const int64_t per_group_in = ws[1];
  const int64_t per_group_out = ws[0] / group;
  for (int64_t n = 0; n < ys[0]; ++n) {
    for (int64_t m = 0; m < ys[1]; ++m) {
      const int64_t c0 = (m / per_group_out) * per_group_in;
      for (int64_t oh = 0; oh < ys[2]; ++oh) {
        for (int64_t ow = 0; ow < ys[3]; ++ow) {
          for (int64_t c = 0; c < per_group_in; ++c) {
            for (int64_t kh = 0; kh < ws[2]; ++kh) {
              const int64_t ih = oh * win.stride_h - win.pad_top + kh * win.dilation_h;
              if (ih < 0 || ih >= xs[2]) continue;
              for (int64_t kw = 0; kw < ws[3]; ++kw) {
                const int64_t iw = ow * win.stride_w - win.pad_left + kw * win.dilation_w;
                if (iw < 0 || iw >= xs[3]) continue;
                visit(idx4(ys, n, m, oh, ow), idx4(xs, n, c0 + c, ih, iw), idx4(ws, m, c, kh, kw));
              }
            }
          }
        }
      }
    }
  }
}

Kernel conv_kernel() {
  return {[](ForwardArgs& a) {
            const auto& x = *a.inputs[0];
            const auto& w = *a.inputs[1];
            auto& y = *a.outputs[0];
            const auto win = window_of(a.node, a.graph);
            std::fill(y.data.begin(), y.data.end(), 0.0);
            for_each_conv_tap(
                x.shape, w.shape, y.shape, win, a.node.get_int("group", 1),
                [&](size_t yi, size_t xi, size_t wi) { y.data[yi] += x.data[xi] * w.data[wi]; });
            if (a.inputs.size() > 2 && a.inputs[2]) {
              const size_t area = static_cast<size_t>(y.shape[2] * y.shape[3]);
              for (size_t i = 0; i < y.size(); ++i) {
                y.data[i] += a.inputs[2]->data[(i / area) % static_cast<size_t>(y.shape[1])];
              }
            }
          },
          [](BackwardArgs& a) {
            const auto& x = *a.inputs[0];
            const auto& w = *a.inputs[1];
            const auto& dy = *a.output_grads[0];
            const auto win = window_of(a.node, a.graph);
            Buffer* dx = a.input_grads[0];
            Buffer* dw = a.input_grads[1];
            if (dx || dw) {
              for_each_conv_tap(x.shape, w.shape, dy.shape, win, a.node.get_int("group", 1),
                                [&](size_t yi, size_t xi, size_t wi) {
                                  if (dx) dx->data[xi] += dy.data[yi] * w.data[wi];
                                  if (dw) dw->data[wi] += dy.data[yi] * x.data[xi];
                                });
            }
            if (a.input_grads.size() > 2 && a.input_grads[2]) {
              const size_t area = static_cast<size_t>(dy.shape[2] * dy.shape[3]);
              for (size_t i = 0; i < dy.size(); ++i) {
                a.input_grads[2]->data[(i / area) % static_cast<size_t>(dy.shape[1])] += dy.data[i];
              }
            }
          }};
}

// ---- pooling -----------------------------------------------------------------------------------

// Input positions of one pooling window (in bounds only) and the window's padded extent.
struct PoolWindow {
  std::vector<size_t> taps;
  int64_t padded_count = 0;
};

PoolWindow pool_window(const Shape& xs, const Window2d& win, int64_t n, int64_t c, int64_t oh,
                       int64_t ow) {
  PoolWindow pw;
  for (int64_t kh = 0; kh < win.kernel_h; ++kh) {
    const int64_t ih = oh * win.stride_h - win.pad_top + kh * win.dilation_h;
    for (int64_t kw = 0; kw < win.kernel_w; ++kw) {
      const int64_t iw = ow * win.stride_w - win.pad_left + kw * win.dilation_w;
      // count_include_pad counts positions inside the padded input, not beyond it (ceil_mode).
      if (ih < xs[2] + win.pad_bottom && iw < xs[3] + win.pad_right) ++pw.padded_count;
      if (ih >= 0 && ih < xs[2] && iw >= 0 && iw < xs[3]) pw.taps.push_back(idx4(xs, n, c, ih, iw));
    }
  }
  return pw;
}

template <typename Visit>
void for_each_pool_window(const Shape& xs, const Shape& ys, const Window2d& win, Visit&& visit) {
  for (int64_t n = 0; n < ys[0]; ++n)
    for (int64_t c = 0; c < ys[1]; ++c)
      for (int64_t oh = 0; oh < ys[2]; ++oh)
        for (int64_t ow = 0; ow < ys[3]; ++ow)
          visit(idx4(ys, n, c, oh, ow), pool_window(xs, win, n, c, oh, ow));
}

Kernel max_pool_kernel() {
  return {[](ForwardArgs& a) {
            const auto& x = *a.inputs[0];
            auto& y = *a.outputs[0];
            a.state.indices.assign(y.size(), -1);
            for_each_pool_window(x.shape, y.shape, window_of(a.node, a.graph),
                                 [&](size_t yi, const PoolWindow& pw) {
                                   double best = -std::numeric_limits<double>::infinity();
                                   for (auto xi : pw.taps) {
                                     if (x.data[xi] > best) {
                                       best = x.data[xi];
                                       a.state.indices[yi] = static_cast<int64_t>(xi);
                                     }
                                   }
                                   y.data[yi] = best;
                                 });
          },
          [](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const auto& dy = a.output_grads[0]->data;
            for (size_t i = 0; i < dy.size(); ++i) {
              if (a.state.indices[i] >= 0) {
                a.input_grads[0]->data[static_cast<size_t>(a.state.indices[i])] += dy[i];
              }
            }
          }};
}

Kernel average_pool_kernel() {
  auto divisor = [](const Node& node, const PoolWindow& pw) {
    return static_cast<double>(node.get_int("count_include_pad", 0)
                                   ? pw.padded_count
                                   : static_cast<int64_t>(pw.taps.size()));
  };
  return {[divisor](ForwardArgs& a) {
            const auto& x = *a.inputs[0];
            auto& y = *a.outputs[0];
            for_each_pool_window(x.shape, y.shape, window_of(a.node, a.graph),
                                 [&](size_t yi, const PoolWindow& pw) {
                                   double sum = 0;
                                   for (auto xi : pw.taps) sum += x.data[xi];
                                   y.data[yi] = pw.taps.empty() ? 0.0 : sum / divisor(a.node, pw);
                                 });
          },
          [divisor](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const auto& dy = *a.output_grads[0];
            for_each_pool_window(a.inputs[0]->shape, dy.shape, window_of(a.node, a.graph),
                                 [&](size_t yi, const PoolWindow& pw) {
                                   for (auto xi : pw.taps) {
                                     a.input_grads[0]->data[xi] +=
                                         dy.data[yi] / divisor(a.node, pw);
                                   }
                                 });
          }};
}

Kernel global_average_pool_kernel() {
  return {[](ForwardArgs& a) {
            const auto& x = *a.inputs[0];
            const size_t area = static_cast<size_t>(x.shape[2] * x.shape[3]);
            for (size_t nc = 0; nc < a.outputs[0]->size(); ++nc) {
              double sum = 0;
              for (size_t i = 0; i < area; ++i) sum += x.data[nc * area + i];
              a.outputs[0]->data[nc] = sum / static_cast<double>(area);
            }
          },
          [](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const auto& xs = a.inputs[0]->shape;
            const size_t area = static_cast<size_t>(xs[2] * xs[3]);
            for (size_t i = 0; i < a.input_grads[0]->size(); ++i) {
              a.input_grads[0]->data[i] +=
                  a.output_grads[0]->data[i / area] / static_cast<double>(area);
            }
          }};
}

// ---- dense -------------------------------------------------------------------------------------

Kernel dense_kernel() {
  return {[](ForwardArgs& a) {
            const auto& x = *a.inputs[0];
            const auto& w = *a.inputs[1];
            auto& y = *a.outputs[0];
            const size_t batch = static_cast<size_t>(x.shape[0]);
            const size_t in = static_cast<size_t>(x.shape[1]);
            const size_t out = static_cast<size_t>(w.shape[0]);
            for (size_t n = 0; n < batch; ++n) {
              for (size_t m = 0; m < out; ++m) {
                double sum = (a.inputs.size() > 2 && a.inputs[2]) ? a.inputs[2]->data[m] : 0.0;
                for (size_t k = 0; k < in; ++k) sum += x.data[n * in + k] * w.data[m * in + k];
                y.data[n * out + m] = sum;
              }
            }
          },
          [](BackwardArgs& a) {
            const auto& x = *a.inputs[0];
            const auto& w = *a.inputs[1];
            const auto& dy = *a.output_grads[0];
            const size_t batch = static_cast<size_t>(x.shape[0]);
            const size_t in = static_cast<size_t>(x.shape[1]);
            const size_t out = static_cast<size_t>(w.shape[0]);
            for (size_t n = 0; n < batch; ++n) {
              for (size_t m = 0; m < out; ++m) {
                const double g = dy.data[n * out + m];
                if (a.input_grads[0]) {
                  for (size_t k = 0; k < in; ++k)
                    a.input_grads[0]->data[n * in + k] += g * w.data[m * in + k];
                }
                if (a.input_grads[1]) {
                  for (size_t k = 0; k < in; ++k)
                    a.input_grads[1]->data[m * in + k] += g * x.data[n * in + k];
                }
                if (a.input_grads.size() > 2 && a.input_grads[2]) a.input_grads[2]->data[m] += g;
              }
            }
          }};
}

// ---- concat ------------------------------------------------------------------------------------

Kernel concat_kernel() {
  // Walks the output in (outer, axis, inner) order, copying each input's slab.
  auto walk = [](const Node& node, const std::vector<Shape>& shapes, const Shape& out,
                 auto&& visit) {
    int64_t axis = node.get_int("axis", 1);
    if (axis < 0) axis += static_cast<int64_t>(out.size());
    const auto v = axis_view(out, axis);
    for (size_t o = 0; o < v.outer; ++o) {
      size_t offset = 0;
      for (size_t k = 0; k < shapes.size(); ++k) {
        const size_t extent = static_cast<size_t>(shapes[k][static_cast<size_t>(axis)]);
        const size_t slab = extent * v.inner;
        for (size_t i = 0; i < slab; ++i)
          visit(k, o * slab + i, (o * v.extent + offset) * v.inner + i);
        offset += extent;
      }
    }
  };
  return {[walk](ForwardArgs& a) {
            std::vector<Shape> shapes;
            for (auto* in : a.inputs) shapes.push_back(in->shape);
            walk(a.node, shapes, a.outputs[0]->shape, [&](size_t k, size_t src, size_t dst) {
              a.outputs[0]->data[dst] = a.inputs[k]->data[src];
            });
          },
          [walk](BackwardArgs& a) {
            std::vector<Shape> shapes;
            for (auto* in : a.inputs) shapes.push_back(in->shape);
            walk(a.node, shapes, a.output_grads[0]->shape, [&](size_t k, size_t src, size_t dst) {
              if (a.input_grads[k]) a.input_grads[k]->data[src] += a.output_grads[0]->data[dst];
            });
          }};
}

// ---- batch normalization -----------------------------------------------------------------------

// A batch norm trains (batch statistics) only in training mode and when its scale is trainable;
// a frozen batch norm runs in inference mode (DESIGN.md).
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
            const double eps = a.node.get_float("epsilon", 1e-5);
            const double momentum = a.node.get_float("momentum", 0.9);
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

Kernel bce_with_logits_kernel() {
  auto weight = [](const Node& node, double label) {
    return label * node.get_float("weight_positive", 1.0) +
           (1.0 - label) * node.get_float("weight_negative", 1.0);
  };
  return {[weight](ForwardArgs& a) {
            const auto& z = a.inputs[0]->data;
            const auto& y = a.inputs[1]->data;
            double sum = 0;
            for (size_t i = 0; i < z.size(); ++i) {
              // max(z,0) - z*y + log(1 + exp(-|z|)): never overflows.
              sum += weight(a.node, y[i]) *
                     (std::max(z[i], 0.0) - z[i] * y[i] + std::log1p(std::exp(-std::abs(z[i]))));
            }
            a.outputs[0]->data[0] = sum / static_cast<double>(z.size());
          },
          [weight](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const auto& z = a.inputs[0]->data;
            const auto& y = a.inputs[1]->data;
            const double g = a.output_grads[0]->data[0] / static_cast<double>(z.size());
            for (size_t i = 0; i < z.size(); ++i) {
              a.input_grads[0]->data[i] += g * weight(a.node, y[i]) * (sigmoid(z[i]) - y[i]);
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

void add_core_kernels(KernelTable& table) {
  table["Relu"] = unary([](double x) { return x > 0 ? x : 0.0; },
                        [](double x, double) { return x > 0 ? 1.0 : 0.0; });
  table["Sigmoid"] = unary(sigmoid, [](double, double y) { return y * (1.0 - y); });
  table["Tanh"] =
      unary([](double x) { return std::tanh(x); }, [](double, double y) { return 1.0 - y * y; });
  table["LeakyRelu"] = Kernel{};  // needs the node's alpha: set below
  table["LeakyRelu"].forward = [](ForwardArgs& a) {
    const double alpha = a.node.get_float("alpha", 0.01);
    for (size_t i = 0; i < a.inputs[0]->size(); ++i) {
      const double x = a.inputs[0]->data[i];
      a.outputs[0]->data[i] = x > 0 ? x : alpha * x;
    }
  };
  table["LeakyRelu"].backward = [](BackwardArgs& a) {
    if (!a.input_grads[0]) return;
    const double alpha = a.node.get_float("alpha", 0.01);
    for (size_t i = 0; i < a.inputs[0]->size(); ++i) {
      a.input_grads[0]->data[i] +=
          a.output_grads[0]->data[i] * (a.inputs[0]->data[i] > 0 ? 1.0 : alpha);
    }
  };
  table["Identity"] = copy_kernel();
  table["Flatten"] = copy_kernel();
  table["Reshape"] = copy_kernel();
  table["Dropout"] = dropout_kernel();
  table["Add"] = add_kernel();
  table["Softmax"] = softmax_kernel();
  table["Conv"] = conv_kernel();
  table["MaxPool"] = max_pool_kernel();
  table["AveragePool"] = average_pool_kernel();
  table["GlobalAveragePool"] = global_average_pool_kernel();
  table["Dense"] = dense_kernel();
  table["Concat"] = concat_kernel();
  table["BatchNormalization"] = batch_norm_kernel();
  table["BinaryCrossEntropyWithLogits"] = bce_with_logits_kernel();
  table["SoftmaxCrossEntropy"] = softmax_cross_entropy_kernel();
}

}  // namespace onnxforge::reference
