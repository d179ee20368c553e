#include "trainers/trainer.hpp"

#include <fmt/format.h>

#include <unistd.h>
#include <sstream>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numbers>

#include "core/error.hpp"
#include "eval/evaluate.hpp"
#include "eval/report.hpp"
#include "graph/models.hpp"
#include "graph/summary.hpp"
#include "trainers/callbacks.hpp"
#include "trainers/checkpoint.hpp"
#include "trainers/distributed.hpp"

namespace onnxforge::train {

namespace fs = std::filesystem;

namespace {

double stable_bce(double logit, double label) {
  return std::max(logit, 0.0) - logit * label + std::log1p(std::exp(-std::abs(logit)));
}

// The label of train.positive_class among the data's two classes (label i is classes[i]; empty:
// label 1, the second class in sorted order). Refused with one line when it names neither.
int positive_label(const TrainConfig& config, const std::vector<std::string>& classes) {
  if (classes.size() != 2) {
    fail("{}: binary training needs two classes, the data has {}", config.data.train,
         classes.size());
  }
  return eval::positive_label_of(config.train.positive_class, classes,
                                 config.data.train + ": train.positive_class");
}

}  // namespace

nlohmann::json layers_json(const std::vector<Program::LayerChoice>& layers,
                           const std::string& program) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& l : layers) {
    rows.push_back({{"program", program},
                    {"node", l.node},
                    {"op", l.op},
                    {"dtype", l.dtype},
                    {"implementation", l.implementation},
                    {"why", l.why}});
  }
  return rows;
}

namespace {

std::vector<eval::Prediction> predictions_of(const BatchSource& source, const Scores& scores,
                                             bool with_paths) {
  std::vector<eval::Prediction> predictions;
  predictions.reserve(source.size());
  for (std::size_t i = 0; i < source.size(); ++i) {
    predictions.push_back({with_paths ? source.paths()[i].string() : std::string(),
                           source.labels()[i], scores.probability[i]});
  }
  return predictions;
}

}  // namespace

TrainData load_data(const TrainConfig& config, const data::WarningSink& warn) {
  data::ScanOptions scan;
  scan.classes = config.data.classes;
  if (!config.data.label_map.empty()) scan.label_map = data::parse_label_map(config.data.label_map);
  data::LoadOptions load;
  load.height = static_cast<int>(config.model.input[1]);
  load.width = static_cast<int>(config.model.input[2]);
  load.warn = warn;

  TrainData out;
  auto train_folder = data::scan_image_folder(config.data.train, scan);
  scan.classes = train_folder.classes;  // every split uses the training labels
  data::ImageFolder val_folder;
  if (config.data.val.empty()) {
    auto split =
        data::split_validation(train_folder, config.data.validation_split, config.train.seed);
    train_folder = std::move(split.train);
    val_folder = std::move(split.validation);
  } else {
    val_folder = data::scan_image_folder(config.data.val, scan);
  }
  out.train = data::load_images(train_folder, load);
  out.val = data::load_images(val_folder, load);
  if (!config.data.test.empty()) {
    out.test = data::load_images(data::scan_image_folder(config.data.test, scan), load);
  }
  return out;
}

Graph build_configured_model(const TrainConfig& config) {
  ModelOptions options;
  options.input = config.model.input;
  options.seed = config.train.seed;
  return build_model(config.model.name, options);
}

TrainingGraph make_training_graph(const Graph& model, int batch,
                                  const std::vector<double>& class_weights) {
  TrainingGraph tg;
  if (model.inputs.size() != 1 || model.outputs.size() != 1) {
    fail("model '{}' must have one image input and one output to train", model.name);
  }
  tg.graph = with_batch(model, batch);
  tg.image = model.inputs[0].name;
  tg.probability = model.outputs[0];
  const Node* head = tg.graph.producer(tg.probability);
  if (!head || !head->is(OpId::Sigmoid) ||
      element_count(tg.graph.value(tg.probability).shape) != static_cast<std::int64_t>(batch)) {
    fail(
        "model '{}' must end in a Dense 1 + Sigmoid (binary classification) to train with "
        "binary cross-entropy; its output '{}' is {}",
        model.name, tg.probability, head ? head->op : "an input");
  }
  tg.logits = head->inputs.at(0);
  const auto& logits_info = tg.graph.value(tg.logits);
  tg.graph.inputs.push_back({tg.labels, logits_info.dtype, logits_info.shape});
  Node loss{tg.loss,
            std::string(op_name(OpId::BinaryCrossEntropyWithLogits)),
            {tg.logits, tg.labels},
            {tg.loss},
            {}};
  if (!class_weights.empty()) {
    loss.attributes["weight_negative"] = class_weights.at(0);
    loss.attributes["weight_positive"] = class_weights.at(1);
  }
  tg.graph.nodes.push_back(loss);
  tg.graph.validate();
  return tg;
}

data::BatchOptions batch_options(const TrainConfig& config, data::Mode mode) {
  data::BatchOptions options;
  options.batch_size = config.train.batch_size;
  options.mode = mode;
  options.drop_last = true;  // training: the Program has a fixed batch; the order changes
  options.seed = config.train.seed;
  options.preprocess = data::Preprocess::parse(config.data.preprocess);
  options.threads = config.data.loader_threads;
  if (mode == data::Mode::train) options.augment = config.augment;
  return options;
}

eval::ReportOptions report_options(const TrainConfig& config) {
  eval::ReportOptions options;
  options.threshold_rule = eval::parse_threshold_rule(config.report.threshold, "report.threshold");
  options.groups = config.report.groups;
  return options;
}

void record_preprocessing(Graph& model, const TrainConfig& config) {
  model.metadata["onnxforge.preprocess"] =
      data::Preprocess::parse(config.data.preprocess).describe();
}

std::unique_ptr<BatchSource> images_in_order(const TrainConfig& config,
                                             const data::ImageCache& images) {
  return image_batches(images, batch_options(config, data::Mode::evaluate));
}

int local_batch_size(const TrainConfig& config) {
  const Shard shard = Communicator::world().shard();
  const auto rows = shard_range(static_cast<std::size_t>(config.train.batch_size), shard).count;
  if (rows == 0) {
    fail("train.batch_size {} is smaller than the {} MPI ranks: every rank needs at least one row",
         config.train.batch_size, shard.ranks);
  }
  return static_cast<int>(rows);
}

std::unique_ptr<BatchSource> shard_in_order(const TrainConfig& config,
                                            const data::ImageCache& images) {
  const Communicator& comm = Communicator::world();
  if (!comm.distributed()) return images_in_order(config, images);
  return sharded_image_batches(images, batch_options(config, data::Mode::evaluate),
                               {.shard = comm.shard(),
                                .batch_size = local_batch_size(config),
                                .training = false,
                                .seed = config.train.seed});
}

TrainSources image_sources(const TrainConfig& config, const TrainData& data) {
  const Communicator& comm = Communicator::world();
  TrainSources sources;
  if (comm.distributed()) {
    sources.train = sharded_image_batches(data.train, batch_options(config, data::Mode::train),
                                          {.shard = comm.shard(),
                                           .batch_size = config.train.batch_size,
                                           .training = true,
                                           .seed = config.train.seed});
  } else {
    sources.train = image_batches(data.train, batch_options(config, data::Mode::train));
  }
  sources.val = shard_in_order(config, data.val);
  if (data.test) sources.test = shard_in_order(config, *data.test);
  sources.classes = data.train.classes;
  return sources;
}

Scores score_all(Program& program, const TrainingGraph& tg, BatchSource& source) {
  Communicator& comm = Communicator::world();
  Scores scores = score_dataset(program, tg, source);
  if (!comm.distributed()) return scores;
  // Every rank scored its slice: the whole split, in order, on every rank (so that every rank
  // computes the same metrics and takes the same callback decisions); the loss summed exactly.
  double sums[2] = {scores.loss * static_cast<double>(scores.probability.size()),
                    static_cast<double>(scores.probability.size())};
  comm.sum(sums, "the allreduce of the evaluation loss");
  scores.probability = comm.allgather(scores.probability, "the gather of the evaluation scores");
  scores.loss = sums[0] / std::max(1.0, sums[1]);
  if (scores.probability.size() != source.size()) {
    fail("evaluation gathered {} scores for {} images", scores.probability.size(), source.size());
  }
  return scores;
}

Scores score_dataset(Program& program, const TrainingGraph& tg, BatchSource& source) {
  Tensor inputs(DType::f32, tg.graph.value(tg.image).shape);
  Tensor labels(DType::f32, tg.graph.value(tg.labels).shape);
  Scores scores;
  scores.probability.reserve(source.size());
  source.start_epoch(0);
  double loss_sum = 0;
  for (int n; (n = source.next(inputs, labels)) > 0;) {
    program.set_input(tg.image, inputs);
    program.forward(Mode::inference);
    const Tensor probability = program.fetch(tg.probability);
    const Tensor logits = program.fetch(tg.logits);
    for (int i = 0; i < n; ++i) {
      scores.probability.push_back(probability.value(i));
      loss_sum += stable_bce(logits.value(i), labels.value(i));
    }
  }
  scores.loss = loss_sum / static_cast<double>(std::max<std::size_t>(1, scores.probability.size()));
  return scores;
}

double scheduled_lr(const TrainConfig& config, int epoch) {
  const auto& s = config.schedule;
  const double lr = config.optimizer.learning_rate;
  if (s.name == "step") return lr * std::pow(s.gamma, epoch / std::max(1, s.step_size));
  if (s.name == "cosine") {
    const double progress = static_cast<double>(epoch) / std::max(1, config.train.epochs);
    return s.min_lr + (lr - s.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  }
  return lr;
}

TrainResult train_model(const TrainConfig& config, const Graph& model, const TrainData& data,
                        const TrainOptions& options) {
  TrainSources sources = image_sources(config, data);
  return train_model(config, model, sources, options);
}

namespace {

// Rank 0's parameters (and optimizer state) on every rank.
void broadcast_checkpoint(Communicator& comm, Checkpoint& c, const std::string& what) {
  if (!comm.distributed()) return;
  std::string bytes = comm.root() ? encode_checkpoint(c) : std::string();
  comm.broadcast(bytes, what);
  if (!comm.root()) c = decode_checkpoint(bytes, fmt::format("{} (from rank 0)", what));
}

// Batch-norm running statistics (inputs 3 and 4 of BatchNormalization) that are initializers.
std::vector<std::string> running_statistics(const Graph& graph) {
  std::vector<std::string> names;
  for (const auto& node : graph.nodes) {
    if (!node.is(OpId::BatchNormalization) || node.inputs.size() < 5) continue;
    for (std::size_t i : {3u, 4u}) {
      if (graph.find_initializer(node.inputs[i])) names.push_back(node.inputs[i]);
    }
  }
  return names;
}

// Each rank's batch norms saw only its shards: their running statistics become the mean over
// the ranks (the same on every rank, so evaluation and checkpoints agree).
void average_running_statistics(Communicator& comm, Program& program,
                                const std::vector<std::string>& names) {
  if (!comm.distributed() || names.empty()) return;
  std::vector<Tensor> tensors;
  std::vector<double> values;
  for (const auto& name : names) {
    tensors.push_back(program.parameter(name));
    for (float v : tensors.back().data<float>()) values.push_back(v);
  }
  comm.sum(values, "the allreduce of the batch-norm statistics");
  std::size_t at = 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    for (float& v : tensors[i].data<float>()) {
      v = static_cast<float>(values[at++] / comm.size());
    }
    program.set_parameter(names[i], tensors[i]);
  }
}

// The training Program of a config, alike on every rank (rank 0's per-layer choices and initial
// weights), and under MPI the allreduce of its gradients.
struct Compiled {
  std::unique_ptr<Program> program;
  std::unique_ptr<GradientAllreduce> allreduce;
  std::string backend;
  int threads = 0;
};

Compiled compile_training(const TrainConfig& config, const TrainingGraph& tg, Communicator& comm) {
  CompileOptions compile;
  compile.training = true;
  compile.loss = tg.loss;
  compile.keep = {tg.logits, tg.probability};
  compile.threads = config.train.threads;
  compile.precision = parse_precision(config.train.dtype);
  if (comm.distributed() && compile.threads == 0) compile.threads = default_rank_threads();
  // Dropout masks: rank 0 draws one process's; the others their own (independent, not copies).
  compile.seed =
      config.train.seed + 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(comm.rank());
  const auto backend = make_backend(config.train.backend);
  std::string why;
  if (!backend->available(&why)) fail("backend '{}' is not available: {}", backend->name(), why);
  Compiled out;
  out.backend = backend->name();
  out.threads = compile.threads;
  out.program = compile_alike(comm, *backend, tg.graph, compile, "the trained model");
  if (comm.distributed()) {
    out.allreduce = std::make_unique<GradientAllreduce>(comm, tg.graph);
    // Every rank starts from rank 0's weights (they are seeded alike; this makes it certain).
    Checkpoint initial;
    if (comm.root()) {
      for (const auto& init : tg.graph.initializers)
        initial.parameters[init.name] = out.program->parameter(init.name);
    }
    broadcast_checkpoint(comm, initial, "the broadcast of the initial weights");
    for (const auto& [name, value] : initial.parameters) out.program->set_parameter(name, value);
  }
  return out;
}

// One epoch: the training steps (callbacks.on_batch_end after each), then the validation
// metrics, its record appended to state.history.
class EpochRunner {
 public:
  EpochRunner(TrainerContext& context, const TrainingGraph& tg, TrainSources& sources,
              GradientAllreduce* allreduce, const eval::MetricsOptions& metrics)
      : context_(context),
        tg_(tg),
        sources_(sources),
        allreduce_(allreduce),
        metrics_(metrics),
        statistics_(running_statistics(tg.graph)),
        images_(DType::f32, tg.graph.value(tg.image).shape),
        labels_(DType::f32, tg.graph.value(tg.labels).shape) {
    metrics_.bootstrap_resamples = 0;  // intervals only in the final evaluation
  }

  void run(TrainerState& s, Callbacks& callbacks) {
    BatchSource& train = *sources_.train;
    OptimizerSpec spec = context_.config.optimizer;
    spec.learning_rate = s.lr;
    train.start_epoch(s.epoch);
    EpochProgress& p = s.progress;
    p = EpochProgress{};
    p.start = Clock::now();
    p.steps = train.batches_per_epoch();
    const double waited_before = allreduce_ ? allreduce_->seconds_waiting() : 0.0;
    for (int n; (n = train.next(images_, labels_)) > 0;) {
      ++p.step;
      step(s, n, spec);
      callbacks.on_batch_end(s);
    }
    p.train_seconds = seconds_since(p.start);
    average_running_statistics(context_.comm, context_.program, statistics_);
    // Every epoch's validation metrics come from eval/, the code of the final evaluation.
    const Scores val = score_all(context_.program, tg_, *sources_.val);
    const eval::Metrics val_metrics =
        eval::compute_metrics(predictions_of(*sources_.val, val, false), metrics_);
    p.val_auc = val_metrics.auc;
    if (allreduce_) p.allreduce_wait = allreduce_->seconds_waiting() - waited_before;
    s.history.push_back({static_cast<double>(s.epoch + 1), p.train_loss(), p.train_accuracy(),
                         val.loss, val_metrics.accuracy.value_or(NAN), s.lr, seconds_since(p.start),
                         static_cast<double>(p.seen) / p.train_seconds,
                         val_metrics.auc.value_or(NAN)});
  }

 private:
  void step(TrainerState& s, int n, const OptimizerSpec& spec) {
    const TrainConfig& config = context_.config;
    Communicator& comm = context_.comm;
    Program& program = context_.program;
    EpochProgress& p = s.progress;
    if (comm.distributed()) {
      set_last_words(fmt::format(
          "onnxforge: rank {} of {} stopped by a signal in epoch {} step {} (when one rank "
          "fails the launcher ends the others); {}",
          comm.rank(), comm.size(), s.epoch + 1, p.step,
          s.epoch > s.start_epoch || context_.options.resume
              ? fmt::format("continue from the checkpoint of epoch {} with --resume {}", s.epoch,
                            context_.run().string())
              : std::string("no checkpoint yet (one is written at the end of every epoch)")));
    }
    maybe_inject_failure(comm.rank(),
                         static_cast<std::int64_t>(s.epoch) * static_cast<std::int64_t>(p.steps) +
                             static_cast<std::int64_t>(p.step));
    program.set_input(tg_.image, images_);
    program.set_input(tg_.labels, labels_);
    program.forward(Mode::training);
    double loss = program.fetch(tg_.loss).value(0);
    const Tensor probability = program.fetch(tg_.probability);
    std::size_t step_correct = 0;
    for (int i = 0; i < n; ++i) {
      // The configured threshold, as the validation metrics use it.
      step_correct += (probability.value(i) >= config.train.threshold) == (labels_.value(i) >= 0.5);
    }
    auto check_loss = [&] {
      if (std::isfinite(loss)) return;
      const fs::path last = context_.last_path();
      fail("training stopped: the loss is {} at epoch {} step {}; the last good checkpoint is {}",
           loss, s.epoch + 1, p.step, fs::exists(last) ? last.string() : std::string("(none yet)"));
    };
    if (!comm.distributed()) check_loss();
    program.backward();
    if (comm.distributed()) {
      // The mean loss over the global batch is sum_r (n_r / B) * (rank r's mean loss): each
      // rank's gradient is weighted by its shard's share before the sum.
      double stats[3] = {loss * n, static_cast<double>(step_correct), static_cast<double>(n)};
      allreduce_->run(program, static_cast<double>(n) / config.train.batch_size, stats);
      loss = stats[0] / stats[2];
      step_correct = static_cast<std::size_t>(stats[1]);
      n = static_cast<int>(stats[2]);
      check_loss();  // the global loss: every rank stops alike
    }
    p.correct += step_correct;
    p.loss_sum += loss * n;
    p.seen += static_cast<std::size_t>(n);
    double scale = 1.0;
    if (config.train.clip_norm > 0) {
      const double norm = program.gradient_norm();
      if (norm > config.train.clip_norm) scale = config.train.clip_norm / norm;
    }
    program.update(spec, scale);
  }

  TrainerContext& context_;
  const TrainingGraph& tg_;
  TrainSources& sources_;
  GradientAllreduce* allreduce_;
  eval::MetricsOptions metrics_;
  std::vector<std::string> statistics_;
  Tensor images_, labels_;
};

// At the end: val/ and test/ evaluated into the run folder (eval/), and the report.
void final_evaluation(TrainerContext& context, const TrainingGraph& tg, TrainSources& sources,
                      const eval::MetricsOptions& metrics) {
  const bool root = context.comm.root();
  auto evaluate = [&](BatchSource& source, const std::string& split) {
    const Scores s = score_all(context.program, tg, source);
    if (!root) return;
    const auto predictions = predictions_of(source, s, true);
    eval::SplitOptions split_options;
    split_options.split_name = split;
    split_options.model_name = context.config.name;
    const auto out =
        eval::evaluate_split(predictions, metrics, context.run() / split, split_options);
    for (const auto& w : out.warnings) context.say("warning: " + split + ": " + w);
    context.say(fmt::format(
        "{:>4}: accuracy {:.4f}  AUC {}  ({} images)", split, out.metrics.accuracy.value_or(NAN),
        out.metrics.auc ? fmt::format("{:.4f}", *out.metrics.auc) : "n/a", source.size()));
  };
  evaluate(*sources.val, "val");
  if (sources.test) evaluate(*sources.test, "test");
  if (root) {
    eval::write_file_atomic(context.run() / "train.log", context.log);
    const std::vector<eval::RunRecord> runs{eval::load_run(context.run(), metrics)};
    const auto report = eval::write_report(runs, context.run(), report_options(context.config));
    for (const auto& w : report.warnings) context.say("warning: " + w);
    context.say("Report: " + report.html.string());
  }
}

}  // namespace

TrainResult train_model(const TrainConfig& config, const Graph& model, TrainSources& sources,
                        const TrainOptions& options) {
  Communicator& comm = Communicator::world();
  const bool root = comm.root();
  const fs::path& run = options.run_dir;
  if (root) fs::create_directories(run / "checkpoints");
  TrainResult result;
  const int batch_size = config.train.batch_size;
  if (sources.train->size() < static_cast<std::size_t>(batch_size)) {
    fail("{}: {} training images are fewer than one batch of {}", config.data.train,
         sources.train->size(), batch_size);
  }
  const int positive = positive_label(config, sources.classes);  // checked before compiling
  // Under MPI each rank's Program holds its shard of the global batch.
  const int local_batch = local_batch_size(config);
  result.training_graph = make_training_graph(model, local_batch, config.train.class_weights);
  const TrainingGraph& tg = result.training_graph;
  Compiled compiled = compile_training(config, tg, comm);
  result.program = std::move(compiled.program);

  // Only rank 0 prints and writes files.
  TrainerContext context{config, options, comm, *result.program, tg.graph,
                         !root           ? [](const std::string&) {}
                         : options.print ? options.print
                                         : [](const std::string& line) {
                                             std::fputs((line + "\n").c_str(), stdout);
                                             std::fflush(stdout);
                                           },
                         {}};
  TrainerState state(config);
  Callbacks callbacks(context);
  callbacks.on_train_begin(state);  // --resume: the state, weights and log of last.ckpt
  state.start_epoch = state.epoch;
  if (!options.resume) {
    context.write_text(run / "config.toml", to_toml(config));
    context.write_text(run / "summary.txt",
                       options.summary.empty() ? summary(model) : options.summary);
  }
  nlohmann::json layers = layers_json(options.feature_layers, "features");
  for (auto& row : layers_json(result.program->layer_choices(), "training")) layers.push_back(row);
  context.write_text(run / "layers.json", layers.dump(1) + "\n");

  eval::MetricsOptions metrics;
  metrics.threshold = config.train.threshold;
  metrics.class_names = {sources.classes.at(0), sources.classes.at(1)};
  metrics.positive_label = positive;
  EpochRunner runner(context, tg, sources, compiled.allreduce.get(), metrics);

  const auto run_start = Clock::now();
  context.say(
      fmt::format("Training {} ({}) on {}: {} train / {} val images, batch {}, {} steps/epoch",
                  config.name, model.name, compiled.backend, sources.train->size(),
                  sources.val->size(), batch_size, sources.train->batches_per_epoch()));
  if (comm.distributed()) {
    context.say(fmt::format(
        "Data parallel over {} MPI ranks: {} rows per rank and step (rank 0), {} gradient floats "
        "in {} allreduce buckets, {} compute threads per rank",
        comm.size(), local_batch, compiled.allreduce->parameters(), compiled.allreduce->buckets(),
        compiled.threads));
  }
  for (; state.epoch < config.train.epochs; ++state.epoch) {
    callbacks.on_epoch_begin(state);  // the learning rate
    runner.run(state, callbacks);
    callbacks.on_epoch_end(state);  // progress, checkpoints, schedule, early stopping
    if (state.stop_training) break;
  }
  if (comm.distributed()) {
    set_last_words(
        fmt::format("onnxforge: rank {} of {} stopped by a signal after training, during the final "
                    "evaluation; the checkpoints in {} are complete",
                    comm.rank(), comm.size(), (run / "checkpoints").string()));
  }
  result.seconds = seconds_since(run_start);
  callbacks.on_train_end(state);  // early stopping: its line, the best weights restored
  result.history = state.history;
  result.best_epoch = state.best_epoch;
  result.best_value = state.best;
  result.stopped_early = state.stop_training;

  if (options.final_evaluation) final_evaluation(context, tg, sources, metrics);
  context.write_text(run / "train.log", context.log);
  return result;
}

}  // namespace onnxforge::train
