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

ReportCell rate_cell(const std::optional<double>& value, const std::optional<Interval>& iv) {
  ReportCell c{fixed(value), "", value, false};
  if (value && iv) c.interval = fmt::format("[{:.4f}, {:.4f}]", iv->lo, iv->hi);
  return c;
}

std::string class_one_name(const json* m) { return m ? predicted_one(*m) : "label 1"; }

// Brier, ECE and the reliability bins per split, one row per run.
ReportPart calibration_part(std::span<const RunRecord> runs) {
  ReportPart part;
  part.id = "calibration";
  part.title = "Calibration";
  part.intro = {
      "How far the score can be read as a probability of label 1. Brier score: the mean of "
      "(score - [label = 1])^2 (scikit-learn's brier_score_loss). Expected calibration error "
      "(ECE): the scores fall into 10 equal-width bins of [0, 1]; ECE = sum over bins of "
      "(n_bin / n) * |fraction of label 1 in the bin - mean score in the bin|. Lower is better "
      "for both; the reliability diagrams are in the figures."};
  for (const auto& split : split_names(runs)) {
    TableSection sec;
    sec.title = split_title(split) + " split";
    ReportTable summary;
    summary.header = {"Model", "n", "Brier score", "ECE"};
    ReportTable bins;
    std::string one = "label 1";
    for (const auto& run : runs)
      if (const json* m = split_metrics(run, split)) {
        one = class_one_name(m);
        break;
      }
    bins.caption = "Reliability bins (non-empty bins only)";
    bins.header = {"Model", "Score bin", "n", "Mean score", "Fraction " + one};
    bool any = false;
    for (const auto& run : runs) {
      const json* m = split_metrics(run, split);
      const auto c = m ? report_json::calibration_of(*m) : std::nullopt;
      if (!c) {
        summary.rows.push_back({{run.name}, {"not available"}, {}, {}});
        continue;
      }
      any = true;
      const auto n = number(*m, "n");
      summary.rows.push_back({{run.name},
                              {n ? fmt::format("{}", static_cast<long long>(*n)) : "n/a"},
                              {fixed(c->brier), "", c->brier, false},
                              {fixed(c->ece), "", c->ece, false}});
      for (std::size_t b = 0; b < c->bins.size(); ++b) {
        const CalibrationBin& bin = c->bins[b];
        if (bin.count == 0) continue;
        const bool last = b + 1 == c->bins.size();
        bins.rows.push_back({{run.name},
                             {fmt::format("[{:.1f}, {:.1f}{}", bin.lo, bin.hi, last ? "]" : ")")},
                             {fmt::format("{}", bin.count)},
                             {fixed(bin.mean_score)},
                             {fixed(bin.fraction_label_1)}});
      }
    }
    if (!any) continue;
    sec.tables.push_back(std::move(summary));
    sec.tables.push_back(std::move(bins));
    part.sections.push_back(std::move(sec));
  }
  if (part.sections.empty())
    part.missing =
        "Calibration not available (no split has metrics.json with calibration or "
        "predictions.csv).";
  return part;
}

struct ThresholdRow {
  std::string threshold, rule;
  std::optional<Metrics> metrics;
};

std::vector<ReportCell> threshold_cells(const std::string& run, const std::string& threshold,
                                        const std::string& rule, const Metrics* m) {
  std::vector<ReportCell> row{{run}, {threshold}, {rule}};
  if (!m) {
    row.push_back({"not available"});
    row.resize(11);
    return row;
  }
  for (const auto& v : {m->accuracy, m->sensitivity, m->specificity, m->f1})
    row.push_back({fixed(v), "", v, false});
  for (auto v : {m->confusion.tp, m->confusion.fp, m->confusion.tn, m->confusion.fn})
    row.push_back({fmt::format("{}", v)});
  return row;
}

// Per run: the threshold chosen on its validation predictions, applied to validation and test,
// beside the fixed 0.5.
ReportPart threshold_part(std::span<const RunRecord> runs, const ThresholdRule& rule) {
  ReportPart part;
  part.id = "threshold";
  part.title = "Threshold chosen on validation";
  part.intro = {fmt::format(
      "Each model's threshold was chosen on its validation split only, by {}, and then applied "
      "unchanged to the test split; nothing of the test split was used to choose it. The test "
      "rows at the chosen threshold are therefore a fair estimate; the validation rows at it are "
      "optimistic (the threshold was fitted to them). The rows at 0.5 use the fixed default.",
      describe(rule))};
  struct Chosen {
    std::optional<ThresholdChoice> choice;
    std::string why;  // when there is none
  };
  std::vector<Chosen> chosen;
  for (const auto& run : runs) {
    Chosen c;
    const SplitRecord* val = nullptr;
    for (const auto& s : run.splits)
      if (s.name == "val") val = &s;
    if (!val || !val->predictions) {
      c.why = "validation predictions not available (val/predictions.csv): no threshold chosen";
    } else {
      const MetricsOptions o = val->metrics ? options_of(*val->metrics) : MetricsOptions{};
      try {
        c.choice = choose_threshold(*val->predictions, o, rule);
        if (!c.choice) c.why = "the validation split lacks a class: no threshold chosen";
      } catch (const std::exception& e) {
        c.why = e.what();
      }
    }
    chosen.push_back(std::move(c));
  }
  for (const char* split : {"val", "test"}) {
    TableSection sec;
    sec.title = split_title(split) + " split";
    ReportTable t;
    t.header = {"Model", "Threshold", "Chosen by", "Accuracy", "Sensitivity", "Specificity",
                "F1",    "TP",        "FP",        "TN",       "FN"};
    bool any = false;
    for (std::size_t r = 0; r < runs.size(); ++r) {
      const RunRecord& run = runs[r];
      const SplitRecord* s = nullptr;
      for (const auto& candidate : run.splits)
        if (candidate.name == split) s = &candidate;
      if (!s || !s->predictions) {
        if (s && s->metrics)
          sec.notes.push_back(
              fmt::format("{}: {} predictions not available", run.name, split_title(split)));
        continue;
      }
      any = true;
      MetricsOptions o = s->metrics ? options_of(*s->metrics) : MetricsOptions{};
      o.threshold = 0.5;
      const Metrics fixed_m = compute_metrics(*s->predictions, o);
      t.rows.push_back(threshold_cells(run.name, "0.5000", "fixed default", &fixed_m));
      if (chosen[r].choice) {
        o.threshold = chosen[r].choice->threshold;
        const Metrics chosen_m = compute_metrics(*s->predictions, o);
        t.rows.push_back(
            threshold_cells(run.name, fmt::format("{:.4f}", o.threshold), "validation", &chosen_m));
      } else {
        t.rows.push_back(threshold_cells(run.name, "n/a", "validation", nullptr));
        sec.notes.push_back(fmt::format("{}: {}", run.name, chosen[r].why));
      }
    }
    if (!any) continue;
    sec.tables.push_back(std::move(t));
    part.sections.push_back(std::move(sec));
  }
  if (part.sections.empty())
    part.missing =
        "Not available: no run has predictions (val/predictions.csv, "
        "test/predictions.csv) to choose and apply a threshold on.";
  return part;
}

std::string gap_text(const Gap& g) {
  if (!g.value) return "n/a";
  if (g.max_group == g.min_group) return fmt::format("{:.4f} (all groups equal)", *g.value);
  return fmt::format("{:.4f} ({} - {})", *g.value, g.max_group, g.min_group);
}

ReportPart subgroups_part(const SubgroupReport* report) {
  ReportPart part;
  part.id = "subgroups";
  part.title = "Subgroups";
  if (!report) {
    part.missing =
        "Subgroup metrics not available: no groups file was given (onnxforge report --groups "
        "FILE, a CSV path,<attribute>,...).";
    return part;
  }
  std::string attrs;
  for (const auto& a : report->attributes) attrs += (attrs.empty() ? "" : ", ") + a;
  const double level = report->results.empty() ? 0.95 : report->results[0].options.confidence_level;
  part.intro = {
      fmt::format("Groups from {} (attributes: {}). Per group, at each model's threshold on the "
                  "split: accuracy, TPR (sensitivity among the group's positives) and FPR (1 - "
                  "specificity among its negatives); brackets: {:.0f}% Wilson score intervals. "
                  "Equalized-odds gap of an attribute: max over its groups minus min, of TPR and "
                  "of FPR (the groups in parentheses); the larger of the two is the gap. "
                  "Also in subgroups.json.",
                  report->groups_file.string(), attrs, level * 100)};
  std::vector<std::string> splits;
  for (const auto& r : report->results)
    if (std::find(splits.begin(), splits.end(), r.split) == splits.end()) splits.push_back(r.split);
  for (const auto& split : splits) {
    TableSection sec;
    sec.title = split_title(split) + " split";
    ReportTable gaps;
    gaps.caption = "Equalized-odds gaps";
    gaps.header = {"Model", "Attribute", "TPR gap", "FPR gap", "Equalized-odds gap"};
    for (std::size_t a = 0; a < report->attributes.size(); ++a) {
      ReportTable t;
      t.caption = "Attribute: " + report->attributes[a];
      t.header = {"Model", "Group", "n", "Accuracy", "TPR", "FPR"};
      for (const auto& r : report->results) {
        if (r.split != split || a >= r.metrics.attributes.size()) continue;
        const AttributeMetrics& am = r.metrics.attributes[a];
        for (const auto& g : am.groups)
          t.rows.push_back({{r.run},
                            {g.group},
                            {fmt::format("{}", g.n)},
                            rate_cell(g.accuracy.value, g.accuracy.interval),
                            rate_cell(g.tpr.value, g.tpr.interval),
                            rate_cell(g.fpr.value, g.fpr.interval)});
      }
      sec.tables.push_back(std::move(t));
    }
    for (const auto& r : report->results)  // run by run
      if (r.split == split)
        for (const auto& am : r.metrics.attributes)
          gaps.rows.push_back({{r.run},
                               {am.attribute},
                               {gap_text(am.tpr_gap)},
                               {gap_text(am.fpr_gap)},
                               {fixed(am.equalized_odds_gap), "", am.equalized_odds_gap, false}});
    sec.tables.push_back(std::move(gaps));
    for (const auto& r : report->results)
      if (r.split == split) {
        sec.notes.push_back(fmt::format("{}: {} predictions matched a row of the groups file.",
                                        r.run, r.metrics.matched));
        for (const auto& n : r.metrics.notes) sec.notes.push_back(fmt::format("{}: {}", r.run, n));
      }
    part.sections.push_back(std::move(sec));
  }
  if (!report->notes.empty()) {
    TableSection sec;
    sec.title = "Not measured";
    sec.notes = report->notes;
    part.sections.push_back(std::move(sec));
  }
  return part;
}

// The limitations' measured-gap concern: the largest gap per model, or why there is none.
Concern measured_gaps(std::span<const RunRecord> runs, const SubgroupReport* report) {
  Concern c{"Measured subgroup gaps.", ""};
  if (!report) {
    c.text =
        "No groups file was given (onnxforge report --groups FILE), so no error rates per "
        "subgroup were measured: the overall numbers above may hide much larger gaps.";
    return c;
  }
  std::string text;
  for (const auto& run : runs) {
    const RunSubgroups* best_r = nullptr;
    const AttributeMetrics* best_a = nullptr;
    for (const auto& r : report->results) {
      if (r.run != run.name) continue;
      for (const auto& a : r.metrics.attributes)
        if (a.equalized_odds_gap &&
            (!best_a || *a.equalized_odds_gap > *best_a->equalized_odds_gap)) {
          best_a = &a;
          best_r = &r;
        }
    }
    if (!best_a) {
      text += fmt::format(" {}: no gap could be measured.", run.name);
      continue;
    }
    if (*best_a->equalized_odds_gap == 0) {
      text += fmt::format(
          " {}: no gap (every group has the same TPR and FPR on every attribute "
          "and split).",
          run.name);
      continue;
    }
    const bool tpr = best_a->tpr_gap.value.value_or(-1) >= best_a->fpr_gap.value.value_or(-1);
    const Gap& g = tpr ? best_a->tpr_gap : best_a->fpr_gap;
    const auto rate_of = [&](const std::string& group) {
      for (const auto& gm : best_a->groups)
        if (gm.group == group) return tpr ? gm.tpr.value : gm.fpr.value;
      return std::optional<double>{};
    };
    text += fmt::format(
        " {}: largest equalized-odds gap {:.4f} ({} gap, attribute {}, {} split: {} {} vs {} "
        "{}).",
        run.name, *best_a->equalized_odds_gap, tpr ? "TPR" : "FPR", best_a->attribute,
        best_r->split == "val" ? std::string("validation") : best_r->split, g.max_group,
        fixed(rate_of(g.max_group)), g.min_group, fixed(rate_of(g.min_group)));
  }
  c.text = fmt::format(
      "Measured on {}:{} See the Subgroups section for every group and its "
      "interval; small groups have wide intervals.",
      report->groups_file.filename().string(), text);
  return c;
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
                               std::span<const std::string> warnings,
                               const SubgroupReport* subgroups) {
  ReportModel model;
  model.title = title_of(runs, options);
  model.generated = now_utc();
  model.facts = {task_of(runs), fmt::format("{} model{}", runs.size(), runs.size() == 1 ? "" : "s"),
                 "generated by onnxforge on " + model.generated};
  for (const auto& split : split_names(runs)) model.metrics.push_back(metric_section(runs, split));
  model.calibration = calibration_part(runs);
  model.threshold = threshold_part(runs, options.threshold_rule);
  model.subgroups = subgroups_part(subgroups);
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
    std::erase_if(sec.subsections, [](const FigureSubsection& s) { return s.figures.empty(); });
    if (sec.figures.empty() && sec.subsections.empty()) continue;
    for (auto& f : sec.figures) f.number = ++number;
    for (auto& sub : sec.subsections)
      for (auto& f : sub.figures) f.number = ++number;
    model.figures.push_back(std::move(sec));
  }
  model.notes = options.notes;
  const auto run_notes = notes_of(runs);
  model.notes.insert(model.notes.end(), run_notes.begin(), run_notes.end());
  model.notes.insert(model.notes.end(), warnings.begin(), warnings.end());
  model.limitations_intro =
      "Edit this section for your use: it is a starting point, not a verdict.";
  model.limitations.assign(std::begin(kConcerns), std::end(kConcerns));
  // After "Dataset bias.": what was measured.
  model.limitations.insert(model.limitations.begin() + 3, measured_gaps(runs, subgroups));
  return model;
}

}  // namespace onnxforge::eval
