// `onnxforge metrics PREDICTIONS.csv --out DIR`: metrics.json, figures and a report for one split,
// from a predictions.csv (path,label,score).
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>

#include "apps/command.hpp"
#include "core/error.hpp"
#include "eval/evaluate.hpp"
#include "eval/report.hpp"

namespace {

namespace fs = std::filesystem;
namespace eval = onnxforge::eval;

struct MetricsArgs {
  std::string predictions;
  std::string out;
  double threshold = 0.5;
  std::string positive = "1";
  std::string classes = "class 0,class 1";
  int resamples = 1000;
  std::uint64_t seed = eval::MetricsOptions{}.seed;
  std::string split;
  std::string model;
  std::string groups;
  bool no_plots = false;
};

std::array<std::string, 2> parse_classes(const std::string& text) {
  const auto comma = text.find(',');
  if (comma == std::string::npos || comma == 0 || comma + 1 >= text.size() ||
      text.find(',', comma + 1) != std::string::npos)
    throw onnxforge::Error(
        fmt::format("--classes '{}': expected two names in label order, e.g. cat,dog", text));
  return {text.substr(0, comma), text.substr(comma + 1)};
}

void print_warnings(const std::vector<std::string>& warnings) {
  std::set<std::string> seen;
  for (const auto& w : warnings)
    if (seen.insert(w).second) std::fprintf(stderr, "onnxforge: warning: %s\n", w.c_str());
}

std::string show(const std::optional<double>& v, const std::optional<eval::Interval>& iv = {}) {
  if (!v) return "n/a";
  if (!iv) return fmt::format("{:.4f}", *v);
  return fmt::format("{:.4f} [{:.4f}, {:.4f}]", *v, iv->lo, iv->hi);
}

const onnxforge::cli::Registration registration{
    60, "metrics",
    "Compute the metrics of one split from a predictions.csv (path,label,score; score = "
    "probability of label 1) and write metrics.json, roc.csv, ROC and confusion-matrix "
    "figures (plots/) and report.html/report.md into --out.",
    [](CLI::App& sub) {
      auto args = std::make_shared<MetricsArgs>();
      sub.add_option("PREDICTIONS", args->predictions, "predictions.csv with path,label,score")
          ->required();
      sub.add_option("--out", args->out, "output folder")->required();
      sub.add_option("--threshold", args->threshold, "score >= threshold predicts label 1")
          ->capture_default_str();
      sub.add_option("--positive", args->positive,
                     "positive class: a class name, or 0/1 for its label")
          ->capture_default_str();
      sub.add_option("--classes", args->classes, "names of labels 0 and 1, comma separated")
          ->capture_default_str();
      sub.add_option("--resamples", args->resamples,
                     "bootstrap resamples for the 95% intervals (0: none)")
          ->capture_default_str();
      sub.add_option("--seed", args->seed, "bootstrap seed")->capture_default_str();
      sub.add_option("--split", args->split,
                     "split name for titles (default: the name of the folder holding the file)");
      sub.add_option("--model", args->model, "model name for titles");
      sub.add_option("--groups", args->groups,
                     "groups CSV (path,<attribute>,...) for metrics per subgroup "
                     "(subgroups.json and the report's Subgroups section)");
      sub.add_flag("--no-plots", args->no_plots, "skip the gnuplot figures");
      sub.callback([args] {
        eval::MetricsOptions options;
        options.class_names = parse_classes(args->classes);
        options.positive_label =
            eval::positive_label_of(args->positive, options.class_names, "--positive");
        options.threshold = args->threshold;
        options.bootstrap_resamples = args->resamples;
        options.seed = args->seed;
        const fs::path input(args->predictions);
        const auto predictions = eval::read_predictions_csv(input, options.class_names);

        eval::SplitOptions split;
        split.split_name = args->split;
        if (split.split_name.empty()) {
          const auto parent = fs::absolute(input).parent_path().filename().string();
          split.split_name =
              parent == "val" || parent == "test" || parent == "train" ? parent : "split";
        }
        split.model_name = args->model;
        split.write_predictions = false;
        const fs::path out(args->out);  // figures: drawn by the report below, into out/plots
        eval::SplitOutputs result;
        try {
          result = eval::evaluate_split(predictions, options, out, split);
        } catch (const std::invalid_argument& e) {
          throw onnxforge::Error(fmt::format("{}: {}", input.string(), e.what()));
        }
        const eval::Metrics& m = result.metrics;

        eval::RunRecord run;
        run.name = args->model;
        if (run.name.empty()) {  // .../RUN/val/predictions.csv: RUN; else the file's stem
          const fs::path folder = fs::absolute(input).parent_path();
          run.name = folder.filename() == split.split_name && folder.has_parent_path()
                         ? folder.parent_path().filename().string()
                         : input.stem().string();
        }
        run.dir = out;
        run.splits.push_back(eval::split_record(split.split_name, m, predictions));
        eval::ReportOptions report_options;
        report_options.plots = !args->no_plots;
        report_options.run_details = false;
        report_options.groups = args->groups;
        report_options.title = fmt::format("Metrics: {} ({} split)", run.name, split.split_name);
        const auto report = eval::write_report(std::span(&run, 1), out, report_options);

        fmt::print("{} predictions ({} {}, {} {}), threshold {}, positive class {}\n", m.n,
                   m.n_positive, m.positive_class(), m.n_negative, m.negative_class(),
                   options.threshold, m.positive_class());
        fmt::print("accuracy {}  AUC {}\n", show(m.accuracy, m.accuracy_interval),
                   show(m.auc, m.auc_interval));
        fmt::print("sensitivity {}  specificity {}  precision {}  F1 {}  balanced {}  MCC {}\n",
                   show(m.sensitivity), show(m.specificity), show(m.precision), show(m.f1),
                   show(m.balanced_accuracy), show(m.mcc));
        fmt::print("confusion: TP {} FP {} TN {} FN {}\n", m.confusion.tp, m.confusion.fp,
                   m.confusion.tn, m.confusion.fn);
        fmt::print("wrote {} and {}\n", (out / "metrics.json").string(), report.html.string());
        if (report.subgroups) fmt::print("wrote {}\n", report.subgroups->string());
        std::vector<std::string> warnings = result.warnings;
        warnings.insert(warnings.end(), report.warnings.begin(), report.warnings.end());
        print_warnings(warnings);
      });
    }};

}  // namespace
