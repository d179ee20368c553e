// Training experiments as TOML files (configs/*.toml, documented in configs/README.md), with
// `--set section.key=value` overrides. Unknown keys, wrong types and bad values are one clear
// error naming the key (and the file).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "data/transform.hpp"

namespace onnxforge::train {

struct ModelConfig {
  std::string name = "baseline";  // built-in model (baseline, improved, vgg16)
  std::vector<std::int64_t> input{3, 100, 100};
};

struct DataConfig {
  std::string train;  // image folder with one subfolder per class
  std::string val;    // empty: `validation_split` of train
  double validation_split = 0.0;
  std::string test;                  // optional: evaluated once at the end
  std::string label_map;             // "man=Male,woman=Female": folder -> class, any split
  std::vector<std::string> classes;  // label order; empty: sorted class names (Female=0, Male=1)
  // unit | imagenet | caffe | tf | explicit "order=rgb scale=1/255 mean=0,0,0 std=1,1,1"
  // (data::Preprocess::parse) | auto: the backbone's own, from its metadata (transfer only).
  std::string preprocess = "unit";
  int loader_threads = 1;  // background batch preparation
};

struct TrainLoopConfig {
  int epochs = 10;
  int batch_size = 32;
  std::uint64_t seed = 42;
  std::string backend = "onednn";
  int threads = 0;  // compute threads, 0 = all cores
  // Convolutions and dense layers: fp32 | bf16 | auto (per layer, measured; see Precision)
  std::string dtype = "auto";
  double clip_norm = 0.0;
  std::vector<double> class_weights;  // [negative, positive]; empty = 1, 1
  double threshold = 0.5;
  std::string positive_class;  // the class counted as positive; empty: the second (label 1)
};

struct ScheduleConfig {
  std::string name = "constant";  // constant | step | cosine | plateau
  int step_size = 10;             // step: epochs between decays
  double gamma = 0.1;             // step: decay factor
  double min_lr = 0.0;            // cosine floor, plateau floor
  int patience = 2;               // plateau: epochs without improvement
  double factor = 0.5;            // plateau: decay factor
  std::string monitor = "val_loss";
};

struct EarlyStoppingConfig {
  int patience = 0;  // 0 = off
  double min_delta = 0.0;
  bool restore_best = true;
  std::string monitor = "val_loss";
};

struct CheckpointConfig {
  std::string monitor = "val_loss";  // val_loss (min) | val_accuracy (max) | ...
};

// Transfer learning: a backbone (an .onnx file or a built-in model) cut at a node, given the
// model input size, its kept parameters frozen, and a new dense head trained on top.
struct TransferConfig {
  std::string backbone;                       // empty: no transfer learning (model.name is trained)
  std::string cut_at;                         // node (or value) whose output feeds the head
  std::vector<std::int64_t> head_units{256};  // hidden dense layers of the head
  std::string head_activation = "relu";       // relu | tanh | sigmoid | leaky_relu
  double head_dropout = 0.5;                  // after each hidden layer (0 = none)
  bool head_batch_norm = false;               // after each hidden dense layer
  bool cache_features = true;  // run the frozen backbone once per image (no augmentation)
  int cache_memory_mb = 2048;  // beyond this the feature cache spills to a mapped file
  int fine_tune_epochs = 0;    // optional second phase: unfreeze `unfreeze` and fine-tune
  double fine_tune_lr = 1e-5;
  std::string unfreeze;   // parameter-name prefix unfrozen in the second phase ("block5")
  int unfreeze_last = 0;  // or: the last N convolutions of the backbone (weights and biases)
};

// What the run's report adds to the metrics at train.threshold.
struct ReportConfig {
  // The threshold chosen on validation and applied to test: "youden" (Youden's J) or
  // "sensitivity:T" (the strictest threshold reaching sensitivity T on validation).
  std::string threshold = "youden";
  // A CSV of path,<attribute>,... (e.g. skin_tone, age, glasses) for the subgroup metrics, paths
  // relative to its folder; empty: none (the synthetic data write groups.csv beside them).
  std::string groups;
  bool explain = true;  // Grad-CAM and the most confident mistakes (trainers/explain.hpp)
};

struct TrainConfig {
  std::string name;  // run name; default: the config file's stem
  ModelConfig model;
  DataConfig data;
  // [augment] flip, rotation, shift, zoom, brightness, contrast: the loader's augmentation.
  data::Augment augment;
  TrainLoopConfig train;
  // [optimizer] name (sgd | adam | adamw: kind), lr (learning_rate: schedule.* changes it per
  // epoch), momentum, nesterov, beta1, beta2, epsilon, weight_decay.
  OptimizerSpec optimizer{.kind = OptimizerSpec::Kind::adam, .learning_rate = 0.001};
  ScheduleConfig schedule;
  EarlyStoppingConfig early_stopping;
  CheckpointConfig checkpoint;
  TransferConfig transfer;
  ReportConfig report;
};

// Reads `path`, applies `overrides` ("section.key=value", value in TOML syntax or a bare string),
// checks every key and value. Relative data paths are taken relative to the working directory.
TrainConfig load_config(const std::filesystem::path& path,
                        const std::vector<std::string>& overrides = {});
// The same from TOML text (`where` names it in errors).
TrainConfig parse_config(const std::string& text, const std::string& where,
                         const std::vector<std::string>& overrides = {});
// The fully resolved config as TOML (every key, defaults included).
std::string to_toml(const TrainConfig& config);

// optimizer.name of an optimizer kind: sgd, adam, adamw.
std::string optimizer_name(OptimizerSpec::Kind kind);

// Whether a monitored metric improves when it goes up (accuracy, auc) or down (loss).
bool higher_is_better(const std::string& metric);

}  // namespace onnxforge::train
