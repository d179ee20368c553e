#include "trainers/callbacks.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.hpp"

namespace onnxforge::train {

namespace fs = std::filesystem;

namespace {

bool improves(const std::string& metric, double value, double best, double min_delta) {
  return higher_is_better(metric) ? value > best + min_delta : value < best - min_delta;
}

double initial_best(const std::string& metric) {
  return higher_is_better(metric) ? -INFINITY : INFINITY;
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

}  // namespace

double metric_of(const eval::EpochRecord& r, const std::string& name) {
  if (name == "val_loss") return r.val_loss;
  if (name == "val_accuracy") return r.val_accuracy;
  if (name == "val_auc") return r.val_auc;
  if (name == "loss") return r.train_loss;
  return r.train_accuracy;
}

// ---- the state ----------------------------------------------------------------------------------

TrainerState::TrainerState(const TrainConfig& config)
    : epochs(config.train.epochs),
      best(initial_best(config.checkpoint.monitor)),
      stop{initial_best(config.early_stopping.monitor), 0},
      plateau{initial_best(config.schedule.monitor), 0},
      plateau_lr(config.optimizer.learning_rate) {}

nlohmann::json TrainerState::to_json() const {
  return nlohmann::json{{"next_epoch", epoch + 1},         {"best", best},
                        {"best_epoch", best_epoch},        {"stop_best", stop.best},
                        {"stop_wait", stop.wait},          {"plateau_best", plateau.best},
                        {"plateau_wait", plateau.wait},    {"plateau_lr", plateau_lr},
                        {"history", history_json(history)}};
}

void TrainerState::restore(const nlohmann::json& s, const std::string& where) {
  // JSON has no infinity: a best value still at its initial +-inf was written as null.
  auto number = [&](const char* key, double initial) {
    return s.at(key).is_null() ? initial : s.at(key).get<double>();
  };
  auto count = [&](const char* key) {
    const auto n = json_count(s.at(key), 1u << 30);
    if (!n) {
      fail("{}: the trainer state in the checkpoint is malformed: {} must be a count, not {}",
           where, key, describe_json(s.at(key)));
    }
    return static_cast<int>(*n);
  };
  try {
    epoch = count("next_epoch");
    best = number("best", best);
    best_epoch = count("best_epoch");
    stop.best = number("stop_best", stop.best);
    stop.wait = count("stop_wait");
    plateau.best = number("plateau_best", plateau.best);
    plateau.wait = count("plateau_wait");
    plateau_lr = number("plateau_lr", plateau_lr);
    history = history_from_json(s.at("history"));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: the trainer state in the checkpoint is malformed: {}", where, e.what());
  }
}

// ---- the context --------------------------------------------------------------------------------

void TrainerContext::say(const std::string& line) {
  print(line);
  log += line + "\n";
}

void TrainerContext::write_text(const fs::path& path, const std::string& text) const {
  if (comm.root()) eval::write_file_atomic(path, text);
}

Checkpoint TrainerContext::snapshot(const TrainerState& state, bool with_optimizer) const {
  Checkpoint c;
  for (const auto& init : graph.initializers)
    c.parameters[init.name] = program.parameter(init.name);
  if (with_optimizer) c.optimizer = program.optimizer_state();
  c.state = state.to_json();
  return c;
}

Checkpoint TrainerContext::load_on_root(const fs::path& path) const {
  std::string bytes;
  if (comm.root()) bytes = read_checkpoint_bytes(path);
  comm.broadcast(bytes, fmt::format("the broadcast of {}", path.string()));
  return decode_checkpoint(bytes, path.string());
}

// ---- the callbacks ------------------------------------------------------------------------------

Callbacks::Callbacks(TrainerContext& context) {
  const TrainConfig& config = context.config;
  // The order of the epoch end: the progress line, best.ckpt (with the state before this
  // epoch's schedule and stopping decisions), the schedule, the stop, then last.ckpt with all
  // of it.
  callbacks_.push_back(std::make_unique<ProgressLogger>(context));
  callbacks_.push_back(std::make_unique<ModelCheckpoint>(context));
  if (config.schedule.name == "plateau") {
    callbacks_.push_back(std::make_unique<ReduceLrOnPlateau>(config.schedule));
  } else {
    callbacks_.push_back(std::make_unique<LearningRateScheduler>(config));
  }
  if (config.early_stopping.patience > 0) {
    callbacks_.push_back(std::make_unique<EarlyStopping>(context));
  }
  callbacks_.push_back(std::make_unique<BackupAndRestore>(context));
}

void ProgressLogger::on_batch_end(TrainerState& s) {
  if (!context_.options.interactive || !context_.comm.root()) return;
  const EpochProgress& p = s.progress;
  const double elapsed = seconds_since(p.start);
  std::fprintf(stdout, "\r%s",
               progress_line(s.epoch + 1, s.epochs, p.step, p.steps, elapsed, p.train_loss(),
                             p.train_accuracy(), static_cast<double>(p.seen) / elapsed)
                   .c_str());
  std::fflush(stdout);
}

void ProgressLogger::on_epoch_end(TrainerState& s) {
  const EpochProgress& p = s.progress;
  const eval::EpochRecord& record = s.history.back();
  if (context_.options.interactive && context_.comm.root()) std::fputs("\r\033[K", stdout);
  context_.say(progress_line(s.epoch + 1, s.epochs, p.steps, p.steps, p.train_seconds,
                             record.train_loss, record.train_accuracy, record.images_per_second) +
               fmt::format(" - val_loss {:.4f} - val_accuracy {:.4f} - val_auc {} - lr {:.3g}",
                           record.val_loss, record.val_accuracy,
                           p.val_auc ? fmt::format("{:.4f}", *p.val_auc) : "n/a", record.lr) +
               (p.allreduce_wait
                    ? fmt::format(" - waited {:.1f}s for the gradient allreduce", *p.allreduce_wait)
                    : std::string()));
  if (context_.comm.root()) write_history(context_.run() / "history.csv", s.history);
}

void ModelCheckpoint::on_epoch_end(TrainerState& s) {
  const std::string& monitor = context_.config.checkpoint.monitor;
  const double value = metric_of(s.history.back(), monitor);
  if (!improves(monitor, value, s.best, 0.0)) return;
  s.best = value;
  s.best_epoch = s.epoch + 1;
  if (context_.comm.root()) save_checkpoint(context_.best_path(), context_.snapshot(s, false));
}

void LearningRateScheduler::on_epoch_begin(TrainerState& s) {
  s.lr = scheduled_lr(config_, s.epoch);
}

void ReduceLrOnPlateau::on_epoch_begin(TrainerState& s) { s.lr = s.plateau_lr; }

void ReduceLrOnPlateau::on_epoch_end(TrainerState& s) {
  const double value = metric_of(s.history.back(), schedule_.monitor);
  if (improves(schedule_.monitor, value, s.plateau.best, 0.0)) {
    s.plateau.best = value;
    s.plateau.wait = 0;
  } else if (++s.plateau.wait >= schedule_.patience) {
    s.plateau_lr = std::max(schedule_.min_lr, s.plateau_lr * schedule_.factor);
    s.plateau.wait = 0;
  }
}

void EarlyStopping::on_epoch_end(TrainerState& s) {
  const EarlyStoppingConfig& config = context_.config.early_stopping;
  const double value = metric_of(s.history.back(), config.monitor);
  if (improves(config.monitor, value, s.stop.best, config.min_delta)) {
    s.stop.best = value;
    s.stop.wait = 0;
  } else if (++s.stop.wait >= config.patience) {
    s.stop_training = s.epoch + 1 < s.epochs;
  }
}

void EarlyStopping::on_train_end(TrainerState& s) {
  if (!s.stop_training) return;
  const EarlyStoppingConfig& config = context_.config.early_stopping;
  context_.say(fmt::format("Early stopping at epoch {}: {} has not improved for {} epochs",
                           s.epoch + 1, config.monitor, config.patience));
  if (!config.restore_best || s.best_epoch <= 0) return;
  const Checkpoint c = context_.load_on_root(context_.best_path());
  for (const auto& [name, value] : c.parameters) context_.program.set_parameter(name, value);
  context_.say(fmt::format("Restored the best weights (epoch {}, {} {:.4f})", s.best_epoch,
                           context_.config.checkpoint.monitor, s.best));
}

void BackupAndRestore::on_train_begin(TrainerState& s) {
  if (!context_.options.resume) return;
  const fs::path last = context_.last_path();
  const Checkpoint c = context_.load_on_root(last);
  for (const auto& [name, value] : c.parameters) context_.program.set_parameter(name, value);
  context_.program.set_optimizer_state(c.optimizer);
  s.restore(c.state, last.string());
  const fs::path log = context_.run() / "train.log";
  if (context_.comm.root() && fs::exists(log)) context_.log = eval::read_file(log);
  context_.say(fmt::format("Resuming {} at epoch {}/{} from {}", context_.config.name, s.epoch + 1,
                           s.epochs, last.string()));
}

void BackupAndRestore::on_epoch_end(TrainerState& s) {
  if (context_.comm.root()) save_checkpoint(context_.last_path(), context_.snapshot(s, true));
  // train.log in step with last.ckpt: a resumed run goes on with both.
  context_.write_text(context_.run() / "train.log", context_.log);
}

}  // namespace onnxforge::train
