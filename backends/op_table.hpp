// Each backend's answer for every op: a lowering (with what it covers) or a refusal with its
// reason, in one table keyed by OpId, from which both the backend's supports() and its dispatch
// come (the shape of ONNX Runtime's DNNL op manager). docs/OPS.md is generated from these tables
// and the op definitions; a test fails when a backend leaves an op unanswered.
#pragma once

#include <array>
#include <initializer_list>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "core/error.hpp"
#include "graph/ops.hpp"

namespace onnxforge {

// The f32-only rule the oneDNN and cuDNN backends share: every input and output of `node` is f32,
// except SoftmaxCrossEntropy's class labels (input 1), which `labels` judges; one line naming the
// value otherwise.
template <typename LabelsRule>
Support f32_dataflow(const Graph& graph, const Node& node, LabelsRule&& labels) {
  auto is_f32 = [&](const std::string& name) {
    return name.empty() || graph.value(name).dtype == DType::f32;
  };
  for (std::size_t i = 0; i < node.inputs.size(); ++i) {
    if (node.is(OpId::SoftmaxCrossEntropy) && i == 1) {
      if (Support s = labels(node.inputs[1]); !s.ok) return s;
      continue;
    }
    if (!is_f32(node.inputs[i])) {
      return {false, fmt::format("input '{}' is {}; this backend computes in f32 (convert the "
                                 "graph to f32)",
                                 node.inputs[i], to_string(graph.value(node.inputs[i]).dtype))};
    }
  }
  for (const auto& out : node.outputs) {
    if (!is_f32(out)) {
      return {false, fmt::format("output '{}' is {}; this backend computes in f32", out,
                                 to_string(graph.value(out).dtype))};
    }
  }
  return {};
}

template <typename Lower>
class OpTable {
 public:
  struct Entry {
    Lower lower{};
    OpCoverage coverage;
  };

  explicit OpTable(std::string backend) : backend_(std::move(backend)) {}

  // `lower` runs the op(s); `coverage` says what it covers (lowered is implied).
  OpTable& lower(std::initializer_list<OpId> ids, Lower fn, OpCoverage coverage = {}) {
    coverage.lowered = true;
    for (auto id : ids) set(id, {fn, coverage});
    return *this;
  }
  OpTable& lower(OpId id, Lower fn, OpCoverage coverage = {}) {
    return lower({id}, std::move(fn), std::move(coverage));
  }
  // The backend does not run the op, for `reason` (one line, shown to users).
  OpTable& refuse(OpId id, std::string reason) {
    if (reason.empty())
      fail("{} backend: the refusal of op '{}' needs a reason", backend_, op_name(id));
    OpCoverage c;
    c.note = std::move(reason);
    return set(id, {Lower{}, std::move(c)});
  }
  // Throws naming every op the table leaves unanswered; call once the table is built.
  const OpTable& complete() const {
    std::vector<std::string_view> missing;
    for (auto id : all_op_ids()) {
      if (!answered_[op_index(id)]) missing.push_back(op_name(id));
    }
    if (!missing.empty()) {
      fail("{} backend: no lowering and no refusal for op(s) {}", backend_,
           fmt::join(missing, ", "));
    }
    return *this;
  }

  const Entry& at(OpId id) const { return entries_[op_index(id)]; }
  const OpCoverage& coverage(OpId id) const { return at(id).coverage; }
  // Whether the op is lowered; otherwise the refusal, naming the op and the backend.
  Support supports(OpId id) const {
    const auto& c = coverage(id);
    if (c.lowered) return {};
    return {false,
            fmt::format("op '{}' is not run by the {} backend: {}", op_name(id), backend_, c.note)};
  }
  // The lowering of a node's op; throws for a refused one.
  const Lower& lowering(const Node& node) const {
    const OpId id = op_of(node);
    if (!coverage(id).lowered) {
      fail("{} backend cannot run node '{}': {}", backend_, node.name, supports(id).reason);
    }
    return at(id).lower;
  }

 private:
  OpTable& set(OpId id, Entry entry) {
    if (answered_[op_index(id)])
      fail("{} backend: op '{}' is answered twice", backend_, op_name(id));
    answered_[op_index(id)] = true;
    entries_[op_index(id)] = std::move(entry);
    return *this;
  }

  std::string backend_;
  std::array<Entry, kOpCount> entries_{};
  std::array<bool, kOpCount> answered_{};
};

}  // namespace onnxforge
