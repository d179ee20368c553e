// The training loop's state and its callbacks, in the shape of Keras' and PyTorch Lightning's:
// one TrainerState that the loop and every callback share (and that checkpoints save and
// --resume restores, through one serialization), and one small class per behaviour:
//
//   ProgressLogger         progress lines (one per epoch, a redrawn one per step) and history.csv
//   ModelCheckpoint        best.ckpt when checkpoint.monitor improves (state.best, best_epoch)
//   LearningRateScheduler  the learning rate of each epoch: constant, step, cosine
//   ReduceLrOnPlateau      schedule.name = plateau: reduced when schedule.monitor stalls
//   EarlyStopping          stops when early_stopping.monitor stalls; restores the best weights
//   BackupAndRestore       last.ckpt and train.log after every epoch; --resume restores them
//
// Under MPI every rank runs every callback on the same (gathered) metrics, so every rank takes
// the same decisions (the same learning rate, the same stop); only rank 0 writes files, and a
// checkpoint read at the start (--resume) or the end (the best weights) is read by rank 0 and
// broadcast.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "eval/io.hpp"
#include "trainers/checkpoint.hpp"
#include "trainers/config.hpp"
#include "trainers/distributed.hpp"
#include "trainers/trainer.hpp"

namespace onnxforge::train {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A monitored metric's best value so far and the epochs since it last improved.
struct MonitorState {
  double best = 0.0;
  int wait = 0;
};

// The epoch in progress (not saved): running training statistics, then at its end what the
// progress line reports beside the epoch's record.
struct EpochProgress {
  Clock::time_point start;
  std::size_t step = 0, steps = 0;  // steps done, steps per epoch
  std::size_t seen = 0, correct = 0;
  double loss_sum = 0.0;
  double train_seconds = 0.0;            // the steps, without the validation
  std::optional<double> val_auc;         // none with one class only
  std::optional<double> allreduce_wait;  // under MPI: seconds waited this epoch
  double train_loss() const { return loss_sum / static_cast<double>(seen); }
  double train_accuracy() const { return static_cast<double>(correct) / static_cast<double>(seen); }
};

struct TrainerState {
  explicit TrainerState(const TrainConfig& config);

  // 0-based: the epoch in progress (and in its callbacks); after a restore, the next to run.
  int epoch = 0;
  int start_epoch = 0;  // the first epoch this process runs
  int epochs = 0;       // train.epochs
  double lr = 0.0;      // the learning rate of the epoch in progress (set by the schedule)
  EpochProgress progress;
  std::vector<eval::EpochRecord> history;  // one record per finished epoch
  double best = 0.0;                       // checkpoint.monitor's best value
  int best_epoch = 0;                      // 1-based; 0: none yet
  MonitorState stop;                       // early stopping
  MonitorState plateau;                    // the plateau schedule
  double plateau_lr = 0.0;                 // the plateau schedule's current learning rate
  bool stop_training = false;              // set by a callback: the loop ends after this epoch

  // The state a checkpoint written at the end of `epoch` holds (next_epoch = epoch + 1), and
  // its inverse (a malformed state is refused naming `where`).
  nlohmann::json to_json() const;
  void restore(const nlohmann::json& state, const std::string& where);
};

// What the loop and the callbacks share besides the state: the run and its folder.
struct TrainerContext {
  const TrainConfig& config;
  const TrainOptions& options;
  Communicator& comm;
  Program& program;
  const Graph& graph;  // the training graph: its initializers are the parameters
  std::function<void(const std::string&)> print;
  std::string log;  // train.log so far

  const std::filesystem::path& run() const { return options.run_dir; }
  std::filesystem::path last_path() const { return run() / "checkpoints" / "last.ckpt"; }
  std::filesystem::path best_path() const { return run() / "checkpoints" / "best.ckpt"; }
  // Prints a progress line (rank 0) and keeps it for train.log.
  void say(const std::string& line);
  // Rank 0 writes a file of the run folder atomically; the other ranks write nothing.
  void write_text(const std::filesystem::path& path, const std::string& text) const;
  // The parameters (and the optimizer state) with the state's trainer state.
  Checkpoint snapshot(const TrainerState& state, bool with_optimizer) const;
  // Rank 0 reads a checkpoint and sends it to the others (the run folder need not be shared).
  Checkpoint load_on_root(const std::filesystem::path& path) const;
};

class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(TrainerState&) {}
  virtual void on_epoch_begin(TrainerState&) {}
  virtual void on_batch_end(TrainerState&) {}  // after the optimizer step
  virtual void on_epoch_end(TrainerState&) {}  // state.history.back() is the epoch's record
  virtual void on_train_end(TrainerState&) {}
};

// The callbacks of a config, in the order they run.
class Callbacks {
 public:
  Callbacks(TrainerContext& context);
  void on_train_begin(TrainerState& s) { each(&Callback::on_train_begin, s); }
  void on_epoch_begin(TrainerState& s) { each(&Callback::on_epoch_begin, s); }
  void on_batch_end(TrainerState& s) { each(&Callback::on_batch_end, s); }
  void on_epoch_end(TrainerState& s) { each(&Callback::on_epoch_end, s); }
  void on_train_end(TrainerState& s) { each(&Callback::on_train_end, s); }

 private:
  void each(void (Callback::*hook)(TrainerState&), TrainerState& s) {
    for (auto& c : callbacks_) ((*c).*hook)(s);
  }
  std::vector<std::unique_ptr<Callback>> callbacks_;
};

class ProgressLogger final : public Callback {
 public:
  explicit ProgressLogger(TrainerContext& context) : context_(context) {}
  void on_batch_end(TrainerState& s) override;
  void on_epoch_end(TrainerState& s) override;

 private:
  TrainerContext& context_;
};

class ModelCheckpoint final : public Callback {
 public:
  explicit ModelCheckpoint(TrainerContext& context) : context_(context) {}
  void on_epoch_end(TrainerState& s) override;

 private:
  TrainerContext& context_;
};

class LearningRateScheduler final : public Callback {
 public:
  explicit LearningRateScheduler(const TrainConfig& config) : config_(config) {}
  void on_epoch_begin(TrainerState& s) override;

 private:
  const TrainConfig& config_;
};

class ReduceLrOnPlateau final : public Callback {
 public:
  explicit ReduceLrOnPlateau(const ScheduleConfig& schedule) : schedule_(schedule) {}
  void on_epoch_begin(TrainerState& s) override;
  void on_epoch_end(TrainerState& s) override;

 private:
  const ScheduleConfig& schedule_;
};

class EarlyStopping final : public Callback {
 public:
  explicit EarlyStopping(TrainerContext& context) : context_(context) {}
  void on_epoch_end(TrainerState& s) override;
  void on_train_end(TrainerState& s) override;  // the stop line, the best weights restored

 private:
  TrainerContext& context_;
};

class BackupAndRestore final : public Callback {
 public:
  explicit BackupAndRestore(TrainerContext& context) : context_(context) {}
  void on_train_begin(TrainerState& s) override;  // --resume: weights, optimizer, state, log
  void on_epoch_end(TrainerState& s) override;

 private:
  TrainerContext& context_;
};

// A record's value of a monitor name (val_loss, val_accuracy, val_auc, loss, accuracy).
double metric_of(const eval::EpochRecord& record, const std::string& name);

}  // namespace onnxforge::train
