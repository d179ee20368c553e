// onnxforge-bench: the oneDNN backend on the real networks (Google Benchmark).
//
// Every network runs in every precision of kPrecisions, named BM_<network>/<precision>:
//
//   BM_BaselineInfer/P           baseline CNN, inference, batch 32                  (images/s)
//   BM_BaselineInfer/batch256/P  the same at batch 256
//   BM_Vgg16Features/P           VGG16 features, 3x100x100, inference, batch 32
//   BM_BaselineTrainStep/P       baseline CNN, forward + backward + Adam, batch 32
//   BM_ImprovedTrainStep/P       improved CNN (batch norm, dropout), the same step
//   BM_Vgg16TrainStep/P          VGG16 features + global average pool + Dense 1, the same step
//   BM_MatmulPeak/fp32|bf16      a 2048^3 oneDNN matmul                             (FLOP/s)
//
// P is fp32 or bf16 (convolutions and dense layers in bf16 with f32 accumulation, f32 master
// weights); a CPU without bf16 in oneDNN 2.6 skips the bf16 variants with the reason. Training
// steps use binary cross-entropy on the logits and random 0/1 labels; Adam, learning rate 1e-4.
//
// Per-layer times: `onnxforge-bench --layers [SUBSTRING]` prints, for every benchmark whose name
// contains SUBSTRING (default: all fp32 networks), every step of the compiled plans (primitive,
// implementation, layouts) with its mean time, then exits.
// Threads: ONNXFORGE_THREADS (default: all cores). Minimum time: --benchmark_min_time when given,
// else a per-network default (longer for the slow networks).
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/backend.hpp"
#include "backends/onednn/onednn_backend.hpp"
#include "core/error.hpp"
#include "graph/builder.hpp"
#include "graph/models.hpp"

namespace onnxforge {
namespace {

int threads() {
  const char* text = std::getenv("ONNXFORGE_THREADS");
  return text ? std::atoi(text) : 0;
}

Tensor random_tensor(const Shape& shape, std::uint64_t seed, double low, double high) {
  Random rng(seed);
  Tensor t(DType::f32, shape);
  for (auto& v : t.data<float>()) v = static_cast<float>(low + (high - low) * rng.uniform());
  return t;
}

// ---- the precisions: one line per variant, named by the benchmark's last component -----------

struct PrecisionVariant {
  const char* name;
  void (*apply)(CompileOptions&);
};
const PrecisionVariant kPrecisions[] = {
    {"fp32", [](CompileOptions& o) { o.precision = onnxforge::Precision::f32; }},
    {"bf16", [](CompileOptions& o) { o.precision = onnxforge::Precision::bf16; }},
    {"auto", [](CompileOptions& o) { o.precision = onnxforge::Precision::automatic; }},
};

// ---- the networks ----------------------------------------------------------------------------

// A binary classifier ending in Dense 1 + Sigmoid (baseline, improved), with a loss on its logits
// (the input of the final sigmoid), as training runs it.
Graph with_loss_on_logits(Graph g) {
  const Node* sigmoid = g.producer(g.outputs.at(0));
  if (!sigmoid || !sigmoid->is(OpId::Sigmoid)) fail("{}: the output is not a Sigmoid", g.name);
  const std::string logits = sigmoid->input(0);
  g.inputs.push_back({"labels", DType::f32, g.value(logits).shape});
  Node loss;
  loss.name = "loss";
  loss.op = std::string(op_name(OpId::BinaryCrossEntropyWithLogits));
  loss.inputs = {logits, "labels"};
  loss.outputs = {"loss"};
  g.nodes.push_back(loss);
  g.validate();
  return g;
}

Graph classifier_for_training(const std::string& model, std::int64_t batch) {
  return with_loss_on_logits(with_batch(build_model(model), batch));
}

// VGG16 features with a small head to have a loss: GlobalAveragePool, Flatten, Dense 1, binary
// cross-entropy on its logits. Every convolution is trainable, so the step is VGG16's full
// forward + backward (the head adds 512 weights).
Graph vgg16_for_training(std::int64_t batch) {
  Graph g = with_batch(build_model("vgg16"), batch);
  const std::string features = g.outputs.at(0);
  const std::int64_t channels = g.value(features).shape.at(1);
  auto add = [&g](OpId op, std::vector<std::string> inputs, const std::string& out,
                  std::map<std::string, Attribute> attributes = {}) {
    Node n;
    n.name = out;
    n.op = std::string(op_name(op));
    n.inputs = std::move(inputs);
    n.outputs = {out};
    n.attributes = std::move(attributes);
    g.nodes.push_back(std::move(n));
  };
  const double limit = std::sqrt(6.0 / static_cast<double>(channels + 1));  // Glorot uniform
  g.initializers.push_back({"head/kernel", random_tensor({1, channels}, 3, -limit, limit), true});
  g.initializers.push_back({"head/bias", Tensor(DType::f32, {1}), true});
  add(OpId::GlobalAveragePool, {features}, "head_pool");
  add(OpId::Flatten, {"head_pool"}, "head_flatten", {{"axis", std::int64_t{1}}});
  add(OpId::Dense, {"head_flatten", "head/kernel", "head/bias"}, "head_logits");
  add(OpId::Sigmoid, {"head_logits"}, "head_probability");
  g.outputs = {"head_probability"};
  g.validate();
  return with_loss_on_logits(std::move(g));
}

struct Network {
  const char* name;  // the benchmark is <name>/<precision>
  const char* what;
  std::int64_t batch;
  bool training;
  std::function<Graph(std::int64_t batch)> graph;
  double min_time;       // seconds, unless --benchmark_min_time is given
  int layer_iterations;  // --layers
};

const std::vector<Network>& networks() {
  static const std::vector<Network> list = {
      {"BM_BaselineInfer", "baseline CNN, batch 32, inference", 32, false,
       [](std::int64_t b) { return with_batch(build_model("baseline"), b); }, 3.0, 5},
      {"BM_BaselineInfer/batch256", "baseline CNN, batch 256, inference", 256, false,
       [](std::int64_t b) { return with_batch(build_model("baseline"), b); }, 3.0, 5},
      {"BM_Vgg16Features", "VGG16 features, 3x100x100, batch 32, inference", 32, false,
       [](std::int64_t b) { return with_batch(build_model("vgg16"), b); }, 5.0, 3},
      {"BM_BaselineTrainStep", "baseline CNN, batch 32, forward + backward + Adam", 32, true,
       [](std::int64_t b) { return classifier_for_training("baseline", b); }, 3.0, 5},
      {"BM_ImprovedTrainStep", "improved CNN, batch 32, forward + backward + Adam", 32, true,
       [](std::int64_t b) { return classifier_for_training("improved", b); }, 3.0, 5},
      {"BM_Vgg16TrainStep",
       "VGG16 features + average pool + Dense 1, batch 32, forward + backward + Adam", 32, true,
       vgg16_for_training, 10.0, 2},
  };
  return list;
}

const OptimizerSpec kAdam{.kind = OptimizerSpec::Kind::adam, .learning_rate = 1e-4};

// A compiled network with its inputs set, and one iteration of it.
struct Workload {
  Graph graph;
  CompileOptions options;
  std::unique_ptr<Program> program;
  std::function<void()> step;
};

Workload make_workload(const Network& net, const PrecisionVariant& precision) {
  Workload w;
  w.graph = net.graph(net.batch);
  w.options.threads = threads();
  if (net.training) {
    w.options.training = true;
    w.options.loss = "loss";
  }
  precision.apply(w.options);
  w.program = make_onednn_backend()->compile(w.graph, w.options);
  w.program->set_input("image", random_tensor({net.batch, 3, 100, 100}, 1, 0.0, 1.0));
  Program* p = w.program.get();
  if (net.training) {
    Tensor labels(DType::f32, {net.batch, 1});
    for (std::int64_t i = 0; i < net.batch; ++i) {
      labels.data<float>()[i] = static_cast<float>(i % 2);
    }
    p->set_input("labels", labels);
    w.step = [p] {
      p->forward(Mode::training);
      p->backward();
      p->update(kAdam);
    };
  } else {
    w.step = [p] { p->forward(Mode::inference); };
  }
  return w;
}

void run_network(benchmark::State& state, const Network* net, const PrecisionVariant* precision) {
  Workload w;
  try {
    w = make_workload(*net, *precision);
    w.step();  // warm-up: first-touch of buffers, JIT
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());  // e.g. bf16 on a CPU without it: the reason is the message
    for (auto _ : state) {
    }
    return;
  }
  for (auto _ : state) w.step();
  state.SetItemsProcessed(state.iterations() * net->batch);
  state.counters["batch"] = static_cast<double>(net->batch);
}

// ---- matmul peak -----------------------------------------------------------------------------

struct MatmulType {
  const char* name;
  dnnl::memory::data_type type;
};
const MatmulType kMatmulTypes[] = {
    {"fp32", dnnl::memory::data_type::f32},
    {"bf16", dnnl::memory::data_type::bf16},
};

void matmul_peak(benchmark::State& state, const MatmulType* matmul) {
  using dnnl::memory;
  const memory::dim n = 2048;
  try {
    dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    dnnl::stream stream(engine);
    const memory::desc a({n, n}, matmul->type, memory::format_tag::ab);
    const memory::desc c({n, n}, memory::data_type::f32, memory::format_tag::ab);
    dnnl::matmul::primitive_desc pd({a, a, c}, engine);
    memory ma(a, engine), mb(a, engine), mc(c, engine);
    std::memset(ma.get_data_handle(), 0x3c, a.get_size());
    std::memset(mb.get_data_handle(), 0x3c, a.get_size());
    dnnl::matmul mm(pd);
    const std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
    mm.execute(stream, args);
    stream.wait();
    for (auto _ : state) {
      mm.execute(stream, args);
      stream.wait();
    }
    state.SetLabel(pd.impl_info_str());
  } catch (const dnnl::error& e) {
    state.SkipWithError(
        fmt::format("oneDNN 2.6 has no {} matmul on this CPU ({})", matmul->name, e.what())
            .c_str());
    for (auto _ : state) {
    }
    return;
  }
  state.SetItemsProcessed(state.iterations() * 2 * n * n * n);
}

void register_benchmarks(bool use_default_min_time) {
  for (const auto& net : networks()) {
    for (const auto& precision : kPrecisions) {
      auto* b = benchmark::RegisterBenchmark(fmt::format("{}/{}", net.name, precision.name).c_str(),
                                             run_network, &net, &precision);
      b->Unit(benchmark::kMillisecond)->UseRealTime();
      if (use_default_min_time) b->MinTime(net.min_time);
    }
  }
  for (const auto& matmul : kMatmulTypes) {
    benchmark::RegisterBenchmark(fmt::format("BM_MatmulPeak/{}", matmul.name).c_str(), matmul_peak,
                                 &matmul)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
}

// ---- --layers: per-step times of each plan ---------------------------------------------------

void print_layers(const std::string& title, Program& p, const std::function<void()>& run,
                  int iterations) {
  run();  // warm-up
  onednn::set_profiling(p, true);
  for (int i = 0; i < iterations; ++i) run();
  onednn::set_profiling(p, false);
  double total = 0.0;
  const auto times = onednn::step_times(p);
  for (const auto& t : times) total += t.seconds;
  fmt::print("\n== {} ({} iterations; per iteration, waiting after every step) ==\n", title,
             iterations);
  fmt::print("{:>9} {:>6}  {:<9} {}\n", "ms", "%", "plan", "step");
  for (const auto& t : times) {
    const double ms = 1e3 * t.seconds / iterations;
    fmt::print("{:9.3f} {:6.1f}  {:<9} {}\n", ms, 100.0 * t.seconds / total, t.plan, t.label);
  }
  fmt::print("{:9.3f}          total\n", 1e3 * total / iterations);
  fmt::print("{}\n", onednn::memory_summary(p));
}

int layers_main(const std::string& filter) {
  for (const auto& net : networks()) {
    for (const auto& precision : kPrecisions) {
      const std::string name = fmt::format("{}/{}", net.name, precision.name);
      const bool wanted = filter.empty() ? std::strcmp(precision.name, "fp32") == 0
                                         : name.find(filter) != std::string::npos;
      if (!wanted) continue;
      try {
        Workload w = make_workload(net, precision);
        print_layers(fmt::format("{}: {}", name, net.what), *w.program, w.step,
                     net.layer_iterations);
      } catch (const std::exception& e) {
        fmt::print("\n== {}: skipped: {}\n", name, e.what());
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace onnxforge

int main(int argc, char** argv) {
  bool min_time_given = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--layers") == 0) {
      try {
        const bool filtered = i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0;
        return onnxforge::layers_main(filtered ? argv[i + 1] : "");
      } catch (const std::exception& e) {
        fmt::print(stderr, "onnxforge-bench: {}\n", e.what());
        return 1;
      }
    }
    if (std::strncmp(argv[i], "--benchmark_min_time", 20) == 0) min_time_given = true;
  }
  // A per-benchmark MinTime would override the flag, so it is set only when the flag is absent.
  onnxforge::register_benchmarks(!min_time_given);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
