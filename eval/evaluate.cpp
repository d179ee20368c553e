#include "eval/evaluate.hpp"

#include <fmt/format.h>

#include <cmath>

#include "core/error.hpp"
#include "eval/plots.hpp"

namespace onnxforge::eval {
namespace fs = std::filesystem;

SplitOutputs evaluate_split(std::span<const Prediction> predictions, const MetricsOptions& metrics,
                            const fs::path& split_dir, const SplitOptions& options) {
  SplitOutputs out;
  out.metrics = compute_metrics(predictions, metrics);
  out.warnings = out.metrics.warnings;
  if (options.write_predictions) {
    write_predictions_csv(split_dir / "predictions.csv", predictions);
    out.files.push_back(split_dir / "predictions.csv");
  }
  nlohmann::json extra = {{"split", options.split_name}};
  if (!options.model_name.empty()) extra["model"] = options.model_name;
  write_metrics_json(split_dir / "metrics.json", out.metrics, extra);
  out.files.push_back(split_dir / "metrics.json");
  if (out.metrics.auc) {
    write_roc_csv(split_dir / "roc.csv", out.metrics.roc);
    out.files.push_back(split_dir / "roc.csv");
  } else {
    std::error_code ec;
    fs::remove(split_dir / "roc.csv", ec);  // a stale curve from an earlier run would mislead
  }
  if (options.plots_dir) {
    Plotter plotter(*options.plots_dir);
    const std::string who = options.model_name.empty()
                                ? options.split_name
                                : fmt::format("{}, {}", options.model_name, options.split_name);
    const RocSeries series{who, out.metrics.roc, out.metrics.auc};
    if (auto png = plotter.roc(
            std::span(&series, 1), "roc_" + options.split_name,
            fmt::format("ROC curve ({}; positive class {})", who, out.metrics.positive_class())))
      out.files.push_back(*png);
    if (auto png = plotter.confusion(
            out.metrics.confusion, metrics.positive_label, metrics.class_names,
            "confusion_" + options.split_name,
            fmt::format("Confusion matrix ({}; threshold {})", who, metrics.threshold)))
      out.files.push_back(*png);
    out.warnings.insert(out.warnings.end(), plotter.warnings().begin(), plotter.warnings().end());
  }
  return out;
}

void write_unlabelled_predictions_csv(const fs::path& path, std::span<const std::string> paths,
                                      std::span<const double> scores,
                                      const MetricsOptions& options) {
  if (paths.size() != scores.size())
    throw Error(
        fmt::format("{} paths but {} scores for {}", paths.size(), scores.size(), path.string()));
  std::string out = "path,score,class\n";
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const std::string cls = std::isfinite(scores[i])
                                ? options.class_names[scores[i] >= options.threshold ? 1 : 0]
                                : std::string("unknown");
    out += fmt::format("{},{},{}\n", csv_field(paths[i]), format_double(scores[i]), csv_field(cls));
  }
  write_file_atomic(path, out);
}

}  // namespace onnxforge::eval
