// onnxforge train CONFIG.toml [--set key=value ...] [--out RUN_DIR] [--backend NAME]
//                 [--threads N] [--resume RUN_DIR]
// Under an MPI launcher (`mpirun -np N onnxforge train ...`, docs/DISTRIBUTED.md) every rank
// trains its shard of each batch; rank 0 reads the config, prints and writes the run folder.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "apps/backbone.hpp"
#include "apps/command.hpp"
#include "core/error.hpp"
#include "eval/io.hpp"
#include "eval/subgroups.hpp"
#include "importers/onnx_export.hpp"
#include "importers/onnx_import.hpp"
#include "trainers/config.hpp"
#include "trainers/distributed.hpp"
#include "trainers/explain.hpp"
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
  std::string dtype;
  std::string resume;
};

// One process: load_config. Under MPI rank 0 loads (and checks) it and sends its text to the
// others, which need no access to the file.
train::TrainConfig load_everywhere(train::Communicator& comm, const fs::path& path,
                                   const std::vector<std::string>& overrides) {
  if (!comm.distributed()) return train::load_config(path, overrides);
  std::string text;
  if (comm.root()) {
    train::load_config(path, overrides);  // the errors of one process, from rank 0
    text = eval::read_file(path);
  }
  comm.broadcast(text, "the broadcast of the config");
  train::TrainConfig config = train::parse_config(text, path.string(), overrides);
  if (config.name.empty()) config.name = path.stem().string();
  return config;
}

void run_train(const TrainArgs& args) {
  train::Communicator& comm = train::Communicator::world();
  const bool root = comm.root();
  fs::path run_dir;
  train::TrainConfig config;
  std::vector<std::string> overrides = args.overrides;
  if (!args.backend.empty()) overrides.push_back("train.backend=\"" + args.backend + "\"");
  if (args.threads >= 0) overrides.push_back("train.threads=" + std::to_string(args.threads));
  if (!args.dtype.empty()) overrides.push_back("train.dtype=\"" + args.dtype + "\"");
  if (!args.resume.empty()) {
    run_dir = args.resume;
    const fs::path resolved = run_dir / "config.toml";
    if (root && !fs::exists(run_dir / "checkpoints" / "last.ckpt")) {
      fail("{}: nothing to resume (no checkpoints/last.ckpt)", run_dir.string());
    }
    config = load_everywhere(comm, resolved, overrides);
  } else {
    if (args.config.empty()) fail("train: give a CONFIG.toml (or --resume RUN_DIR)");
    config = load_everywhere(comm, args.config, overrides);
    run_dir = args.out.empty() ? fs::path("runs") / config.name : fs::path(args.out);
    if (root && fs::exists(run_dir / "checkpoints" / "last.ckpt")) {
      fail("{}: holds a previous run; continue it with --resume {} or choose another --out",
           run_dir.string(), run_dir.string());
    }
  }
  // The backbone is checked before any image is read (a wrong file or cut fails in seconds).
  std::optional<Graph> backbone;
  if (!config.transfer.backbone.empty()) backbone = load_backbone(config);
  if (!backbone && config.data.preprocess == "auto") {
    fail(
        "{}: data.preprocess = \"auto\" reads the backbone's own, but transfer.backbone is not "
        "set: set it, or name the preprocessing (unit, imagenet, caffe, tf or explicit)",
        args.resume.empty() ? args.config : args.resume);
  }
  // A groups file for the subgroup metrics is read now: a bad one fails before training.
  if (root && !config.report.groups.empty()) eval::read_groups_csv(config.report.groups);
  // Every rank decodes every image (it draws its shards from all of them); rank 0 warns.
  const train::TrainData data =
      train::load_data(config, root ? data::stderr_warnings() : data::WarningSink{});
  train::TrainOptions options;
  options.run_dir = run_dir;
  options.resume = !args.resume.empty();
  // mpirun gives rank 0 a pseudo-terminal even when its own output is a file: no redraws there.
  options.interactive = !comm.distributed() && ::isatty(::fileno(stdout)) != 0;
  Graph trained;
  if (config.transfer.backbone.empty()) {
    trained = train::build_configured_model(config);
    const auto result = train::train_model(config, trained, data, options);
    train::store_parameters(trained, *result.program);
  } else {
    trained = train::train_transfer(config, *backbone, data, options).model;
  }
  if (!root) return;
  train::record_preprocessing(trained, config);
  // The trained model (the best epoch's weights when early stopping restored them) as ONNX.
  export_onnx(trained, (run_dir / "model.onnx").string());
  train::explain_and_report(config, trained, data, train::final_run_dir(config, run_dir),
                            [](const std::string& line) { std::printf("%s\n", line.c_str()); });
  std::printf("Model: %s\nRun folder: %s\n", (run_dir / "model.onnx").string().c_str(),
              run_dir.string().c_str());
}

const Registration registration{
    30, "train",
    "Train a model from a TOML config (configs/*.toml) and write its run folder: resolved "
    "config, history.csv, checkpoints, metrics and plots for validation and test, "
    "report.html.",
    [](CLI::App& sub) {
      auto args = std::make_shared<TrainArgs>();
      sub.add_option("config", args->config, "the experiment config (TOML)");
      sub.add_option("--set", args->overrides, "override a config key: section.key=value")
          ->take_all();
      sub.add_option("--out", args->out, "the run folder (default: runs/<config name>)");
      add_compute_options(sub, args->backend, args->threads, &args->dtype);
      sub.add_option("--resume", args->resume,
                     "continue the run in this folder from its last checkpoint");
      sub.callback([args] {
        train::Communicator& comm = train::Communicator::world();
        if (!comm.distributed()) return run_train(*args);
        // A failure on one rank ends every rank at once (the others may be waiting for it in a
        // collective): one line naming the rank, then MPI_Abort.
        try {
          run_train(*args);
        } catch (const std::exception& e) {
          comm.abort(fmt::format("onnxforge: error: rank {} of {}: {}", comm.rank(), comm.size(),
                                 e.what()));
        }
      });
    }};

}  // namespace
}  // namespace onnxforge::cli
