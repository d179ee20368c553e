#include "eval/report.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <map>

#include "core/error.hpp"
#include "eval/plots.hpp"
#include "eval/report_json.hpp"

namespace onnxforge::eval {
namespace fs = std::filesystem;
using nlohmann::json;
using report_json::confusion_of;
using report_json::interval;
using report_json::number;
using report_json::roc_of;
using report_json::split_metrics;
using report_json::split_names;
using report_json::split_title;

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char table[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const auto a = static_cast<unsigned char>(bytes[i]),
               b = static_cast<unsigned char>(bytes[i + 1]),
               c = static_cast<unsigned char>(bytes[i + 2]);
    out += table[a >> 2];
    out += table[((a & 3) << 4) | (b >> 4)];
    out += table[((b & 15) << 2) | (c >> 6)];
    out += table[c & 63];
  }
  if (i + 1 == bytes.size()) {
    const auto a = static_cast<unsigned char>(bytes[i]);
    out += table[a >> 2];
    out += table[(a & 3) << 4];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const auto a = static_cast<unsigned char>(bytes[i]),
               b = static_cast<unsigned char>(bytes[i + 1]);
    out += table[a >> 2];
    out += table[((a & 3) << 4) | (b >> 4)];
    out += table[(b & 15) << 2];
    out += '=';
  }
  return out;
}

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

std::string fixed(std::optional<double> v, int digits = 4) {
  return v && std::isfinite(*v) ? fmt::format("{:.{}f}", *v, digits) : std::string("n/a");
}

std::string with_interval(std::optional<double> v, std::optional<Interval> iv) {
  if (!v) return "n/a";
  if (!iv) return fixed(v);
  return fmt::format("{:.4f} [{:.4f}, {:.4f}]", *v, iv->lo, iv->hi);
}

std::string duration(double seconds) {
  if (!std::isfinite(seconds)) return "n/a";
  if (seconds < 60) return fmt::format("{:.1f} s", seconds);
  const auto total = static_cast<long long>(std::llround(seconds));
  if (total < 3600) return fmt::format("{} min {:02} s", total / 60, total % 60);
  return fmt::format("{} h {:02} min {:02} s", total / 3600, (total % 3600) / 60, total % 60);
}

const char* kEthics[] = {
    "<strong>Binary labels erase people.</strong> The model can only answer Female or Male. "
    "Non-binary, gender-fluid and intersex people, and anyone whose appearance does not match "
    "the label a dataset gave them, are misclassified by construction; no accuracy number above "
    "measures that harm.",
    "<strong>Appearance is not gender identity.</strong> A face image shows presentation, not how "
    "a person identifies. Treat the output as an estimate of a dataset's labelling convention, "
    "never as a fact about a person.",
    "<strong>Dataset bias.</strong> Face datasets over-represent some ages, skin tones, "
    "ethnicities, lighting conditions and celebrity-style photographs. Overall accuracy can hide "
    "much larger error rates for under-represented groups: report metrics per subgroup before "
    "any use, and state where the training images came from.",
    "<strong>Consent.</strong> Images scraped from the web were rarely collected with consent "
    "for training classifiers. Check the licence and provenance of every dataset, and do not "
    "run the model on people who have not agreed to it.",
    "<strong>Misuse.</strong> Automatic gender recognition can be used for surveillance, "
    "targeted advertising, exclusion from spaces or services, and outing or harassing "
    "transgender people. Several jurisdictions restrict or ban it. Keep the model to research "
    "and education on data you are entitled to use.",
    "<strong>Statistical limits.</strong> Confidence intervals cover sampling noise of the "
    "evaluation set only, not shifts between this dataset and any real population. The "
    "threshold (see the tables) trades sensitivity against specificity; choosing it is a "
    "decision with consequences for the people misclassified.",
};

struct Figure {
  std::string caption;
  std::optional<fs::path> png;  // nullopt: not drawn (reason in `missing`)
  std::string missing;
};

struct Section {
  std::string title;
  std::vector<Figure> figures;
};

const char* kCss = R"css(
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --head:#f0f4f8; --accent:#0b5cad; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--fg); background: #fff; margin: 0; line-height: 1.5; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 32px 64px; }
header.top { background: linear-gradient(90deg, #0b3d6e, #0b5cad); color: #fff; padding: 28px 32px; }
header.top h1 { margin: 0 0 4px; font-size: 1.9rem; font-weight: 650; }
header.top p { margin: 0; opacity: .85; }
h2 { border-bottom: 2px solid var(--line); padding-bottom: 4px; margin-top: 40px; color: #0b3d6e; }
h3 { margin-top: 28px; }
table { border-collapse: collapse; width: 100%; margin: 12px 0 8px; font-size: .92rem; }
th, td { border: 1px solid var(--line); padding: 6px 10px; text-align: right; white-space: nowrap; }
th { background: var(--head); font-weight: 600; }
td:first-child, th:first-child { text-align: left; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.best { font-weight: 700; color: var(--accent); }
span.ci { color: var(--muted); font-size: .8rem; font-weight: 400; }
.scroll { overflow-x: auto; }
pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 12px;
  overflow-x: auto; font-size: .82rem; line-height: 1.35; margin: 8px 0; }
.columns { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 16px; }
.columns h4 { margin: 4px 0; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); gap: 20px;
  align-items: start; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px; background: #fff; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: .88rem; margin-top: 6px; }
.missing { color: var(--muted); font-style: italic; padding: 24px; text-align: center;
  background: #f6f8fa; border-radius: 6px; }
.note { color: var(--muted); font-size: .9rem; }
ul.warnings li { color: #8a4b00; }
.ethics { background: #fff8e6; border: 1px solid #f0d58c; border-radius: 8px; padding: 4px 20px; }
.ethics li { margin: 8px 0; }
footer { color: var(--muted); font-size: .85rem; margin-top: 48px; }
)css";

// Sets data-figures-loaded="OK/TOTAL" on <html> once the page has loaded (the render test reads
// it).
const char* kLoadScript = R"js(
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.documentElement.setAttribute('data-figures-loaded', ok + '/' + images.length);
});
)js";

struct MetricColumn {
  const char* title;
  const char* key;
  bool higher_is_better;
};
constexpr MetricColumn kMetricColumns[] = {
    {"Accuracy", "accuracy", true},
    {"AUC", "auc", true},
    {"Sensitivity", "sensitivity", true},
    {"Specificity", "specificity", true},
    {"Precision", "precision", true},
    {"F1", "f1", true},
    {"Balanced acc.", "balanced_accuracy", true},
    {"MCC", "mcc", true},
};

// The name of label 1, the class a score >= threshold predicts.
std::string predicted_one(const json& m) {
  if (m.contains("class_names") && m["class_names"].is_array() && m["class_names"].size() == 2 &&
      m["class_names"][1].is_string())
    return m["class_names"][1].get<std::string>();
  return "label 1";
}

struct MetricCell {
  std::string text;
  std::optional<double> value;
  std::string html;  // when set: the HTML form of `text` (interval on its own line)
};

// One row per run: n, each metric (accuracy and AUC with intervals), threshold, confusion counts.
struct MetricTable {
  std::vector<std::string> header;
  std::vector<std::vector<MetricCell>> rows;
  std::vector<bool> rank_column;  // bold the best value of this column
  std::string interval_note;
};

MetricTable metric_table(std::span<const RunRecord> runs, const std::string& split) {
  MetricTable t;
  t.header = {"Model", "n"};
  t.rank_column = {false, false};
  for (const auto& c : kMetricColumns) {
    t.header.push_back(c.title);
    t.rank_column.push_back(true);
  }
  for (const char* h : {"Threshold", "Positive class", "TP", "FP", "TN", "FN"}) {
    t.header.push_back(h);
    t.rank_column.push_back(false);
  }
  for (const auto& run : runs) {
    std::vector<MetricCell> row{{run.name, std::nullopt, ""}};
    const json* m = split_metrics(run, split);
    if (!m) {
      row.push_back({"not available", std::nullopt, ""});
      for (std::size_t i = 2; i < t.header.size(); ++i) row.push_back({"", std::nullopt, ""});
      t.rows.push_back(std::move(row));
      continue;
    }
    const auto n = number(*m, "n");
    row.push_back({n ? fmt::format("{}", static_cast<long long>(*n)) : "n/a", std::nullopt, ""});
    for (const auto& c : kMetricColumns) {
      const auto v = number(*m, c.key);
      std::optional<Interval> iv;
      if (std::string_view(c.key) == "accuracy" || std::string_view(c.key) == "auc")
        iv = interval(*m, c.key);
      MetricCell cell{with_interval(v, iv), v, ""};
      if (v && iv)
        cell.html =
            fmt::format("{:.4f}<br><span class=\"ci\">[{:.4f}, {:.4f}]</span>", *v, iv->lo, iv->hi);
      row.push_back(std::move(cell));
    }
    row.push_back({fixed(number(*m, "threshold"), 3), std::nullopt, ""});
    row.push_back({m->contains("positive_class") && (*m)["positive_class"].is_string()
                       ? (*m)["positive_class"].get<std::string>()
                       : "n/a",
                   std::nullopt, ""});
    const auto cm = confusion_of(*m);
    for (auto value : {cm ? cm->tp : -1, cm ? cm->fp : -1, cm ? cm->tn : -1, cm ? cm->fn : -1})
      row.push_back({value >= 0 ? fmt::format("{}", value) : "n/a", std::nullopt, ""});
    if (t.interval_note.empty() && m->contains("intervals") && (*m)["intervals"].is_object()) {
      const json& iv = (*m)["intervals"];
      const auto level = number(iv, "level");
      const auto resamples = number(iv, "resamples");
      if (level && resamples)
        t.interval_note = fmt::format(
            "Brackets: {:.0f}% percentile-bootstrap intervals ({} resamples). Positive class: "
            "{}; a score >= the threshold predicts {}.",
            *level * 100, static_cast<long long>(*resamples),
            m->value("positive_class", std::string("n/a")), predicted_one(*m));
    }
    t.rows.push_back(std::move(row));
  }
  return t;
}

std::vector<bool> best_cells(const MetricTable& t, std::size_t row) {
  std::vector<bool> best(t.header.size(), false);
  if (t.rows.size() < 2) return best;
  for (std::size_t c = 0; c < t.header.size(); ++c) {
    if (!t.rank_column[c] || !t.rows[row][c].value) continue;
    double top = -std::numeric_limits<double>::infinity();
    for (const auto& r : t.rows)
      if (r[c].value) top = std::max(top, *r[c].value);
    best[c] = *t.rows[row][c].value == top;
  }
  return best;
}

struct TrainingRow {
  std::string name, epochs, time, ips, train_loss, val_loss, best_val;
};

TrainingRow training_row(const RunRecord& run) {
  TrainingRow r{run.name, "not available", "", "", "", "", ""};
  if (!run.history || run.history->epochs.empty()) return r;
  const History& h = *run.history;
  r.epochs = fmt::format("{}", h.epochs.size());
  r.time = duration(h.total_seconds());
  r.ips = fixed(h.images_per_second(), 1);
  r.train_loss = fixed(h.epochs.back().train_loss);
  r.val_loss = fixed(h.epochs.back().val_loss);
  const EpochRecord* best = nullptr;
  for (const auto& e : h.epochs)
    if (std::isfinite(e.val_accuracy) && (!best || e.val_accuracy > best->val_accuracy)) best = &e;
  r.best_val = best ? fmt::format("{:.4f} (epoch {})", best->val_accuracy, best->epoch) : "n/a";
  return r;
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:%Y-%m-%d %H:%M} UTC", tm);
}

}  // namespace

SplitRecord split_record(const std::string& name, const Metrics& metrics) {
  SplitRecord s;
  s.name = name;
  s.metrics = metrics_to_json(metrics);
  (*s.metrics)["split"] = name;
  return s;
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
    if (!s.metrics && fs::is_regular_file(predictions_path, ec)) {
      try {
        const auto predictions = read_predictions_csv(predictions_path, options.class_names);
        s.metrics = metrics_to_json(compute_metrics(predictions, options));
        s.notes.push_back(
            fmt::format("{}/metrics.json not available: recomputed from predictions.csv", split));
      } catch (const std::exception& e) {
        s.notes.push_back(e.what());
      }
    }
    if (!s.metrics && s.notes.empty())
      s.notes.push_back(fmt::format("{} metrics not available", split_title(split)));
    run.splits.push_back(std::move(s));
  }
  return run;
}

ReportOutputs write_report(std::span<const RunRecord> runs, const fs::path& out_dir,
                           const ReportOptions& options) {
  ReportOutputs out;
  const fs::path plots_dir = out_dir / "plots";
  std::optional<Plotter> plotter;
  if (options.plots) plotter.emplace(plots_dir);
  const std::string title = !options.title.empty() ? options.title
                            : runs.size() == 1 ? fmt::format("Evaluation report: {}", runs[0].name)
                                               : [&] {
                                                   std::string names;
                                                   for (const auto& r : runs)
                                                     names += (names.empty() ? "" : ", ") + r.name;
                                                   return "Model comparison: " + names;
                                                 }();
  const auto splits = split_names(runs);

  auto not_drawn = [&](const std::string& reason) {
    Figure f;
    f.missing = reason;
    return f;
  };
  auto draw = [&](const std::string& caption, auto&& make) {
    Figure f;
    f.caption = caption;
    if (!plotter) {
      f.missing = "plots disabled";
      return f;
    }
    f.png = make(*plotter);
    if (f.png)
      out.figures.push_back(*f.png);
    else
      f.missing = plotter->has_gnuplot() ? "figure could not be drawn (see the warnings)"
                                         : "gnuplot not installed (apt-get install gnuplot-nox)";
    return f;
  };

  // ---- figures ---------------------------------------------------------------------------
  std::vector<Section> sections;
  if (runs.size() > 1) {
    Section cmp{"All models", {}};
    for (const auto& split : splits) {
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
  for (const auto& run : runs) {
    Section sec{run.name, {}};
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
    sections.push_back(std::move(sec));
  }
  if (plotter) out.warnings = plotter->warnings();

  // ---- HTML and Markdown, side by side ---------------------------------------------------
  std::string h, md;
  const std::string generated = now_utc();
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  h += fmt::format("<title>{}</title>\n<style>{}</style>\n<script>{}</script>\n</head>\n<body>\n",
                   html_escape(title), kCss, kLoadScript);
  // What is classified, from the class names the first run's metrics were computed with.
  std::string task = "Binary classification";
  for (const auto& r : runs) {
    const SplitRecord* first = r.splits.empty() ? nullptr : &r.splits.front();
    if (!first || !first->metrics) continue;
    const auto names = first->metrics->find("class_names");
    if (names != first->metrics->end() && names->is_array() && names->size() == 2 &&
        (*names)[0].is_string() && (*names)[1].is_string()) {
      task +=
          fmt::format(": {} vs {}", (*names)[0].get<std::string>(), (*names)[1].get<std::string>());
    }
    break;
  }
  h += fmt::format(
      "<header class=\"top\"><h1>{}</h1><p>{} &middot; {} model{} "
      "&middot; generated by onnxforge on {}</p></header>\n<main>\n",
      html_escape(title), html_escape(task), runs.size(), runs.size() == 1 ? "" : "s", generated);
  md += fmt::format("# {}\n\n{} · {} model{} · generated by onnxforge on {}\n\n", title, task,
                    runs.size(), runs.size() == 1 ? "" : "s", generated);

  // Metric tables.
  h += "<h2>Metrics</h2>\n";
  md += "## Metrics\n\n";
  for (const auto& split : splits) {
    const MetricTable t = metric_table(runs, split);
    h += fmt::format("<h3>{} split</h3>\n", split_title(split));
    md += fmt::format("### {} split\n\n", split_title(split));
    // Two tables so that neither needs a scroll bar: the metrics, then threshold and counts.
    const std::size_t first_count_column = 2 + std::size(kMetricColumns);
    std::vector<std::size_t> metric_columns, count_columns{0};
    for (std::size_t c = 0; c < t.header.size(); ++c)
      (c < first_count_column ? metric_columns : count_columns).push_back(c);
    for (const auto* columns : {&metric_columns, &count_columns}) {
      h += "<div class=\"scroll\"><table>\n<thead><tr>";
      md += "|";
      for (std::size_t c : *columns) {
        h += fmt::format("<th>{}</th>", html_escape(t.header[c]));
        md += fmt::format(" {} |", t.header[c]);
      }
      h += "</tr></thead>\n<tbody>\n";
      md += "\n|";
      for (std::size_t c : *columns) md += c == 0 ? " --- |" : " ---: |";
      md += "\n";
      for (std::size_t r = 0; r < t.rows.size(); ++r) {
        const auto best = best_cells(t, r);
        h += "<tr>";
        md += "|";
        for (std::size_t c : *columns) {
          const MetricCell& cell = t.rows[r][c];
          h += fmt::format("<td{}>{}</td>", best[c] ? " class=\"best\"" : "",
                           cell.html.empty() ? html_escape(cell.text) : cell.html);
          md += fmt::format(" {}{}{} |", best[c] ? "**" : "", cell.text, best[c] ? "**" : "");
        }
        h += "</tr>\n";
        md += "\n";
      }
      h += "</tbody></table></div>\n";
      md += "\n";
    }
    if (!t.interval_note.empty()) {
      h += fmt::format("<p class=\"note\">{}{}</p>\n", html_escape(t.interval_note),
                       runs.size() > 1 ? " The best value of each metric is in bold." : "");
      md += t.interval_note + "\n\n";
    }
  }
  if (splits.empty()) {
    h += "<p class=\"missing\">No metrics available.</p>\n";
    md += "No metrics available.\n\n";
  }

  if (options.run_details) {
    // Training.
    h +=
        "<h2>Training</h2>\n<div class=\"scroll\"><table>\n<thead><tr><th>Model</th><th>Epochs</th>"
        "<th>Training time</th><th>Images/s</th><th>Final train loss</th><th>Final val loss</th>"
        "<th>Best val accuracy</th></tr></thead>\n<tbody>\n";
    md +=
        "## Training\n\n| Model | Epochs | Training time | Images/s | Final train loss | Final val "
        "loss | Best val accuracy |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    for (const auto& run : runs) {
      const TrainingRow r = training_row(run);
      h += fmt::format(
          "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
          "<td>{}</td></tr>\n",
          html_escape(r.name), r.epochs, r.time, r.ips, r.train_loss, r.val_loss,
          html_escape(r.best_val));
      md += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", r.name, r.epochs, r.time, r.ips,
                        r.train_loss, r.val_loss, r.best_val);
    }
    h += "</tbody></table></div>\n<p class=\"note\">Images/s is the seconds-weighted mean of the "
         "per-epoch throughput in history.csv; training time is the sum of its epoch times.</p>\n";
    md += "\nImages/s is the seconds-weighted mean of the per-epoch throughput in history.csv.\n\n";
  }

  // Figures.
  h += "<h2>Figures</h2>\n";
  md += "## Figures\n\n";
  int figure_number = 0;
  for (const auto& sec : sections) {
    if (sec.figures.empty()) continue;
    h += fmt::format("<h3>{}</h3>\n<div class=\"figures\">\n", html_escape(sec.title));
    md += fmt::format("### {}\n\n", sec.title);
    for (const auto& f : sec.figures) {
      ++figure_number;
      h += "<figure>";
      std::string png_bytes;
      if (f.png) {
        try {
          png_bytes = read_file(*f.png);
        } catch (const std::exception& e) {
          out.warnings.push_back(e.what());
        }
      }
      if (!png_bytes.empty()) {
        h += fmt::format("<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
                         html_escape(f.caption), base64_encode(png_bytes));
        md += fmt::format("![Figure {}. {}]({})\n\n", figure_number, f.caption,
                          f.png->lexically_relative(out_dir).generic_string());
      } else {
        h += fmt::format("<div class=\"missing\">Figure not available: {}</div>",
                         html_escape(f.missing.empty() ? "not drawn" : f.missing));
        md += fmt::format("*Figure {} not available: {}.*\n\n", figure_number, f.missing);
      }
      h += fmt::format("<figcaption>Figure {}. {}</figcaption></figure>\n", figure_number,
                       html_escape(f.caption));
      md += fmt::format("Figure {}. {}\n\n", figure_number, f.caption);
    }
    h += "</div>\n";
  }
  h += fmt::format(
      "<p class=\"note\">Every figure is also in {}/ as PNG and SVG, with the gnuplot "
      "script (.gp) and data (.dat) that drew it: edit the script and run "
      "<code>gnuplot NAME.gp</code> there to restyle it.</p>\n",
      html_escape(plots_dir.filename().string()));
  md +=
      "Every figure is also in plots/ as PNG and SVG, with the gnuplot script (.gp) and data "
      "(.dat) that drew it.\n\n";

  if (options.run_details) {
    // Model summaries and configurations.
    h += "<h2>Models</h2>\n";
    md += "## Models\n\n";
    for (const auto& run : runs) {
      h += fmt::format("<h3>{}</h3>\n", html_escape(run.name));
      md += fmt::format("### {}\n\n", run.name);
      if (run.summary) {
        h += fmt::format("<pre>{}</pre>\n", html_escape(*run.summary));
        md += fmt::format("```text\n{}\n```\n\n", *run.summary);
      } else {
        h += "<p class=\"missing\">Model summary not available (summary.txt).</p>\n";
        md += "Model summary not available (summary.txt).\n\n";
      }
      if (run.layers && !run.layers->empty()) {
        // Which dtype and implementation each convolution, dense layer and pooling ran with.
        h += "<table><tr><th>program</th><th>layer</th><th>op</th><th>dtype</th>"
             "<th>implementation</th><th>why</th></tr>\n";
        md +=
            "| program | layer | op | dtype | implementation | why |\n| --- | --- | --- | --- | "
            "--- | --- |\n";
        for (const auto& row : *run.layers) {
          auto field = [&](const char* key) {
            return row.is_object() && row.contains(key) && row[key].is_string()
                       ? row[key].get<std::string>()
                       : std::string("?");
          };
          h += "<tr>";
          md += "|";
          for (const char* key : {"program", "node", "op", "dtype", "implementation", "why"}) {
            h += fmt::format("<td>{}</td>", html_escape(field(key)));
            md += fmt::format(" {} |", field(key));
          }
          h += "</tr>\n";
          md += "\n";
        }
        h += "</table>\n";
        md += "\n";
      }
    }
    h += "<h2>Configurations</h2>\n<div class=\"columns\">\n";
    md += "## Configurations\n\n";
    for (const auto& run : runs) {
      h += fmt::format("<div><h4>{}</h4>", html_escape(run.name));
      md += fmt::format("### {}\n\n", run.name);
      if (run.config_toml) {
        h += fmt::format("<pre>{}</pre></div>\n", html_escape(*run.config_toml));
        md += fmt::format("```toml\n{}\n```\n\n", *run.config_toml);
      } else {
        h += "<p class=\"missing\">Configuration not available (config.toml).</p></div>\n";
        md += "Configuration not available (config.toml).\n\n";
      }
    }
    h += "</div>\n";
  }

  // Notes and warnings.
  std::vector<std::string> notes;
  for (const auto& run : runs) {
    for (const auto& n : run.notes) notes.push_back(fmt::format("{}: {}", run.name, n));
    for (const auto& s : run.splits) {
      for (const auto& n : s.notes) notes.push_back(fmt::format("{}: {}", run.name, n));
      if (s.metrics && s.metrics->contains("warnings") && (*s.metrics)["warnings"].is_array())
        for (const auto& w : (*s.metrics)["warnings"])
          if (w.is_string())
            notes.push_back(
                fmt::format("{}, {}: {}", run.name, split_title(s.name), w.get<std::string>()));
    }
  }
  for (const auto& w : out.warnings) notes.push_back(w);
  h += "<h2>Notes and warnings</h2>\n";
  md += "## Notes and warnings\n\n";
  if (notes.empty()) {
    h += "<p class=\"note\">None.</p>\n";
    md += "None.\n\n";
  } else {
    h += "<ul class=\"warnings\">\n";
    for (const auto& n : notes) {
      h += fmt::format("<li>{}</li>\n", html_escape(n));
      md += fmt::format("- {}\n", n);
    }
    h += "</ul>\n";
    md += "\n";
  }

  // Limitations and ethics.
  h += "<h2>Limitations and ethical concerns</h2>\n<div class=\"ethics\">\n<p><em>Edit this "
       "section for your use: it is a starting point, not a verdict.</em></p>\n<ul>\n";
  md +=
      "## Limitations and ethical concerns\n\n*Edit this section for your use: it is a starting "
      "point, not a verdict.*\n\n";
  for (const char* item : kEthics) {
    h += fmt::format("<li>{}</li>\n", item);
    std::string plain = item;
    for (const char* tag : {"<strong>", "</strong>"})
      for (std::size_t p; (p = plain.find(tag)) != std::string::npos;)
        plain.replace(p, std::string_view(tag).size(), "**");
    md += fmt::format("- {}\n", plain);
  }
  h += "</ul>\n</div>\n";
  md += "\n";
  h += fmt::format(
      "<footer>onnxforge evaluation report &middot; {}</footer>\n</main>\n</body>\n"
      "</html>\n",
      generated);

  out.html = out_dir / "report.html";
  out.markdown = out_dir / "report.md";
  write_file_atomic(out.html, h);
  write_file_atomic(out.markdown, md);
  return out;
}

}  // namespace onnxforge::eval
