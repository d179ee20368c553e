// Files of a run: predictions.csv, history.csv, metrics.json, roc.csv. CSV is RFC 4180 (quoted
// fields may hold commas, quotes and line breaks). Every write is atomic: a temporary file in the
// same folder, then rename, so a reader never sees half a file.
#pragma once

#include <cmath>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/files.hpp"
#include "eval/metrics.hpp"

namespace onnxforge::eval {

// core/files.hpp, where eval's callers have always found them.
using onnxforge::read_file;
using onnxforge::write_file_atomic;

// RFC 4180. `where` names the source in error messages (unterminated quote).
std::vector<std::vector<std::string>> parse_csv(std::string_view text, std::string_view where);
std::string csv_field(std::string_view field);  // quoted only when needed

// predictions.csv: header `path,label,score`, labels 0/1, scores printed to round-trip exactly.
std::string predictions_to_csv(std::span<const Prediction> predictions);
void write_predictions_csv(const std::filesystem::path& path,
                           std::span<const Prediction> predictions);
// Needs columns path,label,score (any order, more columns ignored). A label is 0/1 or a class
// name (case-insensitive); a score is a number (nan allowed: such rows are left out of the
// metrics). Throws Error "FILE:LINE: problem" for anything else.
std::vector<Prediction> read_predictions_csv(const std::filesystem::path& path,
                                             const std::array<std::string, 2>& class_names = {
                                                 "class 0", "class 1"});

// history.csv of the training loop; any column may be missing (NaN then).
struct EpochRecord {
  double epoch = 0, train_loss = 0, train_accuracy = 0, val_loss = 0, val_accuracy = 0, lr = 0,
         seconds = 0, images_per_second = 0;
  // Validation ROC AUC (NaN when it has no value: one class only). A monitor for the callbacks;
  // not a column of history.csv (the report draws its ROC curves from the predictions).
  double val_auc = NAN;
};
struct History {
  std::vector<EpochRecord> epochs;
  double total_seconds() const;                     // sum of seconds (NaN ignored)
  std::optional<double> images_per_second() const;  // sum(ips*s)/sum(s), seconds-weighted
};
// Columns: epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds,images_per_second
std::string history_header();
std::string history_row(const EpochRecord& record);
History read_history_csv(const std::filesystem::path& path);
// The whole history, atomically (the training loop rewrites it after every epoch).
void write_history_csv(const std::filesystem::path& path, const History& history);

// metrics.json: the keys documented in metrics.hpp and README of eval/.
nlohmann::json metrics_to_json(const Metrics& metrics);
// metrics.json's "calibration": {brier, ece, n_bins, binning, bins: [{lo, hi, count, mean_score,
// fraction_label_1}]}, or null for an empty set.
nlohmann::json calibration_to_json(const Calibration& calibration);
void write_metrics_json(const std::filesystem::path& path, const Metrics& metrics,
                        const nlohmann::json& extra = nlohmann::json::object());
// roc.csv: threshold,fpr,tpr (threshold "inf" for the first point).
void write_roc_csv(const std::filesystem::path& path, const RocCurve& roc);

// Shortest text that reads back to the same double ("nan", "inf", "-inf" for the others).
std::string format_double(double value);

}  // namespace onnxforge::eval
