// The oneDNN backend's memory plan (OnednnProgram::plan_memory): activations, their gradients and
// temporaries share one arena wherever their live ranges (by the steps that touch them, in a run
// of the inference plan or of training then backward) do not overlap. These tests show that the
// sharing happens, that results stay those of the reference backend over runs that interleave the
// plans (inference between training steps, as validation does), and that what backward consumed
// is not silently reused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>

#include "backends/backend.hpp"
#include "backends/onednn/onednn_backend.hpp"
#include "backends/onednn/program.hpp"
#include "core/error.hpp"
#include "graph/builder.hpp"
#include "tests/support/op_cases.hpp"

namespace onnxforge::onednn {
namespace {

using onnxforge::Random;
using testing::random_tensor;

// VGG-like: two blocks of two 3x3 convolutions + ReLU and a max pool, then Dense 8 ReLU, Dense 1,
// binary cross-entropy on the logits.
Graph small_vgg(std::int64_t batch) {
  Builder b("plan", 5);
  auto x = b.input("image", {batch, 3, 40, 40});
  auto h = b.relu(b.conv2d(x, {.filters = 16, .kernel = {3, 3}}));
  h = b.max_pool(b.relu(b.conv2d(h, {.filters = 16, .kernel = {3, 3}})));
  h = b.relu(b.conv2d(h, {.filters = 32, .kernel = {3, 3}}));
  h = b.max_pool(b.relu(b.conv2d(h, {.filters = 32, .kernel = {3, 3}})));
  auto logits = b.dense(b.relu(b.dense(b.flatten(h), 8)), 1);
  b.output(logits);
  Graph g = b.build();
  g.inputs.push_back({"labels", DType::f32, g.value(logits).shape});
  g.nodes.push_back({"loss", "BinaryCrossEntropyWithLogits", {logits, "labels"}, {"loss"}, {}});
  g.validate();
  return g;
}

const OnednnProgram& onednn_program(const Program& p) {
  const auto* o = dynamic_cast<const OnednnProgram*>(&p);
  if (!o) throw std::logic_error("not a oneDNN program");
  return *o;
}

TEST(OnednnMemoryPlan, TrainingSharesBytesAndMatchesTheReferenceOverInterleavedRuns) {
  const Graph g = small_vgg(8);
  const CompileOptions options{.training = true, .loss = "loss", .threads = 2};
  auto onednn = make_backend("onednn")->compile(g, options);
  auto reference = make_backend("reference")->compile(g, options);
  const MemoryPlan& plan = onednn_program(*onednn).memory_plan();
  std::printf("    planned %zu bytes in a %zu-byte arena, %zu pinned\n", plan.planned, plan.arena,
              plan.pinned);
  // Activations die during backward and their gradients take their place.
  EXPECT_LT(plan.arena, plan.planned * 3 / 4);

  const OptimizerSpec adam{.kind = OptimizerSpec::Kind::adam, .learning_rate = 1e-3};
  Random rng(11);
  for (int step = 0; step < 3; ++step) {
    const Tensor image = random_tensor({8, 3, 40, 40}, rng, 0.0, 1.0);
    Tensor labels(DType::f32, {8, 1});
    for (std::int64_t i = 0; i < 8; ++i) labels.data<float>()[i] = static_cast<float>(i % 2);
    const Tensor other = random_tensor({8, 3, 40, 40}, rng, 0.0, 1.0);
    for (auto* p : {onednn.get(), reference.get()}) {
      // An inference forward on other images first, as a validation pass between steps.
      p->set_input("image", other);
      p->set_input("labels", labels);
      p->forward(Mode::inference);
      p->set_input("image", image);
      p->forward(Mode::training);
      p->backward();
    }
    SCOPED_TRACE("step " + std::to_string(step));
    EXPECT_LT(testing::relative_l2(onednn->fetch("loss"), reference->fetch("loss")), 1e-4);
    EXPECT_LT(testing::relative_l2(onednn->fetch(g.outputs[0]), reference->fetch(g.outputs[0])),
              1e-4);
    for (const auto& init : g.initializers) {
      EXPECT_LT(testing::relative_l2(onednn->gradient(init.name), reference->gradient(init.name)),
                1e-3)
          << init.name;
    }
    onednn->update(adam);
    reference->update(adam);
    // The inference plan on the training images after the update.
    for (auto* p : {onednn.get(), reference.get()}) p->forward(Mode::inference);
    EXPECT_LT(testing::relative_l2(onednn->fetch(g.outputs[0]), reference->fetch(g.outputs[0])),
              1e-4);
  }
}

TEST(OnednnMemoryPlan, InferenceReusesActivationBuffers) {
  const Graph g = small_vgg(16);
  const CompileOptions options{.threads = 2};
  auto onednn = make_backend("onednn")->compile(g, options);
  auto reference = make_backend("reference")->compile(g, options);
  const MemoryPlan& plan = onednn_program(*onednn).memory_plan();
  std::printf("    planned %zu bytes in a %zu-byte arena\n", plan.planned, plan.arena);
  // A chain: each activation lives from its producer to its consumer, so at most two (the
  // largest neighbours, here the first two convolutions' outputs, 2/3 of all) are live at once.
  EXPECT_LT(plan.arena * 10, plan.planned * 7);
  Random rng(3);
  for (int run = 0; run < 2; ++run) {
    const Tensor image = random_tensor({16, 3, 40, 40}, rng, 0.0, 1.0);
    for (auto* p : {onednn.get(), reference.get()}) {
      p->set_input("image", image);
      p->forward(Mode::inference);
    }
    EXPECT_LT(testing::relative_l2(onednn->fetch(g.outputs[0]), reference->fetch(g.outputs[0])),
              1e-4);
  }
}

TEST(OnednnMemoryPlan, ASecondBackwardNeedsANewForward) {
  const Graph g = small_vgg(4);
  auto p = make_backend("onednn")->compile(g, {.training = true, .loss = "loss", .threads = 2});
  Random rng(5);
  p->set_input("image", random_tensor({4, 3, 40, 40}, rng, 0.0, 1.0));
  p->set_input("labels", Tensor(DType::f32, {4, 1}));
  p->forward(Mode::training);
  p->backward();
  const Tensor first = p->gradient(g.initializers[0].name);
  try {
    p->backward();
    FAIL() << "a second backward after one forward must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("new forward"), std::string::npos) << e.what();
  }
  p->forward(Mode::training);
  p->backward();
  EXPECT_EQ(testing::relative_l2(p->gradient(g.initializers[0].name), first), 0.0);
}

// In bf16 a convolution whose output the next convolution reads in bf16 keeps only that bf16
// copy for backward (its ReLU mask comes from it): the arena is smaller than in f32.
TEST(OnednnMemoryPlan, Bf16KeepsOneCopyOfEachActivation) {
  const Graph g = small_vgg(16);
  auto be = make_backend("onednn");
  CompileOptions f32{.training = true, .loss = "loss", .threads = 2};
  CompileOptions bf16 = f32;
  bf16.precision = Precision::bf16;
  for (const auto& node : g.nodes) {
    const Support s = be->supports(g, node, bf16);
    if (!s.ok) GTEST_SKIP() << "no bf16 here: " << s.reason;
  }
  auto a = be->compile(g, f32);
  auto b = be->compile(g, bf16);
  const std::size_t arena_f32 = onednn_program(*a).memory_plan().arena;
  const std::size_t arena_bf16 = onednn_program(*b).memory_plan().arena;
  std::printf("    arena f32 %zu bytes, bf16 %zu bytes\n", arena_f32, arena_bf16);
  EXPECT_LT(arena_bf16, arena_f32);
}

// Guard bytes (ONNXFORGE_GUARD_BYTES=1, a debug option): every planned buffer sits between guard
// pages checked after each step. A clean model trains and infers exactly as without them; one
// byte written past a buffer fails the next step, naming it.
TEST(OnednnGuardBytes, CleanRunsMatchAndAnOverrunFailsNamingTheStep) {
  const Graph g = small_vgg(4);
  const CompileOptions options{.training = true, .loss = "loss", .threads = 2};
  Random rng(17);
  const Tensor image = random_tensor(g.value("image").shape, rng);
  const Tensor labels = random_tensor(g.value("labels").shape, rng, 0.0, 1.0);
  auto run = [&](Program& p) {
    p.set_input("image", image);
    p.set_input("labels", labels);
    p.forward(Mode::training);
    const double loss = p.fetch("loss").value(0);
    p.backward();
    p.update({.kind = OptimizerSpec::Kind::adam, .learning_rate = 0.01});
    p.forward(Mode::training);
    return std::pair{loss, p.fetch("loss").value(0)};
  };
  auto plain = make_backend("onednn")->compile(g, options);
  const auto want = run(*plain);
  ::setenv("ONNXFORGE_GUARD_BYTES", "1", 1);
  auto guarded = make_backend("onednn")->compile(g, options);
  ::unsetenv("ONNXFORGE_GUARD_BYTES");
  const auto got = run(*guarded);
  EXPECT_EQ(got, want);
  ASSERT_TRUE(damage_guard_bytes(*guarded)) << "no buffer is guarded";
  EXPECT_FALSE(damage_guard_bytes(*plain));
  try {
    guarded->forward(Mode::inference);
    ADD_FAILURE() << "an overrun went unnoticed";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("of the inference plan wrote past a buffer of"), std::string::npos)
        << message;
  }
}

}  // namespace
}  // namespace onnxforge::onednn
