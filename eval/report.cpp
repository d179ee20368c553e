#include "eval/report.hpp"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <cmath>

#include "core/error.hpp"
#include "eval/plots.hpp"
#include "eval/report_json.hpp"
#include "eval/report_model.hpp"

namespace onnxforge::eval {
namespace fs = std::filesystem;
using nlohmann::json;
using report_json::confusion_of;
using report_json::number;
using report_json::roc_of;
using report_json::split_metrics;
using report_json::split_names;
using report_json::split_title;

namespace {

std::string run_name_of(const fs::path& dir) {
  fs::path p = dir.lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  std::string name = p.filename().string();
  if (name.empty() || name == ".") {
    std::error_code ec;
    name = fs::absolute(dir, ec).lexically_normal().filename().string();
  }
  return name.empty() ? std::string("run") : name;
}

// A file-name-safe version of a run name.
std::string slug(const std::string& name) {
  std::string out;
  for (char ch : name)
    out += (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_') ? ch : '_';
  return out.empty() ? std::string("run") : out;
}

// Per run loss, accuracy, ROC (validation and test together) and one confusion matrix per split;
// with several runs first one ROC figure per split overlaying every run. Without a plotter (plots
// off) every figure is "not available"; `link` is the PNG's path relative to out_dir.
std::vector<FigureSection> draw_figures(std::span<const RunRecord> runs,
                                        const ReportOptions& options, Plotter* plotter,
                                        const fs::path& out_dir, ReportOutputs& out) {
  auto not_drawn = [&](const std::string& reason) {
    ReportFigure f;
    f.missing = reason;
    return f;
  };
  auto draw = [&](const std::string& caption, auto&& make) {
    ReportFigure f;
    f.caption = caption;
    if (!plotter) {
      f.missing = "plots disabled";
      return f;
    }
    const std::optional<fs::path> png = make(*plotter);
    if (png) {
      out.figures.push_back(*png);
      f.link = png->lexically_relative(out_dir).generic_string();
    } else {
      f.missing = plotter->has_gnuplot() ? "figure could not be drawn (see the warnings)"
                                         : "gnuplot not installed (apt-get install gnuplot-nox)";
    }
    return f;
  };

  std::vector<FigureSection> sections;
  if (runs.size() > 1) {
    FigureSection cmp{"All models", {}, {}};
    for (const auto& split : split_names(runs)) {
      std::vector<RocSeries> series;
      for (const auto& run : runs)
        if (const json* m = split_metrics(run, split)) {
          auto curve = roc_of(*m);
          series.push_back(
              {run.name, curve.value_or(RocCurve{}), curve ? number(*m, "auc") : std::nullopt});
        }
      if (series.empty()) continue;
      cmp.figures.push_back(
          draw(fmt::format("ROC curves of every model on the {} split; AUC in the legend.",
                           split_title(split)),
               [&](Plotter& p) {
                 return p.roc(series, "all-roc-" + slug(split),
                              fmt::format("ROC, {} split: every model", split_title(split)));
               }));
    }
    sections.push_back(std::move(cmp));
  }
  {
    FigureSection cal{"Calibration", {}, {}};
    for (const auto& split : split_names(runs)) {
      std::vector<ReliabilitySeries> series;
      for (const auto& run : runs)
        if (const json* m = split_metrics(run, split))
          if (auto c = report_json::calibration_of(*m))
            series.push_back({run.name, c->bins, c->ece});
      if (series.empty()) continue;
      ReportFigure f = draw(
          fmt::format("Reliability diagram, {} split: fraction of label 1 against the mean score "
                      "in 10 equal-width score bins{} (point size: images in the bin); the dashed "
                      "diagonal is perfect calibration; ECE in the legend.",
                      split_title(split), runs.size() > 1 ? ", every model" : ""),
          [&](Plotter& p) {
            return p.reliability(series, "reliability-" + slug(split),
                                 fmt::format("Reliability, {} split", split_title(split)));
          });
      f.key = "reliability-" + slug(split);
      cal.figures.push_back(std::move(f));
    }
    if (!cal.figures.empty()) sections.push_back(std::move(cal));
  }
  for (const auto& run : runs) {
    FigureSection sec{run.name, {}, {}};
    const std::string s = slug(run.name);
    if (run.history && !run.history->epochs.empty()) {
      sec.figures.push_back(draw(
          fmt::format("{}: training and validation loss per epoch.", run.name), [&](Plotter& p) {
            return p.loss(*run.history, s + "-loss", fmt::format("Loss per epoch: {}", run.name));
          }));
      sec.figures.push_back(
          draw(fmt::format("{}: training and validation accuracy per epoch.", run.name),
               [&](Plotter& p) {
                 return p.accuracy(*run.history, s + "-accuracy",
                                   fmt::format("Accuracy per epoch: {}", run.name));
               }));
    } else if (options.run_details) {
      auto f = not_drawn("training history not available (history.csv)");
      f.caption = fmt::format("{}: loss and accuracy per epoch.", run.name);
      sec.figures.push_back(std::move(f));
    }
    std::vector<RocSeries> series;
    for (const auto& split : run.splits)
      if (split.metrics) {
        auto curve = roc_of(*split.metrics);
        series.push_back({split_title(split.name), curve.value_or(RocCurve{}),
                          curve ? number(*split.metrics, "auc") : std::nullopt});
      }
    if (!series.empty())
      sec.figures.push_back(draw(
          fmt::format("{}: ROC curves per split; AUC in the legend.", run.name),
          [&](Plotter& p) { return p.roc(series, s + "-roc", fmt::format("ROC: {}", run.name)); }));
    for (const auto& split : run.splits) {
      if (!split.metrics) continue;
      const auto cm = confusion_of(*split.metrics);
      if (!cm) continue;
      const json& m = *split.metrics;
      std::array<std::string, 2> names{"class 0", "class 1"};
      if (m.contains("class_names") && m["class_names"].is_array() &&
          m["class_names"].size() == 2 && m["class_names"][0].is_string() &&
          m["class_names"][1].is_string())
        names = {m["class_names"][0].get<std::string>(), m["class_names"][1].get<std::string>()};
      const int pos = number(m, "positive_label").value_or(1) == 0 ? 0 : 1;
      const double threshold = number(m, "threshold").value_or(0.5);
      sec.figures.push_back(draw(
          fmt::format("{}: confusion matrix on the {} split at threshold {} (rows: true class, "
                      "columns: predicted class; percentages of the true class and of all).",
                      run.name, split_title(split.name), threshold),
          [&](Plotter& p) {
            return p.confusion(
                *cm, pos, names, s + "-confusion-" + slug(split.name),
                fmt::format("Confusion matrix: {}, {}", run.name, split_title(split.name)));
          }));
    }
    if (run.explain) {
      const fs::path report_dir = fs::absolute(out_dir).lexically_normal();
      FigureSubsection gradcam{"Grad-CAM", run.explain->method, {}};
      FigureSubsection mistakes{"Most confident mistakes", run.explain->method, {}};
      for (const auto& e : run.explain->figures) {
        ReportFigure f;
        f.key = "explain-" + e.kind;
        f.caption = fmt::format("{}: {}", run.name, e.caption);
        const fs::path png = fs::absolute(run.dir / e.png).lexically_normal();
        std::error_code ec;
        if (fs::is_regular_file(png, ec))
          f.link = png.lexically_relative(report_dir).generic_string();
        else
          f.missing = fmt::format("{} not found", (run.dir / e.png).string());
        (e.kind == "mistakes" ? mistakes : gradcam).figures.push_back(std::move(f));
      }
      for (auto* sub : {&gradcam, &mistakes})
        if (!sub->figures.empty()) sec.subsections.push_back(std::move(*sub));
    }
    sections.push_back(std::move(sec));
  }
  return sections;
}

// explain.json: {"method": "...", "figures": [{"caption", "png", "kind"}]}. Throws for a
// malformed file (load_run makes it a note).
Explain read_explain(const fs::path& file) {
  const json j = json::parse(read_file(file));
  if (!j.is_object()) throw Error("not a JSON object");
  Explain e;
  if (j.contains("method")) {
    if (!j["method"].is_string()) throw Error("\"method\" is not a string");
    e.method = j["method"].get<std::string>();
  }
  if (!j.contains("figures") || !j["figures"].is_array()) throw Error("no \"figures\" array");
  std::size_t i = 0;
  for (const auto& f : j["figures"]) {
    ++i;
    auto text = [&](const char* key) {
      if (!f.is_object() || !f.contains(key) || !f[key].is_string())
        throw Error(fmt::format("figure {} has no \"{}\" string", i, key));
      return f[key].get<std::string>();
    };
    ExplainFigure fig{text("caption"), text("png"), text("kind")};
    if (fig.kind != "gradcam" && fig.kind != "mean_map" && fig.kind != "mistakes")
      throw Error(
          fmt::format("figure {}: kind '{}' is not gradcam, mean_map or mistakes", i, fig.kind));
    if (fs::path(fig.png).is_absolute())
      throw Error(
          fmt::format("figure {}: png '{}' must be relative to the run folder", i, fig.png));
    e.figures.push_back(std::move(fig));
  }
  return e;
}

}  // namespace

SplitRecord split_record(const std::string& name, const Metrics& metrics) {
  SplitRecord s;
  s.name = name;
  s.metrics = metrics_to_json(metrics);
  (*s.metrics)["split"] = name;
  return s;
}

SplitRecord split_record(const std::string& name, const Metrics& metrics,
                         std::vector<Prediction> predictions) {
  SplitRecord s = split_record(name, metrics);
  s.predictions = std::move(predictions);
  return s;
}

MetricsOptions options_of(const json& m, const MetricsOptions& fallback) {
  MetricsOptions o = fallback;
  o.bootstrap_resamples = 0;
  if (const auto t = number(m, "threshold"); t && std::isfinite(*t)) o.threshold = *t;
  if (const auto pos = number(m, "positive_label"); pos && (*pos == 0 || *pos == 1))
    o.positive_label = static_cast<int>(*pos);
  if (m.contains("class_names") && m["class_names"].is_array() && m["class_names"].size() == 2 &&
      m["class_names"][0].is_string() && m["class_names"][1].is_string())
    o.class_names = {m["class_names"][0].get<std::string>(),
                     m["class_names"][1].get<std::string>()};
  if (m.contains("intervals") && m["intervals"].is_object())
    if (const auto level = number(m["intervals"], "level"); level && *level > 0 && *level < 1)
      o.confidence_level = *level;
  return o;
}

SubgroupReport subgroup_report(std::span<const RunRecord> runs, const GroupTable& groups) {
  SubgroupReport r;
  r.groups_file = groups.file;
  r.attributes = groups.attributes;
  for (const auto& run : runs)
    for (const auto& split : run.splits) {
      if (!split.metrics) continue;
      if (!split.predictions) {
        r.notes.push_back(fmt::format("{}, {}: predictions not available: no subgroup metrics",
                                      run.name, split_title(split.name)));
        continue;
      }
      const MetricsOptions o = options_of(*split.metrics);
      try {
        r.results.push_back(
            {run.name, split.name, o, subgroup_metrics(*split.predictions, groups, o)});
      } catch (const std::exception& e) {
        r.notes.push_back(fmt::format("{}, {}: {}", run.name, split_title(split.name), e.what()));
      }
    }
  return r;
}

json subgroup_report_json(const SubgroupReport& report) {
  json results = json::array();
  for (const auto& r : report.results) {
    json j = subgroups_to_json(r.metrics);
    j["run"] = r.run;
    j["split"] = r.split;
    j["threshold"] = r.options.threshold;
    j["positive_class"] = r.options.class_names[r.options.positive_label == 0 ? 0 : 1];
    j["level"] = r.options.confidence_level;
    results.push_back(std::move(j));
  }
  return {{"groups_file", report.groups_file.string()},
          {"attributes", report.attributes},
          {"method",
           "per attribute and group: accuracy, TPR (among the group's positives) and FPR (among "
           "its negatives) at the split's threshold, each with a Wilson score interval; "
           "equalized-odds gap = max over groups minus min, of TPR and of FPR, and the larger"},
          {"notes", report.notes},
          {"results", std::move(results)}};
}

RunRecord load_run(const fs::path& run_dir, const MetricsOptions& options) {
  RunRecord run;
  run.dir = run_dir;
  run.name = run_name_of(run_dir);
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) {
    run.notes.push_back(fmt::format("run folder {} not available", run_dir.string()));
    return run;
  }
  auto text = [&](const char* file) -> std::optional<std::string> {
    const fs::path p = run_dir / file;
    if (!fs::is_regular_file(p, ec)) {
      run.notes.push_back(fmt::format("{} not available", file));
      return std::nullopt;
    }
    try {
      return read_file(p);
    } catch (const std::exception& e) {
      run.notes.push_back(e.what());
      return std::nullopt;
    }
  };
  run.config_toml = text("config.toml");
  run.summary = text("summary.txt");
  if (fs::is_regular_file(run_dir / "layers.json", ec)) {
    try {
      nlohmann::json layers = nlohmann::json::parse(read_file(run_dir / "layers.json"));
      if (!layers.is_array()) throw Error("not a JSON array");
      run.layers = std::move(layers);
    } catch (const std::exception& e) {
      run.notes.push_back(fmt::format("layers.json unreadable: {}", e.what()));
    }
  }
  if (fs::is_regular_file(run_dir / "history.csv", ec)) {
    try {
      run.history = read_history_csv(run_dir / "history.csv");
    } catch (const std::exception& e) {
      run.notes.push_back(fmt::format("history.csv unreadable: {}", e.what()));
    }
  } else {
    run.notes.push_back("history.csv not available");
  }
  for (const char* split : {"val", "test"}) {
    SplitRecord s;
    s.name = split;
    const fs::path metrics_path = run_dir / split / "metrics.json";
    const fs::path predictions_path = run_dir / split / "predictions.csv";
    if (fs::is_regular_file(metrics_path, ec)) {
      try {
        json j = json::parse(read_file(metrics_path));
        if (!j.is_object()) throw Error("not a JSON object");
        s.metrics = std::move(j);
      } catch (const std::exception& e) {
        s.notes.push_back(fmt::format("{} unreadable: {}", metrics_path.string(), e.what()));
      }
    }
    const MetricsOptions split_options = s.metrics ? options_of(*s.metrics, options) : options;
    const bool has_predictions = fs::is_regular_file(predictions_path, ec);
    if (has_predictions) {
      try {
        s.predictions = read_predictions_csv(predictions_path, split_options.class_names);
      } catch (const std::exception& e) {
        s.notes.push_back(e.what());
      }
    }
    if (!s.metrics && s.predictions) {
      try {
        s.metrics = metrics_to_json(compute_metrics(*s.predictions, options));
        s.notes.push_back(
            fmt::format("{}/metrics.json not available: recomputed from predictions.csv", split));
      } catch (const std::exception& e) {
        s.notes.push_back(e.what());
      }
    }
    if (s.metrics && !s.metrics->contains("calibration") && s.predictions) {
      std::vector<int> labels;
      std::vector<double> scores;
      for (const auto& p : *s.predictions)
        if (std::isfinite(p.score)) {
          labels.push_back(p.label);
          scores.push_back(p.score);
        }
      (*s.metrics)["calibration"] = calibration_to_json(calibration(labels, scores));
    }
    if (!s.metrics && s.notes.empty())
      s.notes.push_back(fmt::format("{} metrics not available", split_title(split)));
    else if (s.metrics && !has_predictions)
      s.notes.push_back(fmt::format(
          "{}/predictions.csv not available: no chosen threshold or subgroup metrics for it",
          split));
    run.splits.push_back(std::move(s));
  }
  if (fs::is_regular_file(run_dir / "explain.json", ec)) {
    try {
      run.explain = read_explain(run_dir / "explain.json");
    } catch (const std::exception& e) {
      run.notes.push_back(fmt::format("explain.json unreadable: {}", e.what()));
    }
  }
  return run;
}

ReportOutputs write_report(std::span<const RunRecord> runs, const fs::path& out_dir,
                           const ReportOptions& options) {
  ReportOutputs out;
  std::optional<SubgroupReport> subgroups;
  if (!options.groups.empty()) {
    subgroups = subgroup_report(runs, read_groups_csv(options.groups));
    out.subgroups = out_dir / "subgroups.json";
    write_file_atomic(*out.subgroups, subgroup_report_json(*subgroups).dump(2) + "\n");
  }
  std::optional<Plotter> plotter;
  if (options.plots) plotter.emplace(out_dir / "plots");
  std::vector<FigureSection> figures =
      draw_figures(runs, options, plotter ? &*plotter : nullptr, out_dir, out);
  if (plotter) out.warnings = plotter->warnings();
  // Read once every figure is drawn: two runs of one name draw to the same files.
  auto load = [&](ReportFigure& f) {
    if (f.link.empty()) return;
    try {
      f.png = read_file(out_dir / f.link);
    } catch (const std::exception& e) {
      out.warnings.push_back(e.what());
    }
  };
  for (auto& sec : figures) {
    for (auto& f : sec.figures) load(f);
    for (auto& sub : sec.subsections)
      for (auto& f : sub.figures) load(f);
  }
  const ReportModel model = build_report_model(runs, options, std::move(figures), out.warnings,
                                               subgroups ? &*subgroups : nullptr);
  out.html = out_dir / "report.html";
  out.markdown = out_dir / "report.md";
  write_file_atomic(out.html, render_html(model));
  write_file_atomic(out.markdown, render_markdown(model));
  return out;
}

}  // namespace onnxforge::eval
