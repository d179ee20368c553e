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
#include "trainers/checkpoint.hpp"
#include "trainers/distributed.hpp"

namespace onnxforge::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double stable_bce(double logit, double label) {
  return std::max(logit, 0.0) - logit * label + std::log1p(std::exp(-std::abs(logit)));
}

data::Augment augment_of(const AugmentConfig& a) {
  data::Augment out;
  out.flip_probability = a.flip;
  out.rotation_degrees = a.rotation;
  out.shift_fraction = a.shift;
  out.zoom = a.zoom;
  out.brightness = a.brightness;
  out.contrast = a.contrast;
  return out;
}

OptimizerSpec optimizer_of(const OptimizerConfig& o, double lr) {
  OptimizerSpec spec;
  spec.kind = o.name == "sgd"    ? OptimizerSpec::Kind::sgd
              : o.name == "adam" ? OptimizerSpec::Kind::adam
                                 : OptimizerSpec::Kind::adamw;
  spec.learning_rate = lr;
  spec.momentum = o.momentum;
  spec.nesterov = o.nesterov;
  spec.beta1 = o.beta1;
  spec.beta2 = o.beta2;
  spec.epsilon = o.epsilon;
  spec.weight_decay = o.weight_decay;
  return spec;
}

double metric_of(const eval::EpochRecord& r, const std::string& name) {
  if (name == "val_loss") return r.val_loss;
  if (name == "val_accuracy") return r.val_accuracy;
  if (name == "val_auc") return r.val_auc;
  if (name == "loss") return r.train_loss;
  return r.train_accuracy;
}

// The label of train.positive_class among the data's two classes (label i is classes[i]; empty:
// label 1, the second class in sorted order). Refused with one line when it names neither.
int positive_label(const TrainConfig& config, const std::vector<std::string>& classes) {
  if (classes.size() != 2) {
    fail("{}: binary training needs two classes, the data has {}", config.data.train,
         classes.size());
  }
  const std::string& positive = config.train.positive_class;
  if (positive.empty()) return 1;
  for (int label = 0; label < 2; ++label) {
    if (classes[static_cast<std::size_t>(label)] == positive) return label;
  }
  fail("{}: train.positive_class '{}' is not a class of the data (its classes: '{}', '{}')",
       config.data.train, positive, classes[0], classes[1]);
}

bool improves(const std::string& metric, double value, double best, double min_delta) {
  return higher_is_better(metric) ? value > best + min_delta : value < best - min_delta;
}

nlohmann::json history_json(const std::vector<eval::EpochRecord>& history) {
  auto rows = nlohmann::json::array();
  for (const auto& r : history) {
    rows.push_back({r.epoch, r.train_loss, r.train_accuracy, r.val_loss, r.val_accuracy, r.lr,
                    r.seconds, r.images_per_second});
  }
  return rows;
}

std::vector<eval::EpochRecord> history_from_json(const nlohmann::json& rows) {
  std::vector<eval::EpochRecord> history;
  // JSON has no NaN: a NaN (a loss that diverged, say) was written as null.
  auto value = [](const nlohmann::json& v) {
    return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.get<double>();
  };
  for (const auto& row : rows) {
    history.push_back({value(row.at(0)), value(row.at(1)), value(row.at(2)), value(row.at(3)),
                       value(row.at(4)), value(row.at(5)), value(row.at(6)), value(row.at(7))});
  }
  return history;
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

void write_history(const fs::path& path, const std::vector<eval::EpochRecord>& history) {
  std::string text = eval::history_header();
  for (const auto& r : history) text += eval::history_row(r);
  eval::write_file_atomic(path, text);
}

// Keras-like progress: "Epoch 3/10  120/348 [=====>......] - ETA 12s - loss 0.4123 - ...".
std::string progress_line(int epoch, int epochs, std::size_t step, std::size_t steps,
                          double elapsed, double loss, double accuracy, double images_per_second) {
  constexpr int width = 24;
  const auto done = steps ? static_cast<int>(width * step / steps) : width;
  std::string bar(static_cast<std::size_t>(done), '=');
  if (done < width) bar += '>' + std::string(static_cast<std::size_t>(width - done - 1), '.');
  const double eta =
      step ? elapsed / static_cast<double>(step) * static_cast<double>(steps - step) : 0.0;
  return fmt::format(
      "Epoch {}/{}  {}/{} [{}] - {} {:.0f}s - loss {:.4f} - accuracy {:.4f} - "
      "{:.1f} img/s",
      epoch, epochs, step, steps, bar, step < steps ? "ETA" : "took", step < steps ? eta : elapsed,
      loss, accuracy, images_per_second);
}

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
  Node loss{tg.loss, "BinaryCrossEntropyWithLogits", {tg.logits, tg.labels}, {tg.loss}, {}};
  if (!class_weights.empty()) {
    loss.attributes["weight_negative"] = class_weights.at(0);
    loss.attributes["weight_positive"] = class_weights.at(1);
  }
  tg.graph.nodes.push_back(loss);
  tg.graph.validate();
  return tg;
}

namespace {

data::BatchOptions batch_options(const TrainConfig& config, data::Mode mode) {
  data::BatchOptions options;
  options.batch_size = config.train.batch_size;
  options.mode = mode;
  options.drop_last = true;  // training: the Program has a fixed batch; the order changes
  options.seed = config.train.seed;
  options.preprocess = data::Preprocess::named(config.data.preprocess);
  options.threads = config.data.loader_threads;
  if (mode == data::Mode::train) options.augment = augment_of(config.augment);
  return options;
}

}  // namespace

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
  const double lr = config.optimizer.lr;
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

// Rank 0 reads a checkpoint and sends it to the others (the run folder need not be shared).
Checkpoint load_on_root(Communicator& comm, const fs::path& path) {
  std::string bytes;
  if (comm.root()) bytes = read_checkpoint_bytes(path);
  comm.broadcast(bytes, fmt::format("the broadcast of {}", path.string()));
  return decode_checkpoint(bytes, path.string());
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

}  // namespace

TrainResult train_model(const TrainConfig& config, const Graph& model, TrainSources& sources,
                        const TrainOptions& options) {
  Communicator& comm = Communicator::world();
  const bool root = comm.root();
  // Only rank 0 prints and writes files.
  const auto print = !root           ? [](const std::string&) {}
                     : options.print ? options.print
                                     : [](const std::string& line) {
                                         std::fputs((line + "\n").c_str(), stdout);
                                         std::fflush(stdout);
                                       };
  const fs::path run = options.run_dir;
  const fs::path last_path = run / "checkpoints" / "last.ckpt";
  const fs::path best_path = run / "checkpoints" / "best.ckpt";
  if (root) fs::create_directories(run / "checkpoints");
  std::string log;
  auto say = [&](const std::string& line) {
    print(line);
    log += line + "\n";
  };
  auto write_text = [&](const fs::path& path, const std::string& text) {
    if (root) eval::write_file_atomic(path, text);
  };

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
  result.program = compile_alike(comm, *backend, tg.graph, compile, "the trained model");
  Program& program = *result.program;

  std::unique_ptr<GradientAllreduce> allreduce;
  const auto statistics = running_statistics(tg.graph);
  if (comm.distributed()) {
    allreduce = std::make_unique<GradientAllreduce>(comm, tg.graph);
    // Every rank starts from rank 0's weights (they are seeded alike; this makes it certain).
    Checkpoint initial;
    if (root) {
      for (const auto& init : tg.graph.initializers)
        initial.parameters[init.name] = program.parameter(init.name);
    }
    broadcast_checkpoint(comm, initial, "the broadcast of the initial weights");
    for (const auto& [name, value] : initial.parameters) program.set_parameter(name, value);
  }

  // Trainer state, all of it in the checkpoint.
  int start_epoch = 0;
  double best = higher_is_better(config.checkpoint.monitor) ? -INFINITY : INFINITY;
  double stop_best = higher_is_better(config.early_stopping.monitor) ? -INFINITY : INFINITY;
  double plateau_best = higher_is_better(config.schedule.monitor) ? -INFINITY : INFINITY;
  int stop_wait = 0, plateau_wait = 0;
  double plateau_lr = config.optimizer.lr;
  auto state_json = [&](int next_epoch) {
    return nlohmann::json{{"next_epoch", next_epoch},
                          {"best", best},
                          {"best_epoch", result.best_epoch},
                          {"stop_best", stop_best},
                          {"stop_wait", stop_wait},
                          {"plateau_best", plateau_best},
                          {"plateau_wait", plateau_wait},
                          {"plateau_lr", plateau_lr},
                          {"history", history_json(result.history)}};
  };
  auto snapshot = [&](int next_epoch, bool with_optimizer) {
    Checkpoint c;
    for (const auto& init : tg.graph.initializers)
      c.parameters[init.name] = program.parameter(init.name);
    if (with_optimizer) c.optimizer = program.optimizer_state();
    c.state = state_json(next_epoch);
    return c;
  };

  if (options.resume) {
    const Checkpoint c = load_on_root(comm, last_path);
    for (const auto& [name, value] : c.parameters) program.set_parameter(name, value);
    program.set_optimizer_state(c.optimizer);
    const auto& s = c.state;
    // JSON has no infinity: a best value still at its initial +-inf was written as null.
    auto number = [&](const char* key, double initial) {
      return s.at(key).is_null() ? initial : s.at(key).get<double>();
    };
    auto count = [&](const char* key) {
      const auto n = json_count(s.at(key), 1u << 30);
      if (!n) {
        fail("{}: the trainer state in the checkpoint is malformed: {} must be a count, not {}",
             last_path.string(), key, describe_json(s.at(key)));
      }
      return static_cast<int>(*n);
    };
    try {
      start_epoch = count("next_epoch");
      best = number("best", best);
      result.best_epoch = count("best_epoch");
      stop_best = number("stop_best", stop_best);
      stop_wait = count("stop_wait");
      plateau_best = number("plateau_best", plateau_best);
      plateau_wait = count("plateau_wait");
      plateau_lr = number("plateau_lr", plateau_lr);
      result.history = history_from_json(s.at("history"));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: the trainer state in the checkpoint is malformed: {}", last_path.string(),
           e.what());
    }
    if (root && fs::exists(run / "train.log")) log = eval::read_file(run / "train.log");
    say(fmt::format("Resuming {} at epoch {}/{} from {}", config.name, start_epoch + 1,
                    config.train.epochs, last_path.string()));
  } else {
    write_text(run / "config.toml", to_toml(config));
    write_text(run / "summary.txt", options.summary.empty() ? summary(model) : options.summary);
  }
  {
    nlohmann::json layers = layers_json(options.feature_layers, "features");
    for (auto& row : layers_json(program.layer_choices(), "training")) layers.push_back(row);
    write_text(run / "layers.json", layers.dump(1) + "\n");
  }

  eval::MetricsOptions metrics;
  metrics.threshold = config.train.threshold;
  metrics.class_names = {sources.classes.at(0), sources.classes.at(1)};
  metrics.positive_label = positive;
  eval::MetricsOptions epoch_metrics = metrics;
  epoch_metrics.bootstrap_resamples = 0;  // intervals only in the final evaluation

  BatchSource& train_source = *sources.train;
  const std::size_t steps = train_source.batches_per_epoch();

  Tensor images(DType::f32, tg.graph.value(tg.image).shape);
  Tensor labels(DType::f32, tg.graph.value(tg.labels).shape);
  const auto run_start = Clock::now();
  say(fmt::format("Training {} ({}) on {}: {} train / {} val images, batch {}, {} steps/epoch",
                  config.name, model.name, backend->name(), train_source.size(),
                  sources.val->size(), batch_size, steps));
  if (comm.distributed()) {
    say(fmt::format(
        "Data parallel over {} MPI ranks: {} rows per rank and step (rank 0), {} gradient floats "
        "in {} allreduce buckets, {} compute threads per rank",
        comm.size(), local_batch, allreduce->parameters(), allreduce->buckets(), compile.threads));
  }

  for (int epoch = start_epoch; epoch < config.train.epochs; ++epoch) {
    const double lr = config.schedule.name == "plateau" ? plateau_lr : scheduled_lr(config, epoch);
    const OptimizerSpec spec = optimizer_of(config.optimizer, lr);
    train_source.start_epoch(epoch);
    const auto epoch_start = Clock::now();
    const double waited_before = allreduce ? allreduce->seconds_waiting() : 0.0;
    double loss_sum = 0;
    std::size_t correct = 0, seen = 0, step = 0;
    for (int n; (n = train_source.next(images, labels)) > 0;) {
      ++step;
      if (comm.distributed()) {
        set_last_words(fmt::format(
            "onnxforge: rank {} of {} stopped by a signal in epoch {} step {} (when one rank "
            "fails the launcher ends the others); {}",
            comm.rank(), comm.size(), epoch + 1, step,
            epoch > start_epoch || options.resume
                ? fmt::format("continue from the checkpoint of epoch {} with --resume {}", epoch,
                              run.string())
                : std::string("no checkpoint yet (one is written at the end of every epoch)")));
      }
      maybe_inject_failure(comm.rank(),
                           static_cast<std::int64_t>(epoch) * static_cast<std::int64_t>(steps) +
                               static_cast<std::int64_t>(step));
      program.set_input(tg.image, images);
      program.set_input(tg.labels, labels);
      program.forward(Mode::training);
      double loss = program.fetch(tg.loss).value(0);
      const Tensor probability = program.fetch(tg.probability);
      std::size_t step_correct = 0;
      for (int i = 0; i < n; ++i) {
        // The configured threshold, as the validation metrics use it.
        step_correct +=
            (probability.value(i) >= config.train.threshold) == (labels.value(i) >= 0.5);
      }
      auto check_loss = [&] {
        if (std::isfinite(loss)) return;
        fail("training stopped: the loss is {} at epoch {} step {}; the last good checkpoint is {}",
             loss, epoch + 1, step,
             fs::exists(last_path) ? last_path.string() : std::string("(none yet)"));
      };
      if (!comm.distributed()) check_loss();
      program.backward();
      if (comm.distributed()) {
        // The mean loss over the global batch is sum_r (n_r / B) * (rank r's mean loss): each
        // rank's gradient is weighted by its shard's share before the sum.
        double stats[3] = {loss * n, static_cast<double>(step_correct), static_cast<double>(n)};
        allreduce->run(program, static_cast<double>(n) / batch_size, stats);
        loss = stats[0] / stats[2];
        step_correct = static_cast<std::size_t>(stats[1]);
        n = static_cast<int>(stats[2]);
        check_loss();  // the global loss: every rank stops alike
      }
      correct += step_correct;
      loss_sum += loss * n;
      seen += static_cast<std::size_t>(n);
      double scale = 1.0;
      if (config.train.clip_norm > 0) {
        const double norm = program.gradient_norm();
        if (norm > config.train.clip_norm) scale = config.train.clip_norm / norm;
      }
      program.update(spec, scale);
      if (options.interactive && root) {
        const double elapsed = seconds_since(epoch_start);
        std::fprintf(stdout, "\r%s",
                     progress_line(epoch + 1, config.train.epochs, step, steps, elapsed,
                                   loss_sum / static_cast<double>(seen),
                                   static_cast<double>(correct) / static_cast<double>(seen),
                                   static_cast<double>(seen) / elapsed)
                         .c_str());
        std::fflush(stdout);
      }
    }
    const double train_seconds = seconds_since(epoch_start);
    average_running_statistics(comm, program, statistics);
    // Every epoch's validation metrics come from eval/, the code of the final evaluation.
    const Scores val = score_all(program, tg, *sources.val);
    const eval::Metrics val_metrics =
        eval::compute_metrics(predictions_of(*sources.val, val, false), epoch_metrics);
    const double val_accuracy = val_metrics.accuracy.value_or(NAN);
    eval::EpochRecord record{static_cast<double>(epoch + 1),
                             loss_sum / static_cast<double>(seen),
                             static_cast<double>(correct) / static_cast<double>(seen),
                             val.loss,
                             val_accuracy,
                             lr,
                             seconds_since(epoch_start),
                             static_cast<double>(seen) / train_seconds,
                             val_metrics.auc.value_or(NAN)};
    result.history.push_back(record);
    if (options.interactive && root) std::fputs("\r\033[K", stdout);
    say(progress_line(epoch + 1, config.train.epochs, steps, steps, train_seconds,
                      record.train_loss, record.train_accuracy, record.images_per_second) +
        fmt::format(" - val_loss {:.4f} - val_accuracy {:.4f} - val_auc {} - lr {:.3g}", val.loss,
                    val_accuracy, val_metrics.auc ? fmt::format("{:.4f}", *val_metrics.auc) : "n/a",
                    lr) +
        (allreduce ? fmt::format(" - waited {:.1f}s for the gradient allreduce",
                                 allreduce->seconds_waiting() - waited_before)
                   : std::string()));
    if (root) write_history(run / "history.csv", result.history);

    // Callbacks: checkpoint of the best, plateau schedule, early stopping.
    const double monitored = metric_of(record, config.checkpoint.monitor);
    if (improves(config.checkpoint.monitor, monitored, best, 0.0)) {
      best = monitored;
      result.best_epoch = epoch + 1;
      if (root) save_checkpoint(best_path, snapshot(epoch + 1, false));
    }
    if (config.schedule.name == "plateau") {
      const double value = metric_of(record, config.schedule.monitor);
      if (improves(config.schedule.monitor, value, plateau_best, 0.0)) {
        plateau_best = value;
        plateau_wait = 0;
      } else if (++plateau_wait >= config.schedule.patience) {
        plateau_lr = std::max(config.schedule.min_lr, plateau_lr * config.schedule.factor);
        plateau_wait = 0;
      }
    }
    bool stop = false;
    if (config.early_stopping.patience > 0) {
      const double value = metric_of(record, config.early_stopping.monitor);
      if (improves(config.early_stopping.monitor, value, stop_best,
                   config.early_stopping.min_delta)) {
        stop_best = value;
        stop_wait = 0;
      } else if (++stop_wait >= config.early_stopping.patience) {
        stop = epoch + 1 < config.train.epochs;
      }
    }
    if (root) save_checkpoint(last_path, snapshot(epoch + 1, true));
    write_text(run / "train.log", log);
    if (stop) {
      result.stopped_early = true;
      say(fmt::format("Early stopping at epoch {}: {} has not improved for {} epochs", epoch + 1,
                      config.early_stopping.monitor, config.early_stopping.patience));
      break;
    }
  }
  if (comm.distributed()) {
    set_last_words(
        fmt::format("onnxforge: rank {} of {} stopped by a signal after training, during the final "
                    "evaluation; the checkpoints in {} are complete",
                    comm.rank(), comm.size(), (run / "checkpoints").string()));
  }
  result.best_value = best;
  result.seconds = seconds_since(run_start);
  const bool restore =
      result.stopped_early && config.early_stopping.restore_best && result.best_epoch > 0;
  if (restore) {
    const Checkpoint c = load_on_root(comm, best_path);
    for (const auto& [name, value] : c.parameters) program.set_parameter(name, value);
    say(fmt::format("Restored the best weights (epoch {}, {} {:.4f})", result.best_epoch,
                    config.checkpoint.monitor, best));
  }

  if (options.final_evaluation) {
    auto evaluate = [&](BatchSource& source, const std::string& split) {
      const Scores s = score_all(program, tg, source);
      if (!root) return;
      const auto predictions = predictions_of(source, s, true);
      eval::SplitOptions split_options;
      split_options.split_name = split;
      split_options.model_name = config.name;
      const auto out = eval::evaluate_split(predictions, metrics, run / split, split_options);
      for (const auto& w : out.warnings) say("warning: " + split + ": " + w);
      say(fmt::format(
          "{:>4}: accuracy {:.4f}  AUC {}  ({} images)", split, out.metrics.accuracy.value_or(NAN),
          out.metrics.auc ? fmt::format("{:.4f}", *out.metrics.auc) : "n/a", source.size()));
    };
    evaluate(*sources.val, "val");
    if (sources.test) evaluate(*sources.test, "test");
    if (root) {
      eval::write_file_atomic(run / "train.log", log);
      const std::vector<eval::RunRecord> runs{eval::load_run(run, metrics)};
      const auto report = eval::write_report(runs, run);
      for (const auto& w : report.warnings) say("warning: " + w);
      say("Report: " + report.html.string());
    }
  }
  write_text(run / "train.log", log);
  return result;
}

}  // namespace onnxforge::train
