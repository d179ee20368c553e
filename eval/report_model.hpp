// The report's data model, apart from its rendering: what report.html and report.md say, built
// from run records, with no HTML or Markdown in it; and the two renderers that only format it.
//
// write_report (eval/report.hpp) draws the figures, builds the model and renders both; a test can
// build a model from records in memory and render it without touching files.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "eval/report.hpp"

namespace onnxforge::eval {

struct ReportCell {
  std::string text;             // "0.8512", "n/a", "not available", a run name, a count
  std::string interval;         // "[0.7000, 0.9500]" beside the value; empty: none
  std::optional<double> value;  // the number a metric cell holds (ranks the best)
  bool best = false;            // the best value of its column among several runs
};

struct ReportTable {
  std::string caption;  // a line above the table ("Attribute: skin_tone"); empty: none
  std::vector<std::string> header;
  std::vector<std::vector<ReportCell>> rows;
  bool numbers = true;  // the columns after the first hold numbers
};

// One split's metrics: one row per run, in two tables (the metrics, then threshold and counts).
struct MetricSection {
  std::string title;  // "Validation split"
  std::vector<ReportTable> tables;
  std::string interval_note;  // what the brackets are; empty when no run has intervals
  bool best_marked = false;   // several runs: the best value of each metric is marked
};

struct ReportFigure {
  int number = 0;   // 1, 2, ... through the whole report (set by build_report_model)
  std::string key;  // what it shows, for tests and anchors: "reliability-val", "explain-gradcam"
  std::string caption;
  std::string png;      // the PNG's bytes; empty: not available
  std::string link;     // the PNG's path relative to the report's folder
  std::string missing;  // why it is not available
};

// Figures under a heading of their own inside a run's section (explain.json's maps).
struct FigureSubsection {
  std::string title;  // "Grad-CAM", "Most confident mistakes"
  std::string text;   // how they were made (explain.json's method)
  std::vector<ReportFigure> figures;
};

struct FigureSection {
  std::string title;  // "All models", "Calibration" or a run's name
  std::vector<ReportFigure> figures;
  std::vector<FigureSubsection> subsections;  // after the figures
};

// A section of tables: one split's calibration, thresholds or subgroups.
struct TableSection {
  std::string title;  // "Validation split"
  std::vector<ReportTable> tables;
  std::vector<std::string> notes;  // after the tables
};

// A part of the report made of table sections (Calibration, Threshold, Subgroups).
struct ReportPart {
  std::string id;                  // anchor: "calibration", "threshold", "subgroups"
  std::string title;               // the heading
  std::vector<std::string> intro;  // paragraphs before the sections
  std::vector<TableSection> sections;
  std::string missing;  // said when there is no section; empty: nothing to say
};

struct ReportText {
  std::optional<std::string> text;  // nullopt: not available
  std::string language;             // of a code block: "text", "toml"
  std::string missing;              // what to say when it is not available
};

struct RunDetails {
  std::string name;
  ReportText summary, config;
  std::optional<ReportTable> layers;  // how each compute-heavy layer ran (layers.json)
};

struct Concern {
  std::string lead;  // "Consent."
  std::string text;
};

struct ReportModel {
  std::string title;
  std::vector<std::string> facts;  // task, number of models, when generated
  std::string generated;           // "2026-12-07 10:00 UTC"
  std::vector<MetricSection> metrics;
  ReportPart calibration;   // Brier, ECE and reliability bins per split
  ReportPart threshold;     // metrics at the threshold chosen on validation beside those at 0.5
  ReportPart subgroups;     // per attribute and group, with the equalized-odds gaps
  bool run_details = true;  // training, models and configurations
  std::optional<ReportTable> training;
  std::vector<FigureSection> figures;  // sections without figures are left out
  std::string plots_folder = "plots";  // the figures' files, beside the report
  std::vector<RunDetails> runs;        // models and configurations
  std::vector<std::string> notes;      // notes and warnings
  std::string limitations_intro;
  std::vector<Concern> limitations;
};

// The model of a report on `runs`; `figures` are those drawn (in sections, numbered here) and
// `warnings` go to the notes after the runs' own; `subgroups`: the subgroup metrics measured
// (nullptr: no groups file was given).
ReportModel build_report_model(std::span<const RunRecord> runs, const ReportOptions& options,
                               std::vector<FigureSection> figures = {},
                               std::span<const std::string> warnings = {},
                               const SubgroupReport* subgroups = nullptr);

// report.html: self-contained (CSS inline, figures inlined as base64 PNG).
std::string render_html(const ReportModel& model);
// report.md: figures by relative path.
std::string render_markdown(const ReportModel& model);

}  // namespace onnxforge::eval
