// The training loop: a model, its binary cross-entropy on logits, an optimizer and callbacks
// (trainers/callbacks.hpp: learning-rate schedule, checkpoint of the best, early stopping,
// progress, the last checkpoint), atomic checkpoints
// and exact resume; at the end, validation and test evaluated with eval/ into the run folder:
//
//   RUN/config.toml        the resolved config          RUN/summary.txt   the model summary
//   RUN/history.csv        one row per epoch            RUN/train.log     the progress lines
//   RUN/checkpoints/last.ckpt, best.ckpt                RUN/val/, RUN/test/ metrics.json,
//   RUN/plots/             loss, accuracy, ROC, confusion figures       predictions.csv
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "data/loader.hpp"
#include "eval/io.hpp"
#include "eval/report.hpp"
#include "graph/graph.hpp"
#include "trainers/batches.hpp"
#include "trainers/config.hpp"

namespace onnxforge::train {

struct TrainData {
  data::ImageCache train;
  data::ImageCache val;
  std::optional<data::ImageCache> test;
};

// Scans and decodes the configured folders (decode on all cores); bad files are skipped with one
// warning line each. Throws Error naming the folder when a split cannot be used.
TrainData load_data(const TrainConfig& config, const data::WarningSink& warn);

// The configured built-in model at the configured input size, initialised from train.seed.
Graph build_configured_model(const TrainConfig& config);

// A model whose output is a sigmoid probability, given a fixed batch, a `labels` input and the
// mean binary cross-entropy on the sigmoid's input (the logits), named `loss`.
struct TrainingGraph {
  Graph graph;
  std::string image;  // the image input
  std::string labels = "labels";
  std::string logits;
  std::string probability;  // the model output
  std::string loss = "loss";
};
TrainingGraph make_training_graph(const Graph& model, int batch,
                                  const std::vector<double>& class_weights = {});

// The batch options of a config in training (shuffled, augmented, the last partial batch
// dropped) or evaluation mode (in order), for images and cached features alike.
data::BatchOptions batch_options(const TrainConfig& config, data::Mode mode);

// Writes the preprocessing `config` trains with into `model`'s metadata ("onnxforge.preprocess",
// data::Preprocess::describe()), so that the exported model.onnx says how to feed it.
void record_preprocessing(Graph& model, const TrainConfig& config);

// The report options a config asks for ([report] threshold and groups).
eval::ReportOptions report_options(const TrainConfig& config);

// The batches of each split: train (shuffled, maybe augmented), val and test (in order).
struct TrainSources {
  std::unique_ptr<BatchSource> train, val, test;  // test may be null
  std::vector<std::string> classes;               // label i is classes[i]
};
TrainSources image_sources(const TrainConfig& config, const TrainData& data);
// Every image of a cache in order, never augmented, with the configured preprocessing.
std::unique_ptr<BatchSource> images_in_order(const TrainConfig& config,
                                             const data::ImageCache& images);

// Scores of a source in inference mode, in its order (the last partial batch padded); the
// metrics come from eval/.
struct Scores {
  std::vector<double> probability;
  double loss = 0.0;  // mean binary cross-entropy
};
Scores score_dataset(Program& program, const TrainingGraph& tg, BatchSource& source);

// Under MPI (trainers/distributed.hpp): the rows of the global batch this rank computes
// (train.batch_size on one process); the evaluation source of this rank's slice of a split (one
// process: images_in_order); and the scores of a whole split from every rank's slice, gathered
// in order on every rank (one process: score_dataset).
int local_batch_size(const TrainConfig& config);
std::unique_ptr<BatchSource> shard_in_order(const TrainConfig& config,
                                            const data::ImageCache& images);
Scores score_all(Program& program, const TrainingGraph& tg, BatchSource& source);

struct TrainOptions {
  std::filesystem::path run_dir;
  bool resume = false;           // continue from run_dir/checkpoints/last.ckpt
  bool final_evaluation = true;  // val/ and test/ metrics, plots and report.html at the end
  std::function<void(const std::string&)> print;  // progress lines; default: stdout
  bool interactive = false;                       // redraw one progress line per step (a terminal)
  std::string summary;  // summary.txt; default: the summary of the trained model
  // Layers of another Program that this run depends on (the frozen backbone whose features a
  // transfer head trains on), written to layers.json before the trained Program's own.
  std::vector<Program::LayerChoice> feature_layers;
};

// layers.json of a run folder: how each compute-heavy layer ran (dtype, implementation, why),
// for `program` ("training", "features").
nlohmann::json layers_json(const std::vector<Program::LayerChoice>& layers,
                           const std::string& program);

struct TrainResult {
  std::vector<eval::EpochRecord> history;
  int best_epoch = 0;  // 1-based
  double best_value = 0.0;
  bool stopped_early = false;
  double seconds = 0.0;
  std::unique_ptr<Program> program;  // the trained program (best weights when restored)
  TrainingGraph training_graph;
};

TrainResult train_model(const TrainConfig& config, const Graph& model, TrainSources& sources,
                        const TrainOptions& options);
// The same on decoded images.
TrainResult train_model(const TrainConfig& config, const Graph& model, const TrainData& data,
                        const TrainOptions& options);

// The learning rate of `epoch` (0-based) for the schedules without state (constant, step,
// cosine); plateau starts at optimizer.lr and is reduced by ReduceLrOnPlateau.
double scheduled_lr(const TrainConfig& config, int epoch);

}  // namespace onnxforge::train
