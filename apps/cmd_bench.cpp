// onnxforge bench MODEL --backend onednn|cudnn|reference [--batch N] [--mode infer|train]
//                 [--dtype fp32|bf16|auto] [--seconds S] [--json FILE] [--input CxHxW] [--head]
//                 [--threads N]
// Times one model on one backend the way OpenVINO's benchmark_app reports it: compile, warm-up,
// then as many iterations as fit in S seconds; throughput and latency percentiles.
//
// An iteration is, in infer mode, forward(inference) plus fetching every output to the host (so
// that a GPU's asynchronous work is complete and counted); in train mode, forward(training),
// backward and one Adam update. Inputs are random and fed once before warm-up (as benchmark_app
// does), so the times are compute, not data loading.
//
// Training needs a loss: a model ending in Dense 1 + Sigmoid trains with binary cross-entropy on
// random 0/1 labels (as `onnxforge train` does); any other model is trained through a fixed random
// gradient seeded on its outputs (the backward work is the same). --head freezes the model and
// attaches transfer.toml's head (Flatten, Dense 256 ReLU, Dropout 0.5, Dense 1 Sigmoid): train
// mode then times head training on the frozen backbone without a feature cache.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "apps/command.hpp"
#include "backends/backend.hpp"
#include "core/error.hpp"
#include "eval/io.hpp"
#include "graph/builder.hpp"
#include "graph/models.hpp"
#include "importers/onnx_import.hpp"
#include "trainers/config.hpp"
#include "trainers/trainer.hpp"
#include "trainers/transfer.hpp"
#ifdef ONNXFORGE_HAVE_CUDNN
#include "backends/cudnn/cudnn_backend.hpp"
#endif

namespace onnxforge::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchArgs {
  std::string model;
  std::string backend = "onednn";
  int batch = 32;
  std::string mode = "infer";
  std::string dtype = "auto";
  double seconds = 10.0;
  double warmup_seconds = 1.0;
  std::string json;
  std::string input = "3x100x100";
  bool head = false;
  int threads = 0;
  std::uint64_t seed = 0;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Linear interpolation between order statistics (numpy's default); `sorted` is non-empty.
double percentile(const std::vector<double>& sorted, double q) {
  const double at = q / 100.0 * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(at));
  const auto above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (at - static_cast<double>(below));
}

std::string first_line_of(const char* path, const char* key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) return line;
      const auto start = line.find_first_not_of(" \t", colon + 1);
      return start == std::string::npos ? "" : line.substr(start);
    }
  }
  return "";
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  double a = 0, b = 0, c = 0;
  if (!(in >> a >> b >> c)) return "unknown";
  return fmt::format("{:.2f} {:.2f} {:.2f}", a, b, c);
}

std::string device_of([[maybe_unused]] const std::string& backend, int threads) {
#ifdef ONNXFORGE_HAVE_CUDNN
  if (backend == "cudnn") return cudnn::device_description();
#endif
  const unsigned cores = std::thread::hardware_concurrency();
  return fmt::format("{} ({} threads of {} cores)", first_line_of("/proc/cpuinfo", "model name"),
                     threads > 0 ? static_cast<unsigned>(threads) : cores, cores);
}

// The graph to time and how to feed and step it.
struct Workload {
  Graph graph;
  CompileOptions options;
  std::string description;
  std::map<std::string, Tensor> feeds;
  std::map<std::string, Tensor> seeds;  // train through seeded outputs (no model loss)
  bool seeded = false;
  std::int64_t images = 0;  // per iteration
};

Graph load_bench_model(const BenchArgs& args, std::string* description) {
  ModelOptions builtin;
  builtin.input = parse_shape(args.input, "--input");
  builtin.seed = args.seed;
  const auto names = builtin_models();
  const bool is_builtin = std::find(names.begin(), names.end(), args.model) != names.end();
  if (is_builtin) {
    *description = fmt::format("{} (built-in, input {})", args.model, args.input);
    return load_model(args.model, builtin);
  }
  // An ONNX file: the batch goes on axis 0 of every input.
  Graph probe = load_model(args.model);
  ImportOptions options;
  for (const auto& in : probe.inputs) {
    if (in.shape.empty()) continue;
    Shape shape = in.shape;
    shape[0] = kDynamic;
    options.input_shapes[in.name] = shape;
  }
  *description = fmt::format("{} (ONNX)", args.model);
  return load_model(args.model, {}, options);
}

Workload make_workload(const BenchArgs& args) {
  Workload w;
  Graph model = load_bench_model(args, &w.description);
  if (args.head) {
    if (model.inputs.size() != 1 || model.outputs.size() != 1) {
      fail("{}: --head needs a model with one input and one output", args.model);
    }
    for (auto& init : model.initializers) init.trainable = false;
    const Graph features = with_batch(model, 1);
    Shape feature_shape = features.value(features.outputs[0]).shape;
    feature_shape.erase(feature_shape.begin());
    const train::TransferConfig transfer;  // transfer.toml's head: Dense 256 ReLU, dropout 0.5
    model = train::attach_head(model, train::make_head(feature_shape, transfer, args.seed));
    w.description += " + head (backbone frozen)";
  }
  const bool train = args.mode == "train";
  w.options.threads = args.threads;
  w.options.seed = args.seed;
  w.options.precision = parse_precision(args.dtype);
  Random rng(hash_name("bench", args.seed));
  auto random_tensor = [&rng](const Shape& shape, double low, double high) {
    Tensor t(DType::f32, shape);
    for (auto& v : t.data<float>()) v = static_cast<float>(low + (high - low) * rng.uniform());
    return t;
  };
  if (train) {
    if (model.trainable_parameter_count() == 0) {
      fail("{}: --mode train needs trainable parameters and this model has none", args.model);
    }
    const bool binary = model.inputs.size() == 1 && model.outputs.size() == 1 &&
                        model.producer(model.outputs[0]) &&
                        model.producer(model.outputs[0])->is(OpId::Sigmoid);
    bool made = false;
    if (binary) {
      try {
        const auto tg = train::make_training_graph(model, args.batch);
        w.graph = tg.graph;
        w.options.loss = tg.loss;
        const Shape& shape = w.graph.value(tg.labels).shape;
        Tensor labels(DType::f32, shape);
        for (auto& v : labels.data<float>()) v = rng.uniform() < 0.5 ? 0.f : 1.f;
        w.feeds[tg.labels] = labels;
        made = true;
      } catch (const Error&) {
        made = false;  // not a batch-of-probabilities head: train through seeded outputs
      }
    }
    if (!made) {
      w.graph = with_batch(model, args.batch);
      w.graph.inputs.push_back({"bench_loss", DType::f32, {}});
      w.graph.validate();
      w.options.loss = "bench_loss";
      w.feeds["bench_loss"] = Tensor(DType::f32, {});
      w.seeded = true;
      for (const auto& out : w.graph.outputs) {
        w.seeds[out] = random_tensor(w.graph.value(out).shape, -1e-3, 1e-3);
      }
    }
    w.options.training = true;
  } else {
    w.graph = with_batch(model, args.batch);
  }
  for (const auto& in : w.graph.inputs) {
    if (w.feeds.count(in.name)) continue;
    if (in.dtype == DType::i64) {
      Tensor t(DType::i64, in.shape);
      for (auto& v : t.data<std::int64_t>()) v = 0;
      w.feeds[in.name] = t;
    } else if (is_floating(in.dtype)) {
      w.feeds[in.name] = random_tensor(in.shape, 0.0, 1.0);
    } else {
      fail("{}: input '{}' has dtype {}, which bench cannot fill", args.model, in.name,
           to_string(in.dtype));
    }
  }
  w.images = args.batch;
  return w;
}

void run_bench(const BenchArgs& args) {
  if (args.batch < 1) fail("bench: --batch must be >= 1, got {}", args.batch);
  if (args.mode != "infer" && args.mode != "train") {
    fail("bench: --mode must be infer or train, got '{}'", args.mode);
  }
  if (args.dtype != "fp32" && args.dtype != "bf16" && args.dtype != "auto") {
    fail("bench: --dtype must be fp32, bf16 or auto, got '{}'", args.dtype);
  }
  if (!(args.seconds > 0)) fail("bench: --seconds must be > 0, got {}", args.seconds);
  const auto backend = make_backend(args.backend);
  std::string why;
  if (!backend->available(&why)) {
    fail("bench: backend '{}' is not available here: {}", args.backend, why);
  }
  Workload w = make_workload(args);
  const bool train = args.mode == "train";
  const std::string device = device_of(args.backend, args.threads);
  std::printf("[Step 1/4] Model: %s\n", w.description.c_str());
  std::printf("[ INFO ] Backend: %s on %s\n", args.backend.c_str(), device.c_str());
  std::printf("[ INFO ] Mode: %s, dtype %s, batch %d, %s\n", args.mode.c_str(), args.dtype.c_str(),
              args.batch,
              train ? (w.seeded ? "forward + backward (seeded outputs) + Adam update"
                                : "forward + backward (binary cross-entropy) + Adam update")
                    : "forward + fetch outputs");
  std::fflush(stdout);

  const auto compile_start = Clock::now();
  auto program = backend->compile(w.graph, w.options);
  const double compile_seconds = seconds_since(compile_start);
  std::printf("[Step 2/4] Compiled in %.2f ms\n", compile_seconds * 1e3);
  // How each compute-heavy layer runs (dtype, implementation, and why: --dtype auto's times).
  const auto layers = program->layer_choices();
  for (const auto& l : layers) {
    std::printf("[ INFO ] Layer %s (%s): %s, %s; %s\n", l.node.c_str(), l.op.c_str(),
                l.dtype.c_str(), l.implementation.c_str(), l.why.c_str());
  }
  for (const auto& [name, t] : w.feeds) program->set_input(name, t);

  const OptimizerSpec adam{.kind = OptimizerSpec::Kind::adam, .learning_rate = 1e-5};
  auto iteration = [&]() {
    if (train) {
      program->forward(Mode::training);
      if (w.seeded) {
        program->backward(w.seeds);
      } else {
        program->backward();
      }
      program->update(adam);
    } else {
      program->forward(Mode::inference);
      for (const auto& out : w.graph.outputs) (void)program->fetch(out);
    }
  };

  // Warm-up: at least 2 iterations and warmup_seconds (algorithm caches, clocks, allocators).
  const auto warm_start = Clock::now();
  double first_ms = 0.0;
  int warmup = 0;
  while (warmup < 2 || seconds_since(warm_start) < std::min(args.warmup_seconds, args.seconds)) {
    const auto start = Clock::now();
    iteration();
    if (warmup == 0) first_ms = seconds_since(start) * 1e3;
    ++warmup;
  }
  std::printf("[Step 3/4] First iteration took %.2f ms; %d warm-up iterations\n", first_ms, warmup);
  std::fflush(stdout);

  std::vector<double> latencies_ms;
  const auto run_start = Clock::now();
  while (latencies_ms.size() < 3 || seconds_since(run_start) < args.seconds) {
    const auto start = Clock::now();
    iteration();
    latencies_ms.push_back(seconds_since(start) * 1e3);
  }
  const double total_seconds = seconds_since(run_start);
  std::vector<double> sorted = latencies_ms;
  std::sort(sorted.begin(), sorted.end());
  double sum_ms = 0.0;
  for (double l : latencies_ms) sum_ms += l;
  const auto count = static_cast<std::int64_t>(latencies_ms.size());
  const double throughput = static_cast<double>(count * w.images) / std::max(total_seconds, 1e-12);
  const double p50 = percentile(sorted, 50), p90 = percentile(sorted, 90),
               p99 = percentile(sorted, 99);
  const std::string load = load_average();

  std::printf("[Step 4/4] Execution: %lld iterations in %.2f s\n", static_cast<long long>(count),
              total_seconds);
  std::printf("[ INFO ] Count:        %lld iterations\n", static_cast<long long>(count));
  std::printf("[ INFO ] Duration:     %.2f ms\n", total_seconds * 1e3);
  std::printf("[ INFO ] Latency:\n");
  std::printf("[ INFO ]    Median:    %.2f ms\n", p50);
  std::printf("[ INFO ]    90 %%:      %.2f ms\n", p90);
  std::printf("[ INFO ]    99 %%:      %.2f ms\n", p99);
  std::printf("[ INFO ]    Average:   %.2f ms\n", sum_ms / static_cast<double>(count));
  std::printf("[ INFO ]    Min:       %.2f ms\n", sorted.front());
  std::printf("[ INFO ]    Max:       %.2f ms\n", sorted.back());
  std::printf("[ INFO ] Throughput:   %.2f images/s\n", throughput);
  std::printf("[ INFO ] Load average: %s\n", load.c_str());

  if (!args.json.empty()) {
    const nlohmann::json j = {
        {"model", args.model},
        {"description", w.description},
        {"backend", args.backend},
        {"device", device},
        {"mode", args.mode},
        {"dtype", args.dtype},
        {"batch", args.batch},
        {"threads", args.threads},
        {"head", args.head},
        {"objective", train ? (w.seeded ? "seeded outputs" : "binary cross-entropy") : "none"},
        {"compile_ms", compile_seconds * 1e3},
        {"first_iteration_ms", first_ms},
        {"warmup_iterations", warmup},
        {"iterations", count},
        {"duration_s", total_seconds},
        {"images_per_iteration", w.images},
        {"throughput_images_per_s", throughput},
        {"latency_ms",
         {{"median", p50},
          {"p50", p50},
          {"p90", p90},
          {"p99", p99},
          {"mean", sum_ms / static_cast<double>(count)},
          {"min", sorted.front()},
          {"max", sorted.back()}}},
        {"load_average", load},
        {"layers", train::layers_json(layers, train ? "training" : "inference")},
    };
    eval::write_file_atomic(args.json, j.dump(2) + "\n");
    std::printf("[ INFO ] Wrote %s\n", args.json.c_str());
  }
}

const Registration registration{
    45, "bench",
    "Time a model (built-in name or .onnx file) on one backend: compile, warm-up, then "
    "throughput and latency percentiles (median, 90%, 99%, min, max) as OpenVINO's "
    "benchmark_app reports them; --json writes them to a file.",
    [](CLI::App& sub) {
      auto args = std::make_shared<BenchArgs>();
      sub.add_option("model", args->model, "a built-in model (baseline, improved, vgg16) or .onnx")
          ->required();
      add_compute_options(sub, args->backend, args->threads, &args->dtype);
      sub.add_option("--batch", args->batch, "images per iteration")->capture_default_str();
      sub.add_option("--mode", args->mode, "infer or train")->capture_default_str();
      sub.add_option("--seconds", args->seconds, "timed duration after warm-up")
          ->capture_default_str();
      sub.add_option("--warmup", args->warmup_seconds, "warm-up duration (at least 2 iterations)")
          ->capture_default_str();
      sub.add_option("--json", args->json, "also write the results to this JSON file");
      sub.add_option("--input", args->input, "built-in models: input size as CxHxW")
          ->capture_default_str();
      sub.add_flag("--head", args->head,
                   "freeze the model and attach a Dense 256 / Dense 1 head (transfer learning)");
      sub.add_option("--seed", args->seed, "seeds parameters and random inputs")
          ->capture_default_str();
      sub.callback([args] { run_bench(*args); });
    }};

}  // namespace
}  // namespace onnxforge::cli
