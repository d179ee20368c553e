#include "backends/cudnn/plan.hpp"

#include "backends/op_table.hpp"

#include <fmt/format.h>

#include <limits>

#include "core/error.hpp"
#include "core/strides.hpp"
#include "graph/builder.hpp"
#include "graph/ops.hpp"

namespace onnxforge::cudnn {

Support node_support(const Graph& graph, const Node& node, const CompileOptions& options) {
  // Which ops run is op_table()'s answer; an op the IR does not know has no entry there.
  if (!find_op(node.op)) {
    return {false, fmt::format("op '{}' is not an op of the IR (it has: {})", node.op,
                               fmt::join(known_ops(), ", "))};
  }
  if (options.precision == Precision::bf16) {
    return {false, fmt::format("compute dtype {} is not implemented by the cudnn backend yet "
                               "(compile with f32)",
                               to_string(options.precision))};
  }
  const Support dataflow = f32_dataflow(graph, node, [&](const std::string& labels) -> Support {
    if (graph.value(labels).dtype != DType::i64) return {false, "its labels must be i64"};
    return {};
  });
  if (!dataflow.ok) return dataflow;
  for (const auto& name : node.inputs) {
    if (!name.empty() && graph.value(name).shape.size() > static_cast<std::size_t>(kMaxRank)) {
      return {false, fmt::format("input '{}' has rank {}; at most {} is supported", name,
                                 graph.value(name).shape.size(), kMaxRank)};
    }
  }
  for (const auto& name : node.outputs) {
    if (element_count(graph.value(name).shape) > std::numeric_limits<int>::max()) {
      return {false, fmt::format("output '{}' has more than 2^31 elements", name)};
    }
  }
  return {};
}

// ---- cuBLAS calls (column-major views of row-major operands; see plan.hpp) --------------------

Gemm dense_forward(std::int64_t batch, std::int64_t in, std::int64_t out) {
  // Y^T (out x batch) = W (out x in) * X^T (in x batch): W's bytes are W^T column-major.
  return {.transpose_a = true,
          .transpose_b = false,
          .m = out,
          .n = batch,
          .k = in,
          .lda = in,
          .ldb = in,
          .ldc = out};
}

Gemm dense_backward_data(std::int64_t batch, std::int64_t in, std::int64_t out) {
  // dX^T (in x batch) = W^T (in x out) * dY^T (out x batch).
  return {.transpose_a = false,
          .transpose_b = false,
          .m = in,
          .n = batch,
          .k = out,
          .lda = in,
          .ldb = out,
          .ldc = in};
}

Gemm dense_backward_weight(std::int64_t batch, std::int64_t in, std::int64_t out) {
  // dW^T (in x out) = X^T (in x batch) * dY (batch x out): dY's bytes are dY^T column-major.
  return {.transpose_a = false,
          .transpose_b = true,
          .m = in,
          .n = out,
          .k = batch,
          .lda = in,
          .ldb = out,
          .ldc = in};
}

Gemm matmul_forward(std::int64_t m, std::int64_t k, std::int64_t n) {
  // Y^T (n x m) = B^T (n x k) * A^T (k x m).
  return {.transpose_a = false,
          .transpose_b = false,
          .m = n,
          .n = m,
          .k = k,
          .lda = n,
          .ldb = k,
          .ldc = n};
}

Gemm matmul_backward_a(std::int64_t m, std::int64_t k, std::int64_t n) {
  // dA^T (k x m) = B (k x n) * dY^T (n x m).
  return {.transpose_a = true,
          .transpose_b = false,
          .m = k,
          .n = m,
          .k = n,
          .lda = n,
          .ldb = n,
          .ldc = k};
}

Gemm matmul_backward_b(std::int64_t m, std::int64_t k, std::int64_t n) {
  // dB^T (n x k) = dY^T (n x m) * A (m x k).
  return {.transpose_a = false,
          .transpose_b = true,
          .m = n,
          .n = k,
          .k = m,
          .lda = n,
          .ldb = k,
          .ldc = n};
}

// ---- index maps
// -----------------------------------------------------------------------------------

Broadcast make_broadcast(const Shape& out, const Shape& a, const Shape& b) {
  if (out.size() > static_cast<std::size_t>(kMaxRank)) {
    fail("cudnn backend: rank {} is above the supported {}", out.size(), kMaxRank);
  }
  Broadcast plan;
  plan.rank = static_cast<int>(out.size());
  for (std::size_t d = 0; d < out.size(); ++d) plan.dims[d] = out[d];
  auto fill = [&](const Shape& in, std::int64_t* strides, bool& full) {
    const auto in_strides = row_major_strides(in);
    const std::size_t shift = out.size() - in.size();
    full = in.size() == out.size();
    for (std::size_t d = 0; d < out.size(); ++d) {
      if (d < shift) {
        strides[d] = 0;
        if (out[d] != 1) full = false;
        continue;
      }
      const std::int64_t dim = in[d - shift];
      strides[d] = dim == 1 ? 0 : in_strides[d - shift];
      if (dim != out[d]) full = false;
    }
    if (element_count(in) == element_count(out)) full = true;
  };
  fill(a, plan.a_strides, plan.a_full);
  fill(b, plan.b_strides, plan.b_full);
  return plan;
}

Permutation make_permutation(const Shape& in, const std::vector<std::int64_t>& perm) {
  if (in.size() > static_cast<std::size_t>(kMaxRank)) {
    fail("cudnn backend: rank {} is above the supported {}", in.size(), kMaxRank);
  }
  const auto strides = row_major_strides(in);
  Permutation plan;
  plan.rank = static_cast<int>(perm.size());
  for (std::size_t d = 0; d < perm.size(); ++d) {
    const auto p = static_cast<std::size_t>(perm[d]);
    plan.dims[d] = in[p];
    plan.in_strides[d] = strides[p];
  }
  return plan;
}

StridedView make_slice_view(const Node& node, const Shape& in, const Shape& out) {
  if (in.size() > static_cast<std::size_t>(kMaxRank)) {
    fail("cudnn backend: rank {} is above the supported {}", in.size(), kMaxRank);
  }
  const auto axes = slice_axes(node, in);
  const auto strides = row_major_strides(in);
  StridedView view;
  view.rank = static_cast<int>(in.size());
  for (std::size_t d = 0; d < in.size(); ++d) {
    view.dims[d] = out[d];
    view.strides[d] = axes[d].step * strides[d];
    view.base += axes[d].start * strides[d];
  }
  return view;
}

StridedView make_broadcast_view(const Shape& small, const Shape& big) {
  if (big.size() > static_cast<std::size_t>(kMaxRank)) {
    fail("cudnn backend: rank {} is above the supported {}", big.size(), kMaxRank);
  }
  const auto strides = broadcast_strides(small, big);
  StridedView view;
  view.rank = static_cast<int>(big.size());
  for (std::size_t d = 0; d < big.size(); ++d) {
    view.dims[d] = big[d];
    view.strides[d] = strides[d];
  }
  return view;
}

Padding make_padding(const Node& node, const Shape& in, const Shape& out) {
  Padding plan;
  plan.rank = static_cast<int>(in.size());
  const auto mode = attr_string(node, "mode");
  plan.mode = mode == "reflect" ? Padding::reflect
              : mode == "edge"  ? Padding::edge
                                : Padding::constant;
  plan.value = static_cast<float>(attr_float(node, "value"));
  const auto pads = attr_ints(node, "pads");
  for (std::size_t d = 0; d < in.size(); ++d) {
    plan.in_dims[d] = in[d];
    plan.out_dims[d] = out[d];
    plan.begin[d] = pads.at(d);
  }
  return plan;
}

Padding make_zero_padding_2d(const Shape& in, std::int64_t top, std::int64_t left,
                             std::int64_t bottom, std::int64_t right) {
  Padding plan;
  plan.rank = 4;
  for (std::size_t d = 0; d < 4; ++d) plan.in_dims[d] = plan.out_dims[d] = in[d];
  plan.out_dims[2] += top + bottom;
  plan.out_dims[3] += left + right;
  plan.begin[2] = top;
  plan.begin[3] = left;
  return plan;
}

std::uint32_t dropout_threshold(double ratio) {
  return static_cast<std::uint32_t>(ratio * 16777216.0);
}

std::uint64_t dropout_seed(std::uint64_t options_seed, std::int64_t step, const std::string& node) {
  return hash_name("dropout " + std::to_string(step), options_seed) ^ hash_name(node);
}

}  // namespace onnxforge::cudnn
