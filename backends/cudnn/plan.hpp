// Host-side planning of the cudnn backend, free of CUDA: which nodes it runs, how row-major
// products map onto column-major cuBLAS calls, broadcasting / transpose / pad index maps and the
// dropout mask rule. Unit-tested without a GPU (tests/backends/cudnn_plan_test.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "backends/cudnn/index_maps.hpp"
#include "graph/graph.hpp"

namespace onnxforge::cudnn {

// What the backend checks of a node beyond its op's answer in op_table() (lower.hpp), which
// CudnnBackend::supports asks first: an op the IR knows, the compute dtype, dtypes (f32 compute;
// i64 only as class labels), rank (at most kMaxRank) and size (below 2^31 elements per output).
// Pure host logic.
Support node_support(const Graph& graph, const Node& node, const CompileOptions& options);

// ---- cuBLAS calls for row-major products ------------------------------------------------------
// One column-major SGEMM: C(m x n) = alpha * op(A)(m x k) * op(B)(k x n) + beta * C, with
// leading dimensions lda/ldb/ldc, as cublasSgemm takes it. `a_is_first` says whether A is the
// first row-major operand of the call's builder (x or dy) or the second (w, x...).
struct Gemm {
  bool transpose_a = false, transpose_b = false;
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t lda = 0, ldb = 0, ldc = 0;
};

// Dense: Y[N,M] = X[N,K] W[M,K]^T. Operands in the order the program passes them.
//   forward:         A = W, B = X, C = Y
//   backward data:   A = W, B = dY, C = dX
//   backward weight: A = X, B = dY, C = dW
Gemm dense_forward(std::int64_t batch, std::int64_t in, std::int64_t out);
Gemm dense_backward_data(std::int64_t batch, std::int64_t in, std::int64_t out);
Gemm dense_backward_weight(std::int64_t batch, std::int64_t in, std::int64_t out);

// MatMul per batch: Y[M,N] = A[M,K] B[K,N] (row-major).
//   forward:  A = B_op, B = A_op, C = Y
//   d A_op:   A = B_op, B = dY, C = dA_op   (dA = dY B^T)
//   d B_op:   A = dY, B = A_op, C = dB_op   (dB = A^T dY)
Gemm matmul_forward(std::int64_t m, std::int64_t k, std::int64_t n);
Gemm matmul_backward_a(std::int64_t m, std::int64_t k, std::int64_t n);
Gemm matmul_backward_b(std::int64_t m, std::int64_t k, std::int64_t n);

// The batches' offsets: matmul_batches (graph/ops.hpp).

// ---- index maps for the element-wise kernels (structs and per-element maps: index_maps.hpp)
// ------
Broadcast make_broadcast(const Shape& out, const Shape& a, const Shape& b);
Permutation make_permutation(const Shape& in, const std::vector<std::int64_t>& perm);
Padding make_padding(const Node& node, const Shape& in, const Shape& out);
// Slice: the input offset of every output element (dims: the output's).
StridedView make_slice_view(const Node& node, const Shape& in, const Shape& out);
// `small` broadcast to `big` (numpy rules): the offset in `small` of every element of `big`.
StridedView make_broadcast_view(const Shape& small, const Shape& big);
// A constant zero padding of an NCHW tensor (convolutions with asymmetric pads).
Padding make_zero_padding_2d(const Shape& in, std::int64_t top, std::int64_t left,
                             std::int64_t bottom, std::int64_t right);

// ---- dropout ------------------------------------------------------------------------------------
// The oneDNN backend's rule, so that both draw the same masks: element i of a node is dropped
// when the top 24 bits of splitmix64(seed + i) fall below ratio * 2^24, where seed =
// hash_name("dropout <optimizer step>", options.seed) ^ hash_name(node name).
std::uint32_t dropout_threshold(double ratio);
std::uint64_t dropout_seed(std::uint64_t options_seed, std::int64_t step, const std::string& node);

}  // namespace onnxforge::cudnn
