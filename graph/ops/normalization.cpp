// Normalization: batch normalization, and softmax / log-softmax along one axis.
#include "graph/ops/infer.hpp"

namespace onnxforge::ops {

namespace {

std::vector<OutputInfo> infer_batch_norm(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  if (x.shape.size() < 2) {
    fail("node '{}' (BatchNormalization): input must have rank >= 2, got {}", node.name,
         to_string(x.shape));
  }
  const char* roles[] = {"scale", "bias", "mean", "variance"};
  for (std::size_t i = 1; i <= 4; ++i) {
    const auto& p = need(node, in, i);
    if (p.shape != Shape{x.shape[1]}) {
      fail("node '{}' (BatchNormalization): {} '{}' has shape {}, expected [{}] for input {}",
           node.name, roles[i - 1], p.name, to_string(p.shape), x.shape[1], to_string(x.shape));
    }
  }
  return {{x.dtype, x.shape}};
}

std::vector<OutputInfo> infer_softmax(const Node& node, const Inputs& in, const Graph&) {
  const auto& x = need(node, in, 0);
  normalize_axis(node, attr_int(node, "axis"), x.shape.size());
  return {{x.dtype, x.shape}};
}

std::vector<OutputInfo> infer_log_softmax(const Node& node, const Inputs& in, const Graph& graph) {
  need_floating(node, need(node, in, 0));
  return infer_softmax(node, in, graph);
}

}  // namespace

std::vector<OpDef> normalization_ops() {
  return {
      {.id = OpId::BatchNormalization,
       .summary = "(X, scale, B, mean, var); batch statistics in training, running ones at "
                  "inference; running = momentum * running + (1 - momentum) * batch (ONNX)",
       .onnx_since = 6,
       .min_inputs = 5,
       .max_inputs = 5,
       .attributes = {{"epsilon", 1e-5}, {"momentum", 0.9}},
       .infer = infer_batch_norm,
       .non_differentiable = {3, 4}},
      {.id = OpId::Softmax,
       .summary = "exp(x) / sum(exp(x)) along one axis",
       .onnx_since = 1,
       .attributes = {{"axis", std::int64_t{-1}}},
       .infer = infer_softmax},
      {.id = OpId::LogSoftmax,
       .summary = "x - log(sum(exp(x))) along one axis",
       .onnx_since = 1,
       .attributes = {{"axis", std::int64_t{-1}}},
       .infer = infer_log_softmax},
  };
}

}  // namespace onnxforge::ops
