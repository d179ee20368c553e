// Losses: IR-only ops (no ONNX form) reducing a batch to a scalar mean; input 1 is the labels.
#include <string>

#include "graph/ops/infer.hpp"

namespace onnxforge::ops {

namespace {

std::vector<OutputInfo> infer_bce(const Node& node, const Inputs& in, const Graph&) {
  const auto& logits = need(node, in, 0);
  const auto& labels = need(node, in, 1);
  if (logits.shape != labels.shape) {
    fail("node '{}' ({}): logits {} and labels {} must have the same shape", node.name, node.op,
         to_string(logits.shape), to_string(labels.shape));
  }
  return {{logits.dtype, {}}};
}

std::vector<OutputInfo> infer_softmax_ce(const Node& node, const Inputs& in, const Graph&) {
  const auto& logits = need(node, in, 0);
  const auto& labels = need(node, in, 1);
  need_rank(node, logits, 2, "logits");
  if (labels.dtype != DType::i64 || labels.shape != Shape{logits.shape[0]}) {
    fail("node '{}' (SoftmaxCrossEntropy): labels must be i64 of shape [{}], got {} {}", node.name,
         logits.shape[0] == kDynamic ? "N" : std::to_string(logits.shape[0]),
         to_string(labels.dtype), to_string(labels.shape));
  }
  return {{logits.dtype, {}}};
}

}  // namespace

std::vector<OpDef> loss_ops() {
  return {
      {.id = OpId::BinaryCrossEntropyWithLogits,
       .summary = "(logits, labels) -> scalar mean of the sigmoid cross-entropy; class weights "
                  "weight_positive, weight_negative",
       .min_inputs = 2,
       .max_inputs = 2,
       .attributes = {{"weight_positive", 1.0, false}, {"weight_negative", 1.0, false}},
       .infer = infer_bce,
       .non_differentiable = {1},
       .export_rule = ExportRule::ir_only},
      {.id = OpId::SoftmaxCrossEntropy,
       .summary = "(logits[N,K], labels[N] i64) -> scalar mean of the softmax cross-entropy",
       .min_inputs = 2,
       .max_inputs = 2,
       .infer = infer_softmax_ce,
       .non_differentiable = {1},
       .export_rule = ExportRule::ir_only},
  };
}

}  // namespace onnxforge::ops
