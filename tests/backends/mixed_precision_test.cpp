// Mixed precision (CompileOptions::precision = bf16): convolutions and inner products take
// bf16 src, weights and diff_dst and accumulate in f32; master weights, gradients and optimizer
// state stay f32. Every backend of this build that runs bf16 on this CPU is checked against its
// own f32 run (a backend that refuses bf16 here must refuse it with an Error at compile time).
//
// Measure: relative L2 per tensor, |got - want|_2 / |want|_2. A gradient 70x too small has a
// relative L2 of 0.986; the tolerances below are 49x, 9.9x and 3.9x smaller than that.
//
// Why two nets. bf16 rounding moves a pre-activation by about 2^-9 of its scale. Where the
// derivative is continuous (Tanh, average pooling) that moves every gradient by the same order:
// measured at most 0.5% relative L2 here (AMD EPYC Zen 4, avx512_core_bf16, oneDNN jit_bf16 and
// brgemm). ReLU and max pooling have jumps: a pre-activation within that distance of 0 flips its
// ReLU mask and a near-tie in a pooling window flips the winner, and each flip moves a whole
// term of a gradient sum. With f32 inputs and weights such flips start at the first layer and
// give 15-25% relative L2 on a 4-sample batch although every primitive is right (a single
// Conv+ReLU: 5%, falling to 0.15% once its inputs and weights are bf16 values, so that both runs
// see the same first-layer masks). The ReLU net therefore runs on bf16-representable inputs and
// weights, where only the rounding of later activations can flip a mask: measured at most 4.3%.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "backends/backend.hpp"
#include "core/error.hpp"
#include "graph/models.hpp"
#include "tests/support/op_cases.hpp"

namespace onnxforge::testing {
namespace {

// Smooth derivatives: forward and every gradient within 2% (measured <= 0.5%).
constexpr double kSmoothTolerance = 2e-2;
// ReLU and max pooling on bf16-representable inputs and weights: 10% (measured <= 4.3%).
constexpr double kJumpTolerance = 1e-1;
// The same with batch norms (batch statistics) before the ReLUs: 25%. A batch norm's backward
// subtracts the batch means of dy and of dy * x_hat from each dy, so one flipped mask moves the
// gradient of its whole channel. Measured (Zen 4, avx512_core_bf16) at most 11% at batch 8 and
// 16% at batch 4 with the activations between the layers in bf16, 7% and 12% with them in f32.
constexpr double kBatchNormTolerance = 2.5e-1;
// Training losses: each of the first steps within 2% of the f32 loss (see TrainingTracksFp32).
constexpr double kLossTolerance = 2e-2;

void expect_close(const std::string& backend, const std::string& what, const Tensor& got,
                  const Tensor& want, double tolerance) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const double e = relative_l2(got, want);
  std::printf("    [%s] %-40s relative L2 %.2e (tolerance %.0e)\n", backend.c_str(), what.c_str(),
              e, tolerance);
  EXPECT_LE(e, tolerance) << what;
}

std::vector<std::string> backends_under_test() {
  std::vector<std::string> names;
  for (const auto& name : backend_names()) {
    if (name != "reference") names.push_back(name);
  }
  return names;
}

class MixedPrecision : public ::testing::TestWithParam<std::string> {
 protected:
  // The backend, or null after GTEST_SKIP when it cannot run `g` in bf16 here (then compile must
  // throw, never fall back).
  std::unique_ptr<Backend> backend_for(const Graph& g, const CompileOptions& bf16) {
    auto be = make_backend(GetParam());
    std::string why;
    if (!be->available(&why)) {
      skip_reason_ = GetParam() + " is not available here: " + why;
      return nullptr;
    }
    for (const auto& node : g.nodes) {
      const Support s = be->supports(g, node, bf16);
      if (!s.ok) {
        EXPECT_THROW(be->compile(g, bf16), Error);
        skip_reason_ =
            GetParam() + " runs no bf16 here (node '" + node.name + "': " + s.reason + ")";
        return nullptr;
      }
    }
    return be;
  }
  std::string skip_reason_;
};

// Compiles `g` in f32 and bf16, runs one training forward and a backward seeded on `y`, and
// compares the output and every parameter's gradient.
void compare_gradients(const std::string& backend_name, Backend& be, const Graph& g,
                       const std::string& y, bool bf16_values, double tolerance) {
  CompileOptions f32{.training = true, .loss = "unused_loss"};
  CompileOptions bf16 = f32;
  bf16.precision = Precision::bf16;
  auto want = be.compile(g, f32);
  auto got = be.compile(g, bf16);
  Random rng(17);
  Tensor input = random_tensor(g.inputs[0].shape, rng);
  const Tensor seed = random_tensor(g.value(y).shape, rng);
  if (bf16_values) input = rounded_to_bf16(input);
  for (auto* p : {want.get(), got.get()}) {
    if (bf16_values) {
      for (const auto& init : g.initializers) {
        p->set_parameter(init.name, rounded_to_bf16(init.value));
      }
    }
    p->set_input(g.inputs[0].name, input);
    p->set_input("unused_loss", Tensor(DType::f32, {}));
    p->forward(Mode::training);
    p->backward({{y, seed}});
  }
  expect_close(backend_name, "forward", got->fetch(y), want->fetch(y), tolerance);
  for (const auto& init : g.initializers) {
    if (!init.trainable) continue;  // batch norms' moving statistics
    const Tensor reference = want->gradient(init.name);
    expect_close(backend_name, "gradient " + init.name, got->gradient(init.name), reference,
                 tolerance);
    // The measure itself: the same gradient 70x too small is far outside the tolerance.
    Tensor small = reference;
    for (auto& v : small.data<float>()) v /= 70.f;
    EXPECT_GT(relative_l2(small, reference), 3 * tolerance) << init.name;
  }
}

Graph two_conv_two_dense(bool smooth) {
  Builder b("bf16", 13);
  auto x = b.input("x", {4, 3, 16, 16});
  auto act = [&](const std::string& v) { return smooth ? b.node("Tanh", {v}, {}) : b.relu(v); };
  auto h = act(b.conv2d(x, {.filters = 16, .kernel = {3, 3}}));
  h = act(b.conv2d(h, {.filters = 16, .kernel = {3, 3}}));
  h = smooth ? b.node("AveragePool", {h},
                      {{"kernel_shape", std::vector<std::int64_t>{2, 2}},
                       {"strides", std::vector<std::int64_t>{2, 2}}})
             : b.max_pool(h);
  auto y = b.dense(act(b.dense(b.flatten(h), 32)), 4);
  b.output(y);
  Graph g = b.build();
  g.inputs.push_back({"unused_loss", DType::f32, {}});
  g.validate();
  return g;
}

TEST_P(MixedPrecision, GradientsMatchFp32WhereDerivativesAreSmooth) {
  const Graph g = two_conv_two_dense(true);
  auto be = backend_for(g, {.training = true, .loss = "unused_loss", .precision = Precision::bf16});
  if (!be) GTEST_SKIP() << skip_reason_;
  compare_gradients(GetParam(), *be, g, g.outputs[0], false, kSmoothTolerance);
}

TEST_P(MixedPrecision, GradientsMatchFp32ThroughReluAndMaxPool) {
  const Graph g = two_conv_two_dense(false);
  auto be = backend_for(g, {.training = true, .loss = "unused_loss", .precision = Precision::bf16});
  if (!be) GTEST_SKIP() << skip_reason_;
  compare_gradients(GetParam(), *be, g, g.outputs[0], true, kJumpTolerance);
}

// Activations between bf16 layers in training (the oneDNN backend stores a value with one reader
// in bf16 when its producer computes in bf16 and its reader takes bf16: a convolution, or a
// batch norm or pooling whose own output qualifies), and their gradients with them: batch norms
// with batch statistics, max pools with disjoint and with overlapping windows.
TEST_P(MixedPrecision, GradientsMatchFp32ThroughBf16BatchNormsAndPools) {
  Builder b("bf16_chain", 29);
  auto x = b.input("x", {8, 3, 16, 16});
  // No bias before a batch norm (its gradient is zero up to rounding).
  auto h = b.relu(b.batch_norm(b.conv2d(x, {.filters = 16, .kernel = {3, 3}, .bias = false})));
  h = b.max_pool(h, {.kernel = {2, 2}, .stride = {2, 2}});
  h = b.relu(b.batch_norm(b.conv2d(h, {.filters = 16, .kernel = {3, 3}, .bias = false})));
  h = b.max_pool(h, {.kernel = {2, 2}, .stride = {1, 1}});
  h = b.relu(b.conv2d(h, {.filters = 16, .kernel = {3, 3}}));
  b.output(b.dense(b.flatten(h), 4));
  Graph g = b.build();
  g.inputs.push_back({"unused_loss", DType::f32, {}});
  g.validate();
  const CompileOptions bf16{.training = true, .loss = "unused_loss", .precision = Precision::bf16};
  auto be = backend_for(g, bf16);
  if (!be) GTEST_SKIP() << skip_reason_;
  compare_gradients(GetParam(), *be, g, g.outputs[0], true, kBatchNormTolerance);
  if (GetParam() == "onednn") {
    // Both pools read a bf16 batch norm output, so the chain did run in bf16.
    int pools = 0;
    for (const auto& c : be->compile(g, bf16)->layer_choices()) {
      if (c.op != "MaxPool") continue;
      ++pools;
      EXPECT_EQ(c.dtype, "bf16") << c.node << ": " << c.why;
    }
    EXPECT_EQ(pools, 2);
  }
}

// A transfer head as trainers/transfer.cpp builds it: Dense + ReLU (fused) + Dropout + Dense 1,
// on feature vectors; the dropout masks are the same in both runs (same seed and step).
TEST_P(MixedPrecision, GradientsMatchFp32ThroughADenseHeadWithDropout) {
  Builder b("head", 3);
  auto x = b.input("x", {32, 64});
  // A trainable layer below, so that the head's first dense layer also computes its input's
  // gradient (backward data), as on top of a trainable backbone.
  auto features = b.dense(x, 1152);
  auto y = b.dense(b.dropout(b.relu(b.dense(features, 256)), 0.5), 1);
  b.output(y);
  Graph g = b.build();
  g.inputs.push_back({"unused_loss", DType::f32, {}});
  g.validate();
  auto be = backend_for(g, {.training = true, .loss = "unused_loss", .precision = Precision::bf16});
  if (!be) GTEST_SKIP() << skip_reason_;
  compare_gradients(GetParam(), *be, g, g.outputs[0], true, kJumpTolerance);
}

// Inference Programs in bf16: the oneDNN backend stores activations between bf16 layers in bf16
// (convolution outputs, max pools on bf16, a Flatten folded into the dense layer that reads it).
// Each stored value is rounded exactly as its reader's bf16 src would round it, and the forward
// has no mask flips to amplify (a flipped ReLU near 0 moves its output by about nothing), so the
// output is held to the smooth tolerance, 2% (measured below 1%).
TEST_P(MixedPrecision, InferenceTracksFp32) {
  Graph g = two_conv_two_dense(false);
  g.inputs.pop_back();  // no loss input in inference
  g.validate();
  auto be = backend_for(g, {.precision = Precision::bf16});
  if (!be) GTEST_SKIP() << skip_reason_;
  auto want = be->compile(g, {});
  auto got = be->compile(g, {.precision = Precision::bf16});
  Random rng(23);
  const Tensor input = rounded_to_bf16(random_tensor(g.inputs[0].shape, rng));
  for (auto* p : {want.get(), got.get()}) {
    for (const auto& init : g.initializers) {
      p->set_parameter(init.name, rounded_to_bf16(init.value));
    }
    p->set_input(g.inputs[0].name, input);
    p->forward(Mode::inference);
  }
  expect_close(GetParam(), "inference output", got->fetch(g.outputs[0]), want->fetch(g.outputs[0]),
               kSmoothTolerance);
  if (GetParam() == "onednn") {
    for (const auto& c : got->layer_choices()) {
      std::printf("    [%s] %-16s %-8s %-5s %s\n", GetParam().c_str(), c.node.c_str(), c.op.c_str(),
                  c.dtype.c_str(), c.implementation.c_str());
      // The max pool reads the bf16 output of the second convolution.
      if (c.op == "MaxPool") {
        EXPECT_EQ(c.dtype, "bf16") << c.why;
      }
    }
  }
}

// A built-in model with a binary cross-entropy loss on the logits (the input of its sigmoid).
Graph for_training(const std::string& model, std::int64_t batch, const Shape& input) {
  Graph g = with_batch(build_model(model, {.input = input, .seed = 3}), batch);
  const std::string logits = g.producer(g.outputs.at(0))->input(0);
  g.inputs.push_back({"labels", DType::f32, g.value(logits).shape});
  g.nodes.push_back({"loss", "BinaryCrossEntropyWithLogits", {logits, "labels"}, {"loss"}, {}});
  g.validate();
  return g;
}

// A few Adam steps on fixed data in f32 and in bf16: each step's loss within 2% of the f32 one.
// bf16 changes each step's gradients by the amounts above (a few percent through ReLU masks);
// Adam normalises each update by its gradient's running scale, so early on the updates, and the
// losses they lead to, differ by less than the gradients do. Measured here over 6 steps: at most
// 0.3% for the baseline (loss 0.70 -> 0.44) and 1.4% for the improved CNN (0.86 -> 0.21; 0.5%
// with f32 activations between its bf16 layers, the batch norms' share: see
// kBatchNormTolerance).
void expect_training_tracks_fp32(const std::string& backend_name, const std::string& model,
                                 const Graph& g, const Shape& input, std::int64_t batch,
                                 double learning_rate) {
  auto be = make_backend(backend_name);
  CompileOptions f32{.training = true, .loss = "loss", .seed = 5};
  CompileOptions bf16 = f32;
  bf16.precision = Precision::bf16;
  for (const auto& node : g.nodes) {
    const Support s = be->supports(g, node, bf16);
    if (!s.ok) GTEST_SKIP() << backend_name << " runs no bf16 here: " << s.reason;
  }
  Random rng(21);
  Shape image = input;
  image.insert(image.begin(), batch);
  const Tensor images = random_tensor(image, rng, 0.0, 1.0);
  // Labels a function of the image (its mean brightness against the batch median), so there is
  // something to fit.
  Tensor labels(DType::f32, {batch, 1});
  const std::int64_t per_image = element_count(input);
  std::vector<double> means(static_cast<std::size_t>(batch));
  for (std::int64_t i = 0; i < batch; ++i) {
    double sum = 0.0;
    for (std::int64_t k = 0; k < per_image; ++k) sum += images.value(i * per_image + k);
    means[static_cast<std::size_t>(i)] = sum / static_cast<double>(per_image);
  }
  std::vector<double> sorted = means;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  for (std::int64_t i = 0; i < batch; ++i) {
    labels.data<float>()[i] = means[static_cast<std::size_t>(i)] >= median ? 1.f : 0.f;
  }
  const OptimizerSpec adam{.kind = OptimizerSpec::Kind::adam, .learning_rate = learning_rate};
  auto run = [&](const CompileOptions& options) {
    auto p = be->compile(g, options);
    p->set_input("image", images);
    p->set_input("labels", labels);
    std::vector<double> losses;
    for (int step = 0; step < 6; ++step) {
      p->forward(Mode::training);
      losses.push_back(p->fetch("loss").value(0));
      p->backward();
      p->update(adam);
    }
    return losses;
  };
  const std::vector<double> want = run(f32);
  const std::vector<double> got = run(bf16);
  for (std::size_t step = 0; step < want.size(); ++step) {
    const double e = std::abs(got[step] - want[step]) / want[step];
    std::printf("    [%s] %s step %zu: loss f32 %.6f bf16 %.6f (relative %.2e, tolerance %.0e)\n",
                backend_name.c_str(), model.c_str(), step, want[step], got[step], e,
                kLossTolerance);
    EXPECT_LE(e, kLossTolerance) << model << " step " << step;
  }
  // Both learn: the loss falls by more than 10% over the six steps.
  EXPECT_LT(want.back(), 0.9 * want.front()) << model << " f32";
  EXPECT_LT(got.back(), 0.9 * got.front()) << model << " bf16";
}

TEST_P(MixedPrecision, BaselineTrainingTracksFp32) {
  std::string why;
  if (!make_backend(GetParam())->available(&why)) GTEST_SKIP() << GetParam() << ": " << why;
  expect_training_tracks_fp32(GetParam(), "baseline", for_training("baseline", 8, {3, 100, 100}),
                              {3, 100, 100}, 8, 1e-4);
}

TEST_P(MixedPrecision, ImprovedTrainingTracksFp32) {
  std::string why;
  if (!make_backend(GetParam())->available(&why)) GTEST_SKIP() << GetParam() << ": " << why;
  expect_training_tracks_fp32(GetParam(), "improved", for_training("improved", 8, {3, 48, 48}),
                              {3, 48, 48}, 8, 1e-3);
}

// The transfer head on feature vectors (Dense 256 + ReLU + Dropout + Dense 1), as
// trainers/transfer.cpp trains it on a cached backbone's features.
TEST_P(MixedPrecision, TransferHeadTrainingTracksFp32) {
  std::string why;
  if (!make_backend(GetParam())->available(&why)) GTEST_SKIP() << GetParam() << ": " << why;
  Builder b("head", 3);
  auto x = b.input("image", {32, 1152});
  b.output(b.sigmoid(b.dense(b.dropout(b.relu(b.dense(x, 256)), 0.5), 1)));
  Graph g = b.build();
  const std::string logits = g.producer(g.outputs.at(0))->input(0);
  g.inputs.push_back({"labels", DType::f32, g.value(logits).shape});
  g.nodes.push_back({"loss", "BinaryCrossEntropyWithLogits", {logits, "labels"}, {"loss"}, {}});
  g.validate();
  expect_training_tracks_fp32(GetParam(), "head", g, {1152}, 32, 1e-3);
}

// Precision::automatic: every Conv and Dense reports its dtype and why; on a CPU with native bf16
// a convolution's why names both measured times, elsewhere it says why bf16 was not tried; dense
// layers of a training Program stay f32 (program.cpp, compute_type). The results are
// those of some mix of the two precisions: within the bf16 tolerance of f32. Precision::f32
// reports fp32 everywhere and stays exact against a plain f32 compile.
TEST_P(MixedPrecision, AutoChoosesPerLayerAndSaysWhy) {
  const Graph g = two_conv_two_dense(true);
  auto be = make_backend(GetParam());
  std::string why;
  if (!be->available(&why)) GTEST_SKIP() << GetParam() << ": " << why;
  CompileOptions f32{.training = true, .loss = "unused_loss"};
  CompileOptions automatic = f32;
  automatic.precision = Precision::automatic;
  auto want = be->compile(g, f32);
  auto got = be->compile(g, automatic);
  const auto choices = got->layer_choices();
  if (GetParam() == "onednn") {
    int heavy = 0;
    for (const auto& node : g.nodes) heavy += node.op == "Conv" || node.op == "Dense";
    int reported = 0;
    for (const auto& c : choices) {
      std::printf("    [%s] %-10s %-6s %-5s %-34s %s\n", GetParam().c_str(), c.node.c_str(),
                  c.op.c_str(), c.dtype.c_str(), c.implementation.c_str(), c.why.c_str());
      if (c.op != "Conv" && c.op != "Dense") continue;
      ++reported;
      EXPECT_TRUE(c.dtype == "fp32" || c.dtype == "bf16") << c.node;
      EXPECT_FALSE(c.implementation.empty()) << c.node;
      // Convolutions are measured; dense layers of a training Program stay f32 under auto.
      if (c.op == "Conv") {
        EXPECT_TRUE(c.why.find("measured: fp32") != std::string::npos ||
                    c.why.find("no native bf16") != std::string::npos)
            << c.node << ": " << c.why;
      } else {
        EXPECT_EQ(c.dtype, "fp32") << c.node << ": " << c.why;
      }
    }
    EXPECT_EQ(reported, heavy);
    for (const auto& c : want->layer_choices()) {
      if (c.op == "Conv" || c.op == "Dense") {
        EXPECT_EQ(c.dtype, "fp32") << c.node;
      }
    }
  }
  Random rng(4);
  const Tensor input = random_tensor(g.inputs[0].shape, rng);
  auto exact = be->compile(g, {.training = true, .loss = "unused_loss"});
  for (auto* p : {want.get(), got.get(), exact.get()}) {
    p->set_input("x", input);
    p->set_input("unused_loss", Tensor(DType::f32, {}));
    p->forward(Mode::inference);
  }
  expect_close(GetParam(), "auto vs f32 forward", got->fetch(g.outputs[0]),
               want->fetch(g.outputs[0]), kSmoothTolerance);
  const Tensor a = want->fetch(g.outputs[0]), b = exact->fetch(g.outputs[0]);
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.byte_size()), 0) << "fp32 is not deterministic";
}

INSTANTIATE_TEST_SUITE_P(AllBackends, MixedPrecision, ::testing::ValuesIn(backends_under_test()),
                         [](const auto& param_info) { return param_info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(MixedPrecision);

}  // namespace
}  // namespace onnxforge::testing
