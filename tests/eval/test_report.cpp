// report.html / report.md for one run, several runs and runs with missing pieces; and a look at
// report.html as a user sees it: rendered by headless Chromium.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <regex>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "eval/plots.hpp"
#include "eval/report.hpp"
#include "eval/report_model.hpp"
#include "tests/eval/eval_fixtures.hpp"

namespace onnxforge::eval {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::write_text;

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// Brier and ECE from a metrics.json.
std::pair<double, double> report_json_calibration(const nlohmann::json& m) {
  return {m["calibration"]["brier"].get<double>(), m["calibration"]["ece"].get<double>()};
}

std::vector<RunRecord> load(const std::vector<fs::path>& dirs) {
  std::vector<RunRecord> runs;
  for (const auto& d : dirs) runs.push_back(load_run(d));
  return runs;
}

TEST(Report, Base64AndEscaping) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(html_escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
}

TEST(Report, OneRunHasEverySection) {
  TempDir tmp;
  const fs::path run = tmp.path() / "baseline_cnn";
  testing::make_run(run, "baseline_cnn", 1.5);
  const auto runs = load({run});
  ASSERT_EQ(runs[0].name, "baseline_cnn");
  EXPECT_TRUE(runs[0].notes.empty()) << runs[0].notes.front();
  const auto out = write_report(runs, run);
  const std::string html = read_file(out.html), md = read_file(out.markdown);
  for (const char* needle : {"<h2>Metrics</h2>",
                             "Validation split",
                             "Test split",
                             "<h2>Training</h2>",
                             "50.0 s",
                             "Images/s",
                             "<h2>Figures</h2>",
                             "<h2>Models</h2>",
                             "conv1        32x98x98",
                             "<h2>Configurations</h2>",
                             "batch_size = 32",
                             "Limitations and ethical concerns",
                             "Dataset bias",
                             "Non-binary",
                             "Consent",
                             "Misuse",
                             "95% percentile-bootstrap",
                             "<span class=\"ci\">[",
                             "<h2 id=\"calibration\">Calibration</h2>",
                             "Brier score",
                             "Reliability bins",
                             "<h2 id=\"threshold\">Threshold chosen on validation</h2>",
                             "chosen on its validation split only",
                             "fixed default",
                             "<h2 id=\"subgroups\">Subgroups</h2>",
                             "no groups file was given",
                             "Measured subgroup gaps."})
    EXPECT_NE(html.find(needle), std::string::npos) << needle;
  for (const char* needle :
       {"## Metrics", "### Validation split", "| baseline_cnn |", "```toml",
        "## Limitations and ethical concerns", "**Consent.**", "## Calibration",
        "## Threshold chosen on validation", "## Subgroups", "**Measured subgroup gaps.**"})
    EXPECT_NE(md.find(needle), std::string::npos) << needle;
  if (find_gnuplot()) {
    // loss, accuracy, ROC (val + test), two confusion matrices; a reliability diagram per split
    EXPECT_EQ(out.figures.size(), 7u);
    EXPECT_EQ(count(html, "src=\"data:image/png;base64,"), 7u);
    EXPECT_EQ(count(md, "](plots/baseline_cnn-"), 5u);
    EXPECT_EQ(count(md, "](plots/reliability-"), 2u);
    EXPECT_TRUE(fs::exists(run / "plots" / "reliability-test.svg"));
    EXPECT_TRUE(fs::exists(run / "plots" / "reliability-test.gp"));
    EXPECT_TRUE(out.warnings.empty()) << out.warnings.front();
  }
}

TEST(Report, ComparisonOverlaysEveryModel) {
  TempDir tmp;
  const std::vector<fs::path> dirs{tmp.path() / "baseline", tmp.path() / "improved",
                                   tmp.path() / "vgg16"};
  testing::make_run(dirs[0], "baseline", 0.8);
  testing::make_run(dirs[1], "improved", 1.6);
  testing::make_run(dirs[2], "vgg16", 2.4);
  const auto out = write_report(load(dirs), tmp.path() / "cmp");
  const std::string html = read_file(out.html);
  EXPECT_NE(html.find("Model comparison: baseline, improved, vgg16"), std::string::npos);
  EXPECT_NE(html.find("class=\"best\""), std::string::npos);
  if (find_gnuplot()) {
    EXPECT_TRUE(fs::exists(tmp.path() / "cmp" / "plots" / "all-roc-val.png"));
    EXPECT_TRUE(fs::exists(tmp.path() / "cmp" / "plots" / "all-roc-test.svg"));
    EXPECT_EQ(out.figures.size(), 2u + 2u + 3u * 5u);
    const std::string svg = read_file(tmp.path() / "cmp" / "plots" / "all-roc-test.svg");
    for (const char* model : {"baseline (AUC", "improved (AUC", "vgg16 (AUC"})
      EXPECT_NE(svg.find(model), std::string::npos) << model;
    const std::string reliability = read_file(tmp.path() / "cmp" / "plots" / "reliability-val.svg");
    for (const char* model :
         {"baseline (ECE", "improved (ECE", "vgg16 (ECE", "perfect calibration"})
      EXPECT_NE(reliability.find(model), std::string::npos) << model;
  }
}

TEST(Report, MissingPiecesAreNotAvailableNeverACrash) {
  TempDir tmp;
  const fs::path partial = tmp.path() / "partial", empty = tmp.path() / "empty",
                 broken = tmp.path() / "broken", absent = tmp.path() / "absent";
  testing::make_run(partial, "partial", 1.0, /*complete=*/false);
  fs::create_directories(empty);
  testing::make_run(broken, "broken", 1.0);
  write_text(broken / "val" / "metrics.json", "{ not json");  // recomputed from predictions.csv
  fs::remove(broken / "test" / "metrics.json");
  write_text(broken / "test" / "predictions.csv", "path,label,score\na.jpg,7,0.5\n");
  write_text(broken / "history.csv", "epoch,train_loss\n1,abc\n");
  const auto runs = load({partial, empty, broken, absent});
  ASSERT_TRUE(runs[2].splits[0].metrics.has_value());  // val recomputed
  EXPECT_FALSE(runs[2].splits[1].metrics.has_value());
  ReportOptions options;
  options.title = "Partial <runs>";
  ReportOutputs out;
  ASSERT_NO_THROW(out = write_report(runs, tmp.path() / "report", options));
  const std::string html = read_file(out.html);
  for (const char* needle :
       {"Partial &lt;runs&gt;", "not available", "Model summary not available (summary.txt)",
        "Configuration not available (config.toml)", "summary.txt not available",
        "Test metrics not available", "recomputed from predictions.csv", "label &#39;7&#39;",
        "history.csv unreadable", "run folder", "training history not available"})
    EXPECT_NE(html.find(needle), std::string::npos) << needle;
  EXPECT_TRUE(fs::exists(out.markdown));
}

TEST(Report, DegenerateMetricsStillMakeAReport) {
  TempDir tmp;
  MetricsOptions options;
  options.bootstrap_resamples = 20;
  const std::vector<Prediction> one_class{{"a", 1, 0.9}, {"b", 1, 0.2}};
  const std::vector<Prediction> nan_only{{"a", 1, std::nan("")}};
  RunRecord run;
  run.name = "degenerate";
  run.splits.push_back(split_record("val", compute_metrics(one_class, options)));
  run.splits.push_back(split_record("test", compute_metrics(nan_only, options)));
  ReportOptions report_options;
  report_options.run_details = false;  // as the `metrics` command: no training, models, configs
  const auto out = write_report(std::span(&run, 1), tmp.path(), report_options);
  const std::string html = read_file(out.html);
  EXPECT_EQ(html.find("<h2>Training</h2>"), std::string::npos);
  EXPECT_EQ(html.find("<h2>Configurations</h2>"), std::string::npos);
  EXPECT_NE(html.find("ROC AUC is undefined"), std::string::npos);
  EXPECT_NE(html.find("no predictions with a finite score"), std::string::npos);
  if (find_gnuplot()) {
    const std::string svg = read_file(tmp.path() / "plots" / "degenerate-roc.svg");
    EXPECT_NE(svg.find("AUC undefined"), std::string::npos);
  }
}

// ---- calibration, threshold, subgroups and explain.json in a comparison ------------------

std::uint32_t crc_of(const std::string& type_and_data) {
  return static_cast<std::uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(type_and_data.data()), type_and_data.size()));
}

std::string be32_bytes(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// A valid 8-bit RGB PNG of one colour, made with zlib (what explain.json's figures point to).
std::string tiny_png(std::uint32_t width, std::uint32_t height, std::uint32_t rgb) {
  std::string raw;
  for (std::uint32_t y = 0; y < height; ++y) {
    raw += '\0';
    for (std::uint32_t x = 0; x < width; ++x)
      raw += {static_cast<char>(rgb >> 16), static_cast<char>(rgb >> 8), static_cast<char>(rgb)};
  }
  uLongf size = compressBound(raw.size());
  std::string z(size, '\0');
  compress(reinterpret_cast<Bytef*>(z.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
           raw.size());
  z.resize(size);
  auto chunk = [](const std::string& type, const std::string& data) {
    return be32_bytes(static_cast<std::uint32_t>(data.size())) + type + data +
           be32_bytes(crc_of(type + data));
  };
  const std::string ihdr =
      be32_bytes(width) + be32_bytes(height) + std::string("\x08\x02\0\0\0", 5);
  return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", ihdr) + chunk("IDAT", z) +
         chunk("IEND", "");
}

// Rewrites RUN/{val,test}/predictions.csv with dataset paths (gender/<split>/<class>/img_i.jpg,
// relative: matched to groups.csv by their trailing components) and returns groups.csv's rows.
std::string use_dataset_paths(const fs::path& run) {
  std::string rows;
  for (const char* split : {"val", "test"}) {
    auto predictions = read_predictions_csv(run / split / "predictions.csv");
    for (std::size_t i = 0; i < predictions.size(); ++i) {
      const std::string path = fmt::format("gender/{}/{}/img_{}.jpg", split,
                                           predictions[i].label == 1 ? "Male" : "Female", i);
      predictions[i].path = path;
      const char* tone[] = {"dark", "medium", "light"};
      rows += fmt::format("{},{},{}\n", path, tone[i % 3], (i / 2) % 2 ? "yes" : "no");
    }
    write_predictions_csv(run / split / "predictions.csv", predictions);
  }
  return rows;
}

// Two runs under one folder, the report beside them: groups.csv, and explain.json in baseline.
struct ExplainedRuns {
  TempDir tmp;
  fs::path root, groups;
  std::string gradcam_png = tiny_png(40, 30, 0xC04020);
  std::vector<RunRecord> runs;
  ExplainedRuns() {
    root = tmp.path() / "runs";
    const std::vector<fs::path> dirs{root / "baseline", root / "vgg16"};
    testing::make_run(dirs[0], "baseline", 0.8);
    testing::make_run(dirs[1], "vgg16", 1.6);  // errors in both classes: gaps to measure
    groups = tmp.path() / "data" / "groups.csv";
    write_text(groups, "path,skin_tone,glasses\n" + use_dataset_paths(dirs[0]));
    use_dataset_paths(dirs[1]);  // the same images
    write_text(dirs[0] / "plots" / "gradcam_val.png", gradcam_png);
    write_text(dirs[0] / "explain.json",
               R"({"method": "Grad-CAM on the last convolution, averaged over the channels.",
                   "figures": [
                     {"caption": "Grad-CAM of validation images", "png": "plots/gradcam_val.png",
                      "kind": "gradcam"},
                     {"caption": "Most confident mistakes", "png": "plots/mistakes_val.png",
                      "kind": "mistakes"}]})");
    write_text(dirs[1] / "explain.json", R"({"figures": [{"caption": 3}]})");
    runs = load(dirs);
  }
};

TEST(Report, CalibrationThresholdSubgroupsAndExplainFigures) {
  ExplainedRuns e;
  const RunRecord& baseline = e.runs[0];
  ASSERT_TRUE(baseline.splits[0].predictions.has_value());
  EXPECT_EQ(baseline.splits[0].predictions->size(), 60u);
  ASSERT_TRUE(baseline.explain.has_value());
  EXPECT_EQ(baseline.explain->figures.size(), 2u);
  EXPECT_FALSE(e.runs[1].explain.has_value());
  ASSERT_FALSE(e.runs[1].notes.empty());
  EXPECT_NE(e.runs[1].notes.back().find("explain.json unreadable: figure 1 has no \"caption\""),
            std::string::npos);

  ReportOptions options;
  options.groups = e.groups;
  const auto out = write_report(e.runs, e.root, options);  // the comparison beside the runs
  const std::string html = read_file(out.html), md = read_file(out.markdown);

  // subgroups.json: every run and split, every prediction matched by its trailing components.
  ASSERT_TRUE(out.subgroups.has_value());
  const auto sub = nlohmann::json::parse(read_file(*out.subgroups));
  ASSERT_EQ(sub["results"].size(), 4u);
  EXPECT_EQ(sub["attributes"], (nlohmann::json{"skin_tone", "glasses"}));
  for (const auto& r : sub["results"]) {
    EXPECT_EQ(r["matched"], 60);
    EXPECT_EQ(r["unmatched"], 0);
  }
  // Its numbers equal subgroup_metrics on the same predictions.
  const GroupTable groups = read_groups_csv(e.groups);
  MetricsOptions o = options_of(*baseline.splits[1].metrics);
  const SubgroupMetrics test_sub = subgroup_metrics(*baseline.splits[1].predictions, groups, o);
  const auto& tone = test_sub.attributes[0];
  EXPECT_EQ(sub["results"][1]["split"], "test");
  EXPECT_EQ(sub["results"][1]["attributes"][0]["equalized_odds_gap"].get<double>(),
            tone.equalized_odds_gap.value());
  EXPECT_EQ(tone.groups.size(), 3u);
  EXPECT_EQ(tone.groups[0].n, 20u);

  for (const char* needle :
       {"<h2 id=\"subgroups\">Subgroups</h2>", "Attribute: skin_tone", "Attribute: glasses",
        "Equalized-odds gaps", "95% Wilson score intervals", "Grad-CAM</h4>",
        "Most confident mistakes</h4>", "Grad-CAM on the last convolution",
        "mistakes_val.png not found", "explain.json unreadable", "Reliability diagram",
        "data-check=\"subgroups-table\"", "data-check=\"figure-reliability-val\""})
    EXPECT_NE(html.find(needle), std::string::npos) << needle;
  // The group table's cells: the rate with its Wilson interval.
  const auto& dark = tone.groups[0];
  EXPECT_NE(html.find(fmt::format("<td>{:.4f}<br><span class=\"ci\">[{:.4f}, {:.4f}]</span>",
                                  *dark.tpr.value, dark.tpr.interval->lo, dark.tpr.interval->hi)),
            std::string::npos);
  // The explain PNG: inlined in HTML, linked relative to the report's folder in Markdown.
  EXPECT_NE(html.find("src=\"data:image/png;base64," + base64_encode(e.gradcam_png) + "\""),
            std::string::npos);
  EXPECT_NE(md.find("](baseline/plots/gradcam_val.png)"), std::string::npos);
  for (const char* needle :
       {"## Subgroups", "**Attribute: skin_tone**", "#### Grad-CAM", "#### Most confident mistakes",
        "## Calibration", "## Threshold chosen on validation"})
    EXPECT_NE(md.find(needle), std::string::npos) << needle;

  // The threshold: chosen on validation by Youden's J, applied to test, beside 0.5.
  const auto choice = choose_threshold(*baseline.splits[0].predictions, o, {});
  ASSERT_TRUE(choice.has_value());
  o.threshold = choice->threshold;
  const Metrics at_test = compute_metrics(*baseline.splits[1].predictions, o);
  const std::string row = fmt::format(
      "| baseline | {:.4f} | validation | {:.4f} | {:.4f} | {:.4f} | {:.4f} | {} | {} | {} | {} |",
      choice->threshold, *at_test.accuracy, *at_test.sensitivity, *at_test.specificity, *at_test.f1,
      at_test.confusion.tp, at_test.confusion.fp, at_test.confusion.tn, at_test.confusion.fn);
  EXPECT_NE(md.find(row), std::string::npos) << row;
  EXPECT_NE(md.find("| baseline | 0.5000 | fixed default |"), std::string::npos);
  EXPECT_NE(md.find("chosen on its validation split only"), std::string::npos);

  // Calibration: Brier and ECE of metrics.json in the table.
  const auto cal = report_json_calibration(*baseline.splits[0].metrics);
  EXPECT_NE(md.find(fmt::format("| baseline | 60 | {:.4f} | {:.4f} |", cal.first, cal.second)),
            std::string::npos);

  // Limitations cite each model's largest measured gap, with its numbers.
  double largest = -1;
  std::string attribute, split;
  for (const auto& r : sub["results"])
    if (r["run"] == "vgg16")
      for (const auto& a : r["attributes"])
        if (a["equalized_odds_gap"].is_number() &&
            a["equalized_odds_gap"].get<double>() > largest) {
          largest = a["equalized_odds_gap"].get<double>();
          attribute = a["attribute"].get<std::string>();
          split = r["split"].get<std::string>() == "val" ? "validation" : "test";
        }
  EXPECT_NE(md.find(fmt::format("vgg16: largest equalized-odds gap {:.4f}", largest)),
            std::string::npos);
  EXPECT_NE(md.find(fmt::format("attribute {}, {} split", attribute, split)), std::string::npos);
  EXPECT_NE(md.find("baseline: largest equalized-odds gap"), std::string::npos);

  // A groups file that is not one: an Error naming it.
  write_text(e.tmp.path() / "bad.csv", "file,skin\n");
  options.groups = e.tmp.path() / "bad.csv";
  try {
    write_report(e.runs, e.tmp.path() / "bad", options);
    ADD_FAILURE() << "no error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("bad.csv:1: no 'path' column"), std::string::npos);
  }
}

// ---- the model, apart from its rendering --------------------------------------------------

// Two runs from metrics in memory: "weak" with a validation split only, "strong" with both.
struct TwoRuns {
  Metrics weak_val, strong_val, strong_test;
  std::vector<RunRecord> runs;
  TwoRuns() {
    MetricsOptions options;
    options.bootstrap_resamples = 50;
    options.class_names = {"Female", "Male"};
    weak_val = compute_metrics(testing::synthetic_predictions(60, 0.3), options);
    strong_val = compute_metrics(testing::synthetic_predictions(60, 3.0), options);
    strong_test = compute_metrics(testing::synthetic_predictions(40, 2.5), options);
    runs.resize(2);
    runs[0].name = "weak";
    runs[0].splits.push_back(split_record("val", weak_val));
    runs[1].name = "strong";
    runs[1].splits.push_back(split_record("val", strong_val));
    runs[1].splits.push_back(split_record("test", strong_test));
  }
};

TEST(ReportModel, BuiltFromRecordsInMemory) {
  const TwoRuns two;
  const ReportModel model = build_report_model(two.runs, {});
  EXPECT_EQ(model.title, "Model comparison: weak, strong");
  ASSERT_EQ(model.facts.size(), 3u);
  EXPECT_EQ(model.facts[0], "Binary classification: Female vs Male");
  EXPECT_EQ(model.facts[1], "2 models");

  ASSERT_EQ(model.metrics.size(), 2u);
  const MetricSection& val = model.metrics[0];
  EXPECT_EQ(val.title, "Validation split");
  EXPECT_TRUE(val.best_marked);
  EXPECT_NE(val.interval_note.find("95% percentile-bootstrap intervals (50 resamples)"),
            std::string::npos);
  ASSERT_EQ(val.tables.size(), 2u);  // the metrics, then threshold and counts
  const ReportTable& metrics = val.tables[0];
  ASSERT_EQ(metrics.header.size(), 10u);
  EXPECT_EQ(metrics.header[2], "Accuracy");
  EXPECT_EQ(metrics.header[3], "AUC");
  ASSERT_EQ(metrics.rows.size(), 2u);
  // The stronger model has the higher accuracy and AUC: only its cells are the best.
  ASSERT_GT(*two.strong_val.accuracy, *two.weak_val.accuracy);
  ASSERT_GT(*two.strong_val.auc, *two.weak_val.auc);
  for (std::size_t c : {2u, 3u}) {
    EXPECT_FALSE(metrics.rows[0][c].best) << metrics.header[c];
    EXPECT_TRUE(metrics.rows[1][c].best) << metrics.header[c];
  }
  EXPECT_EQ(metrics.rows[1][0].text, "strong");
  EXPECT_EQ(metrics.rows[1][2].text, fmt::format("{:.4f}", *two.strong_val.accuracy));
  EXPECT_EQ(metrics.rows[1][2].interval,
            fmt::format("[{:.4f}, {:.4f}]", two.strong_val.accuracy_interval->lo,
                        two.strong_val.accuracy_interval->hi));
  EXPECT_TRUE(metrics.rows[1][4].interval.empty());  // sensitivity has no interval
  const ReportTable& counts = val.tables[1];
  EXPECT_EQ(counts.header[0], "Model");
  EXPECT_EQ(counts.header[1], "Threshold");
  EXPECT_EQ(counts.rows[0][3].text, fmt::format("{}", two.weak_val.confusion.tp));

  // The weak model has no test split: its row says so and nothing is best against it.
  const ReportTable& test = model.metrics[1].tables[0];
  EXPECT_EQ(model.metrics[1].title, "Test split");
  EXPECT_EQ(test.rows[0][1].text, "not available");
  EXPECT_EQ(test.rows[0][2].text, "");
  EXPECT_TRUE(test.rows[1][2].best);

  // No history, summary or configuration: each is "not available", never an error.
  ASSERT_TRUE(model.training.has_value());
  EXPECT_EQ(model.training->rows[1][1].text, "not available");
  ASSERT_EQ(model.runs.size(), 2u);
  EXPECT_FALSE(model.runs[0].summary.text.has_value());
  EXPECT_EQ(model.runs[0].config.missing, "Configuration not available (config.toml).");
  EXPECT_FALSE(model.runs[0].layers.has_value());
  EXPECT_TRUE(model.figures.empty());
  ASSERT_EQ(model.limitations.size(), 7u);
  EXPECT_EQ(model.limitations[3].lead, "Measured subgroup gaps.");
  EXPECT_NE(model.limitations[3].text.find("No groups file was given"), std::string::npos);
  // Records without predictions: no threshold is chosen, and the part says why.
  EXPECT_TRUE(model.threshold.sections.empty());
  EXPECT_NE(model.threshold.missing.find("no run has predictions"), std::string::npos);
  ASSERT_EQ(model.calibration.sections.size(), 2u);
  EXPECT_EQ(model.calibration.sections[0].tables[0].rows[1][2].text,
            fmt::format("{:.4f}", *two.strong_val.calibration.brier));

  // As the `metrics` command: no training, models or configurations, nothing to rank.
  ReportOptions lone;
  lone.run_details = false;
  const ReportModel one = build_report_model(std::span(two.runs).subspan(1), lone);
  EXPECT_EQ(one.title, "Evaluation report: strong");
  EXPECT_FALSE(one.training.has_value());
  EXPECT_TRUE(one.runs.empty());
  EXPECT_FALSE(one.metrics[0].best_marked);
  EXPECT_FALSE(one.metrics[0].tables[0].rows[0][2].best);
}

TEST(ReportModel, HtmlAndMarkdownShowTheSameValues) {
  const TwoRuns two;
  std::vector<FigureSection> figures(1);
  figures[0].title = "strong";
  figures[0].figures.resize(2);
  figures[0].figures[0].caption = "strong: ROC <curves>";
  figures[0].figures[0].png = "\x89PNG";
  figures[0].figures[0].link = "plots/strong-roc.png";
  figures[0].figures[1].caption = "strong: loss";
  figures[0].figures[1].missing = "plots disabled";
  const std::vector<std::string> warnings{"gnuplot says <no>"};
  const ReportModel model = build_report_model(two.runs, {}, figures, warnings);
  EXPECT_EQ(model.figures[0].figures[1].number, 2);
  const std::string html = render_html(model), md = render_markdown(model);

  for (const auto& split : model.metrics)
    for (const auto& table : split.tables)
      for (const auto& row : table.rows)
        for (const auto& cell : row) {
          if (cell.text.empty()) continue;
          const std::string text = html_escape(cell.text);
          if (!cell.interval.empty()) {
            EXPECT_NE(html.find(text + "<br><span class=\"ci\">" + cell.interval + "</span>"),
                      std::string::npos)
                << cell.text;
            EXPECT_NE(md.find(cell.text + " " + cell.interval), std::string::npos) << cell.text;
          } else {
            EXPECT_NE(html.find(">" + text + "</td>"), std::string::npos) << cell.text;
            const std::string bold = cell.best ? "**" : "";
            EXPECT_NE(md.find(" " + bold + cell.text + bold + " |"), std::string::npos)
                << cell.text;
          }
        }
  const ReportCell& best = model.metrics[0].tables[0].rows[1][2];
  ASSERT_TRUE(best.best);
  EXPECT_NE(html.find("<td class=\"best\">" + best.text + "<br>"), std::string::npos);
  EXPECT_NE(md.find("**" + best.text + " " + best.interval + "**"), std::string::npos);
  // Bold in Markdown: the best cells, the concerns' leads and the table captions.
  std::size_t captions = 0;
  for (const auto* part : {&model.calibration, &model.threshold, &model.subgroups})
    for (const auto& sec : part->sections)
      for (const auto& t : sec.tables) captions += t.caption.empty() ? 0 : 1;
  EXPECT_EQ(count(html, "class=\"best\""),
            count(md, "**") / 2 - model.limitations.size() - captions);

  // Figures: inlined in HTML, linked in Markdown, numbered alike; notes and the missing alike.
  EXPECT_NE(html.find("src=\"data:image/png;base64," + base64_encode("\x89PNG") + "\""),
            std::string::npos);
  EXPECT_NE(md.find("![Figure 1. strong: ROC <curves>](plots/strong-roc.png)"), std::string::npos);
  EXPECT_NE(html.find("Figure 1. strong: ROC &lt;curves&gt;"), std::string::npos);
  EXPECT_NE(html.find("Figure not available: plots disabled"), std::string::npos);
  EXPECT_NE(md.find("*Figure 2 not available: plots disabled.*"), std::string::npos);
  EXPECT_NE(html.find("<li>gnuplot says &lt;no&gt;</li>"), std::string::npos);
  EXPECT_NE(md.find("- gnuplot says <no>"), std::string::npos);
  for (const std::string& missing : {model.runs[0].summary.missing, model.runs[1].config.missing}) {
    EXPECT_EQ(count(html, missing), 2u) << missing;
    EXPECT_EQ(count(md, missing), 2u) << missing;
  }
}

// ---- rendering in headless Chromium ------------------------------------------------------

std::optional<fs::path> find_chromium() {
  if (const char* forced = std::getenv("ONNXFORGE_CHROMIUM"))
    return *forced ? std::optional<fs::path>(forced) : std::nullopt;
  const char* path = std::getenv("PATH");
  if (!path) return std::nullopt;
  for (const char* name :
       {"chromium", "chromium-browser", "chromium-headless-shell", "google-chrome"}) {
    std::stringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      const fs::path candidate = fs::path(dir) / name;
      if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return std::nullopt;
}

std::string run_capture(const std::string& command) {
  std::string out;
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return out;
  char buffer[65536];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
  ::pclose(pipe);
  return out;
}

struct Image {
  std::uint32_t width = 0, height = 0;
  std::vector<std::uint32_t> pixels;  // 0xRRGGBB
};

std::uint32_t be32(const std::string& s, std::size_t at) {
  return (std::uint32_t(std::uint8_t(s[at])) << 24) |
         (std::uint32_t(std::uint8_t(s[at + 1])) << 16) |
         (std::uint32_t(std::uint8_t(s[at + 2])) << 8) | std::uint32_t(std::uint8_t(s[at + 3]));
}

// A minimal PNG decoder: 8-bit RGB or RGBA, not interlaced (what Chromium writes).
Image decode_png(const std::string& png) {
  if (png.size() < 33 || png.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0)
    throw std::runtime_error("not a PNG");
  Image img;
  int channels = 0;
  std::string idat;
  for (std::size_t at = 8; at + 8 <= png.size();) {
    const std::uint32_t length = be32(png, at);
    const std::string type = png.substr(at + 4, 4);
    if (type == "IHDR") {
      img.width = be32(png, at + 8);
      img.height = be32(png, at + 12);
      const int depth = std::uint8_t(png[at + 16]), color = std::uint8_t(png[at + 17]);
      if (depth != 8 || (color != 2 && color != 6) || png[at + 20] != 0)
        throw std::runtime_error("unsupported PNG format");
      channels = color == 2 ? 3 : 4;
    } else if (type == "IDAT") {
      idat += png.substr(at + 8, length);
    } else if (type == "IEND") {
      break;
    }
    at += 12 + length;
  }
  const std::size_t stride = std::size_t(img.width) * channels;
  std::vector<unsigned char> raw((stride + 1) * img.height);
  uLongf raw_size = raw.size();
  if (uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) !=
          Z_OK ||
      raw_size != raw.size())
    throw std::runtime_error("corrupt PNG data");
  std::vector<unsigned char> prev(stride, 0), cur(stride);
  img.pixels.reserve(std::size_t(img.width) * img.height);
  for (std::uint32_t y = 0; y < img.height; ++y) {
    const unsigned char* line = raw.data() + y * (stride + 1);
    const int filter = line[0];
    for (std::size_t x = 0; x < stride; ++x) {
      const int a = x >= std::size_t(channels) ? cur[x - channels] : 0, b = prev[x],
                c = x >= std::size_t(channels) ? prev[x - channels] : 0;
      int predictor = 0;
      switch (filter) {
        case 0:
          predictor = 0;
          break;
        case 1:
          predictor = a;
          break;
        case 2:
          predictor = b;
          break;
        case 3:
          predictor = (a + b) / 2;
          break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          throw std::runtime_error("bad PNG filter");
      }
      cur[x] = static_cast<unsigned char>(line[1 + x] + predictor);
    }
    for (std::uint32_t x = 0; x < img.width; ++x) {
      const unsigned char* p = cur.data() + std::size_t(x) * channels;
      img.pixels.push_back((std::uint32_t(p[0]) << 16) | (std::uint32_t(p[1]) << 8) | p[2]);
    }
    std::swap(prev, cur);
  }
  return img;
}

TEST(Report, RendersInHeadlessChromiumWithEveryFigureLoaded) {
  const auto chromium = find_chromium();
  if (!chromium)
    GTEST_SKIP() << "Chromium not found (scripts/setup.sh installs the Debian package "
                    "`chromium`): report.html was not rendered";
  // Two runs with a groups file and explain.json's figures, the comparison beside them.
  ExplainedRuns e;
  const TempDir& tmp = e.tmp;
  ReportOptions options;
  options.groups = e.groups;
  const auto out = write_report(e.runs, e.root, options);
  const std::string common = fmt::format(
      "timeout 60 '{}' --headless --disable-gpu --no-sandbox --hide-scrollbars "
      "--no-first-run --user-data-dir='{}' ",
      chromium->string(), (tmp.path() / "profile").string());
  const std::string url = "'file://" + fs::absolute(out.html).string() + "'";

  // One Chromium run prints the DOM after the load event and saves a screenshot.
  const fs::path shot = tmp.path() / "report.png";
  const std::string dom = run_capture(common + "--window-size=1280,2400 --screenshot='" +
                                      shot.string() + "' --dump-dom " + url + " 2>/dev/null");

  // 1. Every <img> decoded: the page's load handler writes the count on <html>.
  ASSERT_NE(dom.find("<html"), std::string::npos) << "Chromium printed no DOM";
  std::smatch match;
  ASSERT_TRUE(std::regex_search(dom, match, std::regex("data-figures-loaded=\"(\\d+)/(\\d+)\"")))
      << "the load handler did not run";
  EXPECT_EQ(match[1].str(), match[2].str()) << "figures that failed to load";
  EXPECT_EQ(std::stoul(match[2].str()), out.figures.size() + 1);  // + explain.json's Grad-CAM
  if (find_gnuplot()) {
    EXPECT_EQ(out.figures.size(), 2u + 2u + 2u * 5u);
  }
  // The new sections are laid out on the page: the load handler lists what has a size.
  ASSERT_TRUE(std::regex_search(dom, match, std::regex("data-visible=\"([^\"]*)\"")))
      << "the load handler did not list the visible elements";
  std::set<std::string> visible;
  std::stringstream names(match[1].str());
  for (std::string name; names >> name;) visible.insert(name);
  for (const char* name :
       {"calibration-table", "threshold-table", "subgroups-table", "figure-explain-gradcam"})
    EXPECT_TRUE(visible.count(name)) << name << " is not visible";
  if (find_gnuplot()) {
    EXPECT_TRUE(visible.count("figure-reliability-val")) << "the reliability diagram";
    EXPECT_TRUE(visible.count("figure-reliability-test")) << "the reliability diagram";
  }

  // 2. The screenshot is not blank: many colours, a fair share of non-white pixels.
  ASSERT_TRUE(fs::exists(shot)) << "Chromium wrote no screenshot";
  const Image img = decode_png(read_file(shot));
  EXPECT_EQ(img.width, 1280u);
  EXPECT_EQ(img.height, 2400u);
  std::set<std::uint32_t> colours(img.pixels.begin(), img.pixels.end());
  std::size_t non_white = 0;
  for (auto p : img.pixels) non_white += p != 0xFFFFFF;
  EXPECT_GT(colours.size(), 50u) << "the page looks blank";
  EXPECT_GT(double(non_white) / double(img.pixels.size()), 0.05) << "the page is mostly white";
}

}  // namespace
}  // namespace onnxforge::eval
