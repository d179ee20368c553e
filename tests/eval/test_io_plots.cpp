// CSV/JSON files of a run, atomic writes, and the gnuplot figures (with and without gnuplot).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "core/error.hpp"
#include "eval/evaluate.hpp"
#include "eval/io.hpp"
#include "eval/plots.hpp"
#include "tests/eval/eval_fixtures.hpp"

namespace onnxforge::eval {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::write_text;

TEST(Csv, ParsesRfc4180) {
  const auto rows = parse_csv(
      "path,label,score\r\n\"a,b.jpg\",1,0.5\r\n\"say \"\"hi\"\".png\",0,0.25\n"
      "\"two\nlines.png\",1,1\n\n,,\n",
      "test.csv");
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[1][0], "a,b.jpg");
  EXPECT_EQ(rows[2][0], "say \"hi\".png");
  EXPECT_EQ(rows[3][0], "two\nlines.png");
  EXPECT_EQ(rows[4], (std::vector<std::string>{"", "", ""}));
  EXPECT_THROW(parse_csv("a,\"open\n", "bad.csv"), std::runtime_error);
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("q\"x"), "\"q\"\"x\"");
}

TEST(Csv, PredictionsRoundTripExactly) {
  TempDir tmp;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<Prediction> predictions{{"faces/a,b.jpg", 1, 0.1 + 0.2},
                                            {"faces/\"quoted\".png", 0, 1e-300},
                                            {"line\nbreak.png", 1, nan},
                                            {" spaced ", 0, 0.5}};
  const fs::path path = tmp.path() / "split" / "predictions.csv";
  write_predictions_csv(path, predictions);
  const auto back = read_predictions_csv(path);
  ASSERT_EQ(back.size(), predictions.size());
  for (std::size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].path, predictions[i].path);
    EXPECT_EQ(back[i].label, predictions[i].label);
    if (std::isnan(predictions[i].score))
      EXPECT_TRUE(std::isnan(back[i].score));
    else
      EXPECT_EQ(back[i].score, predictions[i].score);  // bit-exact
  }
  for (const auto& entry : fs::directory_iterator(path.parent_path()))
    EXPECT_EQ(entry.path().filename(), "predictions.csv") << "temporary file left behind";
}

TEST(Csv, PredictionsAcceptClassNamesAndReportBadRows) {
  TempDir tmp;
  const fs::path good = tmp.path() / "good.csv";
  write_text(good, "score,label,path,extra\n0.9,Male,a.jpg,x\n0.1,female,b.jpg,y\n");
  const auto p = read_predictions_csv(good, {"Female", "Male"});
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].label, 1);
  EXPECT_EQ(p[1].label, 0);
  EXPECT_EQ(p[1].path, "b.jpg");

  auto error_of = [&](const std::string& text) {
    const fs::path bad = tmp.path() / "bad.csv";
    write_text(bad, text);
    try {
      (void)read_predictions_csv(bad);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("path,label\na,1\n").find("no 'score' column"), std::string::npos);
  EXPECT_NE(error_of("path,label,score\na,2,0.5\n").find("bad.csv:2: label '2'"),
            std::string::npos);
  EXPECT_NE(error_of("path,label,score\na,1,zero\n").find("score 'zero' is not a number"),
            std::string::npos);
  EXPECT_NE(error_of("").find("empty file"), std::string::npos);
  EXPECT_THROW((void)read_predictions_csv(tmp.path() / "missing.csv"), std::runtime_error);
}

TEST(Csv, HistoryReadsColumnsByNameAndSumsTime) {
  TempDir tmp;
  const fs::path path = tmp.path() / "history.csv";
  write_text(path, history_header() + history_row({1, 0.6, 0.7, 0.65, 0.68, 1e-3, 10, 100}) +
                       history_row({2, 0.5, 0.8, 0.55, 0.75, 1e-3, 30, 200}));
  const History h = read_history_csv(path);
  ASSERT_EQ(h.epochs.size(), 2u);
  EXPECT_DOUBLE_EQ(h.epochs[1].val_accuracy, 0.75);
  EXPECT_DOUBLE_EQ(h.total_seconds(), 40);
  EXPECT_DOUBLE_EQ(*h.images_per_second(), (10 * 100 + 30 * 200) / 40.0);
  write_history_csv(tmp.path() / "copy.csv", h);
  EXPECT_EQ(read_file(tmp.path() / "copy.csv"), read_file(path));
  write_text(path, "epoch,train_loss\n1,0.5\n");  // partial history: other columns NaN
  const History partial = read_history_csv(path);
  EXPECT_TRUE(std::isnan(partial.epochs[0].val_loss));
  EXPECT_FALSE(partial.images_per_second().has_value());
}

TEST(Evaluate, WritesTheSplitFiles) {
  TempDir tmp;
  const auto predictions = testing::synthetic_predictions(40, 1.5);
  SplitOptions options;
  options.split_name = "val";
  options.model_name = "baseline";
  options.plots_dir = tmp.path() / "plots";
  MetricsOptions metrics;
  metrics.bootstrap_resamples = 50;
  const auto out = evaluate_split(predictions, metrics, tmp.path() / "val", options);
  for (const char* f : {"val/predictions.csv", "val/metrics.json", "val/roc.csv",
                        "plots/roc_val.gp", "plots/roc_val.dat", "plots/confusion_val.gp"})
    EXPECT_TRUE(fs::exists(tmp.path() / f)) << f;
  const auto j = nlohmann::json::parse(read_file(tmp.path() / "val" / "metrics.json"));
  EXPECT_EQ(j["split"], "val");
  EXPECT_EQ(j["model"], "baseline");
  EXPECT_NEAR(j["accuracy"].get<double>(), *out.metrics.accuracy, 0);
  const auto roc = parse_csv(read_file(tmp.path() / "val" / "roc.csv"), "roc.csv");
  EXPECT_EQ(roc[0], (std::vector<std::string>{"threshold", "fpr", "tpr"}));
  EXPECT_EQ(roc[1], (std::vector<std::string>{"inf", "0", "0"}));
}

TEST(Evaluate, UnlabelledPredictions) {
  TempDir tmp;
  const std::vector<std::string> paths{"a.jpg", "b,c.jpg"};
  const std::vector<double> scores{0.7, 0.2};
  write_unlabelled_predictions_csv(tmp.path() / "p.csv", paths, scores,
                                   {.class_names = {"Female", "Male"}});
  EXPECT_EQ(read_file(tmp.path() / "p.csv"),
            "path,score,class\na.jpg,0.7,Male\n\"b,c.jpg\",0.2,Female\n");
}

class EnvGuard {
 public:
  explicit EnvGuard(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) old_ = v;
  }
  ~EnvGuard() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(Plots, WithoutGnuplotMetricsAreWrittenAndOneWarningSaysHowToGetPlots) {
  TempDir tmp;
  EnvGuard guard("ONNXFORGE_GNUPLOT");
  ::setenv("ONNXFORGE_GNUPLOT", "", 1);  // "no gnuplot"
  SplitOptions options;
  options.plots_dir = tmp.path() / "plots";
  MetricsOptions metrics;
  metrics.bootstrap_resamples = 10;
  const auto out =
      evaluate_split(testing::synthetic_predictions(20, 1), metrics, tmp.path() / "test", options);
  EXPECT_TRUE(fs::exists(tmp.path() / "test" / "metrics.json"));
  EXPECT_TRUE(fs::exists(tmp.path() / "plots" / "roc_test.gp"));  // scripts still written
  EXPECT_FALSE(fs::exists(tmp.path() / "plots" / "roc_test.png"));
  int gnuplot_warnings = 0;
  for (const auto& w : out.warnings)
    if (w.find("gnuplot") != std::string::npos) {
      ++gnuplot_warnings;
      EXPECT_NE(w.find("apt-get install gnuplot-nox"), std::string::npos);
    }
  EXPECT_EQ(gnuplot_warnings, 1);
}

TEST(Plots, DrawsPngAndSvgWithTheirScripts) {
  if (!find_gnuplot()) GTEST_SKIP() << "gnuplot not on PATH (apt-get install gnuplot-nox)";
  TempDir tmp;
  Plotter plotter(tmp.path());
  const Metrics m = compute_metrics(testing::synthetic_predictions(50, 1.2));
  const RocSeries series[] = {{"model's \"val\"", m.roc, m.auc}, {"one class", {}, std::nullopt}};
  History h;
  for (int e = 1; e <= 3; ++e)
    h.epochs.push_back({double(e), 1.0 / e, 0.5 + 0.1 * e, 1.2 / e, 0.45 + 0.1 * e, 0, 1, 1});
  EXPECT_TRUE(plotter.roc(series, "roc", "ROC with 'quotes'"));
  EXPECT_TRUE(plotter.confusion(m.confusion, 1, {"Fe\"male", "Male\\"}, "cm", "Confusion"));
  EXPECT_TRUE(plotter.loss(h, "loss", "Loss"));
  EXPECT_TRUE(plotter.accuracy(h, "acc", "Accuracy"));
  EXPECT_TRUE(plotter.warnings().empty()) << plotter.warnings().front();
  for (const char* stem : {"roc", "cm", "loss", "acc"}) {
    const std::string png = read_file(tmp.path() / (std::string(stem) + ".png"));
    EXPECT_EQ(png.substr(0, 8), "\x89PNG\r\n\x1a\n") << stem;
    const std::string svg = read_file(tmp.path() / (std::string(stem) + ".svg"));
    EXPECT_NE(svg.find("<svg"), std::string::npos) << stem;
    EXPECT_TRUE(fs::exists(tmp.path() / (std::string(stem) + ".gp")));
    EXPECT_FALSE(fs::exists(tmp.path() / (std::string(stem) + ".gnuplot.log")));
  }
  const std::string svg = read_file(tmp.path() / "roc.svg");
  EXPECT_NE(svg.find(fmt::format("AUC = {:.4f}", *m.auc)), std::string::npos);
  EXPECT_NE(svg.find("AUC undefined"), std::string::npos);
}

TEST(Plots, ReliabilityDiagramOverlaysEverySeriesOverTheDiagonal) {
  if (!find_gnuplot()) GTEST_SKIP() << "gnuplot not on PATH (apt-get install gnuplot-nox)";
  TempDir tmp;
  Plotter plotter(tmp.path());
  const Metrics a = compute_metrics(testing::synthetic_predictions(50, 1.2));
  const Metrics b = compute_metrics(testing::synthetic_predictions(50, 2.5));
  const ReliabilitySeries series[] = {{"baseline", a.calibration.bins, a.calibration.ece},
                                      {"vgg16", b.calibration.bins, b.calibration.ece},
                                      {"empty", {}, std::nullopt}};
  ASSERT_TRUE(plotter.reliability(series, "rel", "Reliability"));
  EXPECT_TRUE(plotter.warnings().empty()) << plotter.warnings().front();
  EXPECT_EQ(read_file(tmp.path() / "rel.png").substr(0, 8), "\x89PNG\r\n\x1a\n");
  const std::string svg = read_file(tmp.path() / "rel.svg");
  for (const std::string& needle :
       {fmt::format("baseline (ECE = {:.4f})", *a.calibration.ece),
        fmt::format("vgg16 (ECE = {:.4f})", *b.calibration.ece), std::string("perfect calibration"),
        std::string("empty (no scores)")})
    EXPECT_NE(svg.find(needle), std::string::npos) << needle;
  // One data row per non-empty bin: mean score, fraction of label 1, count, point size.
  std::size_t rows = 0;
  for (const auto* m : {&a, &b})
    for (const auto& bin : m->calibration.bins) rows += bin.count > 0 ? 1 : 0;
  const std::string dat = read_file(tmp.path() / "rel.dat");
  std::size_t data_lines = 0;
  std::stringstream lines(dat);
  for (std::string line; std::getline(lines, line);)
    data_lines += !line.empty() && line[0] != '#' ? 1 : 0;
  EXPECT_EQ(data_lines, rows);
}

TEST(Plots, ImageGridDrawsEveryPictureWithItsCaption) {
  if (!find_gnuplot()) GTEST_SKIP() << "gnuplot not on PATH (apt-get install gnuplot-nox)";
  TempDir tmp;
  Plotter plotter(tmp.path());
  // A red 6x4 picture and a blue 3x5 one: the data file holds each pixel once, in its cell.
  ImagePanel red{"red 'one'", 4, 6, std::vector<std::uint8_t>(4 * 6 * 3, 0)};
  ImagePanel blue{"blue", 5, 3, std::vector<std::uint8_t>(5 * 3 * 3, 0)};
  for (std::size_t i = 0; i < red.rgb.size(); i += 3) red.rgb[i] = 255;
  for (std::size_t i = 2; i < blue.rgb.size(); i += 3) blue.rgb[i] = 255;
  const ImagePanel panels[] = {red, blue};
  ASSERT_TRUE(plotter.image_grid(panels, 2, "grid", "Two pictures"));
  EXPECT_TRUE(plotter.warnings().empty()) << plotter.warnings().front();
  const std::string dat = read_file(tmp.path() / "grid.dat");
  EXPECT_NE(dat.find("\n0 1 255 0 0\n"), std::string::npos);  // red's first pixel, centred in y
  EXPECT_EQ(std::count(dat.begin(), dat.end(), '\n'), 1 + (1 + 24 + 2) + (1 + 15 + 2));
  EXPECT_EQ(read_file(tmp.path() / "grid.png").substr(0, 8), "\x89PNG\r\n\x1a\n");
  const std::string svg = read_file(tmp.path() / "grid.svg");
  EXPECT_NE(svg.find("red 'one'"), std::string::npos);
  // A picture whose bytes do not match its size is an error naming it.
  const ImagePanel bad[] = {{"broken", 2, 2, std::vector<std::uint8_t>(5)}};
  EXPECT_THROW(plotter.image_grid(bad, 1, "bad", "Bad"), Error);
}

TEST(Plots, FailuresAreWarningsNotCrashes) {
  TempDir tmp;
  EnvGuard guard("ONNXFORGE_GNUPLOT");
  ::setenv("ONNXFORGE_GNUPLOT", "/bin/false", 1);  // a "gnuplot" that always fails
  Plotter plotter(tmp.path());
  History empty;
  EXPECT_FALSE(plotter.loss(empty, "loss", "Loss"));
  ASSERT_EQ(plotter.warnings().size(), 1u);
  EXPECT_NE(plotter.warnings()[0].find("no loss values"), std::string::npos);
  const Metrics m = compute_metrics(testing::synthetic_predictions(10, 1));
  EXPECT_FALSE(plotter.confusion(m.confusion, 1, {"Female", "Male"}, "cm", "Confusion"));
  ASSERT_EQ(plotter.warnings().size(), 2u);
  EXPECT_NE(plotter.warnings()[1].find("gnuplot failed on"), std::string::npos);
}

}  // namespace
}  // namespace onnxforge::eval
