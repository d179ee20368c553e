// The one call that the training loop and the `eval`/`predict`/`metrics` commands make for a split:
// scores in, files out.
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "eval/io.hpp"
#include "eval/metrics.hpp"

namespace onnxforge::eval {

struct SplitOptions {
  std::string split_name = "test";  // "val", "test", ...: figure stems and titles
  std::string model_name;           // titles only; empty = none
  bool write_predictions = true;    // predictions.csv (off when the input already is that file)
  std::optional<std::filesystem::path>
      plots_dir;  // roc_<split>, confusion_<split>; none = no plots
};

struct SplitOutputs {
  Metrics metrics;
  std::vector<std::filesystem::path> files;  // everything written
  std::vector<std::string> warnings;         // metric warnings, then plot warnings
};

// Computes the metrics and writes into `split_dir`: predictions.csv, metrics.json (plus "split"
// and "model" keys), roc.csv; and the ROC and confusion-matrix figures into options.plots_dir.
// Throws Error when a file cannot be written or a label is not 0/1.
SplitOutputs evaluate_split(std::span<const Prediction> predictions, const MetricsOptions& metrics,
                            const std::filesystem::path& split_dir, const SplitOptions& options);

// Unlabelled images (`predict`): path,score,class with class = class_names[score >= threshold].
void write_unlabelled_predictions_csv(const std::filesystem::path& path,
                                      std::span<const std::string> paths,
                                      std::span<const double> scores,
                                      const MetricsOptions& options = {});

}  // namespace onnxforge::eval
