// onnxforge explain --run RUN [--config CFG] [--model MODEL]
// Grad-CAM figures of a trained run (trainers/explain.hpp): RUN/plots/explain_* and
// RUN/explain.json, from RUN/val and RUN/test predictions.csv and the config's images.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "apps/command.hpp"
#include "core/error.hpp"
#include "importers/onnx_import.hpp"
#include "trainers/config.hpp"
#include "trainers/explain.hpp"
#include "trainers/trainer.hpp"

namespace onnxforge::cli {
namespace {

namespace fs = std::filesystem;

struct ExplainArgs {
  std::string run;
  std::string config;  // default: RUN/config.toml
  std::string model;   // default: RUN/model.onnx
  std::string backend, dtype;
  int threads = -1;
  train::ExplainOptions options;
};

void run_explain(const ExplainArgs& args) {
  const fs::path run = args.run;
  const fs::path config_path = args.config.empty() ? run / "config.toml" : fs::path(args.config);
  const std::string model_path = args.model.empty() ? (run / "model.onnx").string() : args.model;
  std::vector<std::string> overrides;
  if (!args.backend.empty()) overrides.push_back("train.backend=\"" + args.backend + "\"");
  if (args.threads >= 0) overrides.push_back("train.threads=" + std::to_string(args.threads));
  if (!args.dtype.empty()) overrides.push_back("train.dtype=\"" + args.dtype + "\"");
  const train::TrainConfig config = train::load_config(config_path, overrides);
  const Graph model = load_model(model_path);
  const train::TrainData data = train::load_data(config, data::stderr_warnings());
  const auto result = train::explain_model(config, model, data, run, args.options);
  for (const auto& w : result.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  std::printf("%s\n", result.method.c_str());
  for (const auto& f : result.figures) std::printf("%s\n", (run / f.png).string().c_str());
  std::printf("%s: %zu maps in %.1f s (%.1f s in all)\n", (run / "explain.json").string().c_str(),
              result.images_explained, result.map_seconds, result.seconds);
}

const Registration registration{
    36, "explain",
    "Grad-CAM of a trained run at its last convolution (input-gradient saliency without one): "
    "examples per class, the mean map per class and the most confident mistakes for validation "
    "and test, into RUN/plots/explain_* and RUN/explain.json.",
    [](CLI::App& sub) {
      auto args = std::make_shared<ExplainArgs>();
      sub.add_option("--run", args->run, "the run folder (with val/ and test/ predictions.csv)")
          ->required();
      sub.add_option("--config", args->config, "the experiment config (default: RUN/config.toml)");
      sub.add_option("--model", args->model, "the trained model (default: RUN/model.onnx)");
      sub.add_option("--examples", args->options.examples_per_class, "examples per class")
          ->capture_default_str();
      sub.add_option("--mistakes", args->options.mistakes, "mistakes shown per split")
          ->capture_default_str();
      sub.add_option("--mean-images", args->options.mean_images, "images per class in the mean map")
          ->capture_default_str();
      add_compute_options(sub, args->backend, args->threads, &args->dtype);
      sub.callback([args] { run_explain(*args); });
    }};

}  // namespace
}  // namespace onnxforge::cli
