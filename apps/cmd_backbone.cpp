// `onnxforge backbone`: pretrains the gender workload's default transfer backbone (a
// width-reduced VGG16 on a synthetic source task whose labels are not gender) and exports it to
// ONNX; `run` does the same with the defaults and reuses the file.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <memory>

#include "apps/command.hpp"
#include "core/error.hpp"
#include "importers/onnx_export.hpp"
#include "trainers/config.hpp"
#include "trainers/trainer.hpp"
#include "workloads/gender/attribute_backbone.hpp"

namespace onnxforge::cli {
namespace {

struct BackboneArgs {
  std::string out = "datasets/synthetic/backbone";
  gender::BackbonePretraining pretraining;
  std::string backend = "onednn";
  int threads = 0;
  std::string dtype = "auto";
};

void pretrain(const BackboneArgs& args) {
  gender::check_pretraining(args.pretraining, "--");
  parse_precision(args.dtype);
  train::TrainConfig config;
  config.train.backend = args.backend;
  config.train.threads = args.threads;
  config.train.dtype = args.dtype;
  config.data.preprocess = "unit";
  const auto file = gender::default_backbone(
      args.out, config, args.pretraining,
      [](const std::string& line) {
        fmt::print("{}\n", line);
        std::fflush(stdout);
      },
      [&](const Graph& model, const std::filesystem::path& path) {
        Graph g = model;
        train::record_preprocessing(g, config);
        export_onnx(g, path.string());
      });
  fmt::print("{} {}\n{}\n", file.reused ? "Already there:" : "Wrote", file.onnx.string(),
             file.description);
}

const Registration registration{
    22, "backbone",
    "Pretrain the default transfer backbone: a width-reduced VGG16 trained on a synthetic source "
    "task (18 face and scene attributes drawn independently of gender, on faces of other people "
    "than the gender data), exported to ONNX with its description beside it; reused when it "
    "exists. `run` does this with the defaults.",
    [](CLI::App& sub) {
      auto args = std::make_shared<BackboneArgs>();
      sub.add_option("--out", args->out, "folder of the backbone and its source faces")
          ->capture_default_str();
      sub.add_option("--width", args->pretraining.width, "VGG16's width (fraction of its filters)")
          ->capture_default_str();
      sub.add_option("--images", args->pretraining.images, "source faces (10% held out)")
          ->capture_default_str();
      sub.add_option("--epochs", args->pretraining.epochs, "epochs over the source faces")
          ->capture_default_str();
      sub.add_option("--lr", args->pretraining.learning_rate, "Adam's learning rate")
          ->capture_default_str();
      sub.add_option("--seed", args->pretraining.seed, "seed of the faces and the weights")
          ->capture_default_str();
      add_compute_options(sub, args->backend, args->threads, &args->dtype);
      sub.callback([args] { pretrain(*args); });
    }};

}  // namespace
}  // namespace onnxforge::cli
