// Pooling: MaxPool, AveragePool, GlobalAveragePool through oneDNN's pooling primitive, max
// pooling also through the loops of loops.cpp (PoolGeometry) where they measure faster. The
// oneDNN descriptor chooses the dst layout either way; a bf16 src (a bf16 activation, see
// bf16_readers_only) gives a bf16 dst.
#include <memory>
#include <optional>

#include "backends/onednn/lower/common.hpp"
#include "core/error.hpp"

namespace onnxforge::onednn {

namespace {

// Wall times of one max pooling (forward, plus backward when training) through the loops and
// through oneDNN's primitive, on scratch memory in the layouts the lowering chose.
struct PoolTimes {
  double loops = 0.0, onednn = 0.0;
};

// Which of the two runs faster depends on the CPU and the layout oneDNN picked for the tensor
// (docs/BENCHMARKS.md, onnxforge-pool-bench), so each Program measures it once per pooling node
// and plan. Both give the same results, ties included (first maximum in scan order; test
// OnednnPoolLoops.AgreeWithTheOnednnPrimitiveOnTies), except for the order in which
// overlapping windows add into one gradient element (lower_pool fixes the choice there).
PoolTimes time_max_pool(OnednnProgram& p, const PoolGeometry& g,
                        const dnnl::pooling_v2_forward::primitive_desc& pd,
                        const std::optional<dnnl::pooling_v2_backward::primitive_desc>& bpd) {
  ScratchMemories scratch(p.engine());
  memory src = scratch.make(pd.src_desc());
  memory dst = scratch.make(pd.dst_desc());
  float* x = floats(src);
  const std::size_t count = float_count(src);
  for (std::size_t i = 0; i < count; ++i) x[i] = static_cast<float>((i * 2654435761u) % 1000);
  std::vector<std::uint8_t> argmax(bpd ? float_count(dst) : 0);
  PoolTimes times;
  std::optional<memory> diff_src, workspace;
  if (bpd) diff_src = scratch.make(pd.src_desc());
  times.loops = best_time([&]() {
    max_pool_forward(g, x, floats(dst), bpd ? argmax.data() : nullptr);
    if (bpd) max_pool_backward(g, floats(dst), argmax.data(), floats(*diff_src));
  });
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  std::unordered_map<int, memory> bargs;
  if (bpd) {
    workspace = scratch.make(pd.workspace_desc());
    args[DNNL_ARG_WORKSPACE] = *workspace;
    bargs = {
        {DNNL_ARG_DIFF_DST, dst}, {DNNL_ARG_DIFF_SRC, *diff_src}, {DNNL_ARG_WORKSPACE, *workspace}};
  }
  dnnl::pooling_v2_forward forward(pd);
  std::optional<dnnl::pooling_v2_backward> backward;
  if (bpd) backward = dnnl::pooling_v2_backward(*bpd);
  times.onednn = best_time([&]() {
    forward.execute(p.stream(), args);
    if (backward) backward->execute(p.stream(), bargs);
    p.stream().wait();
  });
  return times;
}

void lower_max_pool_loops(OnednnProgram& p, const Node& n,
                          const dnnl::pooling_v2_forward::primitive_desc& pd, const PoolGeometry& g,
                          Plan plan, const std::string& measured) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  p.define(y, pd.dst_desc());
  memory xm = p.use(x, pd.src_desc(), plan);
  memory ym = p.value(y).mem;
  const bool training = plan == Plan::training;
  std::shared_ptr<std::vector<std::uint8_t>> argmax;
  if (training) {
    argmax = std::make_shared<std::vector<std::uint8_t>>(pd.dst_desc().get_size() / sizeof(float));
  }
  p.add(plan,
        fmt::format("{}: max pooling {}x{}/{} (loop) {}{}", n.name, g.win.kernel_h, g.win.kernel_w,
                    g.win.stride_h, layout_name(pd.src_desc()), measured),
        {xm, ym}, [g, xm, ym, argmax]() {
          max_pool_forward(g, floats(xm), floats(ym), argmax ? argmax->data() : nullptr);
        });
  if (!training) return;
  p.add_backward_builder([&p, n, x, y, g, argmax, src_md = pd.src_desc(),
                          dst_md = pd.dst_desc()]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    memory dy = p.gradient_in(y, dst_md);
    GradSink sink = p.gradient_sink(x, src_md);
    memory dx = sink.mem;
    p.add(Plan::backward, fmt::format("{}: max pooling backward (loop)", n.name), {dy, dx},
          [g, dy, dx, argmax]() { max_pool_backward(g, floats(dy), argmax->data(), floats(dx)); });
    p.finish(sink);
  });
}

void lower_pool(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const bool training = plan == Plan::training;
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  const Shape ys = p.value(y).shape;
  Window2d win;
  algorithm alg = algorithm::pooling_avg_exclude_padding;
  if (n.is(OpId::GlobalAveragePool)) {
    win.kernel_h = xs[2];
    win.kernel_w = xs[3];
  } else {
    win = window_of(n, p.graph());
    if (n.is(OpId::MaxPool)) {
      alg = algorithm::pooling_max;
    } else if (attr_int(n, "count_include_pad") != 0) {
      alg = algorithm::pooling_avg_include_padding;
    }
  }
  // ceil_mode: oneDNN's output size uses floor, so the end padding grows to cover the last
  // window (those positions never win a max and are not counted by exclude-padding averages).
  const std::int64_t span_h = win.dilation_h * (win.kernel_h - 1) + 1;
  const std::int64_t span_w = win.dilation_w * (win.kernel_w - 1) + 1;
  const std::int64_t pad_b =
      std::max(win.pad_bottom, (ys[2] - 1) * win.stride_h + span_h - xs[2] - win.pad_top);
  const std::int64_t pad_r =
      std::max(win.pad_right, (ys[3] - 1) * win.stride_w + span_w - xs[3] - win.pad_left);
  const memory::dims strides{win.stride_h, win.stride_w};
  const memory::dims kernel{win.kernel_h, win.kernel_w};
  const memory::dims dilation{win.dilation_h - 1, win.dilation_w - 1};
  const memory::dims padding_l{win.pad_top, win.pad_left};
  const memory::dims padding_r{pad_b, pad_r};
  const Desc src_md = p.value(x).md;
  const auto prop = training ? prop_kind::forward_training : prop_kind::forward_inference;
  // A bf16 src (a bf16 activation, see bf16_readers_only) gives a bf16 dst: its readers take
  // bf16.
  const DataType type = src_md.data_type() == DataType::bf16 ? DataType::bf16 : DataType::f32;
  dnnl::pooling_v2_forward::desc desc(prop, alg, src_md, p.output_desc(y, type), strides, kernel,
                                      dilation, padding_l, padding_r);
  dnnl::pooling_v2_forward::primitive_desc pd(desc, p.engine());
  p.define(y, pd.dst_desc());
  std::string measured;
  if (alg == algorithm::pooling_max) {
    const std::optional<PoolGeometry> g = pool_geometry(pd.src_desc(), pd.dst_desc(), win);
    if (g) {
      std::optional<dnnl::pooling_v2_backward::primitive_desc> bpd;
      if (training) {
        bpd = dnnl::pooling_v2_backward::primitive_desc(
            {alg, pd.src_desc(), pd.dst_desc(), strides, kernel, dilation, padding_l, padding_r},
            p.engine(), pd);
      }
      // Overlapping windows (stride below the window's span) send several dy into one dx, and
      // the loops and oneDNN add them in different orders: so that a run's gradients never
      // depend on which one measured faster, training takes oneDNN's primitive there, the faster
      // of the two in every layout onnxforge-pool-bench measured for the baseline's 2x2/1 pools
      // (docs/BENCHMARKS.md).
      const bool overlapping = win.stride_h < span_h || win.stride_w < span_w;
      if (training && overlapping) {
        measured = ", overlapping windows in training: always oneDNN";
        p.record_choice(n, DataType::f32, pd.impl_info_str(), measured.substr(2));
      } else {
        const PoolTimes times = time_max_pool(p, *g, pd, bpd);
        measured = fmt::format(", measured: loop {:.3f} ms, oneDNN {:.3f} ms", times.loops * 1e3,
                               times.onednn * 1e3);
        const std::string why = measured.substr(2);
        if (times.loops <= times.onednn) {
          p.record_choice(n, DataType::f32, "loops", why);
          lower_max_pool_loops(p, n, pd, *g, plan, measured);
          return;
        }
        p.record_choice(n, DataType::f32, pd.impl_info_str(), why);
      }
    } else {
      p.record_choice(n, type, pd.impl_info_str(),
                      type == DataType::bf16 ? "bf16 activations: oneDNN (the loops are f32)"
                                             : "the loops do not take this layout");
    }
  }
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, p.use(x, pd.src_desc(), plan)},
                                       {DNNL_ARG_DST, p.value(y).mem}};
  std::optional<memory> workspace;
  if (training && alg == algorithm::pooling_max) {
    workspace = p.allocate(pd.workspace_desc());
    args[DNNL_ARG_WORKSPACE] = *workspace;
  }
  p.add_primitive(plan,
                  fmt::format("{}: pooling {} ({}) {}{}", n.name, n.op, pd.impl_info_str(),
                              layout_name(pd.src_desc()), measured),
                  dnnl::pooling_v2_forward(pd), args);
  if (!training) return;
  p.add_backward_builder([&p, n, x, y, alg, strides, kernel, dilation, padding_l, padding_r, pd,
                          workspace]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    dnnl::pooling_v2_backward::desc bdesc(alg, pd.src_desc(), pd.dst_desc(), strides, kernel,
                                          dilation, padding_l, padding_r);
    dnnl::pooling_v2_backward::primitive_desc bpd(bdesc, p.engine(), pd);
    memory dy = p.gradient_in(y, bpd.diff_dst_desc());
    GradSink sink = p.gradient_sink(x, bpd.diff_src_desc());
    std::unordered_map<int, memory> bargs{{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_SRC, sink.mem}};
    if (workspace) bargs[DNNL_ARG_WORKSPACE] = *workspace;
    p.add_primitive(Plan::backward,
                    fmt::format("{}: pooling backward ({})", n.name, bpd.impl_info_str()),
                    dnnl::pooling_v2_backward(bpd), bargs);
    p.finish(sink);
  });
}

// The channel blocking of a 4-D f32 desc for PoolGeometry: channels in blocks (nChw8c, nChw16c:
// the block size), channels-last (nhwc: one block of all C channels) or planar (nchw: blocks of
// one channel), with the strides of n, c, h, w; false for any other layout.
bool pool_strides(const Desc& md, std::int64_t* block, std::int64_t strides[4]) {
  const auto& d = md.data;
  if (d.format_kind != dnnl_blocked || d.ndims != 4 || md.data_type() != DataType::f32) {
    return false;
  }
  const auto& blocking = d.format_desc.blocking;
  if (blocking.inner_nblks == 0) {
    *block = blocking.strides[1] == 1 ? d.dims[1] : 1;
  } else if (blocking.inner_nblks == 1 && blocking.inner_idxs[0] == 1) {
    *block = blocking.inner_blks[0];
  } else {
    return false;
  }
  for (int i = 0; i < 4; ++i) strides[i] = blocking.strides[i];
  return true;
}

}  // namespace

std::optional<PoolGeometry> pool_geometry(const Desc& src, const Desc& dst, const Window2d& win) {
  if (win.kernel_h * win.kernel_w > 255) return std::nullopt;  // taps are stored in a byte
  PoolGeometry g;
  std::int64_t src_block = 0, dst_block = 0, ss[4], ds[4];
  if (!pool_strides(src, &src_block, ss) || !pool_strides(dst, &dst_block, ds) ||
      src_block != dst_block) {
    return std::nullopt;
  }
  const auto& sd = src.data.dims;
  const auto& dd = dst.data.dims;
  g.block = src_block;
  g.batch = sd[0];
  g.channel_blocks = (sd[1] + g.block - 1) / g.block;
  g.in_h = sd[2];
  g.in_w = sd[3];
  g.out_h = dd[2];
  g.out_w = dd[3];
  g.win = win;
  g.src_n = ss[0];
  g.src_c = ss[1];
  g.src_h = ss[2];
  g.src_w = ss[3];
  g.dst_n = ds[0];
  g.dst_c = ds[1];
  g.dst_h = ds[2];
  g.dst_w = ds[3];
  return g;
}

void add_pooling_lowerings(LoweringTable& table) {
  // A bf16 activation stays bf16 through a pooling (bf16_readers_only): bf16 storage, not a
  // precision of its own, so bf16 is false.
  const std::string bf16_storage =
      "keeps a bf16 input (a bf16 Conv's output) in bf16 storage; otherwise fp32";
  table.lower({OpId::MaxPool, OpId::GlobalAveragePool}, lower_pool,
              {.backward = true, .note = bf16_storage});
  table.lower(OpId::AveragePool, lower_pool,
              {.backward = true,
               .note = bf16_storage +
                       "; refuses ceil_mode with count_include_pad where the last windows "
                       "overhang the padding (oneDNN would count the overhang in the divisor)"});
}

}  // namespace onnxforge::onednn
