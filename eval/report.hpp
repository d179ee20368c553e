// report.html (self-contained: CSS inline, figures inlined as base64 PNG) and report.md (figures
// by relative path) for one run or a comparison of several.
//
// A run folder (DESIGN.md) holds config.toml, summary.txt, layers.json, history.csv, val/ and test/
// (each metrics.json and predictions.csv) and plots/. Every piece is optional: what is missing
// shows as "not available" in the report, never as an error.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "eval/io.hpp"
#include "eval/metrics.hpp"
#include "eval/subgroups.hpp"

namespace onnxforge::eval {

struct SplitRecord {
  std::string name;                       // "val", "test", ...
  std::optional<nlohmann::json> metrics;  // metrics.json contents (recomputed from predictions.csv
                                          // when only that exists)
  // predictions.csv (path, label, score): the chosen threshold, subgroups and, for a metrics.json
  // without "calibration", the calibration come from them. nullopt: not available (a note).
  std::optional<std::vector<Prediction>> predictions;
  std::vector<std::string> notes;  // where it came from, what was missing
};

// RUN/explain.json, written by the explanation step: how its maps were computed and the figures
// (PNG paths relative to the run folder) it drew.
struct ExplainFigure {
  std::string caption;
  std::string png;   // "plots/gradcam_val.png"
  std::string kind;  // "gradcam", "mean_map" (shown under Grad-CAM) or "mistakes"
};
struct Explain {
  std::string method;  // one sentence
  std::vector<ExplainFigure> figures;
};

struct RunRecord {
  std::string name;  // the run folder's name unless set otherwise
  std::filesystem::path dir;
  std::optional<std::string> config_toml;
  std::optional<std::string> summary;
  // layers.json: how each compute-heavy layer ran (program, node, op, dtype, implementation, why)
  std::optional<nlohmann::json> layers;
  std::optional<History> history;
  std::vector<SplitRecord> splits;  // val, then test (only those that exist)
  std::optional<Explain> explain;   // explain.json; nullopt when absent or unreadable (a note)
  std::vector<std::string> notes;   // missing pieces, unreadable files
};

// Reads what a run folder holds. Never throws for missing or unreadable pieces (they become notes);
// `options` is used only to recompute metrics from a predictions.csv that has no metrics.json.
RunRecord load_run(const std::filesystem::path& run_dir, const MetricsOptions& options = {});

// A split record from metrics computed in memory (the `metrics` command, the training loop);
// with the predictions, the report can choose a threshold and measure subgroups on them.
SplitRecord split_record(const std::string& name, const Metrics& metrics);
SplitRecord split_record(const std::string& name, const Metrics& metrics,
                         std::vector<Prediction> predictions);

// The MetricsOptions a metrics.json was computed with (threshold, positive label, class names,
// interval level); `fallback` for what it lacks. No bootstrap.
MetricsOptions options_of(const nlohmann::json& metrics, const MetricsOptions& fallback = {});

struct ReportOptions {
  std::string title;  // empty: "<run> report" or "Comparison of a, b, c"
  bool plots = true;  // draw the figures with gnuplot (into out_dir/plots)
  // Training, model-summary and configuration sections; off for a lone split (`metrics`).
  bool run_details = true;
  // Said first under "Notes and warnings": where the data came from, how the test set is shifted,
  // what a backbone learnt from.
  std::vector<std::string> notes;
  // How each run's threshold is chosen on its validation predictions (then applied to test).
  ThresholdRule threshold_rule;
  // groups.csv (path,<attribute>,...) for the subgroup metrics; empty: none. A file that cannot
  // be read or parsed is an Error naming it.
  std::filesystem::path groups;
};

// The subgroup metrics of every run on every split with predictions.
struct RunSubgroups {
  std::string run, split;
  MetricsOptions options;  // the split's threshold, positive class, interval level
  SubgroupMetrics metrics;
};
struct SubgroupReport {
  std::filesystem::path groups_file;
  std::vector<std::string> attributes;
  std::vector<RunSubgroups> results;  // run by run, val then test
  std::vector<std::string> notes;     // runs or splits without predictions
};
SubgroupReport subgroup_report(std::span<const RunRecord> runs, const GroupTable& groups);
// subgroups.json: {groups_file, attributes, method, notes, results: [{run, split, threshold,
// positive_class, level, ...subgroups_to_json}]}
nlohmann::json subgroup_report_json(const SubgroupReport& report);

struct ReportOutputs {
  std::filesystem::path html, markdown;
  std::optional<std::filesystem::path> subgroups;  // subgroups.json, written with a groups file
  std::vector<std::filesystem::path> figures;      // PNGs drawn
  std::vector<std::string> warnings;               // e.g. gnuplot missing (once)
};

// Writes out_dir/report.html, out_dir/report.md and the figures in out_dir/plots: per run loss,
// accuracy, ROC (validation and test together), one confusion matrix per split and the figures
// explain.json lists; one reliability diagram per split overlaying every run; with several
// runs also one ROC figure per split overlaying every run. With options.groups also
// out_dir/subgroups.json. Throws Error only when a
// file cannot be written. It draws the figures, builds the report's model and renders it twice
// (eval/report_model.hpp: build_report_model, render_html, render_markdown).
ReportOutputs write_report(std::span<const RunRecord> runs, const std::filesystem::path& out_dir,
                           const ReportOptions& options = {});

std::string html_escape(std::string_view text);
std::string base64_encode(std::string_view bytes);

}  // namespace onnxforge::eval
