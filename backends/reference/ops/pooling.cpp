// Pooling kernels: MaxPool, AveragePool, GlobalAveragePool.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/reference/ops/common.hpp"

namespace onnxforge::reference {

namespace {

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
  auto divisor = [](bool include_pad, const PoolWindow& pw) {
    return static_cast<double>(include_pad ? pw.padded_count
                                           : static_cast<int64_t>(pw.taps.size()));
  };
  return {[divisor](ForwardArgs& a) {
            const bool include_pad = attr_int(a.node, "count_include_pad") != 0;
            const auto& x = *a.inputs[0];
            auto& y = *a.outputs[0];
            for_each_pool_window(
                x.shape, y.shape, window_of(a.node, a.graph), [&](size_t yi, const PoolWindow& pw) {
                  double sum = 0;
                  for (auto xi : pw.taps) sum += x.data[xi];
                  y.data[yi] = pw.taps.empty() ? 0.0 : sum / divisor(include_pad, pw);
                });
          },
          [divisor](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const bool include_pad = attr_int(a.node, "count_include_pad") != 0;
            const auto& dy = *a.output_grads[0];
            for_each_pool_window(a.inputs[0]->shape, dy.shape, window_of(a.node, a.graph),
                                 [&](size_t yi, const PoolWindow& pw) {
                                   for (auto xi : pw.taps) {
                                     a.input_grads[0]->data[xi] +=
                                         dy.data[yi] / divisor(include_pad, pw);
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

}  // namespace

void add_pooling_kernels(KernelTable& table) {
  table.lower(OpId::MaxPool, max_pool_kernel());
  table.lower(OpId::AveragePool, average_pool_kernel());
  table.lower(OpId::GlobalAveragePool, global_average_pool_kernel());
}

}  // namespace onnxforge::reference
