// Reference kernels for the ops of graph/ops_extra.cpp (imported models): Mul, Sub, Div, MatMul,
// Transpose, Clip, Pad, LogSoftmax. Naive loops, double accumulation; forward and backward.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/reference/kernels.hpp"
#include "core/error.hpp"

namespace onnxforge::reference {

namespace {

using std::int64_t;
using std::size_t;

// Row-major strides of a shape.
std::vector<int64_t> strides_of(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
  return strides;
}

// Multi-index of flat element `flat` of `shape`.
std::vector<int64_t> unravel(const Shape& shape, int64_t flat) {
  std::vector<int64_t> index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return index;
}

// Offset in `in` (broadcast to `out`, numpy rules) of output element `flat`.
size_t broadcast_at(const Shape& out, const Shape& in, int64_t flat) {
  const auto index = unravel(out, flat);
  const auto strides = strides_of(in);
  const size_t shift = out.size() - in.size();
  int64_t offset = 0;
  for (size_t d = 0; d < in.size(); ++d) {
    if (in[d] != 1) offset += index[d + shift] * strides[d];
  }
  return static_cast<size_t>(offset);
}

// ---- Mul, Sub, Div: y = f(a, b) with d/da, d/db --------------------------------------------
Kernel binary(double (*f)(double, double), double (*dfa)(double, double),
              double (*dfb)(double, double)) {
  return {[f](ForwardArgs& a) {
            auto& y = *a.outputs[0];
            const auto& x0 = *a.inputs[0];
            const auto& x1 = *a.inputs[1];
            for (size_t i = 0; i < y.size(); ++i) {
              const auto k = static_cast<int64_t>(i);
              y.data[i] = f(x0.data[broadcast_at(y.shape, x0.shape, k)],
                            x1.data[broadcast_at(y.shape, x1.shape, k)]);
            }
          },
          [dfa, dfb](BackwardArgs& a) {
            const auto& dy = *a.output_grads[0];
            const auto& x0 = *a.inputs[0];
            const auto& x1 = *a.inputs[1];
            for (size_t i = 0; i < dy.size(); ++i) {
              const auto k = static_cast<int64_t>(i);
              const auto i0 = broadcast_at(dy.shape, x0.shape, k);
              const auto i1 = broadcast_at(dy.shape, x1.shape, k);
              if (a.input_grads[0]) {
                a.input_grads[0]->data[i0] += dy.data[i] * dfa(x0.data[i0], x1.data[i1]);
              }
              if (a.input_grads[1]) {
                a.input_grads[1]->data[i1] += dy.data[i] * dfb(x0.data[i0], x1.data[i1]);
              }
            }
          }};
}

// ---- MatMul: y[..., m, n] = sum_k a[..., m, k] b[..., k, n] ---------------------------------
struct MatMulGeometry {
  int64_t m, k, n, batches;
  std::vector<size_t> a_offset, b_offset;  // per output batch, in elements
};

MatMulGeometry matmul_geometry(const Shape& a, const Shape& b, const Shape& y) {
  MatMulGeometry g;
  g.m = a[a.size() - 2];
  g.k = a[a.size() - 1];
  g.n = b[b.size() - 1];
  const Shape batch_y(y.begin(), y.end() - 2);
  const Shape batch_a(a.begin(), a.end() - 2);
  const Shape batch_b(b.begin(), b.end() - 2);
  g.batches = 1;
  for (auto d : batch_y) g.batches *= d;
  for (int64_t i = 0; i < g.batches; ++i) {
    g.a_offset.push_back(broadcast_at(batch_y, batch_a, i) * static_cast<size_t>(g.m * g.k));
    g.b_offset.push_back(broadcast_at(batch_y, batch_b, i) * static_cast<size_t>(g.k * g.n));
  }
  return g;
}

Kernel matmul_kernel() {
  return {[](ForwardArgs& a) {
            const auto& x = *a.inputs[0];
            const auto& w = *a.inputs[1];
            auto& y = *a.outputs[0];
            const auto g = matmul_geometry(x.shape, w.shape, y.shape);
            for (int64_t p = 0; p < g.batches; ++p) {
              const auto* xa = x.data.data() + g.a_offset[static_cast<size_t>(p)];
              const auto* wb = w.data.data() + g.b_offset[static_cast<size_t>(p)];
              auto* yp = y.data.data() + static_cast<size_t>(p * g.m * g.n);
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
            const auto g = matmul_geometry(x.shape, w.shape, dy.shape);
            for (int64_t p = 0; p < g.batches; ++p) {
              const auto ao = g.a_offset[static_cast<size_t>(p)];
              const auto bo = g.b_offset[static_cast<size_t>(p)];
              const auto* dyp = dy.data.data() + static_cast<size_t>(p * g.m * g.n);
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
std::vector<size_t> transpose_map(const Shape& x, const std::vector<int64_t>& perm) {
  Shape y(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) y[i] = x[static_cast<size_t>(perm[i])];
  const auto xs = strides_of(x);
  std::vector<size_t> map(static_cast<size_t>(element_count(y)));
  for (size_t i = 0; i < map.size(); ++i) {
    const auto index = unravel(y, static_cast<int64_t>(i));
    int64_t offset = 0;
    for (size_t d = 0; d < perm.size(); ++d) offset += index[d] * xs[static_cast<size_t>(perm[d])];
    map[i] = static_cast<size_t>(offset);
  }
  return map;
}

Kernel transpose_kernel() {
  return {[](ForwardArgs& a) {
            const auto map = transpose_map(a.inputs[0]->shape, a.node.get_ints("perm", {}));
            for (size_t i = 0; i < map.size(); ++i)
              a.outputs[0]->data[i] = a.inputs[0]->data[map[i]];
          },
          [](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const auto map = transpose_map(a.inputs[0]->shape, a.node.get_ints("perm", {}));
            for (size_t i = 0; i < map.size(); ++i) {
              a.input_grads[0]->data[map[i]] += a.output_grads[0]->data[i];
            }
          }};
}

// ---- Clip ---------------------------------------------------------------------------------
Kernel clip_kernel() {
  auto bounds = [](const Node& node) {
    return std::pair{node.get_float("min", -std::numeric_limits<double>::infinity()),
                     node.get_float("max", std::numeric_limits<double>::infinity())};
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
std::vector<int64_t> pad_map(const Node& node, const Shape& x, const Shape& y) {
  const auto pads = node.get_ints("pads", {});
  const auto mode = node.get_string("mode", "constant");
  const auto rank = x.size();
  const auto xs = strides_of(x);
  std::vector<int64_t> map(static_cast<size_t>(element_count(y)));
  for (size_t i = 0; i < map.size(); ++i) {
    const auto index = unravel(y, static_cast<int64_t>(i));
    int64_t offset = 0;
    bool inside = true;
    for (size_t d = 0; d < rank; ++d) {
      int64_t c = index[d] - pads[d];
      const int64_t n = x[d];
      if (c < 0 || c >= n) {
        if (mode == "constant") {
          inside = false;
          break;
        }
        if (mode == "edge") {
          c = std::clamp<int64_t>(c, 0, n - 1);
        } else {  // reflect, without repeating the edge
          if (n == 1) {
            c = 0;
          } else {
            const int64_t period = 2 * (n - 1);
            c = ((c % period) + period) % period;
            if (c >= n) c = period - c;
          }
        }
      }
      offset += c * xs[d];
    }
    map[i] = inside ? offset : -1;
  }
  return map;
}

Kernel pad_kernel() {
  return {[](ForwardArgs& a) {
            const auto map = pad_map(a.node, a.inputs[0]->shape, a.outputs[0]->shape);
            const double value = a.node.get_float("value", 0.0);
            for (size_t i = 0; i < map.size(); ++i) {
              a.outputs[0]->data[i] =
                  map[i] < 0 ? value : a.inputs[0]->data[static_cast<size_t>(map[i])];
            }
          },
          [](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const auto map = pad_map(a.node, a.inputs[0]->shape, a.output_grads[0]->shape);
            for (size_t i = 0; i < map.size(); ++i) {
              if (map[i] >= 0) {
                a.input_grads[0]->data[static_cast<size_t>(map[i])] += a.output_grads[0]->data[i];
              }
            }
          }};
}

// ---- LogSoftmax along one axis ---------------------------------------------------------------
struct AxisGeometry {
  int64_t outer = 1, axis = 1, inner = 1;
};

AxisGeometry axis_geometry(const Node& node, const Shape& shape) {
  const auto rank = static_cast<int64_t>(shape.size());
  auto axis = node.get_int("axis", -1);
  if (axis < 0) axis += rank;
  AxisGeometry g;
  for (int64_t d = 0; d < rank; ++d) {
    const auto s = shape[static_cast<size_t>(d)];
    if (d < axis) {
      g.outer *= s;
    } else if (d == axis) {
      g.axis = s;
    } else {
      g.inner *= s;
    }
  }
  return g;
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

double mul(double a, double b) { return a * b; }
double mul_da(double, double b) { return b; }
double mul_db(double a, double) { return a; }
double sub(double a, double b) { return a - b; }
double sub_da(double, double) { return 1.0; }
double sub_db(double, double) { return -1.0; }
double div(double a, double b) { return a / b; }
double div_da(double, double b) { return 1.0 / b; }
double div_db(double a, double b) { return -a / (b * b); }

}  // namespace

void add_extra_kernels(KernelTable& table) {
  table["Mul"] = binary(mul, mul_da, mul_db);
  table["Sub"] = binary(sub, sub_da, sub_db);
  table["Div"] = binary(div, div_da, div_db);
  table["MatMul"] = matmul_kernel();
  table["Transpose"] = transpose_kernel();
  table["Clip"] = clip_kernel();
  table["Pad"] = pad_kernel();
  table["LogSoftmax"] = log_softmax_kernel();
}

}  // namespace onnxforge::reference
