// Parity of the GPU and the CPU backend (issue 9): the baseline CNN (3x100x100), trained one epoch
// from the same initial weights on the same batches with the baseline's optimizer (Adam, lr 1e-3,
// batch 32), ends with the same weights on oneDNN and on cuDNN.
//
// "The same" is within 1e-3 relative, measured per parameter tensor in the L2 norm:
// ||w_cudnn - w_onednn|| / ||w_onednn||. Not element-wise: Adam divides each gradient by its own
// running RMS, so an element whose gradient is zero up to rounding moves by +-lr on either backend
// depending on the sign of that rounding noise; such elements are rare and carry little norm, but
// a max-element measure would report them as 100% errors. The worst element is printed anyway.
//
// One epoch: 8 batches of 32 random images with random 0/1 labels (256 images), fixed by a seed.
// Skipped, with one line, without a GPU or without both backends in this build.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "backends/backend.hpp"
#include "graph/models.hpp"
#include "graph/ops.hpp"
#include "tests/support/op_cases.hpp"

namespace onnxforge::testing {
namespace {

bool has_backend(const std::string& name) {
  const auto names = backend_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

// The baseline with its sigmoid's input trained by binary cross-entropy, as `onnxforge train` does.
Graph baseline_training_graph(std::int64_t batch) {
  Graph g = with_batch(build_model("baseline", {.seed = 42}), batch);
  const Node* sigmoid = g.producer(g.outputs[0]);
  const std::string logits = sigmoid->inputs[0];
  g.inputs.push_back({"labels", DType::f32, g.value(logits).shape});
  g.nodes.push_back({"loss", "BinaryCrossEntropyWithLogits", {logits, "labels"}, {"loss"}, {}});
  g.validate();
  return g;
}

TEST(CudnnParity, BaselineOneEpochMatchesOnednn) {
  if (!has_backend("cudnn") || !has_backend("onednn")) {
    GTEST_SKIP() << "this build lacks the cudnn or the onednn backend";
  }
  auto gpu = make_backend("cudnn");
  std::string why;
  if (!gpu->available(&why)) GTEST_SKIP() << "cudnn is not available here: " << why;

  constexpr std::int64_t kBatch = 32;
  constexpr int kBatches = 8;
  const Graph g = baseline_training_graph(kBatch);
  const CompileOptions options{.training = true, .loss = "loss", .seed = 42};
  auto cpu_program = make_backend("onednn")->compile(g, options);
  auto gpu_program = gpu->compile(g, options);
  const OptimizerSpec adam{.kind = OptimizerSpec::Kind::adam, .learning_rate = 1e-3};
  Random rng(2024);
  double cpu_loss = 0, gpu_loss = 0;
  for (int step = 0; step < kBatches; ++step) {
    const Tensor images = random_tensor({kBatch, 3, 100, 100}, rng, 0.0, 1.0);
    Tensor labels(DType::f32, {kBatch, 1});
    for (auto& v : labels.data<float>()) v = rng.uniform() < 0.5 ? 0.f : 1.f;
    for (auto* p : {cpu_program.get(), gpu_program.get()}) {
      p->set_input("image", images);
      p->set_input("labels", labels);
      p->forward(Mode::training);
      p->backward();
      p->update(adam);
    }
    cpu_loss = cpu_program->fetch("loss").value(0);
    gpu_loss = gpu_program->fetch("loss").value(0);
    std::printf("    step %d: loss onednn %.7f cudnn %.7f\n", step, cpu_loss, gpu_loss);
  }
  EXPECT_NEAR(gpu_loss, cpu_loss, 1e-3 * std::max(1.0, std::abs(cpu_loss)));
  for (const auto& init : g.initializers) {
    const Tensor want = cpu_program->parameter(init.name);
    const Tensor got = gpu_program->parameter(init.name);
    ASSERT_EQ(got.shape(), want.shape()) << init.name;
    double diff = 0, norm = 0, worst = 0;
    for (std::int64_t i = 0; i < want.size(); ++i) {
      const double d = got.value(i) - want.value(i);
      diff += d * d;
      norm += want.value(i) * want.value(i);
      worst = std::max(worst, std::abs(d));
    }
    const double relative = std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
    std::printf("    %-20s relative L2 difference %.2e (worst element %.2e)\n", init.name.c_str(),
                relative, worst);
    EXPECT_LE(relative, 1e-3) << init.name;
  }
}

}  // namespace
}  // namespace onnxforge::testing
