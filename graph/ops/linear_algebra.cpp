// Linear algebra: convolution, the Dense layer and batched matrix products.
#include "core/strides.hpp"
#include "graph/ops/infer.hpp"

namespace onnxforge {

MatMulBatches matmul_batches(const Shape& a, const Shape& b, const Shape& y) {
  MatMulBatches g;
  g.m = a[a.size() - 2];
  g.k = a[a.size() - 1];
  g.n = b[b.size() - 1];
  const Shape batch_y(y.begin(), y.end() - 2);
  const Shape batch_a(a.begin(), a.end() - 2);
  const Shape batch_b(b.begin(), b.end() - 2);
  std::int64_t batches = 1;
  for (auto d : batch_y) batches *= d;
  for (std::int64_t i = 0; i < batches; ++i) {
    g.a_offset.push_back(broadcast_offset(batch_y, batch_a, i) * g.m * g.k);
    g.b_offset.push_back(broadcast_offset(batch_y, batch_b, i) * g.k * g.n);
    g.y_offset.push_back(i * g.m * g.n);
  }
  return g;
}

}  // namespace onnxforge

namespace onnxforge::ops {

namespace {

std::vector<OutputInfo> infer_conv(const Node& node, const Inputs& in, const Graph& graph) {
  const auto& x = need(node, in, 0);
  const auto& w = need(node, in, 1);
  need_rank(node, x, 4, "input");
  need_rank(node, w, 4, "weight");
  const std::int64_t group = attr_int(node, "group");
  if (group < 1) fail("node '{}' (Conv): group must be >= 1, got {}", node.name, group);
  const std::int64_t channels = x.shape[1];
  if (channels != kDynamic && channels != w.shape[1] * group) {
    fail("node '{}' (Conv): input {} has {} channels but weight {} with group {} expects {}",
         node.name, to_string(x.shape), channels, to_string(w.shape), group, w.shape[1] * group);
  }
  if (w.shape[0] % group != 0) {
    fail("node '{}' (Conv): {} filters are not divisible by group {}", node.name, w.shape[0],
         group);
  }
  if (in.size() > 2 && in[2]) {
    const auto& b = *in[2];
    if (b.shape != Shape{w.shape[0]}) {
      fail("node '{}' (Conv): bias shape {} does not match {} filters", node.name,
           to_string(b.shape), w.shape[0]);
    }
  }
  const Window2d win = window_of(node, graph);
  return {{x.dtype, {x.shape[0], w.shape[0], win.out_h(x.shape[2]), win.out_w(x.shape[3])}}};
}

std::vector<OutputInfo> infer_dense(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  const auto& w = need(node, in, 1);
  need_rank(node, x, 2, "input");
  need_rank(node, w, 2, "weight");
  if (x.shape[1] != kDynamic && x.shape[1] != w.shape[1]) {
    fail("node '{}' (Dense): input {} has {} features but weight {} expects {}", node.name,
         to_string(x.shape), x.shape[1], to_string(w.shape), w.shape[1]);
  }
  if (in.size() > 2 && in[2] && in[2]->shape != Shape{w.shape[0]}) {
    fail("node '{}' (Dense): bias shape {} does not match {} units", node.name,
         to_string(in[2]->shape), w.shape[0]);
  }
  return {{x.dtype, {x.shape[0], w.shape[0]}}};
}

std::vector<OutputInfo> infer_matmul(const Node& node, const Inputs& in, const Graph&) {
  const auto& a = need(node, in, 0);
  const auto& b = need(node, in, 1);
  need_floating(node, a);
  need_same_dtype(node, a, b);
  if (a.shape.size() < 2 || b.shape.size() < 2) {
    fail("node '{}' (MatMul): both inputs need rank >= 2, got {} and {}", node.name,
         to_string(a.shape), to_string(b.shape));
  }
  const auto k_a = a.shape[a.shape.size() - 1];
  const auto k_b = b.shape[b.shape.size() - 2];
  if (k_a != k_b && k_a != kDynamic && k_b != kDynamic) {
    fail("node '{}' (MatMul): inner dimensions of {} and {} differ", node.name, to_string(a.shape),
         to_string(b.shape));
  }
  const Shape batch_a(a.shape.begin(), a.shape.end() - 2);
  const Shape batch_b(b.shape.begin(), b.shape.end() - 2);
  Shape out = broadcast_shapes(batch_a, batch_b, node);
  out.push_back(a.shape[a.shape.size() - 2]);
  out.push_back(b.shape[b.shape.size() - 1]);
  return {{a.dtype, out}};
}

}  // namespace

std::vector<OpDef> linear_algebra_ops() {
  auto conv_attributes = window_attributes(true);
  conv_attributes.push_back({"group", std::int64_t{1}});
  return {
      {.id = OpId::Conv,
       .summary = "(X, W, [B]) 2-D convolution, grouped; pads [top,left,bottom,right]",
       .onnx_since = 1,
       .min_inputs = 2,
       .max_inputs = 3,
       .attributes = conv_attributes,
       .infer = infer_conv},
      {.id = OpId::Dense,
       .summary = "(X[N,K], W[M,K], [B[M]]) Y = X W^T + B; imported from and exported as Gemm",
       .onnx_since = 0,
       .min_inputs = 2,
       .max_inputs = 3,
       .infer = infer_dense,
       .export_rule = ExportRule::rewritten},
      {.id = OpId::MatMul,
       .summary = "A[..., M, K] x B[..., K, N], batch dimensions broadcast; rank >= 2 (the "
                  "importer reshapes 1-D operands)",
       .onnx_since = 1,
       .min_inputs = 2,
       .max_inputs = 2,
       .infer = infer_matmul},
  };
}

}  // namespace onnxforge::ops
