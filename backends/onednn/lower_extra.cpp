// Lowerings of the ops of graph/ops_extra.cpp (imported models): Mul, Sub, Div (oneDNN binary
// for equal shapes, broadcasting loops otherwise), Transpose (a reorder between a permuted view
// and a plain layout), Clip and Pad (loops on plain layouts)
// and MatMul (oneDNN matmul with batch broadcasting).
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "backends/onednn/broadcast.hpp"
#include "backends/onednn/program.hpp"
#include "core/error.hpp"

namespace onnxforge::onednn {

namespace {

using dnnl::algorithm;
using dnnl::prop_kind;

float* floats(const memory& mem) { return static_cast<float*>(mem.get_data_handle()); }
std::size_t float_count(const memory& mem) { return mem.get_desc().get_size() / sizeof(float); }

void lower_arithmetic(OnednnProgram& p, const Node& n, Plan plan) {
  const std::string a = n.inputs[0];
  const std::string b = n.inputs[1];
  const std::string y = n.outputs[0];
  const Shape as = p.value(a).shape;
  const Shape bs = p.value(b).shape;
  const Shape ys = p.value(y).shape;
  const char op = n.is(OpId::Mul) ? '*' : n.is(OpId::Sub) ? '-' : '/';
  if (as == ys && bs == ys) {
    const algorithm alg = op == '*'   ? algorithm::binary_mul
                          : op == '-' ? algorithm::binary_sub
                                      : algorithm::binary_div;
    const Desc md = p.value(a).md;
    dnnl::binary::primitive_desc pd({alg, md, md, p.output_desc(y)}, p.engine());
    p.define(y, pd.dst_desc());
    p.add_primitive(plan, fmt::format("{}: binary {} ({})", n.name, n.op, pd.impl_info_str()),
                    dnnl::binary(pd),
                    {{DNNL_ARG_SRC_0, p.use(a, pd.src0_desc(), plan)},
                     {DNNL_ARG_SRC_1, p.use(b, pd.src1_desc(), plan)},
                     {DNNL_ARG_DST, p.value(y).mem}});
  } else {
    memory am = p.use(a, plain_desc(as), plan);
    memory bm = p.use(b, plain_desc(bs), plan);
    memory ym = p.define(y, plain_desc(ys));
    const auto sa = broadcast_strides(as, ys);
    const auto sb = broadcast_strides(bs, ys);
    p.add(plan, fmt::format("{}: broadcast {} (loop)", n.name, n.op), {am, bm, ym},
          [am, bm, ym, ys, sa, sb, op]() {
            const float* pa = floats(am);
            const float* pb = floats(bm);
            float* py = floats(ym);
            for_each_broadcast(ys, sa, sb, [&](std::int64_t i, std::int64_t ia, std::int64_t ib) {
              py[i] = op == '*' ? pa[ia] * pb[ib] : op == '-' ? pa[ia] - pb[ib] : pa[ia] / pb[ib];
            });
          });
  }
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, a, b, y, as, bs, ys, op]() {
    if (!p.needs_gradient(y)) return;
    const bool need_a = p.needs_gradient(a);
    const bool need_b = p.needs_gradient(b);
    if (!need_a && !need_b) return;
    // Plain loops: da = dy * d(a op b)/da summed over a's broadcast dimensions, likewise db.
    memory dy = p.gradient_in(y, plain_desc(ys));
    memory am = p.use(a, plain_desc(as), Plan::backward);
    memory bm = p.use(b, plain_desc(bs), Plan::backward);
    memory da = need_a ? p.allocate(plain_desc(as)) : memory();
    memory db = need_b ? p.allocate(plain_desc(bs)) : memory();
    const auto sa = broadcast_strides(as, ys);
    const auto sb = broadcast_strides(bs, ys);
    p.add(Plan::backward, fmt::format("{}: {} backward (loop)", n.name, n.op), {dy, am, bm, da, db},
          [dy, am, bm, da, db, ys, sa, sb, op]() {
            const float* g = floats(dy);
            const float* pa = floats(am);
            const float* pb = floats(bm);
            float* pda = da ? floats(da) : nullptr;
            float* pdb = db ? floats(db) : nullptr;
            if (pda) std::fill(pda, pda + float_count(da), 0.f);
            if (pdb) std::fill(pdb, pdb + float_count(db), 0.f);
            for_each_broadcast(ys, sa, sb, [&](std::int64_t i, std::int64_t ia, std::int64_t ib) {
              const float gi = g[i];
              if (op == '*') {
                if (pda) pda[ia] += gi * pb[ib];
                if (pdb) pdb[ib] += gi * pa[ia];
              } else if (op == '-') {
                if (pda) pda[ia] += gi;
                if (pdb) pdb[ib] -= gi;
              } else {
                if (pda) pda[ia] += gi / pb[ib];
                if (pdb) pdb[ib] -= gi * pa[ia] / (pb[ib] * pb[ib]);
              }
            });
          });
    if (need_a) p.contribute(a, da, n.name);
    if (need_b) p.contribute(b, db, n.name);
  });
}

// Transpose: y (plain) is a reorder of x's plain bytes seen through permuted strides; backward
// reorders dy seen through the inverse permutation into dx.
void lower_transpose(OnednnProgram& p, const Node& n, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  const Shape ys = p.value(y).shape;
  const auto perm = n.get_ints("perm", {});
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

// Clip: element-wise on x's own layout; the gradient flows where min <= x <= max (NaN passes).
void lower_clip(OnednnProgram& p, const Node& n, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  const auto lo = static_cast<float>(n.get_float("min", -std::numeric_limits<double>::infinity()));
  const auto hi = static_cast<float>(n.get_float("max", std::numeric_limits<double>::infinity()));
  const Desc md = p.value(x).md;
  memory xm = p.value(x).mem;
  memory ym = p.define(y, md);
  p.add(plan, fmt::format("{}: clip (loop)", n.name), {xm, ym}, [xm, ym, lo, hi]() {
    const float* px = floats(xm);
    float* py = floats(ym);
    const auto count = static_cast<std::int64_t>(float_count(xm));
#pragma omp parallel for if (count > kParallelThreshold)
    for (std::int64_t i = 0; i < count; ++i) {
      const float v = px[i];
      py[i] = std::isnan(v) ? v : std::min(std::max(v, lo), hi);
    }
  });
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, x, y, md, xm, lo, hi]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    memory dy = p.gradient_in(y, md);
    GradSink sink = p.gradient_sink(x, md);
    memory dx = sink.mem;
    p.add(Plan::backward, fmt::format("{}: clip backward (loop)", n.name), {dy, dx, xm},
          [dy, dx, xm, lo, hi]() {
            const float* px = floats(xm);
            const float* g = floats(dy);
            float* out = floats(dx);
            const auto count = static_cast<std::int64_t>(float_count(xm));
#pragma omp parallel for if (count > kParallelThreshold)
            for (std::int64_t i = 0; i < count; ++i) {
              out[i] = px[i] >= lo && px[i] <= hi ? g[i] : 0.f;
            }
          });
    p.finish(sink);
  });
}

// Pad: a map from every y element to its x element (or -1 for the constant), built once.
void lower_pad(OnednnProgram& p, const Node& n, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  const Shape ys = p.value(y).shape;
  const auto pads = n.get_ints("pads", {});
  const std::string mode = n.get_string("mode", "constant");
  const auto value = static_cast<float>(n.get_float("value", 0.0));
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

// MatMul: oneDNN matmul on plain layouts, operands padded to the output's rank with leading 1s
// (oneDNN broadcasts batch dimensions of 1). Backward: dA = dY x B^T and dB = A^T x dY through
// transposed views (swapped strides), then a sum reduction over the batch dimensions an operand
// was broadcast along.
Shape padded(const Shape& s, std::size_t rank) {
  Shape out(rank - s.size(), 1);
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

// The plain desc of `s` with its last two dimensions swapped in place (a transposed view).
Desc transposed_view(const Shape& s) {
  Shape t = s;
  std::swap(t[t.size() - 1], t[t.size() - 2]);
  memory::dims strides(s.size(), 1);
  for (std::size_t i = s.size(); i-- > 1;) strides[i - 1] = strides[i] * s[i];
  std::swap(strides[s.size() - 1], strides[s.size() - 2]);
  return Desc(dims_of(t), DataType::f32, strides);
}

// Writes `full` (dims `full_shape`) summed down to `target` (dims `shape`, same rank) into the
// gradient of `name`.
void contribute_reduced(OnednnProgram& p, const std::string& name, const memory& full,
                        const Shape& full_shape, const Shape& shape, const std::string& label) {
  const Desc target = plain_desc(shape);
  if (full_shape == shape) {
    GradSink sink = p.gradient_sink(name, target, target);
    p.add_primitive(Plan::backward, label + " (copy)", dnnl::reorder(full, sink.mem),
                    {{DNNL_ARG_FROM, full}, {DNNL_ARG_TO, sink.mem}});
    p.finish(sink);
    return;
  }
  dnnl::reduction::primitive_desc rpd({algorithm::reduction_sum, full.get_desc(), target, 0.f, 0.f},
                                      p.engine());
  GradSink sink = p.gradient_sink(name, target, target);
  p.add_primitive(Plan::backward, label + " (batch sum)", dnnl::reduction(rpd),
                  {{DNNL_ARG_SRC, full}, {DNNL_ARG_DST, sink.mem}});
  p.finish(sink);
}

void lower_matmul(OnednnProgram& p, const Node& n, Plan plan) {
  const std::string a = n.inputs[0];
  const std::string b = n.inputs[1];
  const std::string y = n.outputs[0];
  const Shape ys = p.value(y).shape;
  const std::size_t rank = ys.size();
  const Shape as = padded(p.value(a).shape, rank);
  const Shape bs = padded(p.value(b).shape, rank);
  memory am = p.use(a, plain_desc(p.value(a).shape), plan);
  memory bm = p.use(b, plain_desc(p.value(b).shape), plan);
  const memory a_view(plain_desc(as), p.engine(), am.get_data_handle());
  const memory b_view(plain_desc(bs), p.engine(), bm.get_data_handle());
  memory ym = p.define(y, plain_desc(ys));
  dnnl::matmul::primitive_desc pd({plain_desc(as), plain_desc(bs), plain_desc(ys)}, p.engine());
  p.add_primitive(plan, fmt::format("{}: matmul ({})", n.name, pd.impl_info_str()),
                  dnnl::matmul(pd),
                  {{DNNL_ARG_SRC, a_view}, {DNNL_ARG_WEIGHTS, b_view}, {DNNL_ARG_DST, ym}});
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, a, b, y, ys, as, bs, a_view, b_view]() {
    if (!p.needs_gradient(y)) return;
    memory dy = p.gradient_in(y, plain_desc(ys));
    const std::size_t r = ys.size();
    if (p.needs_gradient(a)) {
      // dA (full batch) = dY [.., M, N] x B^T [.., N, K]
      Shape full = ys;
      full[r - 1] = as[r - 1];
      memory da = p.allocate(plain_desc(full));
      const Desc bt = transposed_view(bs);
      dnnl::matmul::primitive_desc dpd({plain_desc(ys), bt, plain_desc(full)}, p.engine());
      p.add_primitive(Plan::backward, fmt::format("{}: matmul backward A", n.name),
                      dnnl::matmul(dpd),
                      {{DNNL_ARG_SRC, dy},
                       {DNNL_ARG_WEIGHTS, memory(bt, p.engine(), b_view.get_data_handle())},
                       {DNNL_ARG_DST, da}});
      contribute_reduced(p, a, da, full, as, fmt::format("{}: dA", n.name));
    }
    if (p.needs_gradient(b)) {
      // dB (full batch) = A^T [.., K, M] x dY [.., M, N]
      Shape full = ys;
      full[r - 2] = bs[r - 2];
      memory db = p.allocate(plain_desc(full));
      const Desc at = transposed_view(as);
      dnnl::matmul::primitive_desc dpd({at, plain_desc(ys), plain_desc(full)}, p.engine());
      p.add_primitive(Plan::backward, fmt::format("{}: matmul backward B", n.name),
                      dnnl::matmul(dpd),
                      {{DNNL_ARG_SRC, memory(at, p.engine(), a_view.get_data_handle())},
                       {DNNL_ARG_WEIGHTS, dy},
                       {DNNL_ARG_DST, db}});
      contribute_reduced(p, b, db, full, bs, fmt::format("{}: dB", n.name));
    }
  });
}

}  // namespace

bool lower_extra_node(OnednnProgram& program, const Node& node, Plan plan) {
  const std::string& op = node.op;
  if (op == "Mul" || op == "Sub" || op == "Div") {
    lower_arithmetic(program, node, plan);
  } else if (op == "Transpose") {
    lower_transpose(program, node, plan);
  } else if (op == "Clip") {
    lower_clip(program, node, plan);
  } else if (op == "Pad") {
    lower_pad(program, node, plan);
  } else if (op == "MatMul") {
    lower_matmul(program, node, plan);
  } else {
    return false;
  }
  return true;
}

}  // namespace onnxforge::onednn
