#include "eval/report_model.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <iterator>
#include <limits>

#include "eval/report_json.hpp"

namespace onnxforge::eval {
using nlohmann::json;
using report_json::confusion_of;
using report_json::interval;
using report_json::number;
using report_json::split_metrics;
using report_json::split_names;
using report_json::split_title;

namespace {

std::string fixed(std::optional<double> v, int digits = 4) {
  return v && std::isfinite(*v) ? fmt::format("{:.{}f}", *v, digits) : std::string("n/a");
}

std::string duration(double seconds) {
  if (!std::isfinite(seconds)) return "n/a";
  if (seconds < 60) return fmt::format("{:.1f} s", seconds);
  const auto total = static_cast<long long>(std::llround(seconds));
  if (total < 3600) return fmt::format("{} min {:02} s", total / 60, total % 60);
  return fmt::format("{} h {:02} min {:02} s", total / 3600, (total % 3600) / 60, total % 60);
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:%Y-%m-%d %H:%M} UTC", tm);
}

const Concern kConcerns[] = {
    {"Binary labels erase people.",
     "The model can only answer Female or Male. Non-binary, gender-fluid and intersex people, and "
     "anyone whose appearance does not match the label a dataset gave them, are misclassified by "
     "construction; no accuracy number above measures that harm."},
    {"Appearance is not gender identity.",
     "A face image shows presentation, not how a person identifies. Treat the output as an "
     "estimate of a dataset's labelling convention, never as a fact about a person."},
    {"Dataset bias.",
     "Face datasets over-represent some ages, skin tones, ethnicities, lighting conditions and "
     "celebrity-style photographs. Overall accuracy can hide much larger error rates for "
     "under-represented groups: report metrics per subgroup before any use, and state where the "
     "training images came from."},
    {"Consent.",
     "Images scraped from the web were rarely collected with consent for training classifiers. "
     "Check the licence and provenance of every dataset, and do not run the model on people who "
     "have not agreed to it."},
    {"Misuse.",
     "Automatic gender recognition can be used for surveillance, targeted advertising, exclusion "
     "from spaces or services, and outing or harassing transgender people. Several jurisdictions "
     "restrict or ban it. Keep the model to research and education on data you are entitled to "
     "use."},
    {"Statistical limits.",
     "Confidence intervals cover sampling noise of the evaluation set only, not shifts between "
     "this dataset and any real population. The threshold (see the tables) trades sensitivity "
     "against specificity; choosing it is a decision with consequences for the people "
     "misclassified."},
};

struct MetricColumn {
  const char* title;
  const char* key;
  bool with_interval;  // metrics.json has a bootstrap interval for it
};
// Higher is better in each: the best of several runs is the largest.
constexpr MetricColumn kMetricColumns[] = {
    {"Accuracy", "accuracy", true},
    {"AUC", "auc", true},
    {"Sensitivity", "sensitivity", false},
    {"Specificity", "specificity", false},
    {"Precision", "precision", false},
    {"F1", "f1", false},
    {"Balanced acc.", "balanced_accuracy", false},
    {"MCC", "mcc", false},
};
constexpr std::size_t kFirstMetricColumn = 2;  // after Model and n
constexpr std::size_t kFirstCountColumn = kFirstMetricColumn + std::size(kMetricColumns);

// The name of label 1, the class a score >= threshold predicts.
std::string predicted_one(const json& m) {
  if (m.contains("class_names") && m["class_names"].is_array() && m["class_names"].size() == 2 &&
      m["class_names"][1].is_string())
    return m["class_names"][1].get<std::string>();
  return "label 1";
}

std::vector<ReportCell> metric_row(const RunRecord& run, const json* m, std::size_t columns) {
  std::vector<ReportCell> row{{run.name}};
  if (!m) {
    row.push_back({"not available"});
    row.resize(columns);
    return row;
  }
  const auto n = number(*m, "n");
  row.push_back({n ? fmt::format("{}", static_cast<long long>(*n)) : "n/a"});
  for (const auto& c : kMetricColumns) {
    ReportCell cell;
    cell.value = number(*m, c.key);
    const auto iv = c.with_interval ? interval(*m, c.key) : std::nullopt;
    if (cell.value && iv) {
      cell.text = fmt::format("{:.4f}", *cell.value);
      cell.interval = fmt::format("[{:.4f}, {:.4f}]", iv->lo, iv->hi);
    } else {
      cell.text = fixed(cell.value);
    }
    row.push_back(std::move(cell));
  }
  row.push_back({fixed(number(*m, "threshold"), 3)});
  row.push_back({m->contains("positive_class") && (*m)["positive_class"].is_string()
                     ? (*m)["positive_class"].get<std::string>()
                     : "n/a"});
  const auto cm = confusion_of(*m);
  for (auto value : {cm ? cm->tp : -1, cm ? cm->fp : -1, cm ? cm->tn : -1, cm ? cm->fn : -1})
    row.push_back({value >= 0 ? fmt::format("{}", value) : "n/a"});
  return row;
}

std::string interval_note(const json& m) {
  if (!m.contains("intervals") || !m["intervals"].is_object()) return "";
  const json& iv = m["intervals"];
  const auto level = number(iv, "level");
  const auto resamples = number(iv, "resamples");
  if (!level || !resamples) return "";
  return fmt::format(
      "Brackets: {:.0f}% percentile-bootstrap intervals ({} resamples). Positive class: "
      "{}; a score >= the threshold predicts {}.",
      *level * 100, static_cast<long long>(*resamples),
      m.value("positive_class", std::string("n/a")), predicted_one(m));
}

// With several runs, marks the largest value of each metric column.
void mark_best(std::vector<std::vector<ReportCell>>& rows) {
  if (rows.size() < 2) return;
  for (std::size_t c = kFirstMetricColumn; c < kFirstCountColumn; ++c) {
    double top = -std::numeric_limits<double>::infinity();
    for (const auto& r : rows)
      if (r[c].value) top = std::max(top, *r[c].value);
    for (auto& r : rows) r[c].best = r[c].value && *r[c].value == top;
  }
}

// One row per run: n, each metric (accuracy and AUC with intervals), threshold, confusion counts;
// in two tables so that neither needs a scroll bar: the metrics, then threshold and counts.
MetricSection metric_section(std::span<const RunRecord> runs, const std::string& split) {
  std::vector<std::string> header{"Model", "n"};
  for (const auto& c : kMetricColumns) header.push_back(c.title);
  for (const char* h : {"Threshold", "Positive class", "TP", "FP", "TN", "FN"}) header.push_back(h);
  MetricSection section;
  section.title = split_title(split) + " split";
  std::vector<std::vector<ReportCell>> rows;
  for (const auto& run : runs) {
    const json* m = split_metrics(run, split);
    rows.push_back(metric_row(run, m, header.size()));
    if (m && section.interval_note.empty()) section.interval_note = interval_note(*m);
  }
  mark_best(rows);
  section.best_marked = rows.size() > 1;
  std::vector<std::size_t> metric_columns, count_columns{0};
  for (std::size_t c = 0; c < header.size(); ++c)
    (c < kFirstCountColumn ? metric_columns : count_columns).push_back(c);
  for (const auto* columns : {&metric_columns, &count_columns}) {
    ReportTable& t = section.tables.emplace_back();
    for (std::size_t c : *columns) t.header.push_back(header[c]);
    for (const auto& row : rows) {
      auto& out = t.rows.emplace_back();
      for (std::size_t c : *columns) out.push_back(row[c]);
    }
  }
  return section;
}

std::vector<ReportCell> training_row(const RunRecord& run) {
  std::vector<ReportCell> r{{run.name}, {"not available"}, {}, {}, {}, {}, {}};
  if (!run.history || run.history->epochs.empty()) return r;
  const History& h = *run.history;
  const EpochRecord* best = nullptr;
  for (const auto& e : h.epochs)
    if (std::isfinite(e.val_accuracy) && (!best || e.val_accuracy > best->val_accuracy)) best = &e;
  r[1].text = fmt::format("{}", h.epochs.size());
  r[2].text = duration(h.total_seconds());
  r[3].text = fixed(h.images_per_second(), 1);
  r[4].text = fixed(h.epochs.back().train_loss);
  r[5].text = fixed(h.epochs.back().val_loss);
  r[6].text = best ? fmt::format("{:.4f} (epoch {})", best->val_accuracy, best->epoch) : "n/a";
  return r;
}

ReportTable training_table(std::span<const RunRecord> runs) {
  ReportTable t;
  t.header = {"Model",          "Epochs",           "Training time", "Images/s", "Final train loss",
              "Final val loss", "Best val accuracy"};
  for (const auto& run : runs) t.rows.push_back(training_row(run));
  return t;
}

// Which dtype and implementation each convolution, dense layer and pooling ran with.
std::optional<ReportTable> layer_table(const RunRecord& run) {
  if (!run.layers || run.layers->empty()) return std::nullopt;
  ReportTable t;
  t.header = {"program", "layer", "op", "dtype", "implementation", "why"};
  t.numbers = false;
  for (const auto& row : *run.layers) {
    auto& out = t.rows.emplace_back();
    for (const char* key : {"program", "node", "op", "dtype", "implementation", "why"})
      out.push_back({row.is_object() && row.contains(key) && row[key].is_string()
                         ? row[key].get<std::string>()
                         : std::string("?")});
  }
  return t;
}

std::string title_of(std::span<const RunRecord> runs, const ReportOptions& options) {
  if (!options.title.empty()) return options.title;
  if (runs.size() == 1) return fmt::format("Evaluation report: {}", runs[0].name);
  std::string names;
  for (const auto& r : runs) names += (names.empty() ? "" : ", ") + r.name;
  return "Model comparison: " + names;
}

// What is classified, from the class names the first run's metrics were computed with.
std::string task_of(std::span<const RunRecord> runs) {
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
  return task;
}

std::vector<std::string> notes_of(std::span<const RunRecord> runs) {
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
  return notes;
}

}  // namespace

ReportModel build_report_model(std::span<const RunRecord> runs, const ReportOptions& options,
                               std::vector<FigureSection> figures,
                               std::span<const std::string> warnings) {
  ReportModel model;
  model.title = title_of(runs, options);
  model.generated = now_utc();
  model.facts = {task_of(runs), fmt::format("{} model{}", runs.size(), runs.size() == 1 ? "" : "s"),
                 "generated by onnxforge on " + model.generated};
  for (const auto& split : split_names(runs)) model.metrics.push_back(metric_section(runs, split));
  model.run_details = options.run_details;
  if (options.run_details) {
    model.training = training_table(runs);
    for (const auto& run : runs)
      model.runs.push_back({run.name,
                            {run.summary, "text", "Model summary not available (summary.txt)."},
                            {run.config_toml, "toml", "Configuration not available (config.toml)."},
                            layer_table(run)});
  }
  int number = 0;
  for (auto& sec : figures) {
    if (sec.figures.empty()) continue;
    for (auto& f : sec.figures) f.number = ++number;
    model.figures.push_back(std::move(sec));
  }
  model.notes = notes_of(runs);
  model.notes.insert(model.notes.end(), warnings.begin(), warnings.end());
  model.limitations_intro =
      "Edit this section for your use: it is a starting point, not a verdict.";
  model.limitations.assign(std::begin(kConcerns), std::end(kConcerns));
  return model;
}

}  // namespace onnxforge::eval
