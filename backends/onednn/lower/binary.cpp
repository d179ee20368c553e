// Binary arithmetic: Add, Sub, Mul, Div through oneDNN's binary primitive for equal shapes, and
// loops with numpy broadcasting on plain layouts otherwise.
#include <algorithm>
#include <cstdint>

#include "backends/onednn/lower/common.hpp"
#include "core/error.hpp"
#include "core/strides.hpp"

namespace onnxforge::onednn {

namespace {

void lower_add(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const std::string a = n.inputs[0];
  const std::string b = n.inputs[1];
  const std::string y = n.outputs[0];
  const Shape as = p.value(a).shape;
  const Shape bs = p.value(b).shape;
  const Shape ys = p.value(y).shape;
  if (as == ys && bs == ys) {
    const Desc md = p.value(a).md;
    dnnl::binary::primitive_desc pd({algorithm::binary_add, md, md, p.output_desc(y)}, p.engine());
    p.define(y, pd.dst_desc());
    p.add_primitive(plan, fmt::format("{}: binary add ({})", n.name, pd.impl_info_str()),
                    dnnl::binary(pd),
                    {{DNNL_ARG_SRC_0, p.use(a, pd.src0_desc(), plan)},
                     {DNNL_ARG_SRC_1, p.use(b, pd.src1_desc(), plan)},
                     {DNNL_ARG_DST, p.value(y).mem}});
  } else {
    // Numpy broadcasting on plain layouts.
    memory am = p.use(a, plain_desc(as), plan);
    memory bm = p.use(b, plain_desc(bs), plan);
    memory ym = p.define(y, plain_desc(ys));
    const auto sa = broadcast_strides(as, ys);
    const auto sb = broadcast_strides(bs, ys);
    p.add(plan, fmt::format("{}: broadcast add (loop)", n.name), {am, bm, ym},
          [am, bm, ym, ys, sa, sb]() {
            const float* pa = floats(am);
            const float* pb = floats(bm);
            float* py = floats(ym);
            for_each_broadcast(ys, sa, sb, [&](std::int64_t i, std::int64_t ia, std::int64_t ib) {
              py[i] = pa[ia] + pb[ib];
            });
          });
  }
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, a, b, y, as, bs, ys]() {
    if (!p.needs_gradient(y)) return;
    const Desc dy_md = p.value(y).md;
    memory dy = p.gradient_in(y, dy_md);
    for (int k = 0; k < 2; ++k) {
      const std::string& in = k == 0 ? a : b;
      const Shape& s = k == 0 ? as : bs;
      if (!p.needs_gradient(in)) continue;
      if (s == ys) {
        p.contribute(in, dy, n.name);
        continue;
      }
      // Sum the gradient over the broadcast dimensions.
      memory reduced = p.allocate(plain_desc(s));
      const auto strides = broadcast_strides(s, ys);
      const std::vector<std::int64_t> none(ys.size(), 0);
      p.add(Plan::backward, fmt::format("{}: broadcast add backward (loop)", n.name), {dy, reduced},
            [dy, reduced, ys, strides, none]() {
              const float* g = floats(dy);
              float* r = floats(reduced);
              std::fill(r, r + float_count(reduced), 0.f);
              for_each_broadcast(
                  ys, strides, none,
                  [&](std::int64_t i, std::int64_t ir, std::int64_t) { r[ir] += g[i]; });
            });
      p.contribute(in, reduced, n.name);
    }
  });
}

void lower_arithmetic(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
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

}  // namespace

void add_binary_lowerings(LoweringTable& table) {
  table.lower(OpId::Add, lower_add,
              {.backward = true,
               .note = "different shapes (numpy broadcasting) run as a single-threaded loop on "
                       "plain layouts, forward and backward"});
  table.lower({OpId::Sub, OpId::Mul, OpId::Div}, lower_arithmetic,
              {.backward = true,
               .note = "backward is a single-threaded loop on plain layouts, and so is the "
                       "forward of different shapes (numpy broadcasting)"});
}

}  // namespace onnxforge::onednn
