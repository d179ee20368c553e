// Normalization: BatchNormalization (oneDNN batch normalization, a ReLU fused as
// fuse_norm_relu), Softmax and LogSoftmax (oneDNN softmax and logsoftmax on plain layouts).
#include <optional>

#include "backends/onednn/lower/common.hpp"
#include "core/error.hpp"

namespace onnxforge::onednn {

namespace {

void lower_batch_norm(OnednnProgram& p, const Node& n, const Node* relu, Plan plan) {
  const bool training = plan == Plan::training;
  const std::string x = n.inputs[0];
  const std::string scale = n.inputs[1];
  const std::string shift = n.inputs[2];
  const std::string mean = n.inputs[3];
  const std::string var = n.inputs[4];
  // A fused ReLU (fuse_norm_relu): y is the ReLU's output, its mask a workspace for backward.
  const std::string y = relu ? relu->outputs[0] : n.outputs[0];
  const float epsilon = static_cast<float>(attr_float(n, "epsilon"));
  const double momentum = attr_float(n, "momentum");
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

// Softmax and LogSoftmax: the same lowering over oneDNN's two primitive pairs.
template <typename Forward, typename Backward>
void lower_softmax(OnednnProgram& p, const Node& n, Plan plan, const char* label) {
  const bool training = plan == Plan::training;
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  std::int64_t axis = attr_int(n, "axis");
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

}  // namespace

void add_normalization_lowerings(LoweringTable& table) {
  // A bf16 activation stays bf16 through it (bf16_readers_only): bf16 storage, not a precision of
  // its own, so bf16 is false.
  table.lower(OpId::BatchNormalization, lower_batch_norm,
              {.backward = true,
               .note = "keeps a bf16 input (a bf16 Conv's output) in bf16 storage; otherwise "
                       "fp32"});
  table.lower(OpId::Softmax,
              [](OnednnProgram& p, const Node& n, const Node*, Plan plan) {
                lower_softmax<dnnl::softmax_forward, dnnl::softmax_backward>(p, n, plan, "softmax");
              },
              {.backward = true});
  table.lower(OpId::LogSoftmax,
              [](OnednnProgram& p, const Node& n, const Node*, Plan plan) {
                lower_softmax<dnnl::logsoftmax_forward, dnnl::logsoftmax_backward>(p, n, plan,
                                                                                   "logsoftmax");
              },
              {.backward = true});
}

}  // namespace onnxforge::onednn
