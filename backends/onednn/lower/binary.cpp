// Binary arithmetic: Add, Sub, Mul, Div. Equal shapes: oneDNN's binary primitive in the operands'
// own layout. Numpy broadcasting: oneDNN's binary primitive too where oneDNN 2.6 has a kernel for
// the case (lower_broadcast_binary), loops on plain layouts elsewhere. Backward: Add's sum over
// the broadcast dimensions is oneDNN's reduction where it has a kernel for it, the loop elsewhere;
// Sub, Mul and Div run their backward as one loop on plain layouts.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "backends/onednn/lower/common.hpp"
#include "core/error.hpp"
#include "core/strides.hpp"

namespace onnxforge::onednn {

namespace {

algorithm binary_algorithm(const Node& n) {
  switch (op_of(n)) {
    case OpId::Add:
      return algorithm::binary_add;
    case OpId::Sub:
      return algorithm::binary_sub;
    case OpId::Mul:
      return algorithm::binary_mul;
    default:
      return algorithm::binary_div;
  }
}

// The format tag of `md` among the layouts whose broadcasting oneDNN 2.6's jit binary kernels take
// (with src1 in the same layout): plain, channels-last, channels in blocks of 8 or 16.
std::optional<Tag> binary_layout_tag(const Desc& md) {
  std::vector<Tag> tags;
  switch (md.data.ndims) {
    case 1:
      tags = {Tag::a};
      break;
    case 2:
      tags = {Tag::ab};
      break;
    case 3:
      tags = {Tag::abc, Tag::acb, Tag::aBc8b, Tag::aBc16b};
      break;
    case 4:
      tags = {Tag::abcd, Tag::acdb, Tag::aBcd8b, Tag::aBcd16b};
      break;
    case 5:
      tags = {Tag::abcde, Tag::acdeb, Tag::aBcde8b, Tag::aBcde16b};
      break;
    default:
      return std::nullopt;
  }
  for (const Tag tag : tags) {
    if (md == Desc(md.dims(), md.data_type(), tag)) return tag;
  }
  return std::nullopt;
}

// Value `name` in layout `md`, whose dims are the value's shape `padded` to the output's rank:
// its own memory or a view (use()) when the rank is its own, else its plain bytes seen with the
// leading 1s (reordered into `md` when that is not plain).
memory use_padded(OnednnProgram& p, const std::string& name, const Shape& padded_shape,
                  const Desc& md, Plan plan) {
  const Value& v = p.value(name);
  if (padded_shape.size() == v.shape.size()) return p.use(name, md, plan);
  const Desc padded_plain = plain_desc(padded_shape);
  if (v.md == plain_desc(v.shape)) return p.use(name, md, plan, padded_plain);
  const memory plain = p.use(name, plain_desc(v.shape), plan);
  return p.convert(memory(padded_plain, p.engine(), plain.get_data_handle()), md, plan, name);
}

// y = a op b with numpy broadcasting through oneDNN's binary primitive. oneDNN 2.6 takes it when
// src0 has the output's shape (Add and Mul swap their operands when only b has it) and src1,
// padded with leading 1s to the output's rank, broadcasts along its dimensions of 1; its jit
// kernels want src1 in src0's layout. Tried in src0's own layout, then both plain; false, with
// nothing lowered, where neither operand has the output's shape or where only oneDNN's reference
// implementation would run it (index arithmetic per element: no gain over the loop).
bool lower_broadcast_binary(OnednnProgram& p, const Node& n, Plan plan) {
  const std::string y = n.outputs[0];
  const Shape ys = p.value(y).shape;
  const std::size_t rank = ys.size();
  std::string src0 = n.inputs[0];
  std::string src1 = n.inputs[1];
  bool swapped = false;
  if (padded(p.value(src0).shape, rank) != ys) {
    const bool commutative = n.is(OpId::Add) || n.is(OpId::Mul);
    if (!commutative || padded(p.value(src1).shape, rank) != ys) return false;
    std::swap(src0, src1);
    swapped = true;
  }
  const Value& v0 = p.value(src0);
  const Shape s1 = padded(p.value(src1).shape, rank);
  std::vector<std::pair<Desc, Desc>> layouts;  // (src0, src1)
  if (v0.shape.size() == rank && v0.md.data_type() == DataType::f32) {
    if (const auto tag = binary_layout_tag(v0.md)) {
      layouts.emplace_back(v0.md, Desc(dims_of(s1), DataType::f32, *tag));
    }
  }
  layouts.emplace_back(plain_desc(ys), plain_desc(s1));
  for (const auto& [md0, md1] : layouts) {
    std::optional<dnnl::binary::primitive_desc> pd;
    try {
      pd.emplace(dnnl::binary::desc(binary_algorithm(n), md0, md1, p.output_desc(y)), p.engine());
    } catch (const dnnl::error&) {
      continue;
    }
    if (is_reference_impl(pd->impl_info_str())) continue;
    const memory m0 = use_padded(p, src0, ys, pd->src0_desc(), plan);
    const memory m1 = use_padded(p, src1, s1, pd->src1_desc(), plan);
    p.define(y, pd->dst_desc());
    p.add_primitive(plan,
                    fmt::format("{}: broadcast {} ({}{}) src {}", n.name, n.op, pd->impl_info_str(),
                                swapped ? ", operands swapped" : "", layout_name(pd->src0_desc())),
                    dnnl::binary(*pd),
                    {{DNNL_ARG_SRC_0, m0}, {DNNL_ARG_SRC_1, m1}, {DNNL_ARG_DST, p.value(y).mem}});
    return true;
  }
  return false;
}

}  // namespace

void contribute_broadcast_sum(OnednnProgram& p, const Node& n, const std::string& in,
                              const Shape& s, const std::string& y, const Shape& ys) {
  const memory dy = p.gradient_in(y, plain_desc(ys));
  const Shape ps = padded(s, ys.size());
  if (ps != ys) {  // equal: only leading 1s, nothing to reduce (the reduction refuses it)
    std::optional<dnnl::reduction::primitive_desc> rpd;
    try {
      rpd.emplace(
          dnnl::reduction::desc(algorithm::reduction_sum, plain_desc(ys), plain_desc(ps), 0.f, 0.f),
          p.engine());
    } catch (const dnnl::error&) {
      rpd.reset();
    }
    if (rpd && !is_reference_impl(rpd->impl_info_str())) {
      GradSink sink = p.gradient_sink(in, plain_desc(s));
      const memory sum(plain_desc(ps), p.engine(), sink.mem.get_data_handle());
      p.add_primitive(Plan::backward,
                      fmt::format("{}: broadcast {} backward (reduction, {})", n.name, n.op,
                                  rpd->impl_info_str()),
                      dnnl::reduction(*rpd), {{DNNL_ARG_SRC, dy}, {DNNL_ARG_DST, sum}});
      p.finish(sink);
      return;
    }
  }
  memory reduced = p.allocate(plain_desc(s));
  const auto strides = broadcast_strides(s, ys);
  const std::vector<std::int64_t> none(ys.size(), 0);
  p.add(Plan::backward, fmt::format("{}: broadcast add backward (loop)", n.name), {dy, reduced},
        [dy, reduced, ys, strides, none]() {
          const float* g = floats(dy);
          float* r = floats(reduced);
          std::fill(r, r + float_count(reduced), 0.f);
          for_each_broadcast(ys, strides, none,
                             [&](std::int64_t i, std::int64_t ir, std::int64_t) { r[ir] += g[i]; });
        });
  p.contribute(in, reduced, n.name);
}

namespace {

// The operands of a binary node, its output, their shapes and the op as '+', '-', '*' or '/'.
struct Operands {
  std::string a, b, y;
  Shape as, bs, ys;
  char op;
  Operands(OnednnProgram& p, const Node& n)
      : a(n.inputs[0]),
        b(n.inputs[1]),
        y(n.outputs[0]),
        as(p.value(a).shape),
        bs(p.value(b).shape),
        ys(p.value(y).shape),
        op(n.is(OpId::Add)   ? '+'
           : n.is(OpId::Mul) ? '*'
           : n.is(OpId::Sub) ? '-'
                             : '/') {}
};

// The forward of Add, Sub, Mul, Div: oneDNN's binary primitive for equal shapes or a broadcast it
// has a kernel for, else a loop over plain layouts (numpy broadcasting).
void lower_binary_forward(OnednnProgram& p, const Node& n, Plan plan, const Operands& o) {
  std::string name = n.op;  // "add", "mul", ...: the step labels
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (o.as == o.ys && o.bs == o.ys) {
    const Desc md = p.value(o.a).md;
    dnnl::binary::primitive_desc pd({binary_algorithm(n), md, md, p.output_desc(o.y)}, p.engine());
    p.define(o.y, pd.dst_desc());
    p.add_primitive(plan, fmt::format("{}: binary {} ({})", n.name, name, pd.impl_info_str()),
                    dnnl::binary(pd),
                    {{DNNL_ARG_SRC_0, p.use(o.a, pd.src0_desc(), plan)},
                     {DNNL_ARG_SRC_1, p.use(o.b, pd.src1_desc(), plan)},
                     {DNNL_ARG_DST, p.value(o.y).mem}});
    return;
  }
  if (lower_broadcast_binary(p, n, plan)) return;
  memory am = p.use(o.a, plain_desc(o.as), plan);
  memory bm = p.use(o.b, plain_desc(o.bs), plan);
  memory ym = p.define(o.y, plain_desc(o.ys));
  const auto sa = broadcast_strides(o.as, o.ys);
  const auto sb = broadcast_strides(o.bs, o.ys);
  p.add(plan, fmt::format("{}: broadcast {} (loop)", n.name, name), {am, bm, ym},
        [am, bm, ym, ys = o.ys, sa, sb, op = o.op]() {
          const float* pa = floats(am);
          const float* pb = floats(bm);
          float* py = floats(ym);
          for_each_broadcast(ys, sa, sb, [&](std::int64_t i, std::int64_t ia, std::int64_t ib) {
            const float u = pa[ia], v = pb[ib];
            py[i] = op == '+' ? u + v : op == '*' ? u * v : op == '-' ? u - v : u / v;
          });
        });
}

// Add's backward: dy itself into an input of the output's shape, summed over the broadcast
// dimensions into a smaller one.
void add_backward(OnednnProgram& p, const Node& n, const std::string& a, const std::string& b,
                  const std::string& y, const Shape& as, const Shape& bs, const Shape& ys) {
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
    contribute_broadcast_sum(p, n, in, s, y, ys);
  }
}

// Add, Sub, Mul and Div: one forward (lower_binary_forward); backward as add_backward for Add,
// else plain loops.
void lower_binary(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const Operands o(p, n);
  const std::string &a = o.a, &b = o.b, &y = o.y;
  const Shape &as = o.as, &bs = o.bs, &ys = o.ys;
  const char op = o.op;
  lower_binary_forward(p, n, plan, o);
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, a, b, y, as, bs, ys, op]() {
    if (!p.needs_gradient(y)) return;
    if (op == '+') return add_backward(p, n, a, b, y, as, bs, ys);
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
  table.lower(OpId::Add, lower_binary,
              {.backward = true,
               .note = "broadcasting: oneDNN's binary where one operand has the output's shape "
                       "and oneDNN 2.6 has a kernel for the layouts, else a single-threaded loop "
                       "on plain layouts; backward sums over the broadcast dimensions with "
                       "oneDNN's reduction where they are the innermost (or all), else a loop"});
  table.lower(OpId::Mul, lower_binary,
              {.backward = true,
               .note = "broadcasting: oneDNN's binary where one operand has the output's shape "
                       "and oneDNN 2.6 has a kernel for the layouts, else a single-threaded loop "
                       "on plain layouts; backward, for every shape: such a loop"});
  table.lower({OpId::Sub, OpId::Div}, lower_binary,
              {.backward = true,
               .note = "broadcasting: oneDNN's binary where A has the output's shape and oneDNN "
                       "2.6 has a kernel for the layouts, else a single-threaded loop on plain "
                       "layouts; backward, for every shape: such a loop"});
}

}  // namespace onnxforge::onednn
