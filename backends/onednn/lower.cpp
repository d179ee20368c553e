// The generic part of the oneDNN backend's lowering: its op table (built once from the families'
// files under lower/), the checks of supports(), the dispatch of lower_node and the ISA helpers.
#include <fmt/format.h>

#include "backends/onednn/lower/common.hpp"
#include "core/error.hpp"
#include "graph/ops.hpp"

namespace onnxforge::onednn {

namespace {

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

// Every op's lowering (or refusal), by OpId.
const LoweringTable& lowerings() {
  static const LoweringTable table = [] {
    LoweringTable t("onednn");
    add_elementwise_lowerings(t);
    add_binary_lowerings(t);
    add_pooling_lowerings(t);
    add_normalization_lowerings(t);
    add_linear_algebra_lowerings(t);
    add_reduction_lowerings(t);
    add_shape_lowerings(t);
    add_loss_lowerings(t);
    t.complete();
    return t;
  }();
  return table;
}

}  // namespace

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
  if (auto s = lowerings().supports(op_of(node)); !s.ok) return s;
  const Support dataflow = f32_dataflow(graph, node, [&](const std::string& labels) -> Support {
    if (!graph.is_input(labels) && !graph.find_initializer(labels)) {
      return {false, "its labels must be a graph input or an initializer"};
    }
    return {};
  });
  if (!dataflow.ok) return dataflow;
  if ((node.is(OpId::Conv) || node.is(OpId::Dense)) && options.precision == Precision::bf16 &&
      !cpu_has_bf16()) {
    return {false, fmt::format("bf16 convolutions and inner products need avx512_core or newer "
                               "in oneDNN 2.6; this CPU offers {} (use --dtype fp32 or auto)",
                               isa_name())};
  }
  if (node.is(OpId::AveragePool) && attr_int(node, "ceil_mode") != 0 &&
      attr_int(node, "count_include_pad") != 0) {
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

OpCoverage op_coverage(OpId op) { return lowerings().coverage(op); }

void lower_node(OnednnProgram& program, const Node& node, const Node* fused_relu, Plan plan) {
  lowerings().lowering(node)(program, node, fused_relu, plan);
}

}  // namespace onnxforge::onednn
