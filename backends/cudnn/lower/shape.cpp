// Shape ops: Flatten and Reshape (a device copy), Transpose, Concat, Pad (kernels.cu).
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

}  // namespace

void add_shape_ops(CudnnOpTable& t) {
  t.lower({OpId::Flatten, OpId::Reshape}, lower_copy, with_backward());
  t.lower(OpId::Transpose, lower_transpose, with_backward());
  t.lower(OpId::Concat, lower_concat, with_backward());
  t.lower(OpId::Pad, lower_pad,
          with_backward("reflect and edge: the backward " + std::string(kAddsWithAtomics)));
}

}  // namespace onnxforge::cudnn
