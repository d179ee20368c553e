// Shape kernels: Flatten, Reshape, Transpose, Concat, Pad, Slice, Expand, Resize.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/reference/ops/common.hpp"

namespace onnxforge::reference {

namespace {

std::vector<size_t> transpose_map(const Shape& x, const std::vector<int64_t>& perm) {
  Shape y(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) y[i] = x[static_cast<size_t>(perm[i])];
  const auto xs = row_major_strides(x);
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
            const auto map = transpose_map(a.inputs[0]->shape, attr_ints(a.node, "perm"));
            for (size_t i = 0; i < map.size(); ++i)
              a.outputs[0]->data[i] = a.inputs[0]->data[map[i]];
          },
          [](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const auto map = transpose_map(a.inputs[0]->shape, attr_ints(a.node, "perm"));
            for (size_t i = 0; i < map.size(); ++i) {
              a.input_grads[0]->data[map[i]] += a.output_grads[0]->data[i];
            }
          }};
}

// ---- Clip ---------------------------------------------------------------------------------
Kernel concat_kernel() {
  // Walks the output in (outer, axis, inner) order, copying each input's slab.
  auto walk = [](const Node& node, const std::vector<Shape>& shapes, const Shape& out,
                 auto&& visit) {
    int64_t axis = attr_int(node, "axis");
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
std::vector<int64_t> pad_map(const Node& node, const Shape& x, const Shape& y) {
  const auto pads = attr_ints(node, "pads");
  const auto mode = attr_string(node, "mode");
  const auto rank = x.size();
  const auto xs = row_major_strides(x);
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
            const double value = attr_float(a.node, "value");
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

// ---- Slice, Expand: each output element reads one input element -------------------------------

// The input offset of every output element of a Slice.
std::vector<size_t> slice_map(const Node& node, const Shape& x, const Shape& y) {
  const auto axes = slice_axes(node, x);
  const auto xs = row_major_strides(x);
  std::vector<size_t> map(static_cast<size_t>(element_count(y)));
  for (size_t i = 0; i < map.size(); ++i) {
    const auto index = unravel(y, static_cast<int64_t>(i));
    int64_t offset = 0;
    for (size_t d = 0; d < x.size(); ++d)
      offset += (axes[d].start + index[d] * axes[d].step) * xs[d];
    map[i] = static_cast<size_t>(offset);
  }
  return map;
}

// The input offset of every output element of an Expand (numpy broadcasting).
std::vector<size_t> expand_map(const Shape& x, const Shape& y) {
  std::vector<size_t> map(static_cast<size_t>(element_count(y)));
  for (size_t i = 0; i < map.size(); ++i) map[i] = broadcast_index(y, x, static_cast<int64_t>(i));
  return map;
}

// y[i] = x[map[i]]; backward: dx[map[i]] += dy[i] (scatter into zeros).
Kernel gather_kernel(std::vector<size_t> (*map_of)(const Node&, const Shape&, const Shape&)) {
  return {[map_of](ForwardArgs& a) {
            const auto map = map_of(a.node, a.inputs[0]->shape, a.outputs[0]->shape);
            for (size_t i = 0; i < map.size(); ++i)
              a.outputs[0]->data[i] = a.inputs[0]->data[map[i]];
          },
          [map_of](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const auto map = map_of(a.node, a.inputs[0]->shape, a.output_grads[0]->shape);
            for (size_t i = 0; i < map.size(); ++i) {
              a.input_grads[0]->data[map[i]] += a.output_grads[0]->data[i];
            }
          }};
}

// ---- Resize: y[n,c,h,w] = sum over the H taps and the W taps of weight * x -------------------
template <typename Visit>
void resize_walk(const Node& node, const Shape& x, const Shape& y, Visit&& visit) {
  const auto th = resize_taps(node, x, y, 2);
  const auto tw = resize_taps(node, x, y, 3);
  for (int64_t n = 0; n < y[0]; ++n) {
    for (int64_t c = 0; c < y[1]; ++c) {
      for (int64_t h = 0; h < y[2]; ++h) {
        const auto& t = th[static_cast<size_t>(h)];
        for (int64_t w = 0; w < y[3]; ++w) {
          const auto& u = tw[static_cast<size_t>(w)];
          const size_t out = idx4(y, n, c, h, w);
          visit(out, idx4(x, n, c, t.i0, u.i0), (1 - t.w) * (1 - u.w));
          visit(out, idx4(x, n, c, t.i0, u.i1), (1 - t.w) * u.w);
          visit(out, idx4(x, n, c, t.i1, u.i0), t.w * (1 - u.w));
          visit(out, idx4(x, n, c, t.i1, u.i1), t.w * u.w);
        }
      }
    }
  }
}

Kernel resize_kernel() {
  return {[](ForwardArgs& a) {
            auto& y = a.outputs[0]->data;
            std::fill(y.begin(), y.end(), 0.0);
            resize_walk(a.node, a.inputs[0]->shape, a.outputs[0]->shape,
                        [&](size_t out, size_t in, double weight) {
                          y[out] += weight * a.inputs[0]->data[in];
                        });
          },
          [](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            resize_walk(a.node, a.inputs[0]->shape, a.output_grads[0]->shape,
                        [&](size_t out, size_t in, double weight) {
                          a.input_grads[0]->data[in] += weight * a.output_grads[0]->data[out];
                        });
          }};
}

}  // namespace

void add_shape_kernels(KernelTable& table) {
  table.lower({OpId::Flatten, OpId::Reshape}, copy_kernel());
  table.lower(OpId::Transpose, transpose_kernel());
  table.lower(OpId::Concat, concat_kernel());
  table.lower(OpId::Pad, pad_kernel());
  table.lower(OpId::Slice, gather_kernel(slice_map));
  table.lower(OpId::Expand, gather_kernel([](const Node&, const Shape& x, const Shape& y) {
                return expand_map(x, y);
              }));
  table.lower(OpId::Resize, resize_kernel());
}

}  // namespace onnxforge::reference
