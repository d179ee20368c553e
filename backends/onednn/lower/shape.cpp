// Shape and data movement: Flatten and Reshape (aliases of the plain bytes), Transpose (a reorder
// between a permuted view and a plain layout), Concat (oneDNN concat), Pad (a loop on plain
// layouts).
#include <algorithm>
#include <cstdint>
#include <memory>

#include "backends/onednn/lower/common.hpp"
#include "core/error.hpp"

namespace onnxforge::onednn {

namespace {

void lower_reshape(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  const Shape ys = p.value(y).shape;
  memory plain = p.use(x, plain_desc(xs), plan);
  p.define_alias(y, plain_desc(ys), plain.get_data_handle());
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, x, y, xs, ys]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    memory dy = p.gradient_in(y, plain_desc(ys));
    p.contribute(x, memory(plain_desc(xs), p.engine(), dy.get_data_handle()), n.name);
  });
}

// Transpose: y (plain) is a reorder of x's plain bytes seen through permuted strides; backward
// reorders dy seen through the inverse permutation into dx.
void lower_transpose(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  const Shape ys = p.value(y).shape;
  const auto perm = attr_ints(n, "perm");
  const std::size_t rank = xs.size();
  auto strides_of = [](const Shape& s) {
    memory::dims st(s.size(), 1);
    for (std::size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
    return st;
  };
  const memory::dims x_strides = strides_of(xs);
  const memory::dims y_strides = strides_of(ys);
  memory::dims permuted(rank), inverse(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const auto from = static_cast<std::size_t>(perm[i]);
    permuted[i] = x_strides[from];  // y dim i walks x dim perm[i]
    inverse[from] = y_strides[i];   // x dim perm[i] sits at y's stride i
  }
  memory xp = p.use(x, plain_desc(xs), plan);
  memory ym = p.define(y, plain_desc(ys));
  memory view(Desc(dims_of(ys), DataType::f32, permuted), p.engine(), xp.get_data_handle());
  p.add_primitive(plan, fmt::format("{}: transpose (reorder)", n.name), dnnl::reorder(view, ym),
                  {{DNNL_ARG_FROM, view}, {DNNL_ARG_TO, ym}});
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, x, y, xs, ys, inverse]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    memory dy = p.gradient_in(y, plain_desc(ys));
    p.contribute(
        x, memory(Desc(dims_of(xs), DataType::f32, inverse), p.engine(), dy.get_data_handle()),
        n.name);
  });
}

void lower_concat(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const std::string y = n.outputs[0];
  const Shape ys = p.value(y).shape;
  std::int64_t axis = attr_int(n, "axis");
  if (axis < 0) axis += static_cast<std::int64_t>(ys.size());
  std::vector<Desc> srcs;
  std::unordered_map<int, memory> args;
  for (std::size_t i = 0; i < n.inputs.size(); ++i) {
    const Desc md = plain_desc(p.value(n.inputs[i]).shape);
    srcs.push_back(md);
    args[DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i)] = p.use(n.inputs[i], md, plan);
  }
  dnnl::concat::primitive_desc pd(plain_desc(ys), static_cast<int>(axis), srcs, p.engine());
  p.define(y, pd.dst_desc());
  args[DNNL_ARG_DST] = p.value(y).mem;
  p.add_primitive(plan, fmt::format("{}: concat ({})", n.name, pd.impl_info_str()),
                  dnnl::concat(pd), args);
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, y, ys, axis]() {
    if (!p.needs_gradient(y)) return;
    memory dy = p.gradient_in(y, plain_desc(ys));
    memory::dims offsets(ys.size(), 0);
    for (const auto& in : n.inputs) {
      const Shape s = p.value(in).shape;
      if (p.needs_gradient(in)) {
        const Desc part = plain_desc(ys).submemory_desc(dims_of(s), offsets);
        p.contribute(in, memory(part, p.engine(), dy.get_data_handle()), n.name);
      }
      offsets[static_cast<std::size_t>(axis)] += s[static_cast<std::size_t>(axis)];
    }
  });
}

// Pad: a map from every y element to its x element (or -1 for the constant), built once.
void lower_pad(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  const Shape ys = p.value(y).shape;
  const auto pads = attr_ints(n, "pads");
  const std::string mode = attr_string(n, "mode");
  const auto value = static_cast<float>(attr_float(n, "value"));
  const std::size_t rank = xs.size();
  std::vector<std::int64_t> x_strides(rank, 1);
  for (std::size_t i = rank; i-- > 1;) x_strides[i - 1] = x_strides[i] * xs[i];
  auto map =
      std::make_shared<std::vector<std::int64_t>>(static_cast<std::size_t>(element_count(ys)));
  std::vector<std::int64_t> index(rank, 0);
  for (auto& entry : *map) {
    std::int64_t offset = 0;
    bool inside = true;
    for (std::size_t d = 0; d < rank && inside; ++d) {
      std::int64_t c = index[d] - pads[d];
      const std::int64_t size = xs[d];
      if (c < 0 || c >= size) {
        if (mode == "constant") {
          inside = false;
        } else if (mode == "edge") {
          c = std::clamp<std::int64_t>(c, 0, size - 1);
        } else if (size == 1) {
          c = 0;
        } else {  // reflect, without repeating the edge
          const std::int64_t period = 2 * (size - 1);
          c = ((c % period) + period) % period;
          if (c >= size) c = period - c;
        }
      }
      offset += c * x_strides[d];
    }
    entry = inside ? offset : -1;
    for (std::size_t d = rank; d-- > 0;) {
      if (++index[d] < ys[d]) break;
      index[d] = 0;
    }
  }
  memory xm = p.use(x, plain_desc(xs), plan);
  memory ym = p.define(y, plain_desc(ys));
  p.add(plan, fmt::format("{}: pad {} (loop)", n.name, mode), {xm, ym}, [xm, ym, map, value]() {
    const float* px = floats(xm);
    float* py = floats(ym);
    const auto count = static_cast<std::int64_t>(map->size());
    const std::int64_t* m = map->data();
#pragma omp parallel for if (count > kParallelThreshold)
    for (std::int64_t i = 0; i < count; ++i) py[i] = m[i] < 0 ? value : px[m[i]];
  });
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, x, y, xs, ys, map]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    memory dy = p.gradient_in(y, plain_desc(ys));
    memory dx = p.allocate(plain_desc(xs));
    p.add(Plan::backward, fmt::format("{}: pad backward (loop)", n.name), {dy, dx},
          [dy, dx, map]() {
            const float* g = floats(dy);
            float* out = floats(dx);
            std::fill(out, out + float_count(dx), 0.f);
            for (std::size_t i = 0; i < map->size(); ++i) {
              if ((*map)[i] >= 0) out[(*map)[i]] += g[i];
            }
          });
    p.contribute(x, dx, n.name);
  });
}

}  // namespace

void add_shape_lowerings(LoweringTable& table) {
  const OpCoverage with_backward{.backward = true};
  table.lower({OpId::Flatten, OpId::Reshape}, lower_reshape, with_backward);
  table.lower(OpId::Transpose, lower_transpose, with_backward);
  table.lower(OpId::Concat, lower_concat, with_backward);
  table.lower(OpId::Pad, lower_pad, with_backward);
}

}  // namespace onnxforge::onednn
