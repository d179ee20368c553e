// Shape and data movement: Flatten and Reshape (aliases of the plain bytes), Transpose (a reorder
// between a permuted view and a plain layout), Concat (oneDNN concat), Pad, Slice, Expand and
// Resize (loops on plain layouts).
#include <algorithm>
#include <cstdint>
#include <memory>

#include "backends/onednn/lower/common.hpp"
#include "core/error.hpp"
#include "core/strides.hpp"

namespace onnxforge::onednn {

namespace {

void lower_reshape(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  lower_as_view(p, n, plan);
}

}  // namespace

void lower_as_view(OnednnProgram& p, const Node& n, Plan plan) {
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

namespace {

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

// y[i] = x[map[i]] on plain layouts, OpenMP-parallel; `map` has one entry per y element.
void gather_forward(OnednnProgram& p, const Node& n, Plan plan, const std::string& what,
                    std::shared_ptr<const std::vector<std::int64_t>> map) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  memory xm = p.use(x, plain_desc(p.value(x).shape), plan);
  memory ym = p.define(y, plain_desc(p.value(y).shape));
  p.add(plan, fmt::format("{}: {} (loop)", n.name, what), {xm, ym}, [xm, ym, map]() {
    const float* px = floats(xm);
    float* py = floats(ym);
    const auto count = static_cast<std::int64_t>(map->size());
    const std::int64_t* m = map->data();
#pragma omp parallel for if (count > kParallelThreshold)
    for (std::int64_t i = 0; i < count; ++i) py[i] = px[m[i]];
  });
}

// The offsets, in x (row-major), of every element of a Slice's y.
std::shared_ptr<std::vector<std::int64_t>> slice_map(const Node& n, const Shape& xs,
                                                     const Shape& ys) {
  const auto axes = slice_axes(n, xs);
  const auto x_strides = row_major_strides(xs);
  std::int64_t base = 0;
  std::vector<std::int64_t> strides(xs.size());
  for (std::size_t d = 0; d < xs.size(); ++d) {
    base += axes[d].start * x_strides[d];
    strides[d] = axes[d].step * x_strides[d];
  }
  auto map = std::make_shared<std::vector<std::int64_t>>();
  map->reserve(static_cast<std::size_t>(element_count(ys)));
  for_each_broadcast(ys, strides, strides, [&](std::int64_t, std::int64_t offset, std::int64_t) {
    map->push_back(base + offset);
  });
  return map;
}

// Slice: a gather by a map built once; backward scatters dy into zeros (the map is one-to-one, so
// that loop is parallel too).
void lower_slice(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  const Shape ys = p.value(y).shape;
  const auto map = slice_map(n, xs, ys);
  gather_forward(p, n, plan, "slice", map);
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, x, y, xs, ys, map]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    memory dy = p.gradient_in(y, plain_desc(ys));
    GradSink sink = p.gradient_sink(x, plain_desc(xs));
    memory dx = sink.mem;
    p.add(Plan::backward, fmt::format("{}: slice backward (loop)", n.name), {dy, dx},
          [dy, dx, map]() {
            const float* g = floats(dy);
            float* out = floats(dx);
            const auto total = static_cast<std::int64_t>(float_count(dx));
            const auto count = static_cast<std::int64_t>(map->size());
            const std::int64_t* m = map->data();
#pragma omp parallel for if (total > kParallelThreshold)
            for (std::int64_t i = 0; i < total; ++i) out[i] = 0.f;
#pragma omp parallel for if (count > kParallelThreshold)
            for (std::int64_t i = 0; i < count; ++i) out[m[i]] = g[i];
          });
    p.finish(sink);
  });
}

// Expand: a gather by the broadcast offsets; backward sums dy over the broadcast dimensions
// (contribute_broadcast_sum: oneDNN's reduction where it has a kernel, else a loop).
void lower_expand(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  const Shape ys = p.value(y).shape;
  auto map = std::make_shared<std::vector<std::int64_t>>(broadcast_offsets(xs, ys));
  gather_forward(p, n, plan, "expand", map);
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, x, y, xs, ys]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    if (element_count(xs) == element_count(ys)) {
      p.contribute(
          x, memory(plain_desc(xs), p.engine(), p.gradient_in(y, plain_desc(ys)).get_data_handle()),
          n.name);
      return;
    }
    contribute_broadcast_sum(p, n, x, xs, y, ys);
  });
}

// Resize (4-D, plain NCHW): per output row and column the two input rows / columns and their
// weights (resize_taps), the planes (n, c) in parallel; backward adds each output's gradient into
// its taps, plane by plane (planes are disjoint, so that is parallel too).
struct ResizeTables {
  std::vector<std::int64_t> h0, h1, w0, w1;
  std::vector<float> hw, ww;  // weight of the second tap
  std::int64_t planes = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
};

void lower_resize(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  const Shape ys = p.value(y).shape;
  auto t = std::make_shared<ResizeTables>();
  t->planes = xs[0] * xs[1];
  t->in_h = xs[2];
  t->in_w = xs[3];
  t->out_h = ys[2];
  t->out_w = ys[3];
  for (const auto& tap : resize_taps(n, xs, ys, 2)) {
    t->h0.push_back(tap.i0);
    t->h1.push_back(tap.i1);
    t->hw.push_back(static_cast<float>(tap.w));
  }
  for (const auto& tap : resize_taps(n, xs, ys, 3)) {
    t->w0.push_back(tap.i0);
    t->w1.push_back(tap.i1);
    t->ww.push_back(static_cast<float>(tap.w));
  }
  const std::string mode = attr_string(n, "mode");
  memory xm = p.use(x, plain_desc(xs), plan);
  memory ym = p.define(y, plain_desc(ys));
  p.add(plan, fmt::format("{}: resize {} (loop)", n.name, mode), {xm, ym}, [xm, ym, t]() {
    const float* px = floats(xm);
    float* py = floats(ym);
    const std::int64_t in_plane = t->in_h * t->in_w, out_plane = t->out_h * t->out_w;
#pragma omp parallel for if (t->planes * out_plane > kParallelThreshold)
    for (std::int64_t c = 0; c < t->planes; ++c) {
      const float* src = px + c * in_plane;
      float* dst = py + c * out_plane;
      for (std::int64_t h = 0; h < t->out_h; ++h) {
        const float* r0 = src + t->h0[static_cast<std::size_t>(h)] * t->in_w;
        const float* r1 = src + t->h1[static_cast<std::size_t>(h)] * t->in_w;
        const float a = t->hw[static_cast<std::size_t>(h)];
        for (std::int64_t w = 0; w < t->out_w; ++w) {
          const auto k = static_cast<std::size_t>(w);
          const float b = t->ww[k];
          const float top = r0[t->w0[k]] + b * (r0[t->w1[k]] - r0[t->w0[k]]);
          const float bottom = r1[t->w0[k]] + b * (r1[t->w1[k]] - r1[t->w0[k]]);
          dst[h * t->out_w + w] = top + a * (bottom - top);
        }
      }
    }
  });
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, x, y, xs, ys, t]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    memory dy = p.gradient_in(y, plain_desc(ys));
    GradSink sink = p.gradient_sink(x, plain_desc(xs));
    memory dx = sink.mem;
    p.add(Plan::backward, fmt::format("{}: resize backward (loop)", n.name), {dy, dx},
          [dy, dx, t]() {
            const float* g = floats(dy);
            float* out = floats(dx);
            const std::int64_t in_plane = t->in_h * t->in_w, out_plane = t->out_h * t->out_w;
#pragma omp parallel for if (t->planes * out_plane > kParallelThreshold)
            for (std::int64_t c = 0; c < t->planes; ++c) {
              float* d = out + c * in_plane;
              const float* src = g + c * out_plane;
              std::fill(d, d + in_plane, 0.f);
              for (std::int64_t h = 0; h < t->out_h; ++h) {
                float* r0 = d + t->h0[static_cast<std::size_t>(h)] * t->in_w;
                float* r1 = d + t->h1[static_cast<std::size_t>(h)] * t->in_w;
                const float a = t->hw[static_cast<std::size_t>(h)];
                for (std::int64_t w = 0; w < t->out_w; ++w) {
                  const auto k = static_cast<std::size_t>(w);
                  const float b = t->ww[k];
                  const float v = src[h * t->out_w + w];
                  r0[t->w0[k]] += (1 - a) * (1 - b) * v;
                  r0[t->w1[k]] += (1 - a) * b * v;
                  r1[t->w0[k]] += a * (1 - b) * v;
                  r1[t->w1[k]] += a * b * v;
                }
              }
            }
          });
    p.finish(sink);
  });
}

}  // namespace

void add_shape_lowerings(LoweringTable& table) {
  const OpCoverage with_backward{.backward = true};
  table.lower({OpId::Flatten, OpId::Reshape}, lower_reshape, with_backward);
  table.lower(OpId::Transpose, lower_transpose, with_backward);
  table.lower(OpId::Concat, lower_concat, with_backward);
  table.lower(OpId::Pad, lower_pad, with_backward);
  table.lower(OpId::Slice, lower_slice,
              {.backward = true,
               .note = "a gather loop on plain layouts by an index map built at compile time"});
  table.lower(OpId::Expand, lower_expand,
              {.backward = true,
               .note = "a gather loop on plain layouts; backward sums with oneDNN's reduction "
                       "where it has a kernel for the broadcast dimensions, else a loop"});
  table.lower(OpId::Resize, lower_resize,
              {.backward = true,
               .note = "loops on plain NCHW, the planes in parallel (not oneDNN's resampling, "
                       "which has no ONNX coordinate modes)"});
}

}  // namespace onnxforge::onednn
