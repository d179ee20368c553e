// onnxforge train CONFIG.toml [--set key=value ...] [--out RUN_DIR] [--backend NAME]
//                 [--threads N] [--resume RUN_DIR]
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "apps/command.hpp"
#include "graph/error.hpp"
#include "importers/onnx_export.hpp"
#include "importers/onnx_import.hpp"
#include "trainers/config.hpp"
#include "trainers/transfer.hpp"

namespace onnxforge::cli {
namespace {

namespace fs = std::filesystem;

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string out;
  std::string backend;
  int threads = -1;
  std::string resume;
};

void run_train(const TrainArgs& args) {
  fs::path run_dir;
  train::TrainConfig config;
  std::vector<std::string> overrides = args.overrides;
  if (!args.backend.empty()) overrides.push_back("train.backend=\"" + args.backend + "\"");
  if (args.threads >= 0) overrides.push_back("train.threads=" + std::to_string(args.threads));
  if (!args.resume.empty()) {
    run_dir = args.resume;
    const fs::path resolved = run_dir / "config.toml";
    if (!fs::exists(run_dir / "checkpoints" / "last.ckpt")) {
      fail("{}: nothing to resume (no checkpoints/last.ckpt)", run_dir.string());
    }
    config = train::load_config(resolved, overrides);
  } else {
    if (args.config.empty()) fail("train: give a CONFIG.toml (or --resume RUN_DIR)");
    config = train::load_config(args.config, overrides);
    run_dir = args.out.empty() ? fs::path("runs") / config.name : fs::path(args.out);
    if (fs::exists(run_dir / "checkpoints" / "last.ckpt")) {
      fail("{}: holds a previous run; continue it with --resume {} or choose another --out",
           run_dir.string(), run_dir.string());
    }
  }
  const train::TrainData data = train::load_data(config, data::stderr_warnings());
  train::TrainOptions options;
  options.run_dir = run_dir;
  options.resume = !args.resume.empty();
  options.interactive = ::isatty(::fileno(stdout)) != 0;
  Graph trained;
  if (config.transfer.backbone.empty()) {
    trained = train::build_configured_model(config);
    const auto result = train::train_model(config, trained, data, options);
    train::store_parameters(trained, *result.program);
  } else {
    const Graph backbone =
        train::prepare_backbone(load_model(config.transfer.backbone), config.transfer.cut_at,
                                Shape(config.model.input.begin(), config.model.input.end()));
    trained = train::train_transfer(config, backbone, data, options).model;
  }
  // The trained model (the best epoch's weights when early stopping restored them) as ONNX.
  export_onnx(trained, (run_dir / "model.onnx").string());
  std::printf("Model: %s\nRun folder: %s\n", (run_dir / "model.onnx").string().c_str(),
              run_dir.string().c_str());
}

const Registration registration{
    30, [](CLI::App& app) {
      auto* sub = app.add_subcommand(
          "train",
          "Train a model from a TOML config (configs/*.toml) and write its run folder: resolved "
          "config, history.csv, checkpoints, metrics and plots for validation and test, "
          "report.html.");
      auto args = std::make_shared<TrainArgs>();
      sub->add_option("config", args->config, "the experiment config (TOML)");
      sub->add_option("--set", args->overrides, "override a config key: section.key=value")
          ->take_all();
      sub->add_option("--out", args->out, "the run folder (default: runs/<config name>)");
      sub->add_option("--backend", args->backend, "compute backend (onednn, reference, cudnn)");
      sub->add_option("--threads", args->threads, "compute threads (0 = all cores)");
      sub->add_option("--resume", args->resume,
                      "continue the run in this folder from its last checkpoint");
      sub->callback([args] { run_train(*args); });
    }};

}  // namespace
}  // namespace onnxforge::cli
