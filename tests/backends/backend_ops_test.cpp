// The op harness (DESIGN.md): every op of the catalogue (op_cases.cpp) on every backend of this
// build, in each precision (fp32, bf16), forward and backward, compared with the reference
// backend's f32 result. Instances are named backend_precision_case: onednn_bf16_Conv_basic_3x3.
//
// Error measure: max_i |got_i - want_i| / max(max_i |want_i|, 1e-6), i.e. the worst element error
// relative to the tensor's scale (per-element relative errors are meaningless next to zeros).
// fp32 tolerances per case (OpCase: by default forward 1e-5, gradients 1e-4). The worst element of
// every comparison is printed.
//
// bf16 instances compile the case with CompileOptions::precision = bf16 and feed bf16 values
// (inputs, parameters and backward seeds rounded to bf16, the reference fed the same), so that
// what is measured is the backend's bf16 computation (f32 accumulation, bf16 intermediates), not
// the rounding of the data. What the backend must do comes from its op table
// (Backend::coverage): where a node's op has bf16, the case is held to its bf16 tolerances
// (OpCase::bf16_*) and every such node the Program reports in layer_choices() says bf16; where no
// node has, the case must run exactly as in f32 (the f32 tolerances, every reported layer fp32)
// or be refused by supports() and compile(). A refusal under bf16 alone of an op whose table
// entry has bf16 is this machine's (e.g. oneDNN 2.6 runs no bf16 below AVX512_CORE): a skip
// naming the reason.
//
// Guards: every fetched tensor must have exactly the graph's shape and byte size; parameters and
// inputs must be bit-identical after forward and backward (a kernel writing out of bounds or
// into its inputs shows up there); running statistics must match the reference.
//
// A backend whose available() is false is skipped with one line; a case the backend's supports()
// rejects must fail compile() with an Error naming the node (never a silent fallback).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <ostream>
#include <set>
#include <string>

#include "backends/backend.hpp"
#include "core/error.hpp"
#include "graph/ops.hpp"
#include "tests/support/op_cases.hpp"

namespace onnxforge {
// The harness's precision parameter as GoogleTest prints it ("bf16", not its bytes).
void PrintTo(Precision precision, std::ostream* os) { *os << to_string(precision); }
}  // namespace onnxforge

namespace onnxforge::testing {
namespace {

// Beyond single ops (the behaviour tests below); each op case carries its own tolerances.
constexpr double kForwardTolerance = 1e-5;
constexpr double kGradientTolerance = 1e-4;

std::vector<std::string> backends_under_test() {
  std::vector<std::string> names;
  for (const auto& name : backend_names()) {
    if (name != "reference") names.push_back(name);
  }
  return names;
}

struct Comparison {
  double error = 0.0;
  std::int64_t worst = -1;
  double got = 0.0, want = 0.0;
};

Comparison compare(const Tensor& got, const Tensor& want) {
  Comparison c;
  double scale = 1e-6;
  for (std::int64_t i = 0; i < want.size(); ++i) scale = std::max(scale, std::abs(want.value(i)));
  for (std::int64_t i = 0; i < want.size(); ++i) {
    const double e = std::abs(got.value(i) - want.value(i)) / scale;
    if (!(e <= c.error)) {  // also catches NaN
      c.error = std::isnan(e) ? INFINITY : e;
      c.worst = i;
      c.got = got.value(i);
      c.want = want.value(i);
    }
  }
  return c;
}

// Exact shape, dtype and byte size of a fetched tensor.
void expect_exact_size(const std::string& what, const Tensor& t, const Shape& shape, DType dtype) {
  EXPECT_EQ(t.shape(), shape) << what;
  EXPECT_EQ(t.dtype(), dtype) << what;
  EXPECT_EQ(t.byte_size(), static_cast<std::size_t>(element_count(shape)) * size_of(dtype)) << what;
}

void expect_close(const std::string& backend, const std::string& what, const Tensor& got,
                  const Tensor& want, double tolerance) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const Comparison c = compare(got, want);
  std::printf("    [%s] %-52s max rel err %.2e at %lld (got %.8g, want %.8g)\n", backend.c_str(),
              what.c_str(), c.error, static_cast<long long>(c.worst), c.got, c.want);
  EXPECT_LE(c.error, tolerance) << what << ": worst element " << c.worst << " got " << c.got
                                << " want " << c.want;
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.byte_size() == b.byte_size() &&
         std::equal(a.raw(), a.raw() + a.byte_size(), b.raw());
}

// The graph of a case, made trainable: a loss case keeps its loss; any other gets an unused scalar
// input as the loss, and backward is seeded on its outputs.
struct Prepared {
  Graph graph;
  CompileOptions options;
  bool loss_case = false;
};

Prepared prepare(const OpCase& c) {
  Prepared p;
  p.graph = c.graph;
  const std::string& out = c.graph.outputs.at(0);
  const Node* producer = c.graph.producer(out);
  p.loss_case = producer && is_loss_op(producer->op);
  p.options.training = true;
  p.options.input_gradients = true;
  if (p.loss_case) {
    p.options.loss = out;
  } else {
    p.graph.inputs.push_back({"harness_loss", DType::f32, {}});
    p.graph.validate();
    p.options.loss = "harness_loss";
  }
  return p;
}

// The gradients compared: trainable parameters and floating inputs other than labels.
std::vector<std::string> gradient_targets(const Graph& g) {
  std::vector<std::string> targets;
  for (const auto& in : g.inputs) {
    if (in.dtype == DType::f32 && in.name != "labels" && in.name != "harness_loss") {
      targets.push_back(in.name);
    }
  }
  for (const auto& init : g.initializers) {
    if (init.trainable) targets.push_back(init.name);
  }
  return targets;
}

bool is_running_statistic(const std::string& name) {
  return name.ends_with("moving_mean") || name.ends_with("moving_variance");
}

// Under Precision::bf16, the layers a Program reports compute in bf16 where the op table says so
// (`bf16_nodes`), and in fp32 everywhere when it says so for no node of the graph. (A layer
// without bf16 of its own next to bf16 ones may keep a bf16 input in bf16 storage.)
void expect_choices_follow_coverage(const std::string& label, const std::string& what,
                                    const Program& program,
                                    const std::set<std::string>& bf16_nodes) {
  for (const auto& choice : program.layer_choices()) {
    if (bf16_nodes.count(choice.node)) {
      EXPECT_EQ(choice.dtype, "bf16")
          << label << " " << what << ": " << choice.op << " node '" << choice.node
          << "' has bf16 in the op table but ran " << choice.dtype << " (" << choice.why << ")";
    } else if (bf16_nodes.empty()) {
      EXPECT_EQ(choice.dtype, "fp32") << label << " " << what << ": no op of the case has bf16 "
                                      << "in the op table, but " << choice.op << " node '"
                                      << choice.node << "' ran " << choice.dtype;
    }
  }
}

// An instance of the harness: a backend, the precision its Programs are compiled with, a case.
using HarnessParam = std::tuple<std::string, Precision, std::size_t>;

class OpHarness : public ::testing::TestWithParam<HarnessParam> {};

TEST_P(OpHarness, MatchesReference) {
  const auto& [backend_name, precision, index] = GetParam();
  const OpCase& c = op_cases().at(index);
  auto backend = make_backend(backend_name);
  std::string why;
  if (!backend->available(&why)) GTEST_SKIP() << backend_name << " is not available here: " << why;

  Prepared p = prepare(c);
  const bool bf16 = precision == Precision::bf16;
  p.options.precision = precision;
  const std::string label = bf16 ? backend_name + " bf16" : backend_name;
  CompileOptions f32 = p.options;  // the reference's, whatever the instance's precision
  f32.precision = Precision::f32;
  for (const auto& node : p.graph.nodes) {
    const Support s = backend->supports(p.graph, node, p.options);
    if (!s.ok) {
      try {
        backend->compile(p.graph, p.options);
        ADD_FAILURE() << "supports() rejects node '" << node.name << "' but compile() accepted it";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(node.name), std::string::npos)
            << "the compile error must name the node: " << e.what();
      }
      if (bf16 && backend->supports(p.graph, node, f32).ok) {
        // Refused under bf16 only.
        if (backend->coverage(op_of(node)).bf16) {
          GTEST_SKIP() << backend_name << " computes " << node.op
                       << " in bf16 (its op table) but not on this machine (node '" << node.name
                       << "': " << s.reason << ")";
        }
        // The op table has no bf16 for the op, and the backend refuses it under bf16: what the
        // table allows, checked above (compile() fails naming the node).
        std::printf(
            "    [%s] refuses %s under bf16 (no bf16 in its op table), naming node '%s': "
            "%s\n",
            label.c_str(), node.op.c_str(), node.name.c_str(), s.reason.c_str());
        return;
      }
      GTEST_SKIP() << backend_name << " does not run " << c.name << " (node '" << node.name
                   << "': " << s.reason << "); compile() fails naming the node, as it must";
    }
  }

  // The nodes the op table says compute in bf16; with none, the case runs as in f32.
  std::set<std::string> bf16_nodes;
  if (bf16) {
    for (const auto& node : p.graph.nodes) {
      if (backend->coverage(op_of(node)).bf16) bf16_nodes.insert(node.name);
    }
    for (auto& init : p.graph.initializers) init.value = rounded_to_bf16(init.value);
  }
  const bool in_bf16 = !bf16_nodes.empty();
  const double forward_tolerance = in_bf16 ? c.bf16_forward_tolerance : c.forward_tolerance;
  const double gradient_tolerance = in_bf16 ? c.bf16_gradient_tolerance : c.gradient_tolerance;

  auto want = make_backend("reference")->compile(p.graph, f32);
  auto got = backend->compile(p.graph, p.options);
  if (bf16) expect_choices_follow_coverage(label, "training Program", *got, bf16_nodes);
  Random rng(hash_name(c.name, 3));
  auto feeds = random_feeds(p.graph, rng);
  if (bf16) {
    for (auto& [name, t] : feeds) {
      if (t.dtype() == DType::f32) t = rounded_to_bf16(t);
    }
  }
  if (!p.loss_case) feeds["harness_loss"] = Tensor(DType::f32, {});
  for (const auto& [name, t] : feeds) {
    want->set_input(name, t);
    got->set_input(name, t);
  }
  std::map<std::string, Tensor> initial;
  for (const auto& init : p.graph.initializers) initial[init.name] = got->parameter(init.name);

  // Training-mode forward.
  want->forward(Mode::training);
  got->forward(Mode::training);
  for (const auto& out : p.graph.outputs) {
    const Tensor y = got->fetch(out);
    expect_exact_size(out, y, p.graph.value(out).shape, p.graph.value(out).dtype);
    if (!c.random)
      expect_close(label, "forward(training) " + out, y, want->fetch(out), forward_tolerance);
  }
  for (const auto& init : p.graph.initializers) {
    const Tensor now = got->parameter(init.name);
    if (is_running_statistic(init.name)) {
      expect_close(label, "running statistic " + init.name, now, want->parameter(init.name),
                   forward_tolerance);
    } else {
      EXPECT_TRUE(bit_identical(now, initial[init.name]))
          << "forward changed parameter " << init.name;
    }
  }

  // Backward, seeded on the outputs (random seeds) or on the loss.
  std::map<std::string, Tensor> seeds;
  for (const auto& out : p.graph.outputs) {
    seeds[out] = random_tensor(p.graph.value(out).shape, rng);
    if (bf16) seeds[out] = rounded_to_bf16(seeds[out]);
  }
  want->backward(seeds);
  got->backward(seeds);
  const auto targets = gradient_targets(p.graph);
  for (const auto& target : targets) {
    const Tensor g = got->gradient(target);
    expect_exact_size("d" + target, g, p.graph.value(target).shape, DType::f32);
    if (!c.random) {
      expect_close(label, "gradient " + target, g, want->gradient(target), gradient_tolerance);
    }
  }
  if (p.loss_case) {
    // Each backward consumes its forward (the oneDNN backend's memory plan reuses the forward's
    // buffers during backward).
    want->forward(Mode::training);
    got->forward(Mode::training);
    want->backward();
    got->backward();
    for (const auto& target : targets) {
      expect_close(label, "gradient from the loss " + target, got->gradient(target),
                   want->gradient(target), gradient_tolerance);
    }
  }
  for (const auto& init : p.graph.initializers) {
    if (!init.trainable) {
      EXPECT_THROW(got->gradient(init.name), Error) << "frozen " << init.name << " has a gradient";
    }
    if (!is_running_statistic(init.name)) {
      EXPECT_TRUE(bit_identical(got->parameter(init.name), initial[init.name]))
          << "backward changed parameter " << init.name;
    }
  }
  for (const auto& [name, t] : feeds) {
    if (t.dtype() == DType::f32) {
      EXPECT_TRUE(bit_identical(got->fetch(name), t)) << "input " << name << " was overwritten";
    }
  }

  // Inference-mode forward (dropout off, batch norm on running statistics).
  want->forward(Mode::inference);
  got->forward(Mode::inference);
  for (const auto& out : p.graph.outputs) {
    expect_close(label, "forward(inference) " + out, got->fetch(out), want->fetch(out),
                 forward_tolerance);
  }

  // The same in a Program compiled for inference only, which a backend may lower differently
  // (oneDNN: a Flatten folded into its dense layer, dense layers as matmul, activation buffers
  // shared), with the reference's parameters (running statistics included).
  CompileOptions inference_only = p.options;
  inference_only.training = false;
  inference_only.loss.clear();
  auto only = backend->compile(p.graph, inference_only);
  if (bf16) expect_choices_follow_coverage(label, "inference-only Program", *only, bf16_nodes);
  for (const auto& [name, t] : feeds) only->set_input(name, t);
  for (const auto& init : p.graph.initializers) {
    only->set_parameter(init.name, want->parameter(init.name));
  }
  only->forward(Mode::inference);
  for (const auto& out : p.graph.outputs) {
    expect_close(label, "inference-only Program " + out, only->fetch(out), want->fetch(out),
                 forward_tolerance);
  }
}

std::string case_name(const ::testing::TestParamInfo<OpHarness::ParamType>& param_info) {
  const auto& [backend_name, precision, index] = param_info.param;
  std::string name = backend_name + "_" + to_string(precision) + "_" + op_cases().at(index).name;
  for (auto& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

std::vector<std::size_t> case_indices() {
  std::vector<std::size_t> all(op_cases().size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  return all;
}

INSTANTIATE_TEST_SUITE_P(AllOps, OpHarness,
                         ::testing::Combine(::testing::ValuesIn(backends_under_test()),
                                            ::testing::Values(Precision::f32, Precision::bf16),
                                            ::testing::ValuesIn(case_indices())),
                         case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OpHarness);

// ---- behaviour beyond single ops
// -----------------------------------------------------------------

class BackendBehaviour : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Backend> backend() {
    auto b = make_backend(GetParam());
    std::string why;
    if (!b->available(&why)) available_ = why;
    return b;
  }
  std::optional<std::string> available_;
};

#define SKIP_IF_UNAVAILABLE()                                                \
  if (available_) {                                                          \
    GTEST_SKIP() << GetParam() << " is not available here: " << *available_; \
  }

// A small trainable model: dense relu dense + BCE, a frozen-bias variant inside.
Graph small_model() {
  Builder b("small", 5);
  auto x = b.input("x", {6, 10});
  auto labels = b.input("labels", {6, 1});
  auto h = b.relu(b.dense(x, 12));
  auto logits = b.dense(h, 1);
  b.output(b.node("BinaryCrossEntropyWithLogits", {logits, labels}, {}, "loss"));
  Graph g = b.build();
  Random rng(9);
  for (auto& init : g.initializers) init.value = random_tensor(init.value.shape(), rng, -0.5, 0.5);
  return g;
}

TEST_P(BackendBehaviour, OptimizersMatchReference) {
  auto be = backend();
  SKIP_IF_UNAVAILABLE();
  const Graph g = small_model();
  const CompileOptions o{.training = true, .loss = "loss"};
  std::vector<std::pair<std::string, OptimizerSpec>> specs = {
      {"sgd_momentum", {.kind = OptimizerSpec::Kind::sgd, .learning_rate = 0.1, .momentum = 0.9}},
      {"sgd_nesterov_l2",
       {.kind = OptimizerSpec::Kind::sgd,
        .learning_rate = 0.05,
        .momentum = 0.8,
        .nesterov = true,
        .weight_decay = 0.01}},
      {"adam", {.kind = OptimizerSpec::Kind::adam, .learning_rate = 0.01}},
      {"adamw", {.kind = OptimizerSpec::Kind::adamw, .learning_rate = 0.01, .weight_decay = 0.1}},
  };
  for (const auto& [label, spec] : specs) {
    auto want = make_backend("reference")->compile(g, o);
    auto got = be->compile(g, o);
    Random rng(21);
    const auto feeds = random_feeds(g, rng);
    for (const auto& [name, t] : feeds) {
      want->set_input(name, t);
      got->set_input(name, t);
    }
    for (int step = 0; step < 3; ++step) {
      for (auto* p : {want.get(), got.get()}) {
        p->forward(Mode::training);
        p->backward();
        p->update(spec, 0.5);
      }
    }
    for (const auto& init : g.initializers) {
      expect_close(GetParam(), label + " after 3 steps " + init.name, got->parameter(init.name),
                   want->parameter(init.name), kGradientTolerance);
    }
    EXPECT_NEAR(got->gradient_norm(), want->gradient_norm(), 1e-4 * want->gradient_norm());
    const auto state = got->optimizer_state();
    ASSERT_TRUE(state.count("step"));
    EXPECT_EQ(state.at("step").data<std::int64_t>()[0], 3);
    const auto reference_state = want->optimizer_state();
    for (const auto& [key, value] : state) {
      if (key == "step") continue;
      ASSERT_TRUE(reference_state.count(key)) << key;
      expect_close(GetParam(), label + " state " + key, value, reference_state.at(key),
                   kGradientTolerance);
    }
  }
}

TEST_P(BackendBehaviour, SetGradientAndOptimizerStateRoundTrip) {
  auto be = backend();
  SKIP_IF_UNAVAILABLE();
  const Graph g = small_model();
  auto p = be->compile(g, {.training = true, .loss = "loss"});
  Random rng(4);
  for (const auto& [name, t] : random_feeds(g, rng)) p->set_input(name, t);
  p->forward(Mode::training);
  p->backward();
  const std::string w = "dense/kernel";
  const Tensor custom = random_tensor(g.value(w).shape, rng);
  p->set_gradient(w, custom);
  EXPECT_TRUE(bit_identical(p->gradient(w), custom));
  const OptimizerSpec adam{.kind = OptimizerSpec::Kind::adam, .learning_rate = 0.01};
  p->update(adam);
  const auto state = p->optimizer_state();
  auto q = be->compile(g, {.training = true, .loss = "loss"});
  for (const auto& init : g.initializers) q->set_parameter(init.name, p->parameter(init.name));
  q->set_optimizer_state(state);
  for (const auto& [name, t] : random_feeds(g, rng)) {
    p->set_input(name, t);
    q->set_input(name, t);
  }
  for (auto* r : {p.get(), q.get()}) {
    r->forward(Mode::training);
    r->backward();
    r->update(adam);
  }
  for (const auto& init : g.initializers) {
    EXPECT_TRUE(bit_identical(p->parameter(init.name), q->parameter(init.name))) << init.name;
  }
}

// The edge every backend shares (backends/program_base.hpp): the optimizer-state keys of sgd and
// adam, and the checks of set_parameter / set_gradient / gradient / set_optimizer_state, each
// failing with a message that names the backend.
TEST_P(BackendBehaviour, OptimizerStateKeysAndEdgeChecks) {
  auto be = backend();
  SKIP_IF_UNAVAILABLE();
  const Graph g = small_model();
  const std::map<std::string, OptimizerSpec> specs = {
      {"sgd", {.kind = OptimizerSpec::Kind::sgd, .learning_rate = 0.1, .momentum = 0.9}},
      {"adam", {.kind = OptimizerSpec::Kind::adam, .learning_rate = 0.01}},
  };
  for (const auto& [label, spec] : specs) {
    auto p = be->compile(g, {.training = true, .loss = "loss"});
    Random rng(5);
    for (const auto& [name, t] : random_feeds(g, rng)) p->set_input(name, t);
    EXPECT_EQ(p->optimizer_state().size(), 1u) << label << ": only the step before an update";
    p->forward(Mode::training);
    p->backward();
    p->update(spec);
    std::set<std::string> want{"step"};
    for (const auto& init : g.initializers) {
      if (!init.trainable) continue;
      if (spec.kind == OptimizerSpec::Kind::sgd) {
        want.insert(init.name + "/velocity");
      } else {
        want.insert(init.name + "/m");
        want.insert(init.name + "/v");
      }
    }
    std::set<std::string> got;
    for (const auto& [key, value] : p->optimizer_state()) got.insert(key);
    EXPECT_EQ(got, want) << label;
  }

  auto p = be->compile(g, {.training = true, .loss = "loss"});
  const std::string prefix = GetParam() + " backend: ";
  auto message = [](const std::function<void()>& call) -> std::string {
    try {
      call();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  const std::string w = "dense/kernel";
  const Tensor wrong(DType::f32, {3});
  EXPECT_NE(message([&] { p->set_parameter("nope", wrong); }).find(prefix), std::string::npos);
  EXPECT_NE(message([&] { p->set_parameter(w, wrong); }).find(prefix + "parameter '" + w),
            std::string::npos);
  EXPECT_NE(message([&] { p->set_gradient(w, wrong); }).find(prefix + "gradient of '" + w),
            std::string::npos);
  EXPECT_NE(message([&] { (void)p->gradient("nope"); }).find("not a trainable parameter"),
            std::string::npos);
  EXPECT_NE(message([&] { p->set_input("x", wrong); }).find(prefix + "input 'x' expects shape"),
            std::string::npos);
  EXPECT_NE(message([&] {
              p->set_optimizer_state({{w + "/m", wrong}});
            }).find(prefix + "optimizer state '" + w + "/m'"),
            std::string::npos);
  EXPECT_NE(message([&] {
              p->set_optimizer_state({{w + "/x", wrong}});
            }).find(prefix),
            std::string::npos);
  auto inference = be->compile(g, {});
  EXPECT_NE(message([&] { inference->update({}); }).find(prefix + "update needs"),
            std::string::npos);
}

TEST_P(BackendBehaviour, DropoutIsInvertedAndStatistical) {
  auto be = backend();
  SKIP_IF_UNAVAILABLE();
  Builder b("dropout", 1);
  b.output(b.dropout(b.input("x", {8, 1000}), 0.3));
  Graph g = b.build();
  g.inputs.push_back({"unused_loss", DType::f32, {}});
  g.validate();
  auto p = be->compile(g, {.training = true, .loss = "unused_loss", .input_gradients = true});
  Random rng(2);
  const Tensor x = random_tensor({8, 1000}, rng, 0.5, 1.5);
  p->set_input("x", x);
  p->set_input("unused_loss", Tensor(DType::f32, {}));
  const std::string y = g.outputs[0];
  p->forward(Mode::training);
  const Tensor first = p->fetch(y);
  std::int64_t dropped = 0;
  for (std::int64_t i = 0; i < x.size(); ++i) {
    const double v = first.value(i);
    if (v == 0.0) {
      ++dropped;
    } else {
      EXPECT_NEAR(v, x.value(i) / 0.7, 1e-5) << i;
    }
  }
  // 8000 Bernoulli(0.3) draws: standard deviation ~41, so +-200 is ~5 sigma.
  EXPECT_NEAR(static_cast<double>(dropped), 2400.0, 200.0);
  // The gradient uses the same mask: dL/dx = seed * y / x.
  const Tensor seed = random_tensor({8, 1000}, rng);
  p->backward({{y, seed}});
  const Tensor dx = p->gradient("x");
  for (std::int64_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(dx.value(i), seed.value(i) * first.value(i) / x.value(i), 1e-5) << i;
  }
  // Inference: identity.
  p->forward(Mode::inference);
  EXPECT_TRUE(bit_identical(p->fetch(y), x));
}

TEST_P(BackendBehaviour, FrozenParametersStayBitIdentical) {
  auto be = backend();
  SKIP_IF_UNAVAILABLE();
  Builder b("frozen", 3);
  auto x = b.input("x", {4, 3, 8, 8});
  auto labels = b.input("labels", {4, 1});
  auto h = b.relu(b.conv2d(x, {.filters = 8, .kernel = {3, 3}}));
  h = b.relu(b.batch_norm(b.conv2d(h, {.filters = 8, .kernel = {3, 3}})));
  auto logits = b.dense(b.flatten(b.max_pool(h)), 1);
  b.output(b.node("BinaryCrossEntropyWithLogits", {logits, labels}, {}, "loss"));
  Graph g = b.build();
  // Freeze everything but the dense head (the transfer-learning shape).
  for (auto& init : g.initializers) init.trainable = init.name.starts_with("dense");
  auto p = be->compile(g, {.training = true, .loss = "loss"});
  auto want = make_backend("reference")->compile(g, {.training = true, .loss = "loss"});
  Random rng(8);
  for (const auto& [name, t] : random_feeds(g, rng)) {
    p->set_input(name, t);
    want->set_input(name, t);
  }
  std::map<std::string, Tensor> before;
  for (const auto& init : g.initializers) before[init.name] = p->parameter(init.name);
  const OptimizerSpec sgd{.kind = OptimizerSpec::Kind::sgd,
                          .learning_rate = 0.1,
                          .momentum = 0.9,
                          .weight_decay = 0.01};
  for (int step = 0; step < 2; ++step) {
    for (auto* r : {p.get(), want.get()}) {
      r->forward(Mode::training);
      r->backward();
      r->update(sgd);
    }
  }
  for (const auto& init : g.initializers) {
    if (init.trainable) {
      expect_close(GetParam(), "trained head " + init.name, p->parameter(init.name),
                   want->parameter(init.name), kGradientTolerance);
    } else {
      // Frozen batch norm runs in inference mode: even its running statistics stay put.
      EXPECT_TRUE(bit_identical(p->parameter(init.name), before[init.name])) << init.name;
      EXPECT_THROW(p->gradient(init.name), Error) << init.name;
    }
  }
}

TEST_P(BackendBehaviour, ThreadCountDoesNotChangeResults) {
  auto be = backend();
  SKIP_IF_UNAVAILABLE();
  const OpCase& c = op_cases().at(0);
  Random rng(6);
  const auto feeds = random_feeds(c.graph, rng);
  std::vector<Tensor> outputs;
  for (int threads : {1, 0}) {
    auto p = be->compile(c.graph, {.threads = threads});
    for (const auto& [name, t] : feeds) p->set_input(name, t);
    p->forward(Mode::inference);
    outputs.push_back(p->fetch(c.graph.outputs[0]));
  }
  expect_close(GetParam(), "threads=1 vs all cores", outputs[0], outputs[1], kForwardTolerance);
}

TEST_P(BackendBehaviour, UnknownSeedAndFusedFetchFailClearly) {
  auto be = backend();
  SKIP_IF_UNAVAILABLE();
  Builder b("errors", 3);
  auto x = b.input("x", {2, 3, 6, 6});
  auto pre = b.conv2d(x, {.filters = 4, .kernel = {3, 3}});
  b.output(b.relu(pre));
  Graph g = b.build();
  auto p = be->compile(g, {});
  Random rng(1);
  p->set_input("x", random_tensor({2, 3, 6, 6}, rng));
  p->forward(Mode::inference);
  // A fused-away pre-activation is either fetchable (not fused) or an Error naming the fix.
  try {
    const Tensor t = p->fetch(pre);
    EXPECT_EQ(t.shape(), g.value(pre).shape);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("keep"), std::string::npos) << e.what();
  }
  EXPECT_THROW(p->backward(), Error);
  EXPECT_THROW(p->forward(Mode::training), Error);
  // Kept, the pre-activation is fetchable and equals the reference.
  auto kept = be->compile(g, {.keep = {pre}});
  auto want = make_backend("reference")->compile(g, {});
  for (auto* r : {kept.get(), want.get()}) {
    r->set_input("x", random_tensor({2, 3, 6, 6}, rng));
  }
  Random same(1);
  const Tensor input = random_tensor({2, 3, 6, 6}, same);
  kept->set_input("x", input);
  want->set_input("x", input);
  kept->forward(Mode::inference);
  want->forward(Mode::inference);
  expect_close(GetParam(), "kept pre-activation", kept->fetch(pre), want->fetch(pre),
               kForwardTolerance);
}

// bf16 compute: per op in the harness above (its bf16 instances), whole models in
// tests/backends/mixed_precision_test.cpp.

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendBehaviour, ::testing::ValuesIn(backends_under_test()),
                         [](const auto& param_info) { return param_info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BackendBehaviour);

}  // namespace
}  // namespace onnxforge::testing
