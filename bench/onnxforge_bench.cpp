// onnxforge-bench: the oneDNN backend on the real networks (Google Benchmark).
//
//   BM_BaselineTrainStep      baseline CNN, forward + backward + Adam, batch 32    (images/s)
//   BM_BaselineInfer          baseline CNN, inference, batch 256                   (images/s)
//   BM_Vgg16Features/fp32     VGG16 features, 3x100x100, inference, batch 32       (images/s)
//   BM_Vgg16Features/bf16     the same with convolutions in bf16 (f32 accumulation)
//   BM_MatmulPeak/fp32|bf16   a 2048^3 oneDNN matmul                               (FLOP/s)
//
// Per-layer times: `onnxforge-bench --layers` prints, for each network, every step of the
// compiled plans (primitive, implementation, layouts) with its mean time, then exits.
// Threads: ONNXFORGE_THREADS (default: all cores).
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>

#include "backends/backend.hpp"
#include "backends/onednn/onednn_backend.hpp"
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

// The baseline with a loss on its logits (the input of the final sigmoid), as training runs it.
Graph baseline_for_training(std::int64_t batch) {
  Graph g = with_batch(build_model("baseline"), batch);
  const Node* sigmoid = g.producer(g.outputs.at(0));
  const std::string logits = sigmoid->input(0);
  g.inputs.push_back({"labels", DType::f32, g.value(logits).shape});
  Node loss;
  loss.name = "loss";
  loss.op = "BinaryCrossEntropyWithLogits";
  loss.inputs = {logits, "labels"};
  loss.outputs = {"loss"};
  g.nodes.push_back(loss);
  g.validate();
  return g;
}

struct Workload {
  Graph graph;
  CompileOptions options;
  std::unique_ptr<Program> program;
};

Workload train_workload() {
  Workload w;
  w.graph = baseline_for_training(32);
  w.options = {.training = true, .loss = "loss", .threads = threads()};
  w.program = make_onednn_backend()->compile(w.graph, w.options);
  w.program->set_input("image", random_tensor({32, 3, 100, 100}, 1, 0.0, 1.0));
  Tensor labels(DType::f32, {32, 1});
  for (std::int64_t i = 0; i < 32; ++i) labels.data<float>()[i] = static_cast<float>(i % 2);
  w.program->set_input("labels", labels);
  return w;
}

Workload infer_workload(const std::string& model, std::int64_t batch, DType compute) {
  Workload w;
  w.graph = with_batch(build_model(model), batch);
  w.options = {.threads = threads(), .compute_dtype = compute};
  w.program = make_onednn_backend()->compile(w.graph, w.options);
  w.program->set_input("image", random_tensor({batch, 3, 100, 100}, 2, 0.0, 1.0));
  return w;
}

const OptimizerSpec kAdam{.kind = OptimizerSpec::Kind::adam, .learning_rate = 1e-4};

void train_step(Program& p) {
  p.forward(Mode::training);
  p.backward();
  p.update(kAdam);
}

void BM_BaselineTrainStep(benchmark::State& state) {
  Workload w = train_workload();
  train_step(*w.program);  // warm-up: first-touch of buffers, JIT
  for (auto _ : state) train_step(*w.program);
  state.SetItemsProcessed(state.iterations() * 32);
  state.counters["batch"] = 32;
}
BENCHMARK(BM_BaselineTrainStep)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

void BM_BaselineInfer(benchmark::State& state) {
  Workload w = infer_workload("baseline", 256, DType::f32);
  w.program->forward(Mode::inference);
  for (auto _ : state) w.program->forward(Mode::inference);
  state.SetItemsProcessed(state.iterations() * 256);
  state.counters["batch"] = 256;
}
BENCHMARK(BM_BaselineInfer)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

void vgg16_features(benchmark::State& state, DType compute) {
  Workload w;
  try {
    w = infer_workload("vgg16", 32, compute);
  } catch (const Error& e) {
    state.SkipWithError(e.what());
    for (auto _ : state) {
    }
    return;
  }
  w.program->forward(Mode::inference);
  for (auto _ : state) w.program->forward(Mode::inference);
  state.SetItemsProcessed(state.iterations() * 32);
  state.counters["batch"] = 32;
}
BENCHMARK_CAPTURE(vgg16_features, fp32, DType::f32)
    ->Name("BM_Vgg16Features/fp32")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(5.0);
BENCHMARK_CAPTURE(vgg16_features, bf16, DType::bf16)
    ->Name("BM_Vgg16Features/bf16")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(5.0);

void matmul_peak(benchmark::State& state, dnnl::memory::data_type type) {
  using dnnl::memory;
  const memory::dim n = 2048;
  try {
    dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    dnnl::stream stream(engine);
    const memory::desc a({n, n}, type, memory::format_tag::ab);
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
    state.SkipWithError(fmt::format("oneDNN 2.6 has no {} matmul on this CPU ({})",
                                    type == memory::data_type::bf16 ? "bf16" : "f32", e.what())
                            .c_str());
    for (auto _ : state) {
    }
    return;
  }
  state.SetItemsProcessed(state.iterations() * 2 * n * n * n);
}
BENCHMARK_CAPTURE(matmul_peak, fp32, dnnl::memory::data_type::f32)
    ->Name("BM_MatmulPeak/fp32")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(matmul_peak, bf16, dnnl::memory::data_type::bf16)
    ->Name("BM_MatmulPeak/bf16")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

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
}

int layers_main() {
  {
    Workload w = train_workload();
    print_layers(
        "BM_BaselineTrainStep: baseline, batch 32, forward + backward + Adam", *w.program,
        [&] { train_step(*w.program); }, 5);
  }
  {
    Workload w = infer_workload("baseline", 256, DType::f32);
    print_layers(
        "BM_BaselineInfer: baseline, batch 256, inference", *w.program,
        [&] { w.program->forward(Mode::inference); }, 5);
  }
  {
    Workload w = infer_workload("vgg16", 32, DType::f32);
    print_layers(
        "BM_Vgg16Features/fp32: VGG16 features, batch 32, inference", *w.program,
        [&] { w.program->forward(Mode::inference); }, 3);
  }
  return 0;
}

}  // namespace
}  // namespace onnxforge

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--layers") == 0) {
      try {
        return onnxforge::layers_main();
      } catch (const std::exception& e) {
        fmt::print(stderr, "onnxforge-bench: {}\n", e.what());
        return 1;
      }
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
