// The cudnn backend's host-side planning, tested without a GPU: the column-major cuBLAS calls that
// implement row-major Dense and MatMul (run here by a naive column-major SGEMM with cuBLAS's
// argument conventions), the broadcast / transpose / pad index maps the kernels use (against the
// reference backend's definitions), the dropout rule (bit-identical to the oneDNN backend's), and
// which nodes the backend accepts.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>

#include "backends/backend.hpp"
#include "backends/cudnn/cublas_loader.hpp"
#include "backends/cudnn/plan.hpp"
#include "graph/builder.hpp"
#include "graph/ops.hpp"
#include "tests/support/op_cases.hpp"
#ifdef ONNXFORGE_TEST_ONEDNN_DROPOUT
#include "backends/onednn/program.hpp"
#endif

namespace onnxforge::testing {
namespace {

using cudnn::Gemm;

// cublasSgemm's contract on the host: C = op(A) op(B) + beta C, column-major, leading dims.
void sgemm(const Gemm& g, const std::vector<float>& a, std::size_t a_offset,
           const std::vector<float>& b, std::size_t b_offset, std::vector<float>& c,
           std::size_t c_offset, float beta) {
  for (std::int64_t i = 0; i < g.m; ++i) {
    for (std::int64_t j = 0; j < g.n; ++j) {
      double sum = 0.0;
      for (std::int64_t l = 0; l < g.k; ++l) {
        const float av = g.transpose_a ? a[a_offset + static_cast<std::size_t>(l + i * g.lda)]
                                       : a[a_offset + static_cast<std::size_t>(i + l * g.lda)];
        const float bv = g.transpose_b ? b[b_offset + static_cast<std::size_t>(j + l * g.ldb)]
                                       : b[b_offset + static_cast<std::size_t>(l + j * g.ldb)];
        sum += static_cast<double>(av) * bv;
      }
      float& out = c[c_offset + static_cast<std::size_t>(i + j * g.ldc)];
      out = static_cast<float>(sum + beta * out);
    }
  }
  // Leading dimensions must cover the rows they step over.
  EXPECT_GE(g.lda, g.transpose_a ? g.k : g.m);
  EXPECT_GE(g.ldb, g.transpose_b ? g.n : g.k);
  EXPECT_GE(g.ldc, g.m);
}

std::vector<float> random_values(std::size_t n, Random& rng) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(2.0 * rng.uniform() - 1.0);
  return v;
}

void expect_near_all(const std::vector<float>& got, const std::vector<double>& want,
                     const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 1e-5) << what << " element " << i;
  }
}

TEST(CudnnPlan, DenseGemmsMatchRowMajorProducts) {
  const std::int64_t batch = 5, in = 7, out = 3;
  Random rng(1);
  const auto x = random_values(batch * in, rng);
  const auto w = random_values(out * in, rng);
  const auto dy = random_values(batch * out, rng);
  std::vector<double> y(batch * out), dx(batch * in), dw(out * in);
  for (std::int64_t n = 0; n < batch; ++n)
    for (std::int64_t m = 0; m < out; ++m)
      for (std::int64_t k = 0; k < in; ++k) {
        y[n * out + m] += x[n * in + k] * w[m * in + k];
        dx[n * in + k] += dy[n * out + m] * w[m * in + k];
        dw[m * in + k] += dy[n * out + m] * x[n * in + k];
      }
  std::vector<float> got_y(batch * out, 0.f), got_dx(batch * in, 0.5f), got_dw(out * in, -0.25f);
  sgemm(cudnn::dense_forward(batch, in, out), w, 0, x, 0, got_y, 0, 0.f);
  expect_near_all(got_y, y, "Y = X W^T");
  // Backward accumulates (beta = 1) onto what is there.
  sgemm(cudnn::dense_backward_data(batch, in, out), w, 0, dy, 0, got_dx, 0, 1.f);
  for (auto& v : dx) v += 0.5;
  expect_near_all(got_dx, dx, "dX = dY W");
  sgemm(cudnn::dense_backward_weight(batch, in, out), x, 0, dy, 0, got_dw, 0, 1.f);
  for (auto& v : dw) v -= 0.25;
  expect_near_all(got_dw, dw, "dW = dY^T X");
}

TEST(CudnnPlan, BroadcastMatMulGemmsMatchRowMajorProducts) {
  // A [2,1,M,K] x B [3,K,N] -> Y [2,3,M,N]: both operands broadcast over the batch.
  const Shape as{2, 1, 4, 5}, bs{3, 5, 6}, ys{2, 3, 4, 6};
  const auto geometry = matmul_batches(as, bs, ys);
  ASSERT_EQ(geometry.y_offset.size(), 6u);
  Random rng(2);
  const auto a = random_values(static_cast<std::size_t>(element_count(as)), rng);
  const auto b = random_values(static_cast<std::size_t>(element_count(bs)), rng);
  const auto dy = random_values(static_cast<std::size_t>(element_count(ys)), rng);
  const std::int64_t m = 4, k = 5, n = 6;
  std::vector<double> y(dy.size()), da(a.size()), db(b.size());
  for (std::int64_t i = 0; i < 2; ++i)
    for (std::int64_t j = 0; j < 3; ++j) {
      const std::int64_t ao = i * m * k, bo = j * k * n, yo = (i * 3 + j) * m * n;
      for (std::int64_t r = 0; r < m; ++r)
        for (std::int64_t c = 0; c < n; ++c)
          for (std::int64_t l = 0; l < k; ++l) {
            y[yo + r * n + c] += a[ao + r * k + l] * b[bo + l * n + c];
            da[ao + r * k + l] += dy[yo + r * n + c] * b[bo + l * n + c];
            db[bo + l * n + c] += dy[yo + r * n + c] * a[ao + r * k + l];
          }
    }
  std::vector<float> got_y(y.size()), got_da(a.size(), 0.f), got_db(b.size(), 0.f);
  const auto fwd = cudnn::matmul_forward(m, k, n);
  const auto grad_a = cudnn::matmul_backward_a(m, k, n);
  const auto grad_b = cudnn::matmul_backward_b(m, k, n);
  for (std::size_t p = 0; p < geometry.y_offset.size(); ++p) {
    const auto ao = static_cast<std::size_t>(geometry.a_offset[p]);
    const auto bo = static_cast<std::size_t>(geometry.b_offset[p]);
    const auto yo = static_cast<std::size_t>(geometry.y_offset[p]);
    sgemm(fwd, b, bo, a, ao, got_y, yo, 0.f);
    sgemm(grad_a, b, bo, dy, yo, got_da, ao, 1.f);
    sgemm(grad_b, dy, yo, a, ao, got_db, bo, 1.f);
  }
  expect_near_all(got_y, y, "Y = A B");
  expect_near_all(got_da, da, "dA = dY B^T (summed over broadcast batches)");
  expect_near_all(got_db, db, "dB = A^T dY (summed over broadcast batches)");
}

// Numpy broadcasting as the reference backend defines it (core/strides.hpp broadcast_offset).
std::int64_t reference_offset(const Shape& out, const Shape& in, std::int64_t flat) {
  std::vector<std::int64_t> index(out.size());
  for (std::size_t d = out.size(); d-- > 0;) {
    index[d] = flat % out[d];
    flat /= out[d];
  }
  std::int64_t offset = 0, stride = 1;
  for (std::size_t d = in.size(); d-- > 0;) {
    if (in[d] != 1) offset += index[d + out.size() - in.size()] * stride;
    stride *= in[d];
  }
  return offset;
}

TEST(CudnnPlan, BroadcastOffsetsFollowNumpy) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 3, 4}, {4}}, {{2, 3, 4}, {3, 1}}, {{2, 1, 4}, {1, 3, 1}}, {{5}, {5}}, {{2, 3}, {}}};
  for (const auto& [a, b] : cases) {
    Node node{"n", "Add", {"a", "b"}, {"y"}, {}};
    const Shape out = broadcast_shapes(a, b, node);
    const auto plan = cudnn::make_broadcast(out, a, b);
    for (std::int64_t i = 0; i < element_count(out); ++i) {
      ASSERT_EQ(cudnn::broadcast_offset(plan, i, false), reference_offset(out, a, i))
          << to_string(a) << " in " << to_string(out) << " at " << i;
      ASSERT_EQ(cudnn::broadcast_offset(plan, i, true), reference_offset(out, b, i))
          << to_string(b) << " in " << to_string(out) << " at " << i;
    }
    EXPECT_EQ(plan.a_full, element_count(a) == element_count(out)) << to_string(a);
    EXPECT_EQ(plan.b_full, element_count(b) == element_count(out)) << to_string(b);
  }
}

TEST(CudnnPlan, PermutationVisitsEveryInputOnce) {
  const Shape in{2, 3, 4, 5};
  const std::vector<std::int64_t> perm{2, 0, 3, 1};
  const auto plan = cudnn::make_permutation(in, perm);
  std::set<std::int64_t> seen;
  for (std::int64_t i = 0; i < element_count(in); ++i) {
    // Output index (a, b, c, d) over dims (4, 2, 5, 3) reads input (b, d, a, c).
    const std::int64_t d = i % 3, c = (i / 3) % 5, b = (i / 15) % 2, a = i / 30;
    const std::int64_t want = ((b * 3 + d) * 4 + a) * 5 + c;
    ASSERT_EQ(cudnn::permuted_offset(plan, i), want) << i;
    seen.insert(want);
  }
  EXPECT_EQ(static_cast<std::int64_t>(seen.size()), element_count(in));
}

TEST(CudnnPlan, PaddingModesMatchOnnx) {
  // One axis of 4 values padded by 3 before and 2 after.
  const Shape in{4}, out{9};
  auto node_with = [](const std::string& mode) {
    Node n{"pad", "Pad", {"x"}, {"y"}, {}};
    n.attributes["pads"] = std::vector<std::int64_t>{3, 2};
    n.attributes["mode"] = mode;
    return n;
  };
  const std::map<std::string, std::vector<std::int64_t>> want = {
      {"constant", {-1, -1, -1, 0, 1, 2, 3, -1, -1}},
      {"edge", {0, 0, 0, 0, 1, 2, 3, 3, 3}},
      {"reflect", {3, 2, 1, 0, 1, 2, 3, 2, 1}},
  };
  for (const auto& [mode, sources] : want) {
    const auto plan = cudnn::make_padding(node_with(mode), in, out);
    for (std::int64_t i = 0; i < 9; ++i) {
      EXPECT_EQ(cudnn::padded_source(plan, i), sources[static_cast<std::size_t>(i)])
          << mode << " " << i;
    }
  }
  // The convolution's explicit zero padding of N,C,H,W.
  const auto conv = cudnn::make_zero_padding_2d({1, 1, 2, 2}, 1, 0, 0, 2);
  const std::vector<std::int64_t> grid = {-1, -1, -1, -1, 0, 1, -1, -1, 2, 3, -1, -1};
  for (std::int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ(cudnn::padded_source(conv, i), grid[static_cast<std::size_t>(i)]) << i;
  }
}

TEST(CudnnPlan, SliceAndReductionViewsMatchOnnx) {
  // x: 2 x 6 x 5; axis 1 from its last element back by 2, axis 2 from 3 down to 1.
  Node slice{"s", "Slice", {"x"}, {"y"}, {}};
  slice.attributes["starts"] = std::vector<std::int64_t>{-1, 3};
  slice.attributes["ends"] = std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min(), 0};
  slice.attributes["axes"] = std::vector<std::int64_t>{1, 2};
  slice.attributes["steps"] = std::vector<std::int64_t>{-2, -1};
  const Shape in{2, 6, 5}, out{2, 3, 3};
  const auto view = cudnn::make_slice_view(slice, in, out);
  for (std::int64_t i = 0; i < element_count(out); ++i) {
    const std::int64_t k = i % 3, j = (i / 3) % 3, n = i / 9;
    const std::int64_t want = (n * 6 + (5 - 2 * j)) * 5 + (3 - k);
    ASSERT_EQ(cudnn::strided_offset(view, i), want) << i;
  }
  // ReduceSum over axis 1 of 2 x 3 x 4: input element (a, b, c) adds into output (a, c).
  const Shape x{2, 3, 4}, kept{2, 1, 4};
  const auto reduce = cudnn::make_broadcast_view(kept, x);
  for (std::int64_t i = 0; i < element_count(x); ++i) {
    ASSERT_EQ(cudnn::strided_offset(reduce, i), (i / 12) * 4 + i % 4) << i;
  }
}

TEST(CudnnPlan, DropoutDrawsTheOnednnMasks) {
  const double ratio = 0.3;
  const std::uint32_t threshold = cudnn::dropout_threshold(ratio);
  const std::uint64_t seed = cudnn::dropout_seed(7, 2, "dropout");
  EXPECT_EQ(seed, hash_name("dropout 2", 7) ^ hash_name("dropout"));
  const std::size_t n = 4000;
  std::size_t dropped = 0;
  std::vector<float> mask(n);
  for (std::size_t i = 0; i < n; ++i) {
    const bool keep = cudnn::dropout_keeps(seed, static_cast<std::int64_t>(i), threshold);
    dropped += keep ? 0 : 1;
    mask[i] = keep ? static_cast<float>(1.0 / (1.0 - ratio)) : 0.f;
  }
  // 4000 Bernoulli(0.3) draws: sd ~29; +-150 is ~5 sigma.
  EXPECT_NEAR(static_cast<double>(dropped), 1200.0, 150.0);
  // Different steps draw different masks.
  const std::uint64_t next = cudnn::dropout_seed(7, 3, "dropout");
  std::size_t differ = 0;
  for (std::size_t i = 0; i < n; ++i) {
    differ += cudnn::dropout_keeps(seed, static_cast<std::int64_t>(i), threshold) !=
              cudnn::dropout_keeps(next, static_cast<std::int64_t>(i), threshold);
  }
  EXPECT_GT(differ, n / 5);
#ifdef ONNXFORGE_TEST_ONEDNN_DROPOUT
  // Bit for bit the oneDNN backend's masks, so that the two backends train alike.
  std::vector<float> x(n, 1.f), y(n), onednn_mask(n);
  onednn::dropout_forward(x.data(), y.data(), onednn_mask.data(), n, ratio, seed);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(mask[i], onednn_mask[i]) << i;
#endif
}

TEST(CudnnPlan, LowersEveryOpOfTheIr) {
  const auto backend = make_backend("cudnn");
  for (const auto id : all_op_ids()) {
    EXPECT_TRUE(backend->coverage(id).lowered) << op_name(id) << " has no cudnn lowering";
  }
}

TEST(CudnnPlan, SupportsEveryOpCaseInF32AndNamesWhatItRejects) {
  for (const auto& c : op_cases()) {
    for (const auto& node : c.graph.nodes) {
      const Support s = cudnn::node_support(c.graph, node, {});
      EXPECT_TRUE(s.ok) << c.name << " node " << node.name << ": " << s.reason;
    }
  }
  Builder b("bf16", 1);
  b.output(b.relu(b.conv2d(b.input("x", {1, 3, 8, 8}), {.filters = 2})));
  const Graph g = b.build();
  const Support bf16 = cudnn::node_support(g, g.nodes[0], {.precision = Precision::bf16});
  EXPECT_FALSE(bf16.ok);
  EXPECT_NE(bf16.reason.find("bf16"), std::string::npos) << bf16.reason;
  Node unknown{"mystery", "Mystery", {"x"}, {"y"}, {}};
  const Support none = cudnn::node_support(g, unknown, {});
  EXPECT_FALSE(none.ok);
  EXPECT_NE(none.reason.find("Mystery"), std::string::npos) << none.reason;
}

// cuBLAS is loaded on first use (not linked): the library of the headers' major version loads and
// every entry point the backend calls resolves. Needs no GPU.
TEST(CudnnPlan, CublasLoadsOnDemand) {
  const auto& api = cudnn::cublas_api();
  int major = 0;
  ASSERT_EQ(api.get_property(MAJOR_VERSION, &major), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(major, CUBLAS_VER_MAJOR);
  EXPECT_STREQ(api.status_name(CUBLAS_STATUS_SUCCESS), "CUBLAS_STATUS_SUCCESS");
  EXPECT_NE(api.sgemm, nullptr);
  EXPECT_NE(api.sgemv, nullptr);
  EXPECT_EQ(&api, &cudnn::cublas_api());  // loaded once
}

// Without a GPU the backend says so in one line and compile() refuses with the reason.
TEST(CudnnPlan, UnavailableBackendFailsClearly) {
  auto backend = make_backend("cudnn");
  std::string why;
  if (backend->available(&why)) GTEST_SKIP() << "a GPU is visible: nothing to check here";
  EXPECT_NE(why.find("CUDA"), std::string::npos) << why;
  EXPECT_EQ(why.find('\n'), std::string::npos) << why;
  Builder b("small", 1);
  b.output(b.relu(b.input("x", {1, 4})));
  EXPECT_THROW(backend->compile(b.build(), {}), Error);
  std::printf("    cudnn backend unavailable here, as expected: %s\n", why.c_str());
}

}  // namespace
}  // namespace onnxforge::testing
