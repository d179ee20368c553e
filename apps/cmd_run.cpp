// onnxforge run [--data-root DIR] [--backbone vgg16.onnx] [--out DIR]: the whole workload in one
// command — baseline, improved CNN and VGG16 transfer learning trained on the gender data, each
// evaluated on validation and test, and one report comparing them.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "apps/backbone.hpp"
#include "apps/command.hpp"
#include "backends/backend.hpp"
#include "core/error.hpp"
#include "core/files.hpp"
#include "eval/report.hpp"
#include "eval/subgroups.hpp"
#include "graph/summary.hpp"
#include "importers/onnx_export.hpp"
#include "importers/onnx_import.hpp"
#include "trainers/distributed.hpp"
#include "trainers/explain.hpp"
#include "trainers/transfer.hpp"
#include "workloads/gender/attribute_backbone.hpp"
#include "workloads/gender/synthetic_faces.hpp"

namespace onnxforge::cli {
namespace {

namespace fs = std::filesystem;

struct RunArgs {
  std::string data_root;
  std::string backbone;
  std::string backbone_preprocess;
  std::string cut_at;
  std::string out = "runs/latest";
  std::string configs;
  std::string groups;
  std::string backend;
  int threads = -1;
  std::string dtype;
  bool full_size = false;
  gender::BackbonePretraining pretraining;  // of the default backbone
  double epochs_scale = 1.0;
};

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

fs::path configs_dir(const RunArgs& args) {
  if (!args.configs.empty()) return args.configs;
  if (fs::exists("configs/baseline.toml")) return "configs";
  return fs::path(ONNXFORGE_SOURCE_DIR) / "configs";
}

train::TrainConfig load(const RunArgs& args, const std::string& name, const fs::path& gender,
                        const fs::path& faces) {
  train::TrainConfig c = train::load_config(configs_dir(args) / (name + ".toml"));
  c.data.train = (gender / "train").string();
  c.data.val = (gender / "test").string();
  c.data.test = faces.string();
  c.data.label_map = "man=Male,woman=Female";
  if (!args.backend.empty()) c.train.backend = args.backend;
  if (args.threads >= 0) c.train.threads = args.threads;
  if (!args.dtype.empty()) c.train.dtype = args.dtype;
  c.train.epochs = std::max(1, static_cast<int>(c.train.epochs * args.epochs_scale + 0.5));
  return c;
}

// The decoded splits of the last config, reused while the next one reads the same folders at the
// same size (the three configs of `run` do by default): each image is decoded once.
const train::TrainData& data_for(const train::TrainConfig& config) {
  static std::string loaded_key;
  static std::optional<train::TrainData> loaded;
  const std::string key =
      fmt::format("{}|{}|{}|{}|{}|{}|{}", config.data.train, config.data.val,
                  config.data.validation_split, config.data.test, config.data.label_map,
                  fmt::join(config.data.classes, ","), fmt::join(config.model.input, "x"));
  if (!loaded || key != loaded_key) {
    loaded.reset();
    loaded = train::load_data(config, data::stderr_warnings());
    loaded_key = key;
  }
  return *loaded;
}

void export_model(const Graph& model, const train::TrainConfig& config, const fs::path& path) {
  Graph clean = model;
  clean.name = path.parent_path().filename().string();
  train::record_preprocessing(clean, config);
  export_onnx(clean, path.string());
}

void run_all(const RunArgs& args) {
  if (train::Communicator::world().distributed()) {
    fail(
        "onnxforge run is one process (every rank would write the same run folders): under "
        "mpirun train each model with `onnxforge train CONFIG.toml` (docs/DISTRIBUTED.md)");
  }
  // Bad options fail before any data is generated or read.
  if (!args.dtype.empty()) parse_precision(args.dtype);
  if (args.backbone.empty()) gender::check_pretraining(args.pretraining, "--backbone-");
  const auto start = std::chrono::steady_clock::now();
  const fs::path out = args.out;
  fs::create_directories(out);
  const bool interactive = ::isatty(::fileno(stdout)) != 0;

  // 1. Data: the user's folders, or the synthetic faces (generated once, then reused).
  fs::path root = args.data_root;
  gender::SynthOptions synth;
  if (root.empty()) {
    synth.out = "datasets/synthetic";
    if (args.full_size) {
      synth.use_full_size();
      synth.out = "datasets/synthetic-full";
    }
    root = synth.out;
  }
  const fs::path gender = root / "gender";
  const fs::path faces = root / "faces";

  // Every config and a given backbone are checked before any data is made or anything trains:
  // a wrong key, file, cut node or input size fails in seconds.
  auto baseline_config = load(args, "baseline", gender, faces);
  auto improved_config = load(args, "improved", gender, faces);
  auto config = load(args, "transfer", gender, faces);
  if (!args.cut_at.empty()) config.transfer.cut_at = args.cut_at;
  if (!args.backbone_preprocess.empty()) config.data.preprocess = args.backbone_preprocess;
  std::optional<Graph> backbone;
  if (!args.backbone.empty()) {
    config.transfer.backbone = args.backbone;
    backbone = load_backbone(config);
    say(fmt::format("[0/5] Backbone {} cut at '{}': features {}", args.backbone,
                    config.transfer.cut_at,
                    to_string(backbone->value(backbone->outputs[0]).shape)));
  }

  if (args.data_root.empty()) {
    if (gender::synthetic_faces_ready(synth)) {
      say("[1/5] Synthetic faces already in " + root.string());
    } else {
      say("[1/5] Generating synthetic faces into " + root.string() + " (the default data)");
      const auto s = gender::generate_synthetic_faces(synth);
      say(fmt::format("      {} images in {:.1f} s", s.images, s.seconds));
    }
  } else {
    say("[1/5] Data from " + root.string());
  }
  for (const auto& need : {gender / "train", gender / "test", faces}) {
    if (!fs::is_directory(need)) {
      fail(
          "{}: missing; --data-root must hold gender/train/{{Female,Male}}, "
          "gender/test/{{Female,Male}} and faces/{{man,woman}}",
          need.string());
    }
  }

  // Subgroup metrics: --groups, else the groups.csv beside gender/ and faces/ (the synthetic data
  // write one), read now so that a bad file fails before anything trains.
  const fs::path groups = !args.groups.empty()              ? fs::path(args.groups)
                          : fs::exists(root / "groups.csv") ? root / "groups.csv"
                                                            : fs::path();
  if (!groups.empty()) {
    const auto table = eval::read_groups_csv(groups);
    say(fmt::format("      Subgroups from {}: {}", groups.string(),
                    fmt::join(table.attributes, ", ")));
    for (auto* c : {&baseline_config, &improved_config, &config})
      c->report.groups = groups.string();
  }

  train::TrainOptions options;
  options.interactive = interactive;
  std::vector<fs::path> runs;

  // 2, 3. The baseline and the improved CNN.
  const char* steps[] = {"[2/5] Baseline CNN", "[3/5] Improved CNN with augmentation"};
  int step = 0;
  for (const auto* cnn : {&baseline_config, &improved_config}) {
    const std::string name = step == 0 ? "baseline" : "improved";
    say(steps[step++]);
    const auto& cnn_data = data_for(*cnn);
    options.run_dir = out / name;
    fs::remove_all(options.run_dir);
    Graph trained = train::build_configured_model(*cnn);
    const auto result = train::train_model(*cnn, trained, cnn_data, options);
    train::store_parameters(trained, *result.program);
    export_model(trained, *cnn, options.run_dir / "model.onnx");
    train::explain_and_report(*cnn, trained, cnn_data, options.run_dir, say);
    runs.push_back(options.run_dir);
  }

  // 4. Transfer learning from an ONNX VGG16.
  const auto& data = data_for(config);
  std::string backbone_note;
  if (!backbone) {
    // The synthetic backbone is trained on [0, 1] RGB pixels (older cached ones lack metadata).
    if (config.data.preprocess == "auto") config.data.preprocess = "unit";
    const gender::BackbonePretraining& pretraining = args.pretraining;
    const fs::path backbone_dir = root / "backbone";
    say(fmt::format(
        "[4/5] No pretrained VGG16 can be downloaded here: the default backbone is a width-{} "
        "VGG16{} that onnxforge pretrains on a synthetic source task ({} attributes of the "
        "person drawn independently of gender: glasses, age, hair colour, skin tone, clothes, "
        "expression, pose; {} faces of other people), once, in {}",
        pretraining.width, pretraining.batch_norm ? " (with batch normalization)" : "",
        gender::source_attributes().size(), pretraining.images, backbone_dir.string()));
    const auto file = gender::default_backbone(
        backbone_dir, config, pretraining, [](const std::string& line) { say(line); },
        [&](const Graph& g, const fs::path& path) { export_model(g, config, path); });
    say((file.reused ? "      reusing " : "      exported to ") + file.onnx.string());
    if (!file.reused) say("      " + file.description);
    backbone_note = "Backbone: " + file.onnx.string() + " - " + file.description;
    const fs::path backbone_path = file.onnx;
    config.transfer.backbone = backbone_path.string();
    backbone = load_backbone(config);
  } else {
    say("[4/5] Transfer learning from " + args.backbone);
    backbone_note = "Backbone: " + args.backbone + " (given with --backbone), cut at '" +
                    config.transfer.cut_at + "', preprocessing '" + config.data.preprocess + "'.";
  }
  options.run_dir = out / "transfer";
  fs::remove_all(options.run_dir);
  fs::create_directories(options.run_dir);
  auto transfer = train::train_transfer(config, *backbone, data, options);
  // The final model is the fine-tuned one when there is a second phase (its own run folder).
  const fs::path final_dir = train::final_run_dir(config, options.run_dir);
  for (const auto& dir : {options.run_dir, final_dir}) {
    eval::write_file_atomic(dir / "summary.txt", backbone_note + "\n\n" + summary(transfer.model));
  }
  export_model(transfer.model, config, options.run_dir / "model.onnx");
  // The run report already drawn by the loop is redrawn with the backbone note in its summary.
  train::explain_and_report(config, transfer.model, data, final_dir, say);
  runs.push_back(final_dir);

  // 5. The comparison report.
  say("[5/5] Comparison report");
  std::vector<eval::RunRecord> records;
  for (const auto& r : runs) records.push_back(eval::load_run(r));
  records.back().name = "transfer";
  eval::ReportOptions report = train::report_options(baseline_config);
  if (args.data_root.empty()) {
    report.notes.push_back(
        "Data: onnxforge's synthetic faces (no internet here), in the layouts of the real sets. "
        "Validation is gender/test, drawn like gender/train (a studio camera). The test set "
        "faces/ is another source, as the real second dataset is: the same kind of people, but "
        "other image sizes (64-300 px, not square, resized to 100x100 on load), smaller and "
        "off-centre faces, more head turn and tilt, outdoor, indoor, night and saturated "
        "backgrounds, stronger and coloured light, more blur and noise, JPEG quality 40-90 and "
        "6% greyscale. A model trained on images drawn like faces/ reaches AUC >= 0.95 there "
        "(tests/workloads/learnable_test.cpp): what the models lose on test is the shift.");
  }
  report.notes.push_back(backbone_note);
  report.title = "Gender recognition: baseline vs improved CNN vs VGG16 transfer";
  const auto written = eval::write_report(records, out, report);
  for (const auto& w : written.warnings) say("warning: " + w);
  const double minutes =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 60.0;
  say(fmt::format("Done in {:.1f} min. Run folders: {}/{{baseline,improved,transfer}}", minutes,
                  out.string()));
  say("Report: " + fs::absolute(written.html).string());
}

const Registration registration{
    5, "run",
    "The whole workload in one command: baseline CNN, improved CNN with augmentation and "
    "VGG16 "
    "transfer learning (ONNX backbone, frozen, new head), each trained and evaluated on "
    "validation and test, then one report comparing them. Without --data-root it generates "
    "the synthetic faces (cached in datasets/synthetic).",
    [](CLI::App& sub) {
      auto args = std::make_shared<RunArgs>();
      sub.add_option(
          "--data-root", args->data_root,
          "folder with gender/train/{Female,Male}, gender/test/{Female,Male} (validation) "
          "and faces/{man,woman} (test)");
      sub.add_option("--backbone", args->backbone,
                     "VGG16 as an .onnx file (default: pretrain a small one on synthetic data)");
      sub.add_option(
          "--backbone-preprocess", args->backbone_preprocess,
          "preprocessing of --backbone (default: its metadata's): unit, imagenet (model zoo, "
          "torchvision), caffe (Keras VGG16/ResNet50), tf (Keras MobileNetV2) or explicit "
          "'order=rgb scale=1/255 mean=M,M,M std=S,S,S'");
      sub.add_option(
          "--cut-at", args->cut_at,
          "where the backbone is cut: a node or layer name (block5_pool, features.30) or "
          "last-pool (default from configs/transfer.toml)");
      sub.add_option("--out", args->out, "output folder")->capture_default_str();
      sub.add_option("--groups", args->groups,
                     "CSV of path,<attribute>,... for the subgroup metrics (default: groups.csv "
                     "beside gender/ and faces/, which the synthetic data have)");
      sub.add_option("--configs", args->configs,
                     "folder with baseline.toml, improved.toml, transfer.toml (default: configs/)");
      add_compute_options(sub, args->backend, args->threads, &args->dtype);
      sub.add_flag("--full-size", args->full_size,
                   "synthetic data at the real datasets' sizes (11,135 / 1,279 / 27,167)");
      sub.add_option("--backbone-width", args->pretraining.width,
                     "the default backbone's VGG16 width (when no --backbone is given)")
          ->capture_default_str();
      sub.add_option("--backbone-images", args->pretraining.images,
                     "source faces the default backbone is pretrained on")
          ->capture_default_str();
      sub.add_option("--backbone-epochs", args->pretraining.epochs,
                     "epochs of the default backbone's pretraining")
          ->capture_default_str();
      sub.add_option("--epochs-scale", args->epochs_scale,
                     "multiply every config's epochs (e.g. 0.25 for a quick look)");
      sub.callback([args] { run_all(*args); });
    }};

}  // namespace
}  // namespace onnxforge::cli
