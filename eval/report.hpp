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

namespace onnxforge::eval {

struct SplitRecord {
  std::string name;                       // "val", "test", ...
  std::optional<nlohmann::json> metrics;  // metrics.json contents (recomputed from predictions.csv
                                          // when only that exists)
  std::vector<std::string> notes;         // where it came from, what was missing
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
  std::vector<std::string> notes;   // missing pieces, unreadable files
};

// Reads what a run folder holds. Never throws for missing or unreadable pieces (they become notes);
// `options` is used only to recompute metrics from a predictions.csv that has no metrics.json.
RunRecord load_run(const std::filesystem::path& run_dir, const MetricsOptions& options = {});

// A split record from metrics computed in memory (the `metrics` command, the training loop).
SplitRecord split_record(const std::string& name, const Metrics& metrics);

struct ReportOptions {
  std::string title;  // empty: "<run> report" or "Comparison of a, b, c"
  bool plots = true;  // draw the figures with gnuplot (into out_dir/plots)
  // Training, model-summary and configuration sections; off for a lone split (`metrics`).
  bool run_details = true;
};

struct ReportOutputs {
  std::filesystem::path html, markdown;
  std::vector<std::filesystem::path> figures;  // PNGs drawn
  std::vector<std::string> warnings;           // e.g. gnuplot missing (once)
};

// Writes out_dir/report.html, out_dir/report.md and the figures in out_dir/plots: per run loss,
// accuracy, ROC (validation and test together) and one confusion matrix per split; with several
// runs also one ROC figure per split overlaying every run. Throws Error only when a
// file cannot be written. It draws the figures, builds the report's model and renders it twice
// (eval/report_model.hpp: build_report_model, render_html, render_markdown).
ReportOutputs write_report(std::span<const RunRecord> runs, const std::filesystem::path& out_dir,
                           const ReportOptions& options = {});

std::string html_escape(std::string_view text);
std::string base64_encode(std::string_view bytes);

}  // namespace onnxforge::eval
