// The numbers of docs/DISTRIBUTED.md's scaling model, printed as "key value" lines that
// bench/anchors/mpi_scaling.sh reads:
//
//   onnxforge-mpi-bench compute [--threads N] [--batch 32]   one process: seconds per training
//       step (forward, backward, update) at that batch for the baseline, the improved CNN and the
//       transfer head (on cached VGG16 block5_pool features), and the VGG16 backbone's seconds
//       per image of feature extraction;
//   mpirun -np N onnxforge-mpi-bench allreduce               every model's gradients summed over
//       the ranks by GradientAllreduce (25 MiB buckets, copy-out and write-back included), the
//       median of 20 steps after 3 warm-ups.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "graph/models.hpp"
#include "trainers/distributed.hpp"
#include "trainers/trainer.hpp"
#include "trainers/transfer.hpp"

namespace of = onnxforge;
namespace ot = onnxforge::train;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Model {
  std::string name;
  of::Graph graph;
};

std::vector<Model> models() {
  of::ModelOptions options;
  options.seed = 1;
  std::vector<Model> out{{"baseline", of::build_model("baseline", options)},
                         {"improved", of::build_model("improved", options)}};
  // The transfer head of configs/transfer.toml on VGG16's block5_pool at 100x100: 512x3x3.
  const of::Graph vgg = of::build_model("vgg16", options);
  const of::Shape& features = vgg.value(vgg.outputs.at(0)).shape;
  ot::TransferConfig head;  // head_units [256], relu, dropout 0.5: the shipped config
  out.push_back(
      {"transfer_head", ot::make_head(of::Shape(features.begin() + 1, features.end()), head, 1)});
  return out;
}

std::unique_ptr<of::Program> training_program(const of::Graph& model, int batch, int threads,
                                              ot::TrainingGraph& tg) {
  tg = ot::make_training_graph(model, batch);
  of::CompileOptions compile;
  compile.training = true;
  compile.loss = tg.loss;
  compile.threads = threads;
  auto program = of::make_backend("onednn")->compile(tg.graph, compile);
  of::Tensor images(of::DType::f32, tg.graph.value(tg.image).shape);
  auto values = images.data<float>();
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 255) / 255.0f;
  of::Tensor labels(of::DType::f32, tg.graph.value(tg.labels).shape);
  auto l = labels.data<float>();
  for (std::size_t i = 0; i < l.size(); ++i) l[i] = static_cast<float>(i % 2);
  program->set_input(tg.image, images);
  program->set_input(tg.labels, labels);
  return program;
}

int compute(int threads, int batch) {
  of::OptimizerSpec adam;
  adam.kind = of::OptimizerSpec::Kind::adam;
  adam.learning_rate = 1e-4;
  for (const auto& m : models()) {
    ot::TrainingGraph tg;
    auto program = training_program(m.graph, batch, threads, tg);
    std::vector<double> steps;
    for (int i = 0; i < 8; ++i) {
      const auto start = Clock::now();
      program->forward(of::Mode::training);
      program->backward();
      program->update(adam);
      if (i >= 2) steps.push_back(since(start));
    }
    std::printf("compute %s %.6f params %lld batch %d threads %d\n", m.name.c_str(), median(steps),
                static_cast<long long>(m.graph.trainable_parameter_count()), batch, threads);
  }
  // The frozen backbone of the transfer model: inference only, once per image.
  of::ModelOptions options;
  options.seed = 1;
  const of::Graph vgg = of::with_batch(of::build_model("vgg16", options), batch);
  of::CompileOptions compile;
  compile.threads = threads;
  auto program = of::make_backend("onednn")->compile(vgg, compile);
  of::Tensor images(of::DType::f32, vgg.value(vgg.inputs[0].name).shape);
  program->set_input(vgg.inputs[0].name, images);
  std::vector<double> runs;
  for (int i = 0; i < 3; ++i) {
    const auto start = Clock::now();
    program->forward(of::Mode::inference);
    if (i >= 1) runs.push_back(since(start));
  }
  std::printf("extract vgg16 %.6f per_image batch %d threads %d\n", median(runs) / batch, batch,
              threads);
  return 0;
}

int allreduce() {
  ot::Communicator& comm = ot::Communicator::world();
  for (const auto& m : models()) {
    ot::TrainingGraph tg;
    auto program = training_program(m.graph, 2, 1, tg);
    program->forward(of::Mode::training);
    program->backward();
    ot::GradientAllreduce reduce(comm, tg.graph);
    std::vector<double> times;
    for (int i = 0; i < 23; ++i) {
      double stats[3] = {1, 1, 1};
      comm.barrier("the benchmark's barrier");
      const auto start = Clock::now();
      reduce.run(*program, 0.5, stats);
      double t[1] = {since(start)};
      comm.sum(t, "the benchmark's timing");  // the slowest rank's view is close to the mean
      if (i >= 3) times.push_back(t[0] / comm.size());
    }
    if (comm.root()) {
      std::printf("allreduce %s %.6f floats %zu buckets %zu ranks %d\n", m.name.c_str(),
                  median(times), reduce.parameters(), reduce.buckets(), comm.size());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    int threads = 0, batch = 32;
    for (int i = 2; i + 1 < argc; i += 2) {
      if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
      if (std::strcmp(argv[i], "--batch") == 0) batch = std::atoi(argv[i + 1]);
    }
    if (mode == "compute") return compute(threads, batch);
    if (mode == "allreduce") return allreduce();
    std::fprintf(stderr,
                 "usage: onnxforge-mpi-bench compute [--threads N] [--batch B] | allreduce\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "onnxforge-mpi-bench: %s\n", e.what());
    return 1;
  }
}
