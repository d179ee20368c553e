// Shape ops: Flatten and Reshape (a device copy), Transpose, Concat, Pad, Slice, Expand, Resize
// (kernels.cu).
#include <cstdint>
#include <string>
#include <vector>

#include "backends/cudnn/kernels.hpp"
#include "backends/cudnn/lower/common.hpp"
#include "backends/cudnn/plan.hpp"

namespace onnxforge::cudnn {

namespace {

void lower_concat(CudnnProgram& p, const Node& n) {
  const Shape& out = shape_of(p, n.outputs[0]);
  auto axis = attr_int(n, "axis");
  if (axis < 0) axis += static_cast<std::int64_t>(out.size());
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t d = 0; d < static_cast<std::int64_t>(out.size()); ++d) {
    if (d < axis) outer *= out[static_cast<std::size_t>(d)];
    if (d > axis) inner *= out[static_cast<std::size_t>(d)];
  }
  const std::int64_t row = out[static_cast<std::size_t>(axis)] * inner;
  struct Part {
    const float* x;
    float* dx;
    std::int64_t slab, offset;
  };
  std::vector<Part> parts;
  std::int64_t offset = 0;
  for (std::size_t k = 0; k < n.inputs.size(); ++k) {
    const std::int64_t extent = shape_of(p, n.inputs[k])[static_cast<std::size_t>(axis)];
    parts.push_back({p.value(n.inputs[k]).f(), p.input_gradient(n, k), extent * inner, offset});
    offset += extent * inner;
  }
  float* y = p.value(n.outputs[0]).f();
  p.add_forward([&p, parts, y, outer, row](Mode) {
    for (const auto& part : parts) {
      kernels::concat_forward(part.x, y, outer, part.slab, row, part.offset, p.stream());
    }
  });
  bool any = false;
  for (const auto& part : parts) any = any || part.dx;
  if (!any) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, parts, dy, outer, row]() {
    for (const auto& part : parts) {
      if (part.dx)
        kernels::concat_backward(dy, part.dx, outer, part.slab, row, part.offset, p.stream());
    }
  });
}

void lower_transpose(CudnnProgram& p, const Node& n) {
  const Permutation plan = make_permutation(shape_of(p, n.inputs[0]), attr_ints(n, "perm"));
  const float* x = p.value(n.inputs[0]).f();
  float* y = p.value(n.outputs[0]).f();
  const std::int64_t count = p.value(n.outputs[0]).count;
  p.add_forward(
      [&p, plan, x, y, count](Mode) { kernels::transpose_forward(plan, x, y, count, p.stream()); });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, plan, dy, dx, count]() {
    kernels::transpose_backward(plan, dy, dx, count, p.stream());
  });
}

void lower_pad(CudnnProgram& p, const Node& n) {
  const Padding plan = make_padding(n, shape_of(p, n.inputs[0]), shape_of(p, n.outputs[0]));
  const float* x = p.value(n.inputs[0]).f();
  float* y = p.value(n.outputs[0]).f();
  const std::int64_t count = p.value(n.outputs[0]).count;
  p.add_forward(
      [&p, plan, x, y, count](Mode) { kernels::pad_forward(plan, x, y, count, p.stream()); });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  p.add_backward(
      [&p, plan, dy, dx, count]() { kernels::pad_backward(plan, dy, dx, count, p.stream()); });
}

// Slice and Expand: y[i] = x[view(i)]; backward dx[view(i)] += dy[i] (atomics: an Expand's
// outputs share inputs).
void lower_strided(CudnnProgram& p, const Node& n) {
  const Shape& xs = shape_of(p, n.inputs[0]);
  const Shape& ys = shape_of(p, n.outputs[0]);
  const StridedView view =
      n.is(OpId::Slice) ? make_slice_view(n, xs, ys) : make_broadcast_view(xs, ys);
  const float* x = p.value(n.inputs[0]).f();
  float* y = p.value(n.outputs[0]).f();
  const std::int64_t count = p.value(n.outputs[0]).count;
  p.add_forward([&p, view, x, y, count](Mode) {
    kernels::strided_gather(view, x, y, 1.f, false, count, p.stream());
  });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, view, dy, dx, count]() {
    kernels::strided_scatter(view, dy, dx, 1.f, count, p.stream());
  });
}

// A host vector copied into Program-owned device memory.
template <typename T>
const T* upload(CudnnProgram& p, const std::vector<T>& host) {
  void* device = p.scratch(host.size() * sizeof(T));
  check(cudaMemcpy(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice),
        "cudaMemcpy (Resize taps)");
  return static_cast<const T*>(device);
}

// Resize: the taps of every output row and column (resize_taps) on the device.
void lower_resize(CudnnProgram& p, const Node& n) {
  const Shape& xs = shape_of(p, n.inputs[0]);
  const Shape& ys = shape_of(p, n.outputs[0]);
  kernels::ResizeGeometry g;
  g.planes = xs[0] * xs[1];
  g.in_h = xs[2];
  g.in_w = xs[3];
  g.out_h = ys[2];
  g.out_w = ys[3];
  std::vector<std::int64_t> i0, i1;
  std::vector<float> w;
  for (const std::size_t axis : {std::size_t{2}, std::size_t{3}}) {
    i0.clear();
    i1.clear();
    w.clear();
    for (const auto& tap : resize_taps(n, xs, ys, axis)) {
      i0.push_back(tap.i0);
      i1.push_back(tap.i1);
      w.push_back(static_cast<float>(tap.w));
    }
    (axis == 2 ? g.h0 : g.w0) = upload(p, i0);
    (axis == 2 ? g.h1 : g.w1) = upload(p, i1);
    (axis == 2 ? g.hw : g.ww) = upload(p, w);
  }
  const float* x = p.value(n.inputs[0]).f();
  float* y = p.value(n.outputs[0]).f();
  p.add_forward([&p, g, x, y](Mode) { kernels::resize_forward(g, x, y, p.stream()); });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, g, dy, dx]() { kernels::resize_backward(g, dy, dx, p.stream()); });
}

}  // namespace

void add_shape_ops(CudnnOpTable& t) {
  t.lower({OpId::Flatten, OpId::Reshape}, lower_copy, with_backward());
  t.lower(OpId::Transpose, lower_transpose, with_backward());
  t.lower(OpId::Concat, lower_concat, with_backward());
  t.lower(OpId::Pad, lower_pad,
          with_backward("reflect and edge: the backward " + std::string(kAddsWithAtomics)));
  t.lower(OpId::Slice, lower_strided, with_backward("not yet run on a GPU"));
  t.lower(
      OpId::Expand, lower_strided,
      with_backward("the backward " + std::string(kAddsWithAtomics) + "; not yet run on a GPU"));
  t.lower(
      OpId::Resize, lower_resize,
      with_backward("the backward " + std::string(kAddsWithAtomics) + "; not yet run on a GPU"));
}

}  // namespace onnxforge::cudnn
