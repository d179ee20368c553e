// Linear algebra kernels: Conv, Dense, MatMul.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/reference/ops/common.hpp"

namespace onnxforge::reference {

namespace {

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
                x.shape, w.shape, y.shape, win, attr_int(a.node, "group"),
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
              for_each_conv_tap(x.shape, w.shape, dy.shape, win, attr_int(a.node, "group"),
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

// ---- MatMul: y[..., m, n] = sum_k a[..., m, k] b[..., k, n] ---------------------------------
Kernel matmul_kernel() {
  return {[](ForwardArgs& a) {
            const auto& x = *a.inputs[0];
            const auto& w = *a.inputs[1];
            auto& y = *a.outputs[0];
            const auto g = matmul_batches(x.shape, w.shape, y.shape);
            for (size_t p = 0; p < g.batches(); ++p) {
              const auto* xa = x.data.data() + static_cast<size_t>(g.a_offset[p]);
              const auto* wb = w.data.data() + static_cast<size_t>(g.b_offset[p]);
              auto* yp = y.data.data() + static_cast<size_t>(g.y_offset[p]);
              for (int64_t i = 0; i < g.m; ++i) {
                for (int64_t j = 0; j < g.n; ++j) {
                  double sum = 0.0;
                  for (int64_t l = 0; l < g.k; ++l) sum += xa[i * g.k + l] * wb[l * g.n + j];
                  yp[i * g.n + j] = sum;
                }
              }
            }
          },
          [](BackwardArgs& a) {
            const auto& x = *a.inputs[0];
            const auto& w = *a.inputs[1];
            const auto& dy = *a.output_grads[0];
            const auto g = matmul_batches(x.shape, w.shape, dy.shape);
            for (size_t p = 0; p < g.batches(); ++p) {
              const auto ao = static_cast<size_t>(g.a_offset[p]);
              const auto bo = static_cast<size_t>(g.b_offset[p]);
              const auto* dyp = dy.data.data() + static_cast<size_t>(g.y_offset[p]);
              for (int64_t i = 0; i < g.m; ++i) {
                for (int64_t l = 0; l < g.k; ++l) {
                  for (int64_t j = 0; j < g.n; ++j) {
                    const double d = dyp[i * g.n + j];
                    if (a.input_grads[0]) {
                      a.input_grads[0]->data[ao + static_cast<size_t>(i * g.k + l)] +=
                          d * w.data[bo + static_cast<size_t>(l * g.n + j)];
                    }
                    if (a.input_grads[1]) {
                      a.input_grads[1]->data[bo + static_cast<size_t>(l * g.n + j)] +=
                          d * x.data[ao + static_cast<size_t>(i * g.k + l)];
                    }
                  }
                }
              }
            }
          }};
}

// ---- Transpose: y[i] = x[perm-mapped index] -------------------------------------------------
// Offset in x of every element of y, in order.

}  // namespace

void add_linear_algebra_kernels(KernelTable& table) {
  table.lower(OpId::Conv, conv_kernel());
  table.lower(OpId::Dense, dense_kernel());
  table.lower(OpId::MatMul, matmul_kernel());
}

}  // namespace onnxforge::reference
