// A catalogue of small graphs, one op (or a short chain) each, over random and odd shapes and the
// stride / padding / dilation / groups / ceil_mode variants; shared by the backend op harness.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/builder.hpp"
#include "graph/graph.hpp"

namespace onnxforge::testing {

struct OpCase {
  std::string name;  // "Conv/stride2_asym_pads": op, then variant (GoogleTest-safe after '/')
  Graph graph;       // static shapes; its outputs are what the harness compares
  // Every trainable parameter frozen (non-trainable): a frozen batch norm, no weight gradients.
  // Cases named "..._frozen_kernel" freeze only the kernels (a trainable bias alone).
  bool frozen = false;
  // Dropout with ratio > 0: outputs are random; the harness skips value comparisons.
  bool random = false;
  // The op harness (backend_ops_test.cpp): worst-element error allowed, relative to the tensor's
  // scale, in f32, for the forward values and for the gradients of this case.
  double forward_tolerance = 1e-5;
  double gradient_tolerance = 1e-4;
  // The same for the harness's bf16 instances where the backend computes a node of the case in
  // bf16 (its op table's coverage says bf16: oneDNN's Conv and Dense): bf16 inputs, parameters
  // and seeds against the reference's f32 result. Intermediate values rounded to bf16 (8-bit
  // mantissa, 2^-9 relative) give errors of the 1e-2 order; a ReLU or max pool after a bf16 layer
  // can flip on such a rounding, which moves a whole gradient term (per-case overrides).
  double bf16_forward_tolerance = 1e-2;
  double bf16_gradient_tolerance = 2e-2;
  // The finite-difference check (gradient_check.hpp): step and relative tolerance of this case.
  double fd_step = 1e-5;
  double fd_tolerance = 1e-6;
};

// Every case, built deterministically (parameters drawn from a seed, biases non-zero).
const std::vector<OpCase>& op_cases();

// Random tensors for a graph's inputs: floating in [-1, 1] (labels named "labels" in [0, 1]),
// i64 class labels for SoftmaxCrossEntropy.
Tensor random_tensor(const Shape& shape, Random& rng, double low = -1.0, double high = 1.0);
std::map<std::string, Tensor> random_feeds(const Graph& graph, Random& rng);
// An f32 tensor's values rounded to the nearest bf16 (so that a bf16 computation reads them
// exactly), still f32.
Tensor rounded_to_bf16(const Tensor& t);

// |got - want|_2 / |want|_2 over every element (infinity when it is NaN).
double relative_l2(const Tensor& got, const Tensor& want);

}  // namespace onnxforge::testing
