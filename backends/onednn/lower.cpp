// Op lowerings of the oneDNN backend: each node becomes primitives (or a loop) in the forward
// plans, and registers a builder for its backward that runs once the whole forward is lowered
// (in reverse node order, so gradients are complete before they are read).
//
// oneDNN words inside: src/dst/weights/diff_*. Layouts: primitives get format_tag::any and choose
// (blocked nChw8c/nChw16c for convolutions); a consumer asking for another layout gets a reorder
// (Program::use). Forward primitive descriptors are the hints of the backward ones.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <mutex>

#include "backends/onednn/broadcast.hpp"
#include "backends/onednn/program.hpp"
#include "core/error.hpp"
#include "graph/builder.hpp"
#include "graph/ops.hpp"

namespace onnxforge::onednn {

namespace {

using dnnl::algorithm;
using dnnl::prop_kind;

// Whether this CPU runs bf16 convolutions in oneDNN 2.6 (avx512_core and up).
bool cpu_has_bf16() {
  static const bool ok = [] {
    try {
      dnnl::engine engine(dnnl::engine::kind::cpu, 0);
      const Desc src({1, 16, 4, 4}, DataType::bf16, Tag::any);
      const Desc weights({16, 16, 3, 3}, DataType::bf16, Tag::any);
      const Desc dst({1, 16, 2, 2}, DataType::f32, Tag::any);
      dnnl::convolution_forward::desc desc(prop_kind::forward_inference,
                                           algorithm::convolution_direct, src, weights, dst, {1, 1},
                                           {0, 0}, {0, 0});
      dnnl::convolution_forward::primitive_desc pd(desc, engine);
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return ok;
}

std::string layout_name(const Desc& md) {
  const auto& d = md.data;
  if (d.format_kind != dnnl_blocked) return "any";
  std::string text;
  // Outer dimensions by decreasing stride, then the inner blocks: e.g. "aBcd8b".
  std::vector<int> order(static_cast<std::size_t>(d.ndims));
  for (int i = 0; i < d.ndims; ++i) order[static_cast<std::size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return d.format_desc.blocking.strides[a] > d.format_desc.blocking.strides[b];
  });
  std::vector<bool> blocked(static_cast<std::size_t>(d.ndims), false);
  for (int i = 0; i < d.format_desc.blocking.inner_nblks; ++i) {
    blocked[static_cast<std::size_t>(d.format_desc.blocking.inner_idxs[i])] = true;
  }
  for (int i : order) {
    text += static_cast<char>((blocked[static_cast<std::size_t>(i)] ? 'A' : 'a') + i);
  }
  for (int i = 0; i < d.format_desc.blocking.inner_nblks; ++i) {
    text += fmt::format("{}{}", d.format_desc.blocking.inner_blks[i],
                        static_cast<char>('a' + d.format_desc.blocking.inner_idxs[i]));
  }
  if (md.data_type() == DataType::bf16) text += ":bf16";
  return text;
}

Shape shape_of(const memory::dims& dims) { return Shape(dims.begin(), dims.end()); }

bool trainable_with_gradient(OnednnProgram& p, const std::string& name) {
  if (name.empty()) return false;
  const Value& v = p.value(name);
  return v.parameter && v.trainable && p.needs_gradient(name);
}

float* floats(const memory& mem) { return static_cast<float*>(mem.get_data_handle()); }
std::size_t float_count(const memory& mem) { return mem.get_desc().get_size() / sizeof(float); }

// ReLU fused as a post-op: its backward runs on the post-op's output (dst) with
// eltwise_relu_use_dst_for_bwd, giving the gradient of the pre-activation.
memory fused_relu_backward(OnednnProgram& p, const std::string& y, const memory& dy,
                           const std::string& label) {
  const Desc md = p.value(y).md;
  // When the next layer reads y in bf16 (a bf16 convolution), the mask comes from that copy,
  // which backward keeps anyway for the next layer's weight gradient: y itself is then needed
  // only by the forward, and the memory plan lets its bytes go after it.
  dnnl_memory_desc_t as_bf16 = md.data;
  as_bf16.data_type = dnnl_bf16;
  for (const auto& view : p.value(y).views) {
    if (!view.produced[static_cast<int>(Plan::training)] || !(view.md == Desc(as_bf16))) continue;
    memory diff = p.convert(dy, md, Plan::backward, label);
    const memory mask = view.mem;
    p.add(Plan::backward,
          fmt::format("{}: relu backward (mask of the bf16 output, in place)", label), {mask, diff},
          [mask, diff]() {
            relu_backward_from_bf16(static_cast<const std::uint16_t*>(mask.get_data_handle()),
                                    floats(diff), float_count(diff));
          });
    return diff;
  }
  dnnl::eltwise_forward::primitive_desc hint(
      {prop_kind::forward_training, algorithm::eltwise_relu_use_dst_for_bwd, md, 0.f, 0.f},
      p.engine());
  dnnl::eltwise_backward::primitive_desc pd(
      {algorithm::eltwise_relu_use_dst_for_bwd, md, md, 0.f, 0.f}, p.engine(), hint);
  // In place: dy is the gradient of the ReLU's output, which only this (fused) node reads, so
  // the pre-activation's gradient overwrites it instead of taking a buffer the size of the
  // activation (VGG16 training: one per convolution).
  memory diff = p.convert(dy, pd.diff_dst_desc(), Plan::backward, label);
  p.add_primitive(
      Plan::backward, fmt::format("{}: relu backward (use dst, in place)", label),
      dnnl::eltwise_backward(pd),
      {{DNNL_ARG_DST, p.value(y).mem}, {DNNL_ARG_DIFF_DST, diff}, {DNNL_ARG_DIFF_SRC, diff}});
  return diff;
}

dnnl::primitive_attr relu_attr(bool fused) {
  dnnl::primitive_attr attr;
  if (fused) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(ops);
  }
  return attr;
}

// ---- timing (Precision::automatic and the pooling choice) ------------------------------------

// The faster of two runs: the first pays for first touch and JIT, the second is the steady state.
// One warm-up run (page faults on fresh scratch memory, first-touch caches), then the best of
// three: on a busy 2-core machine fewer runs let one slow run flip a choice.
double best_time(const std::function<void()>& run) {
  run();
  double best = INFINITY;
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

// Precision::automatic times each convolution on at most this many images: the ratio of its f32
// and bf16 times hardly depends on the batch past a few images, and the whole batch would make
// the compile of a large network take seconds per layer.
std::int64_t measured_batch(std::int64_t batch) { return std::min<std::int64_t>(batch, 8); }

// `md` for `batch` images: the same layout when the batch is its outermost dimension (every
// layout oneDNN picks for activations); otherwise `md` itself.
Desc with_batch(const Desc& md, std::int64_t batch) {
  dnnl_memory_desc_t d = md.data;
  if (d.format_kind != dnnl_blocked || d.ndims < 1 || d.dims[0] == batch) return md;
  for (int i = 1; i < d.ndims; ++i) {
    if (d.format_desc.blocking.strides[i] > d.format_desc.blocking.strides[0]) return md;
  }
  for (int i = 0; i < d.format_desc.blocking.inner_nblks; ++i) {
    if (d.format_desc.blocking.inner_idxs[i] == 0) return md;
  }
  d.dims[0] = d.padded_dims[0] = batch;
  return Desc(d);
}

// A list of primitives with scratch arguments, timed as one step of a plan would run them.
struct Timed {
  OnednnProgram& p;
  ScratchMemories memories{p.engine()};
  std::vector<std::pair<dnnl::primitive, std::unordered_map<int, memory>>> steps;

  memory scratch(const Desc& md) { return memories.make(md); }
  void add(dnnl::primitive primitive, std::unordered_map<int, memory> args) {
    steps.emplace_back(std::move(primitive), std::move(args));
  }
  // `from` reordered into a fresh memory of `md` (nothing when they are equal).
  memory convert(const memory& from, const Desc& md) {
    if (from.get_desc() == md) return from;
    memory to = scratch(md);
    add(dnnl::reorder(from, to), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
    return to;
  }
  double seconds() {
    return best_time([&]() {
      for (auto& [primitive, args] : steps) primitive.execute(p.stream(), args);
      p.stream().wait();
    });
  }
};

// The seconds of one training step (or inference forward) of a Conv or Dense whose forward
// primitive descriptor is `fpd`, with the reorders it brings: src from the layout its producer
// gave (`src_md`) into fpd's, and in training the weights from their plain f32 master copy (every
// step, after the update) and diff_dst into each backward primitive's. `weights_bias`: the
// backward-weights primitive also computes the bias gradient.
template <typename Forward, typename Data, typename Weights, typename ForwardPd, typename MakeData,
          typename MakeWeights>
double time_layer(OnednnProgram& p, const ForwardPd& fpd, const Desc& src_md,
                  const Desc& weights_plain_md, const std::optional<Desc>& bias, bool training,
                  bool need_data, bool need_weights, bool weights_bias, MakeData make_data,
                  MakeWeights make_weights) {
  Timed timed{p};
  const memory weights = training
                             ? timed.convert(timed.scratch(weights_plain_md), fpd.weights_desc())
                             : timed.scratch(fpd.weights_desc());
  const memory src = timed.convert(timed.scratch(src_md), fpd.src_desc());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                       {DNNL_ARG_WEIGHTS, weights},
                                       {DNNL_ARG_DST, timed.scratch(fpd.dst_desc())}};
  if (bias) args[DNNL_ARG_BIAS] = timed.scratch(*bias);
  timed.add(Forward(fpd), args);
  if (training) {
    const memory dy = timed.scratch(fpd.dst_desc());
    if (need_data) {
      const auto dpd = make_data();
      timed.add(Data(dpd), {{DNNL_ARG_DIFF_DST, timed.convert(dy, dpd.diff_dst_desc())},
                            {DNNL_ARG_WEIGHTS, timed.convert(weights, dpd.weights_desc())},
                            {DNNL_ARG_DIFF_SRC, timed.scratch(dpd.diff_src_desc())}});
    }
    if (need_weights) {
      const auto wpd = make_weights();
      std::unordered_map<int, memory> wargs{
          {DNNL_ARG_SRC, timed.convert(src, wpd.src_desc())},
          {DNNL_ARG_DIFF_DST, timed.convert(dy, wpd.diff_dst_desc())},
          {DNNL_ARG_DIFF_WEIGHTS, timed.scratch(wpd.diff_weights_desc())}};
      if (weights_bias) wargs[DNNL_ARG_DIFF_BIAS] = timed.scratch(wpd.diff_bias_desc());
      timed.add(Weights(wpd), wargs);
    }
  }
  return timed.seconds();
}

// ---- Conv ------------------------------------------------------------------------------------

// What a convolution's primitive descriptors are built from.
struct ConvSpec {
  Shape xs, ys;
  memory::dims wdims, strides, dilates, pad_l, pad_r;
  std::optional<Desc> bias;  // plain f32
  std::optional<Desc> w_as;  // grouped weights: the plain O,I,H,W bytes seen as G,O,I,H,W
  bool relu = false;
};

dnnl::convolution_forward::primitive_desc conv_forward_pd(const dnnl::engine& engine,
                                                          const ConvSpec& c, DataType t,
                                                          prop_kind prop, const Desc& dst_md) {
  const Desc src_any(dims_of(c.xs), t, Tag::any);
  const Desc w_any(c.wdims, t, Tag::any);
  auto desc =
      c.bias
          ? dnnl::convolution_forward::desc(prop, algorithm::convolution_direct, src_any, w_any,
                                            *c.bias, dst_md, c.strides, c.dilates, c.pad_l, c.pad_r)
          : dnnl::convolution_forward::desc(prop, algorithm::convolution_direct, src_any, w_any,
                                            dst_md, c.strides, c.dilates, c.pad_l, c.pad_r);
  return {desc, relu_attr(c.relu), engine};
}

// Backward data: weights and diff_dst in t, diff_src in `diff_src` (f32, or bf16 with t bf16 for
// a src stored in bf16).
dnnl::convolution_backward_data::primitive_desc conv_data_pd(
    const dnnl::engine& engine, const ConvSpec& c, DataType t,
    const dnnl::convolution_forward::primitive_desc& hint, DataType diff_src = DataType::f32) {
  dnnl::convolution_backward_data::desc desc(
      algorithm::convolution_direct, Desc(dims_of(c.xs), diff_src, Tag::any),
      Desc(c.wdims, t, Tag::any), Desc(dims_of(c.ys), t, Tag::any), c.strides, c.dilates, c.pad_l,
      c.pad_r);
  return {desc, engine, hint};
}

// Backward weights: src and diff_dst in t, f32 diff_weights (and diff_bias when with_bias).
dnnl::convolution_backward_weights::primitive_desc conv_weights_pd(
    const dnnl::engine& engine, const ConvSpec& c, DataType t, bool with_bias,
    const dnnl::convolution_forward::primitive_desc& hint) {
  const Desc src_any(dims_of(c.xs), t, Tag::any);
  const Desc dw_any(c.wdims, DataType::f32, Tag::any);
  const Desc ddst_any(dims_of(c.ys), t, Tag::any);
  auto desc = with_bias
                  ? dnnl::convolution_backward_weights::desc(algorithm::convolution_direct, src_any,
                                                             dw_any, *c.bias, ddst_any, c.strides,
                                                             c.dilates, c.pad_l, c.pad_r)
                  : dnnl::convolution_backward_weights::desc(algorithm::convolution_direct, src_any,
                                                             dw_any, ddst_any, c.strides, c.dilates,
                                                             c.pad_l, c.pad_r);
  return {desc, engine, hint};
}

void lower_conv(OnednnProgram& p, const Node& n, const Node* relu, Plan plan) {
  const bool training = plan == Plan::training;
  const std::string x = n.inputs[0];
  const std::string w = n.inputs[1];
  const std::string b = n.input(2);
  const std::string y = relu ? relu->outputs[0] : n.outputs[0];
  const Shape ws = p.value(w).shape;
  const Window2d win = window_of(n, p.graph());
  const std::int64_t group = n.get_int("group", 1);
  ConvSpec c;
  c.xs = p.value(x).shape;
  c.ys = p.value(y).shape;
  // Grouped weights: O,I/G,KH,KW seen as G,O/G,I/G,KH,KW (same bytes).
  c.wdims = group > 1 ? memory::dims{group, ws[0] / group, ws[1], ws[2], ws[3]} : dims_of(ws);
  if (group > 1) c.w_as = plain_desc(shape_of(c.wdims));
  c.strides = {win.stride_h, win.stride_w};
  c.dilates = {win.dilation_h - 1, win.dilation_w - 1};
  c.pad_l = {win.pad_top, win.pad_left};
  c.pad_r = {win.pad_bottom, win.pad_right};
  if (!b.empty()) c.bias = plain_desc(p.value(b).shape);
  c.relu = relu != nullptr;
  const bool need_x = p.needs_gradient(x);
  const bool need_w = trainable_with_gradient(p, w);
  const bool need_b = trainable_with_gradient(p, b);
  const auto prop = training ? prop_kind::forward_training : prop_kind::forward_inference;

  // One training step (or inference forward) of this layer in dtype t, with the reorders it
  // brings: src into t, and in training the weights (every step, after the update) and diff_dst;
  // dst (and its gradient) in the dtype it would be stored in.
  const bool bf16_output = p.bf16_readers_only(y);
  auto dst_type = [&](DataType t) {
    return t == DataType::bf16 && bf16_output ? DataType::bf16 : DataType::f32;
  };
  const DataType ct = p.compute_type(n, [&](DataType t) {
    ConvSpec small = c;
    small.xs[0] = small.ys[0] = measured_batch(c.xs[0]);
    const auto fpd =
        conv_forward_pd(p.engine(), small, t, prop, Desc(dims_of(small.ys), dst_type(t), Tag::any));
    return time_layer<dnnl::convolution_forward, dnnl::convolution_backward_data,
                      dnnl::convolution_backward_weights>(
        p, fpd, with_batch(p.value(x).md, small.xs[0]), c.w_as ? *c.w_as : plain_desc(ws), c.bias,
        training, need_x, need_w, need_b, [&] { return conv_data_pd(p.engine(), small, t, fpd); },
        [&] { return conv_weights_pd(p.engine(), small, t, need_b, fpd); });
  });

  const Desc dst_md = p.output_desc(y, dst_type(ct));
  const auto pd = conv_forward_pd(p.engine(), c, ct, prop, dst_md);
  p.define(y, pd.dst_desc());
  p.record_choice(n, ct, pd.impl_info_str());
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, p.use(x, pd.src_desc(), plan)},
      {DNNL_ARG_WEIGHTS, p.use(w, pd.weights_desc(), plan, c.w_as)},
      {DNNL_ARG_DST, p.value(y).mem}};
  if (!b.empty()) args[DNNL_ARG_BIAS] = p.use(b, pd.bias_desc(), plan);
  const std::string label =
      fmt::format("{}: convolution{} ({}) src {} weights {} dst {}", n.name, relu ? "+relu" : "",
                  pd.impl_info_str(), layout_name(pd.src_desc()), layout_name(pd.weights_desc()),
                  layout_name(pd.dst_desc()));
  p.add_primitive(plan, label, dnnl::convolution_forward(pd), args);
  if (!training) return;

  p.add_backward_builder([&p, n, x, w, b, y, c, ct, pd, need_x, need_w, need_b]() {
    if (!p.needs_gradient(y) || (!need_x && !need_w && !need_b)) return;
    memory dy = p.gradient_in(y, p.value(y).md);
    if (c.relu) dy = fused_relu_backward(p, y, dy, n.name);
    if (need_x) {
      // A src stored in bf16 has its gradient in bf16 too (bf16_readers_only).
      const DataType diff_src = ct == DataType::bf16 && p.value(x).md.data_type() == DataType::bf16
                                    ? DataType::bf16
                                    : DataType::f32;
      const auto bpd = conv_data_pd(p.engine(), c, ct, pd, diff_src);
      memory diff_dst = p.convert(dy, bpd.diff_dst_desc(), Plan::backward, n.name);
      memory weights = p.use(w, bpd.weights_desc(), Plan::backward, c.w_as);
      GradSink sink = p.gradient_sink(x, bpd.diff_src_desc());
      p.add_primitive(Plan::backward,
                      fmt::format("{}: convolution backward data ({}) diff_src {}", n.name,
                                  bpd.impl_info_str(), layout_name(bpd.diff_src_desc())),
                      dnnl::convolution_backward_data(bpd),
                      {{DNNL_ARG_DIFF_DST, diff_dst},
                       {DNNL_ARG_WEIGHTS, weights},
                       {DNNL_ARG_DIFF_SRC, sink.mem}});
      p.finish(sink);
    }
    if (need_w) {
      const auto wpd = conv_weights_pd(p.engine(), c, ct, need_b, pd);
      memory src = p.use(x, wpd.src_desc(), Plan::backward);
      memory diff_dst = p.convert(dy, wpd.diff_dst_desc(), Plan::backward, n.name);
      GradSink dw = p.gradient_sink(w, wpd.diff_weights_desc(), c.w_as);
      std::unordered_map<int, memory> wargs{
          {DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, dw.mem}};
      std::optional<GradSink> db;
      if (need_b) {
        db = p.gradient_sink(b, wpd.diff_bias_desc());
        wargs[DNNL_ARG_DIFF_BIAS] = db->mem;
      }
      p.add_primitive(Plan::backward,
                      fmt::format("{}: convolution backward weights ({}) diff_weights {}", n.name,
                                  wpd.impl_info_str(), layout_name(wpd.diff_weights_desc())),
                      dnnl::convolution_backward_weights(wpd), wargs);
      p.finish(dw);
      if (db) p.finish(*db);
    } else if (need_b) {
      // Frozen weights, trainable bias: the bias gradient is the sum of dy over N, H, W.
      const std::int64_t channels = c.ys[1];
      const Desc dst = plain_desc({1, channels, 1, 1});
      dnnl::reduction::primitive_desc rpd({algorithm::reduction_sum, dy.get_desc(), dst, 0.f, 0.f},
                                          p.engine());
      GradSink db = p.gradient_sink(b, dst, dst);
      p.add_primitive(Plan::backward, fmt::format("{}: bias gradient (reduction)", n.name),
                      dnnl::reduction(rpd), {{DNNL_ARG_SRC, dy}, {DNNL_ARG_DST, db.mem}});
      p.finish(db);
    }
  });
}

// ---- Dense (inner product) ---------------------------------------------------------------------

struct DenseSpec {
  Shape xs, ys, ws;
  std::optional<Desc> bias;  // plain f32
  bool relu = false;
  bool any_weights = false;  // weights in the implementation's layout even in f32 (inference)
};

// f32 weights stay in their plain out x in layout when the implementation takes it (the GEMM one
// does): the optimizer then updates them in place with no reorder in a training step.
dnnl::inner_product_forward::primitive_desc dense_forward_pd(const dnnl::engine& engine,
                                                             const DenseSpec& d, DataType t,
                                                             prop_kind prop, const Desc& dst_md) {
  const Desc src_any(dims_of(d.xs), t, Tag::any);
  auto make = [&](const Desc& weights) {
    auto desc = d.bias ? dnnl::inner_product_forward::desc(prop, src_any, weights, *d.bias, dst_md)
                       : dnnl::inner_product_forward::desc(prop, src_any, weights, dst_md);
    return dnnl::inner_product_forward::primitive_desc(desc, relu_attr(d.relu), engine);
  };
  if (t == DataType::f32 && !d.any_weights) {
    try {
      return make(plain_desc(d.ws));
    } catch (const dnnl::error&) {
    }
  }
  return make(Desc(dims_of(d.ws), t, Tag::any));
}

dnnl::inner_product_backward_data::primitive_desc dense_data_pd(
    const dnnl::engine& engine, const DenseSpec& d, DataType t,
    const dnnl::inner_product_forward::primitive_desc& hint) {
  dnnl::inner_product_backward_data::desc desc(Desc(dims_of(d.xs), DataType::f32, Tag::any),
                                               hint.weights_desc(),
                                               Desc(dims_of(d.ys), t, Tag::any));
  return {desc, engine, hint};
}

// f32: plain diff_weights when the implementation takes them (in place for the optimizer); bf16:
// the layout the implementation prefers (the plain one forces a slower GEMM path).
dnnl::inner_product_backward_weights::primitive_desc dense_weights_pd(
    const dnnl::engine& engine, const DenseSpec& d, DataType t,
    const dnnl::inner_product_forward::primitive_desc& hint) {
  auto make = [&](const Desc& dw) {
    const Desc src_any(dims_of(d.xs), t, Tag::any);
    const Desc ddst_any(dims_of(d.ys), t, Tag::any);
    auto desc = d.bias ? dnnl::inner_product_backward_weights::desc(src_any, dw, *d.bias, ddst_any)
                       : dnnl::inner_product_backward_weights::desc(src_any, dw, ddst_any);
    return dnnl::inner_product_backward_weights::primitive_desc(desc, engine, hint);
  };
  if (t == DataType::f32) {
    try {
      return make(plain_desc(d.ws));
    } catch (const dnnl::error&) {
    }
  }
  return make(Desc(dims_of(d.ws), DataType::f32, Tag::any));
}

// The values a Dense node reads and writes: x is the source of a Flatten folded into it
// (inference) when there is one, y the output of its fused ReLU when there is one.
struct DenseValues {
  std::string x, w, b, y;
  bool flattened = false;
};

DenseValues dense_values(const OnednnProgram& p, const Node& n, const Node* relu) {
  const std::string* source = p.folded_flatten(n);
  return {source ? *source : n.inputs[0], n.inputs[1], n.input(2),
          relu ? relu->outputs[0] : n.outputs[0], source != nullptr};
}

// Inference: a dense layer as oneDNN's matmul with its weights in the layout the matmul prefers
// (reordered once per parameter change). oneDNN 2.6's inner product with a batch of 32 and a long
// K (the baseline's 141,376 x 64) runs a GEMM that leaves cores idle; the brgemm matmul splits
// K too: 32 x 141,376 x 64 on the Zen 4 of docs/BENCHMARKS.md, fp32 3.5 ms against 4.1-5.1 ms,
// bf16 1.6 ms against 2.6-3.3 ms. Its src must read as a plain M x K matrix: a 2-D value, or the
// 4-D input of a folded Flatten in plain NCHW (K in c, h, w order, the weights' own) or
// channels-last (K in h, w, c order: the weights are permuted by a first reorder). False (and
// nothing lowered) for anything else.
bool lower_dense_matmul(OnednnProgram& p, const Node& n, const Node* relu, Plan plan) {
  if (p.options().training) return false;
  const auto [x, w, b, y, flattened] = dense_values(p, n, relu);
  const Value& xv = p.value(x);
  const Shape ws = p.value(w).shape;  // out x in
  const std::int64_t m = xv.shape[0], k = ws[1], outputs = ws[0];
  const auto& blocking = xv.md.data.format_desc.blocking;
  if (xv.md.data.format_kind != dnnl_blocked || blocking.inner_nblks != 0) return false;
  bool permuted = false;  // K of src in h, w, c order
  if (xv.shape.size() == 4) {
    const Desc nchw = plain_desc(xv.shape, xv.md.data_type());
    const Desc nhwc(dims_of(xv.shape), xv.md.data_type(), Tag::acdb);
    if (xv.md == nhwc) {
      permuted = true;
    } else if (!(xv.md == nchw)) {
      return false;
    }
  } else if (xv.shape.size() != 2 || !(xv.md == plain_desc(xv.shape, xv.md.data_type()))) {
    return false;
  }
  const Desc src_2d({m, k}, xv.md.data_type(), Tag::ab);
  const Desc plain_kn({k, outputs}, DataType::f32, Tag::ba);  // the plain out x in bytes, K x N
  std::optional<Desc> bias;
  if (!b.empty()) bias = Desc({1, outputs}, DataType::f32, Tag::ab);
  auto make = [&](DataType t) {
    const Desc src({m, k}, t, Tag::ab), weights({k, outputs}, t, Tag::any),
        dst({m, outputs}, DataType::f32, Tag::any);
    dnnl::matmul::desc desc =
        bias ? dnnl::matmul::desc(src, weights, *bias, dst) : dnnl::matmul::desc(src, weights, dst);
    return dnnl::matmul::primitive_desc(desc, relu_attr(relu != nullptr), p.engine());
  };
  // Timed as an inference step runs it: src from its stored dtype, weights already prepared.
  const DataType ct = p.compute_type(n, [&](DataType t) {
    const auto fpd = make(t);
    Timed timed{p};
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, timed.convert(timed.scratch(src_2d), fpd.src_desc())},
        {DNNL_ARG_WEIGHTS, timed.scratch(fpd.weights_desc())},
        {DNNL_ARG_DST, timed.scratch(fpd.dst_desc())}};
    if (bias) args[DNNL_ARG_BIAS] = timed.scratch(*bias);
    timed.add(dnnl::matmul(fpd), args);
    return timed.seconds();
  });
  const auto pd = make(ct);
  p.define(y, pd.dst_desc());
  p.record_choice(n, ct, pd.impl_info_str());
  memory weights;
  if (permuted) {
    // out x c x h x w -> out x h x w x c (K in the src's order), then into the matmul's layout.
    const Desc oihw = plain_desc({outputs, xv.shape[1], xv.shape[2], xv.shape[3]});
    const Desc ohwi(oihw.dims(), DataType::f32, Tag::acdb);
    const memory hwc = p.use(w, ohwi, plan, oihw);
    weights = p.weight_reorder(memory(plain_kn, p.engine(), hwc.get_data_handle()),
                               pd.weights_desc(), w + ": reorder weights for the matmul");
  } else {
    weights = p.use(w, pd.weights_desc(), plan, plain_kn);
  }
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, p.use(x, Desc({m, k}, ct, Tag::ab), plan, src_2d)},
      {DNNL_ARG_WEIGHTS, weights},
      {DNNL_ARG_DST, p.value(y).mem}};
  if (bias) args[DNNL_ARG_BIAS] = p.use(b, *bias, plan, *bias);
  p.add_primitive(plan,
                  fmt::format("{}: matmul{}{} ({}) src {} weights {}", n.name, relu ? "+relu" : "",
                              flattened ? " (flatten folded in)" : "", pd.impl_info_str(),
                              layout_name(xv.md), layout_name(pd.weights_desc())),
                  dnnl::matmul(pd), args);
  return true;
}

void lower_dense(OnednnProgram& p, const Node& n, const Node* relu, Plan plan) {
  if (lower_dense_matmul(p, n, relu, plan)) return;
  const bool training = plan == Plan::training;
  // A folded Flatten (inference, a layout the matmul does not read as M x K): the inner product
  // reads its 4-D input, and the plain out x (c*h*w) weights are the same bytes seen as
  // out x c x h x w.
  const auto [x, w, b, y, flattened] = dense_values(p, n, relu);
  DenseSpec d;
  d.xs = p.value(x).shape;
  d.ys = p.value(y).shape;
  d.ws = p.value(w).shape;
  std::optional<Desc> w_as;
  if (flattened) {
    d.ws = {d.ws[0], d.xs[1], d.xs[2], d.xs[3]};
    w_as = plain_desc(d.ws);
    d.any_weights = true;
  }
  if (!b.empty()) d.bias = plain_desc(p.value(b).shape);
  d.relu = relu != nullptr;
  const bool need_x = p.needs_gradient(x);
  const bool need_w = trainable_with_gradient(p, w);
  const bool need_b = trainable_with_gradient(p, b);
  const auto prop = training ? prop_kind::forward_training : prop_kind::forward_inference;
  const Desc dst_md = p.output_desc(y);

  // As for Conv: the layer's training step (or inference forward) in t, with its reorders.
  const DataType ct = p.compute_type(n, [&](DataType t) {
    // The whole batch: it is the GEMM's M, so a smaller one times another kernel blocking, and a
    // dense layer's step is cheap next to a convolution's.
    const DenseSpec& small = d;
    const auto fpd = dense_forward_pd(p.engine(), small, t, prop,
                                      Desc(dims_of(small.ys), DataType::f32, Tag::any));
    // One primitive gives both weight gradients: it runs when either is wanted.
    return time_layer<dnnl::inner_product_forward, dnnl::inner_product_backward_data,
                      dnnl::inner_product_backward_weights>(
        p, fpd, with_batch(p.value(x).md, small.xs[0]), w_as ? *w_as : plain_desc(d.ws), d.bias,
        training, need_x, need_w || need_b, d.bias.has_value(),
        [&] { return dense_data_pd(p.engine(), small, t, fpd); },
        [&] { return dense_weights_pd(p.engine(), small, t, fpd); });
  });

  const auto pd = dense_forward_pd(p.engine(), d, ct, prop, dst_md);
  p.define(y, pd.dst_desc());
  p.record_choice(n, ct, pd.impl_info_str());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, p.use(x, pd.src_desc(), plan)},
                                       {DNNL_ARG_WEIGHTS, p.use(w, pd.weights_desc(), plan, w_as)},
                                       {DNNL_ARG_DST, p.value(y).mem}};
  if (!b.empty()) args[DNNL_ARG_BIAS] = p.use(b, pd.bias_desc(), plan);
  p.add_primitive(
      plan,
      fmt::format("{}: inner product{}{} ({}) src {} weights {}", n.name, relu ? "+relu" : "",
                  flattened ? " (flatten folded in)" : "", pd.impl_info_str(),
                  layout_name(pd.src_desc()), layout_name(pd.weights_desc())),
      dnnl::inner_product_forward(pd), args);
  if (!training) return;

  p.add_backward_builder([&p, n, x, w, b, y, d, ct, pd, need_x, need_w, need_b]() {
    if (!p.needs_gradient(y) || (!need_x && !need_w && !need_b)) return;
    memory dy = p.gradient_in(y, p.value(y).md);
    if (d.relu) dy = fused_relu_backward(p, y, dy, n.name);
    if (need_x) {
      const auto bpd = dense_data_pd(p.engine(), d, ct, pd);
      memory diff_dst = p.convert(dy, bpd.diff_dst_desc(), Plan::backward, n.name);
      memory weights = p.use(w, bpd.weights_desc(), Plan::backward);
      GradSink sink = p.gradient_sink(x, bpd.diff_src_desc());
      p.add_primitive(
          Plan::backward,
          fmt::format("{}: inner product backward data ({})", n.name, bpd.impl_info_str()),
          dnnl::inner_product_backward_data(bpd),
          {{DNNL_ARG_DIFF_DST, diff_dst},
           {DNNL_ARG_WEIGHTS, weights},
           {DNNL_ARG_DIFF_SRC, sink.mem}});
      p.finish(sink);
    }
    if (need_w || need_b) {
      const auto wpd = dense_weights_pd(p.engine(), d, ct, pd);
      memory src = p.use(x, wpd.src_desc(), Plan::backward);
      memory diff_dst = p.convert(dy, wpd.diff_dst_desc(), Plan::backward, n.name);
      // Frozen weights with a trainable bias (or the reverse) still run one primitive; the
      // gradient nobody wants goes to a scratch buffer.
      std::optional<GradSink> dw, db;
      memory dw_mem, db_mem;
      if (need_w) {
        dw = p.gradient_sink(w, wpd.diff_weights_desc());
        dw_mem = dw->mem;
      } else {
        dw_mem = p.allocate(wpd.diff_weights_desc());
      }
      std::unordered_map<int, memory> wargs{
          {DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, dw_mem}};
      if (!b.empty()) {
        if (need_b) {
          db = p.gradient_sink(b, wpd.diff_bias_desc());
          db_mem = db->mem;
        } else {
          db_mem = p.allocate(wpd.diff_bias_desc());
        }
        wargs[DNNL_ARG_DIFF_BIAS] = db_mem;
      }
      p.add_primitive(Plan::backward,
                      fmt::format("{}: inner product backward weights ({}) diff_weights {}", n.name,
                                  wpd.impl_info_str(), layout_name(wpd.diff_weights_desc())),
                      dnnl::inner_product_backward_weights(wpd), wargs);
      if (dw) p.finish(*dw);
      if (db) p.finish(*db);
    }
  });
}

// ---- pooling -----------------------------------------------------------------------------------

// Max pooling through the loops of loops.cpp (see PoolGeometry); the oneDNN descriptor still
// chooses the dst layout.
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
        fmt::format("{}: max pooling {}x{}/{} (loop) {}{}", n.name, g.kernel_h, g.kernel_w,
                    g.stride_h, layout_name(pd.src_desc()), measured),
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

void lower_pool(OnednnProgram& p, const Node& n, Plan plan) {
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
    } else if (n.get_int("count_include_pad", 0) != 0) {
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

// ---- element-wise
// --------------------------------------------------------------------------------

void lower_eltwise(OnednnProgram& p, const Node& n, Plan plan) {
  const bool training = plan == Plan::training;
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  algorithm alg = algorithm::eltwise_relu;
  float alpha = 0.f;
  bool use_dst = false;
  if (n.is(OpId::LeakyRelu)) {
    alpha = static_cast<float>(n.get_float("alpha", 0.01));
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

// Softmax and LogSoftmax: the same lowering over oneDNN's two primitive pairs.
template <typename Forward, typename Backward>
void lower_softmax(OnednnProgram& p, const Node& n, Plan plan, const char* label) {
  const bool training = plan == Plan::training;
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  std::int64_t axis = n.get_int("axis", -1);
  if (axis < 0) axis += static_cast<std::int64_t>(xs.size());
  if (xs.empty()) axis = 0;
  const Desc md = plain_desc(xs);
  const auto prop = training ? prop_kind::forward_training : prop_kind::forward_inference;
  typename Forward::primitive_desc pd({prop, md, static_cast<int>(axis)}, p.engine());
  p.define(y, pd.dst_desc());
  p.add_primitive(plan, fmt::format("{}: {} ({})", n.name, label, pd.impl_info_str()), Forward(pd),
                  {{DNNL_ARG_SRC, p.use(x, md, plan)}, {DNNL_ARG_DST, p.value(y).mem}});
  if (!training) return;
  p.add_backward_builder([&p, n, x, y, md, axis, pd, label]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    typename Backward::primitive_desc bpd({md, md, static_cast<int>(axis)}, p.engine(), pd);
    memory dy = p.gradient_in(y, bpd.diff_dst_desc());
    GradSink sink = p.gradient_sink(x, bpd.diff_src_desc());
    p.add_primitive(
        Plan::backward, fmt::format("{}: {} backward ({})", n.name, label, bpd.impl_info_str()),
        Backward(bpd),
        {{DNNL_ARG_DST, p.value(y).mem}, {DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_SRC, sink.mem}});
    p.finish(sink);
  });
}

// ---- shape and data movement
// ---------------------------------------------------------------------

void lower_identity(OnednnProgram& p, const Node& n, Plan plan) {
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

void lower_reshape(OnednnProgram& p, const Node& n, Plan plan) {
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

void lower_add(OnednnProgram& p, const Node& n, Plan plan) {
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

void lower_concat(OnednnProgram& p, const Node& n, Plan plan) {
  const std::string y = n.outputs[0];
  const Shape ys = p.value(y).shape;
  std::int64_t axis = n.get_int("axis", 1);
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

void lower_dropout(OnednnProgram& p, const Node& n, Plan plan) {
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
  const double ratio = n.get_float("ratio", 0.5);
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

// ---- batch normalization ---------------------------------------------------------------------

void lower_batch_norm(OnednnProgram& p, const Node& n, const Node* relu, Plan plan) {
  const bool training = plan == Plan::training;
  const std::string x = n.inputs[0];
  const std::string scale = n.inputs[1];
  const std::string shift = n.inputs[2];
  const std::string mean = n.inputs[3];
  const std::string var = n.inputs[4];
  // A fused ReLU (fuse_norm_relu): y is the ReLU's output, its mask a workspace for backward.
  const std::string y = relu ? relu->outputs[0] : n.outputs[0];
  const float epsilon = static_cast<float>(n.get_float("epsilon", 1e-5));
  const double momentum = n.get_float("momentum", 0.9);
  // A frozen batch norm (non-trainable scale) runs in inference mode, also while training.
  const bool frozen = p.value(scale).parameter && !p.value(scale).trainable;
  const bool batch_stats = training && !frozen;
  auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  if (!batch_stats) flags = flags | dnnl::normalization_flags::use_global_stats;
  if (relu) flags = flags | dnnl::normalization_flags::fuse_norm_relu;
  const Desc md = p.value(x).md;
  const auto prop = training ? prop_kind::forward_training : prop_kind::forward_inference;
  dnnl::batch_normalization_forward::primitive_desc pd({prop, md, epsilon, flags}, p.engine());
  p.define(y, pd.dst_desc());
  const Desc channel = plain_desc({p.value(x).shape[1]});
  memory mean_mem = batch_stats ? p.allocate(pd.mean_desc()) : p.use(mean, channel, plan);
  memory var_mem = batch_stats ? p.allocate(pd.variance_desc()) : p.use(var, channel, plan);
  std::unordered_map<int, memory> fargs{{DNNL_ARG_SRC, p.use(x, pd.src_desc(), plan)},
                                        {DNNL_ARG_DST, p.value(y).mem},
                                        {DNNL_ARG_SCALE, p.use(scale, channel, plan)},
                                        {DNNL_ARG_SHIFT, p.use(shift, channel, plan)},
                                        {DNNL_ARG_MEAN, mean_mem},
                                        {DNNL_ARG_VARIANCE, var_mem}};
  std::optional<memory> workspace;
  if (relu && training) {
    workspace = p.allocate(pd.workspace_desc());
    fargs[DNNL_ARG_WORKSPACE] = *workspace;
  }
  p.add_primitive(plan,
                  fmt::format("{}: batch normalization{}{} ({})", n.name, relu ? "+relu" : "",
                              batch_stats ? "" : " (global stats)", pd.impl_info_str()),
                  dnnl::batch_normalization_forward(pd), fargs);
  if (batch_stats) {
    // Running statistics, ONNX convention: running = momentum * running + (1 - momentum) * batch.
    memory running_mean = p.use(mean, channel, plan);
    memory running_var = p.use(var, channel, plan);
    p.add(plan, fmt::format("{}: running statistics (loop)", n.name),
          {mean_mem, var_mem, running_mean, running_var},
          [mean_mem, var_mem, running_mean, running_var, momentum]() {
            const float* bm = floats(mean_mem);
            const float* bv = floats(var_mem);
            float* rm = floats(running_mean);
            float* rv = floats(running_var);
            const std::size_t c = float_count(running_mean);
            for (std::size_t i = 0; i < c; ++i) {
              rm[i] = static_cast<float>(momentum * rm[i] + (1.0 - momentum) * bm[i]);
              rv[i] = static_cast<float>(momentum * rv[i] + (1.0 - momentum) * bv[i]);
            }
          });
  }
  if (!training) return;
  p.add_backward_builder([&p, n, x, scale, shift, y, epsilon, flags, pd, mean_mem, var_mem, channel,
                          workspace]() {
    const bool need_x = p.needs_gradient(x);
    const bool need_scale = trainable_with_gradient(p, scale);
    const bool need_shift = trainable_with_gradient(p, shift);
    if (!p.needs_gradient(y) || (!need_x && !need_scale && !need_shift)) return;
    // Always prop backward: oneDNN 2.6 has no backward_data with a scale; unwanted scale and
    // shift gradients go to scratch buffers.
    dnnl::batch_normalization_backward::primitive_desc bpd(
        {prop_kind::backward, pd.dst_desc(), pd.src_desc(), epsilon, flags}, p.engine(), pd);
    memory dy = p.gradient_in(y, bpd.diff_dst_desc());
    std::optional<GradSink> dx, dscale, dshift;
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, p.value(x).mem},
                                         {DNNL_ARG_MEAN, mean_mem},
                                         {DNNL_ARG_VARIANCE, var_mem},
                                         {DNNL_ARG_SCALE, p.use(scale, channel, Plan::backward)},
                                         {DNNL_ARG_SHIFT, p.use(shift, channel, Plan::backward)},
                                         {DNNL_ARG_DIFF_DST, dy}};
    if (workspace) args[DNNL_ARG_WORKSPACE] = *workspace;
    if (need_x) {
      dx = p.gradient_sink(x, bpd.diff_src_desc());
      args[DNNL_ARG_DIFF_SRC] = dx->mem;
    } else {
      args[DNNL_ARG_DIFF_SRC] = p.allocate(bpd.diff_src_desc());
    }
    {
      if (need_scale) {
        dscale = p.gradient_sink(scale, channel);
        args[DNNL_ARG_DIFF_SCALE] = dscale->mem;
      } else {
        args[DNNL_ARG_DIFF_SCALE] = p.allocate(channel);
      }
      if (need_shift) {
        dshift = p.gradient_sink(shift, channel);
        args[DNNL_ARG_DIFF_SHIFT] = dshift->mem;
      } else {
        args[DNNL_ARG_DIFF_SHIFT] = p.allocate(channel);
      }
    }
    p.add_primitive(
        Plan::backward,
        fmt::format("{}: batch normalization backward ({})", n.name, bpd.impl_info_str()),
        dnnl::batch_normalization_backward(bpd), args);
    if (dx) p.finish(*dx);
    if (dscale) p.finish(*dscale);
    if (dshift) p.finish(*dshift);
  });
}

// ---- losses ------------------------------------------------------------------------------------

void lower_bce(OnednnProgram& p, const Node& n, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string t = n.inputs[1];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  const double wp = n.get_float("weight_positive", 1.0);
  const double wn = n.get_float("weight_negative", 1.0);
  memory xm = p.use(x, plain_desc(xs), plan);
  memory tm = p.use(t, plain_desc(xs), plan);
  memory ym = p.define(y, plain_desc({}));
  p.add(plan, fmt::format("{}: binary cross-entropy with logits (loop)", n.name), {xm, tm, ym},
        [xm, tm, ym, wp, wn]() {
          const float* logits = floats(xm);
          const float* labels = floats(tm);
          const auto count = static_cast<std::int64_t>(float_count(xm));
          double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) if (count > kParallelThreshold)
          for (std::int64_t i = 0; i < count; ++i) {
            const double z = logits[i];
            const double label = labels[i];
            // Class-weighted; max(z,0) - z*label + log(1 + exp(-|z|)) never overflows.
            const double weight = label * wp + (1.0 - label) * wn;
            sum += weight * (std::max(z, 0.0) - z * label + std::log1p(std::exp(-std::abs(z))));
          }
          *floats(ym) = static_cast<float>(sum / static_cast<double>(count));
        });
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, x, y, xs, xm, tm, wp, wn]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    memory dy = p.gradient_in(y, plain_desc({}));
    GradSink sink = p.gradient_sink(x, plain_desc(xs));
    memory dx = sink.mem;
    p.add(Plan::backward, fmt::format("{}: binary cross-entropy backward (loop)", n.name),
          {dy, dx, xm, tm}, [dy, dx, xm, tm, wp, wn]() {
            const float* logits = floats(xm);
            const float* labels = floats(tm);
            float* g = floats(dx);
            const auto count = static_cast<std::int64_t>(float_count(xm));
            const double scale = static_cast<double>(*floats(dy)) / static_cast<double>(count);
#pragma omp parallel for if (count > kParallelThreshold)
            for (std::int64_t i = 0; i < count; ++i) {
              const double z = logits[i];
              const double s =
                  z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
              const double label = labels[i];
              const double weight = label * wp + (1.0 - label) * wn;
              g[i] = static_cast<float>(scale * weight * (s - label));
            }
          });
    p.finish(sink);
  });
}

void lower_softmax_ce(OnednnProgram& p, const Node& n, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string t = n.inputs[1];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  const std::int64_t rows = xs[0];
  const std::int64_t classes = xs[1];
  memory xm = p.use(x, plain_desc(xs), plan);
  memory ym = p.define(y, plain_desc({}));
  const std::int64_t* labels = p.value(t).ints.data();
  const std::string node_name = n.name;
  p.add(plan, fmt::format("{}: softmax cross-entropy (loop)", n.name), {xm, ym},
        [xm, ym, labels, rows, classes, node_name]() {
          const float* logits = floats(xm);
          double sum = 0.0;
          for (std::int64_t r = 0; r < rows; ++r) {
            const float* row = logits + r * classes;
            const std::int64_t label = labels[r];
            if (label < 0 || label >= classes) {
              fail("node '{}' (SoftmaxCrossEntropy): label {} of row {} is outside [0, {})",
                   node_name, label, r, classes);
            }
            double top = row[0];
            for (std::int64_t k = 1; k < classes; ++k) top = std::max(top, double{row[k]});
            double total = 0.0;
            for (std::int64_t k = 0; k < classes; ++k) total += std::exp(row[k] - top);
            sum += top + std::log(total) - row[label];
          }
          *floats(ym) = static_cast<float>(sum / static_cast<double>(rows));
        });
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, x, y, xs, xm, labels, rows, classes]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    memory dy = p.gradient_in(y, plain_desc({}));
    GradSink sink = p.gradient_sink(x, plain_desc(xs));
    memory dx = sink.mem;
    p.add(Plan::backward, fmt::format("{}: softmax cross-entropy backward (loop)", n.name),
          {dy, dx, xm}, [dy, dx, xm, labels, rows, classes]() {
            const float* logits = floats(xm);
            float* g = floats(dx);
            const double scale = static_cast<double>(*floats(dy)) / static_cast<double>(rows);
            for (std::int64_t r = 0; r < rows; ++r) {
              const float* row = logits + r * classes;
              double top = row[0];
              for (std::int64_t k = 1; k < classes; ++k) top = std::max(top, double{row[k]});
              double total = 0.0;
              for (std::int64_t k = 0; k < classes; ++k) total += std::exp(row[k] - top);
              for (std::int64_t k = 0; k < classes; ++k) {
                const double prob = std::exp(row[k] - top) / total;
                g[r * classes + k] =
                    static_cast<float>(scale * (prob - (k == labels[r] ? 1.0 : 0.0)));
              }
            }
          });
    p.finish(sink);
  });
}

bool is_f32(const Graph& graph, const std::string& value) {
  return value.empty() || graph.value(value).dtype == DType::f32;
}

}  // namespace

namespace {

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
  g.kernel_h = win.kernel_h;
  g.kernel_w = win.kernel_w;
  g.stride_h = win.stride_h;
  g.stride_w = win.stride_w;
  g.dilation_h = win.dilation_h;
  g.dilation_w = win.dilation_w;
  g.pad_top = win.pad_top;
  g.pad_left = win.pad_left;
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

bool cpu_has_native_bf16() {
  // cpu_isa values are bit sets: AMX includes avx512_core_bf16.
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return (isa & bf16) == bf16;
}

std::string isa_name() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "other";
  }
}

Support node_support(const Graph& graph, const Node& node, const CompileOptions& options) {
  static const std::set<std::string> ops = {"Conv",
                                            "MaxPool",
                                            "AveragePool",
                                            "GlobalAveragePool",
                                            "Relu",
                                            "LeakyRelu",
                                            "Sigmoid",
                                            "Tanh",
                                            "Identity",
                                            "Softmax",
                                            "Flatten",
                                            "Reshape",
                                            "Dense",
                                            "Add",
                                            "Concat",
                                            "Dropout",
                                            "BatchNormalization",
                                            "BinaryCrossEntropyWithLogits",
                                            "SoftmaxCrossEntropy",
                                            "Mul",
                                            "Sub",
                                            "Div",
                                            "Transpose",
                                            "LogSoftmax",
                                            "Clip",
                                            "Pad",
                                            "MatMul"};
  if (!ops.count(node.op)) {
    return {false, fmt::format("op '{}' has no oneDNN lowering in this backend (it runs: {})",
                               node.op, fmt::join(ops, ", "))};
  }
  for (std::size_t i = 0; i < node.inputs.size(); ++i) {
    if (node.is(OpId::SoftmaxCrossEntropy) && i == 1) {
      const std::string& labels = node.inputs[1];
      if (!graph.is_input(labels) && !graph.find_initializer(labels)) {
        return {false, "its labels must be a graph input or an initializer"};
      }
      continue;
    }
    if (!is_f32(graph, node.inputs[i])) {
      return {false, fmt::format("input '{}' is {}; this backend computes in f32 (convert the "
                                 "graph to f32)",
                                 node.inputs[i], to_string(graph.value(node.inputs[i]).dtype))};
    }
  }
  for (const auto& out : node.outputs) {
    if (!is_f32(graph, out)) {
      return {false, fmt::format("output '{}' is {}; this backend computes in f32", out,
                                 to_string(graph.value(out).dtype))};
    }
  }
  if ((node.is(OpId::Conv) || node.is(OpId::Dense)) && options.precision == Precision::bf16 &&
      !cpu_has_bf16()) {
    return {false, fmt::format("bf16 convolutions and inner products need avx512_core or newer "
                               "in oneDNN 2.6; this CPU offers {} (use --dtype fp32 or auto)",
                               isa_name())};
  }
  if (node.is(OpId::AveragePool) && node.get_int("ceil_mode", 0) != 0 &&
      node.get_int("count_include_pad", 0) != 0) {
    const Shape& xs = graph.value(node.inputs[0]).shape;
    const Shape& ys = graph.value(node.outputs[0]).shape;
    const Window2d win = window_of(node, graph);
    const bool overhang = (ys[2] - 1) * win.stride_h + win.dilation_h * (win.kernel_h - 1) + 1 >
                              xs[2] + win.pad_top + win.pad_bottom ||
                          (ys[3] - 1) * win.stride_w + win.dilation_w * (win.kernel_w - 1) + 1 >
                              xs[3] + win.pad_left + win.pad_right;
    if (overhang) {
      return {false,
              "ceil_mode with count_include_pad makes the last windows overhang the padding; "
              "oneDNN would count the overhang in the divisor, ONNX does not"};
    }
  }
  return {};
}

void lower_node(OnednnProgram& program, const Node& node, const Node* fused_relu, Plan plan) {
  const std::string& op = node.op;
  if (op == "Conv") {
    lower_conv(program, node, fused_relu, plan);
  } else if (op == "Dense") {
    lower_dense(program, node, fused_relu, plan);
  } else if (op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool") {
    lower_pool(program, node, plan);
  } else if (op == "Relu" || op == "LeakyRelu" || op == "Sigmoid" || op == "Tanh") {
    lower_eltwise(program, node, plan);
  } else if (op == "Softmax") {
    lower_softmax<dnnl::softmax_forward, dnnl::softmax_backward>(program, node, plan, "softmax");
  } else if (op == "LogSoftmax") {
    lower_softmax<dnnl::logsoftmax_forward, dnnl::logsoftmax_backward>(program, node, plan,
                                                                       "logsoftmax");
  } else if (op == "Identity") {
    lower_identity(program, node, plan);
  } else if (op == "Flatten" || op == "Reshape") {
    lower_reshape(program, node, plan);
  } else if (op == "Add") {
    lower_add(program, node, plan);
  } else if (op == "Concat") {
    lower_concat(program, node, plan);
  } else if (op == "Dropout") {
    lower_dropout(program, node, plan);
  } else if (op == "BatchNormalization") {
    lower_batch_norm(program, node, fused_relu, plan);
  } else if (op == "BinaryCrossEntropyWithLogits") {
    lower_bce(program, node, plan);
  } else if (op == "SoftmaxCrossEntropy") {
    lower_softmax_ce(program, node, plan);
  } else if (!lower_extra_node(program, node, plan)) {
    fail("onednn backend cannot run node '{}': no lowering for op '{}'", node.name, op);
  }
}

}  // namespace onnxforge::onednn
