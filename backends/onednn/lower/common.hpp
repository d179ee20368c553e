// What the oneDNN lowerings of every op family share (internal to backends/onednn/): the table
// they fill, one file per family under lower/ (each adds its ops), and the helpers of several
// families.
//
// oneDNN words inside: src/dst/weights/diff_*. Layouts: primitives get format_tag::any and choose
// (blocked nChw8c/nChw16c for convolutions); a consumer asking for another layout gets a reorder
// (Program::use). Forward primitive descriptors are the hints of the backward ones. Each lowering
// adds the node's steps to the forward plans and, in the training plan, registers a builder for
// its backward that runs once the whole forward is lowered (in reverse node order, so gradients
// are complete before they are read).
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "backends/onednn/program.hpp"
#include "backends/op_table.hpp"

namespace onnxforge::onednn {

using dnnl::algorithm;
using dnnl::prop_kind;

// Lowers one node into `plan` (lower_node); `fused_relu` is null but for the ops plan_fusion fuses
// a ReLU into (Conv, Dense, BatchNormalization).
using Lowering = void (*)(OnednnProgram& program, const Node& node, const Node* fused_relu,
                          Plan plan);
using LoweringTable = OpTable<Lowering>;

// Each family's ops (lower/<family>.cpp); lower.cpp builds the table from them once.
void add_elementwise_lowerings(LoweringTable& table);
void add_binary_lowerings(LoweringTable& table);
void add_pooling_lowerings(LoweringTable& table);
void add_normalization_lowerings(LoweringTable& table);
void add_linear_algebra_lowerings(LoweringTable& table);
void add_reduction_lowerings(LoweringTable& table);
void add_shape_lowerings(LoweringTable& table);
void add_loss_lowerings(LoweringTable& table);

// Adds dy summed over the dimensions along which `in` (shape `s`) was broadcast to the output `y`
// into the gradient of `in` (Add's and Expand's backward, lower/binary.cpp): oneDNN's reduction
// where it has a kernel for the case (in 2.6: the reduced dimensions innermost, or all of them),
// the loop elsewhere (its reference reduction, index arithmetic per element, would not beat it).
void contribute_broadcast_sum(OnednnProgram& p, const Node& n, const std::string& in,
                              const Shape& s, const std::string& y, const Shape& ys);

inline float* floats(const memory& mem) { return static_cast<float*>(mem.get_data_handle()); }
inline std::size_t float_count(const memory& mem) {
  return mem.get_desc().get_size() / sizeof(float);
}

// y as a view of x in plain layout (Reshape, Flatten, a reduction of no axes); backward passes dy
// through as x's gradient (lower/shape.cpp).
void lower_as_view(OnednnProgram& p, const Node& n, Plan plan);

// Whether `name` is a trainable parameter whose gradient backward computes.
inline bool trainable_with_gradient(OnednnProgram& p, const std::string& name) {
  if (name.empty()) return false;
  const Value& v = p.value(name);
  return v.parameter && v.trainable && p.needs_gradient(name);
}

// `s` with leading 1s up to `rank` (numpy broadcasting aligns shapes on the right).
inline Shape padded(const Shape& s, std::size_t rank) {
  Shape out(rank - s.size(), 1);
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

// Whether a primitive descriptor's implementation is oneDNN's reference one (scalar code with
// index arithmetic per element), not a kernel for the case.
inline bool is_reference_impl(const std::string& impl) { return impl.rfind("ref", 0) == 0; }

// A desc's layout for step labels ("aBcd8b", "acdb:bf16"; "any" before a primitive chose one).
inline std::string layout_name(const Desc& md) {
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

// ---- timing (Precision::automatic and the pooling choice) ------------------------------------

// The faster of two runs: the first pays for first touch and JIT, the second is the steady state.
// One warm-up run (page faults on fresh scratch memory, first-touch caches), then the best of
// three: on a busy 2-core machine fewer runs let one slow run flip a choice.
inline double best_time(const std::function<void()>& run) {
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

}  // namespace onnxforge::onednn
