// Linear algebra: Conv (convolution primitives, grouped too), Dense (inner product; in inference
// oneDNN's matmul where it reads the src as a plain matrix), MatMul (matmul with batch
// broadcasting). Conv and Dense compute in bf16 when their precision says so (compute_type) and
// take a ReLU fused as a post-op (plan_fusion).
#include <optional>

#include "backends/onednn/lower/common.hpp"
#include "core/error.hpp"

namespace onnxforge::onednn {

namespace {

Shape shape_of(const memory::dims& dims) { return Shape(dims.begin(), dims.end()); }

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

// ---- timing (Precision::automatic) ------------------------------------------------------------

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
  const std::int64_t group = attr_int(n, "group");
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

// ---- MatMul ----------------------------------------------------------------------------------

// MatMul: oneDNN matmul on plain layouts, operands padded to the output's rank with leading 1s
// (oneDNN broadcasts batch dimensions of 1). Backward: dA = dY x B^T and dB = A^T x dY through
// transposed views (swapped strides), then a sum reduction over the batch dimensions an operand
// was broadcast along (padded(), lower/common.hpp).

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
  // `target` reads the gradient's bytes as plain ones: only when they are (an operand produced in
  // a blocked layout, by a convolution say, takes the plain sum through the sink's reorder).
  const Value& v = p.value(name);
  const bool plain = v.md == plain_desc(v.shape);
  GradSink sink =
      plain ? p.gradient_sink(name, target, target) : p.gradient_sink(name, plain_desc(v.shape));
  const memory dst = plain ? sink.mem : memory(target, p.engine(), sink.mem.get_data_handle());
  if (full_shape == shape) {
    p.add_primitive(Plan::backward, label + " (copy)", dnnl::reorder(full, dst),
                    {{DNNL_ARG_FROM, full}, {DNNL_ARG_TO, dst}});
  } else {
    dnnl::reduction::primitive_desc rpd(
        {algorithm::reduction_sum, full.get_desc(), target, 0.f, 0.f}, p.engine());
    p.add_primitive(Plan::backward, label + " (batch sum)", dnnl::reduction(rpd),
                    {{DNNL_ARG_SRC, full}, {DNNL_ARG_DST, dst}});
  }
  p.finish(sink);
}

void lower_matmul(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
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

void add_linear_algebra_lowerings(LoweringTable& table) {
  table.lower(OpId::Conv, lower_conv,
              {.backward = true,
               .bf16 = true,
               .note = "bf16 needs avx512_core or newer (oneDNN 2.6); auto takes it per layer "
                       "only with native bf16 (avx512_core_bf16, AMX) and where measured faster"});
  table.lower(OpId::Dense, lower_dense,
              {.backward = true,
               .bf16 = true,
               .note = "bf16 needs avx512_core or newer (oneDNN 2.6); auto trains dense layers in "
                       "fp32 and takes bf16 in inference only with native bf16 where measured "
                       "faster"});
  table.lower(OpId::MatMul, lower_matmul, {.backward = true});
}

}  // namespace onnxforge::onednn
