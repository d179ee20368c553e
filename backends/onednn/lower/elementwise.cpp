// Element-wise ops: Relu, LeakyRelu, Sigmoid, Tanh (oneDNN eltwise), Identity (an alias),
// Clip and Dropout (loops on the input's own layout).
#include <cmath>
#include <cstdint>

#include "backends/onednn/lower/common.hpp"
#include "core/error.hpp"
#include "graph/builder.hpp"

namespace onnxforge::onednn {

namespace {

void lower_eltwise(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const bool training = plan == Plan::training;
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  algorithm alg = algorithm::eltwise_relu;
  float alpha = 0.f;
  bool use_dst = false;
  if (n.is(OpId::LeakyRelu)) {
    alpha = static_cast<float>(attr_float(n, "alpha"));
  } else if (n.is(OpId::Sigmoid)) {
    alg = algorithm::eltwise_logistic_use_dst_for_bwd;
    use_dst = true;
  } else if (n.is(OpId::Tanh)) {
    alg = algorithm::eltwise_tanh_use_dst_for_bwd;
    use_dst = true;
  }
  const Desc md = p.value(x).md;
  const auto prop = training ? prop_kind::forward_training : prop_kind::forward_inference;
  dnnl::eltwise_forward::primitive_desc pd({prop, alg, md, alpha, 0.f}, p.engine());
  p.define(y, pd.dst_desc());
  p.add_primitive(plan, fmt::format("{}: eltwise {} ({})", n.name, n.op, pd.impl_info_str()),
                  dnnl::eltwise_forward(pd),
                  {{DNNL_ARG_SRC, p.use(x, pd.src_desc(), plan)}, {DNNL_ARG_DST, p.value(y).mem}});
  if (!training) return;
  p.add_backward_builder([&p, n, x, y, alg, alpha, use_dst, pd]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    dnnl::eltwise_backward::primitive_desc bpd({alg, pd.dst_desc(), pd.src_desc(), alpha, 0.f},
                                               p.engine(), pd);
    memory dy = p.gradient_in(y, bpd.diff_dst_desc());
    GradSink sink = p.gradient_sink(x, bpd.diff_src_desc());
    std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_SRC, sink.mem}};
    if (use_dst) {
      args[DNNL_ARG_DST] = p.value(y).mem;
    } else {
      args[DNNL_ARG_SRC] = p.value(x).mem;
    }
    p.add_primitive(Plan::backward,
                    fmt::format("{}: eltwise {} backward ({})", n.name, n.op, bpd.impl_info_str()),
                    dnnl::eltwise_backward(bpd), args);
    p.finish(sink);
  });
}

void lower_identity(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  (void)plan;
  Value& in = p.value(x);
  p.define_alias(y, in.md, in.mem.get_data_handle());
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, x, y]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    p.contribute(x, p.gradient_in(y, p.value(y).md), n.name);
  });
}

// Clip: element-wise on x's own layout; the gradient flows where min <= x <= max (NaN passes).
void lower_clip(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  const auto lo = static_cast<float>(attr_float(n, "min"));
  const auto hi = static_cast<float>(attr_float(n, "max"));
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

void lower_dropout(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  Value& in = p.value(x);
  if (plan != Plan::training) {
    // Identity at inference: an alias, or a copy when training already gave it storage.
    if (!p.value(y).defined) {
      p.define_alias(y, in.md, in.mem.get_data_handle());
    } else if (p.value(y).mem.get_data_handle() != in.mem.get_data_handle()) {
      memory from = in.mem;
      memory to = p.value(y).mem;
      p.add_primitive(plan, fmt::format("{}: dropout at inference (copy)", n.name),
                      dnnl::reorder(from, to), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
    }
    return;
  }
  const double ratio = attr_float(n, "ratio");
  memory xm = in.mem;
  memory ym = p.define(y, in.md);
  memory mask = p.allocate(in.md);
  const std::uint64_t salt = hash_name(n.name);
  p.add(plan, fmt::format("{}: dropout {} (loop)", n.name, ratio), {xm, ym, mask},
        [&p, xm, ym, mask, ratio, salt]() {
          dropout_forward(floats(xm), floats(ym), floats(mask), float_count(xm), ratio,
                          p.dropout_seed() ^ salt);
        });
  p.add_backward_builder([&p, n, x, y, mask]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    memory dy = p.gradient_in(y, p.value(y).md);
    GradSink sink = p.gradient_sink(x, p.value(y).md);
    memory dx = sink.mem;
    p.add(Plan::backward, fmt::format("{}: dropout backward (loop)", n.name), {dy, mask, dx},
          [dy, mask, dx]() { multiply(floats(dy), floats(mask), floats(dx), float_count(dx)); });
    p.finish(sink);
  });
}

}  // namespace

void add_elementwise_lowerings(LoweringTable& table) {
  const OpCoverage with_backward{.backward = true};
  table.lower({OpId::Relu, OpId::LeakyRelu, OpId::Sigmoid, OpId::Tanh}, lower_eltwise,
              with_backward);
  table.lower(OpId::Identity, lower_identity, with_backward);
  table.lower(OpId::Clip, lower_clip, with_backward);
  table.lower(OpId::Dropout, lower_dropout, with_backward);
}

}  // namespace onnxforge::onednn
