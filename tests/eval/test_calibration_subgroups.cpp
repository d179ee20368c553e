// Calibration (Brier, ECE, bins), the threshold chosen by a rule, Wilson intervals, the groups
// CSV and its matching, subgroup metrics and gaps. scikit-learn is not installed here, so the
// expected values are derived by hand in each test (the sums are written out beside them).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.hpp"
#include "eval/io.hpp"
#include "eval/metrics.hpp"
#include "eval/subgroups.hpp"
#include "tests/eval/eval_fixtures.hpp"

namespace onnxforge::eval {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::write_text;

constexpr double kTol = 1e-12;

std::vector<Prediction> predictions_of(const std::vector<int>& labels,
                                       const std::vector<double>& scores) {
  std::vector<Prediction> out;
  for (std::size_t i = 0; i < labels.size(); ++i)
    out.push_back({"img" + std::to_string(i), labels[i], scores[i]});
  return out;
}

TEST(Calibration, BrierAndEceByHand) {
  const std::vector<int> labels{0, 0, 1, 0, 1, 1};
  const std::vector<double> scores{0.05, 0.15, 0.35, 0.35, 0.85, 0.95};
  const Calibration c = calibration(labels, scores);
  // Brier: (0.05^2 + 0.15^2 + 0.65^2 + 0.35^2 + 0.15^2 + 0.05^2) / 6 = 0.595 / 6.
  EXPECT_NEAR(c.brier.value(), 0.595 / 6, kTol);
  // Bins 0, 1, 3 (two scores, half label 1), 8, 9:
  // ECE = (1 * 0.05 + 1 * 0.15 + 2 * |0.5 - 0.35| + 1 * 0.15 + 1 * 0.05) / 6 = 0.7 / 6.
  EXPECT_NEAR(c.ece.value(), 0.7 / 6, kTol);
  ASSERT_EQ(c.bins.size(), 10u);
  EXPECT_EQ(c.bins[3].count, 2u);
  EXPECT_NEAR(c.bins[3].mean_score.value(), 0.35, kTol);
  EXPECT_NEAR(c.bins[3].fraction_label_1.value(), 0.5, kTol);
  EXPECT_NEAR(c.bins[3].lo, 0.30000000000000004, 0);  // numpy.linspace(0, 1, 11)[3]
  EXPECT_EQ(c.bins[2].count, 0u);
  EXPECT_FALSE(c.bins[2].mean_score.has_value());
  EXPECT_EQ(c.bins[9].hi, 1.0);

  // Edges as calibration_curve's searchsorted(side="right"): 0.2 == 2 * 0.1 opens bin 2, 0.3 is
  // below 3 * 0.1 = 0.30000000000000004 and stays in bin 2; 1.0 is in the last bin.
  const std::vector<int> l3{1, 1, 1, 0};
  const std::vector<double> s3{0.2, 0.3, 1.0, 0.0};
  const Calibration e = calibration(l3, s3);
  EXPECT_EQ(e.bins[2].count, 2u);
  EXPECT_EQ(e.bins[9].count, 1u);
  EXPECT_EQ(e.bins[0].count, 1u);
  // Perfect scores: Brier 0 and ECE 0.
  EXPECT_EQ(calibration(std::vector<int>{0, 1}, std::vector<double>{0.0, 1.0}).ece.value(), 0.0);
  // Empty: undefined.
  EXPECT_FALSE(calibration({}, {}).brier.has_value());
}

TEST(Calibration, InMetricsAndMetricsJson) {
  // Brier does not depend on the positive class: it is about the probability of label 1.
  MetricsOptions options;
  options.bootstrap_resamples = 0;
  auto p = predictions_of({0, 0, 1, 0, 1, 1}, {0.05, 0.15, 0.35, 0.35, 0.85, 0.95});
  p.push_back({"nan", 1, std::nan("")});  // left out, as from every metric
  const Metrics m = compute_metrics(p, options);
  EXPECT_NEAR(m.calibration.brier.value(), 0.595 / 6, kTol);
  options.positive_label = 0;
  EXPECT_NEAR(compute_metrics(p, options).calibration.ece.value(), 0.7 / 6, kTol);
  const nlohmann::json j = metrics_to_json(m);
  ASSERT_TRUE(j["calibration"].is_object());
  EXPECT_NEAR(j["calibration"]["brier"].get<double>(), 0.595 / 6, kTol);
  EXPECT_NEAR(j["calibration"]["ece"].get<double>(), 0.7 / 6, kTol);
  ASSERT_EQ(j["calibration"]["bins"].size(), 10u);
  EXPECT_EQ(j["calibration"]["bins"][3]["count"], 2);
  EXPECT_TRUE(j["calibration"]["bins"][2]["mean_score"].is_null());
  EXPECT_TRUE(metrics_to_json(compute_metrics({}, options))["calibration"].is_null());
}

TEST(Wilson, ClosedForm) {
  EXPECT_NEAR(normal_quantile(0.975), 1.959963984540054, 1e-12);
  EXPECT_NEAR(normal_quantile(0.5), 0.0, 1e-15);
  EXPECT_NEAR(normal_quantile(0.005), -2.5758293035489004, 1e-12);
  // 8 / 10 at 95%: centre (0.8 + z^2/20) / (1 + z^2/10), half z/(1 + z^2/10) sqrt(0.016 + z^2/400).
  const auto iv = wilson_interval(8, 10, 0.95);
  ASSERT_TRUE(iv.has_value());
  EXPECT_NEAR(iv->lo, 0.4902, 5e-5);
  EXPECT_NEAR(iv->hi, 0.9433, 5e-5);
  const double z = 1.959963984540054, z2 = z * z;
  const double centre = (0.8 + z2 / 20) / (1 + z2 / 10);
  const double half = z / (1 + z2 / 10) * std::sqrt(0.8 * 0.2 / 10 + z2 / 400);
  EXPECT_NEAR(iv->lo, centre - half, 1e-12);
  EXPECT_NEAR(iv->hi, centre + half, 1e-12);
  // 0 / 5: [0, z^2/(5 + z^2)].
  const auto zero = wilson_interval(0, 5, 0.95);
  EXPECT_NEAR(zero->lo, 0.0, 1e-15);
  EXPECT_NEAR(zero->hi, z2 / (5 + z2), 1e-12);
  EXPECT_FALSE(wilson_interval(0, 0).has_value());
  EXPECT_THROW(wilson_interval(3, 2), Error);
}

TEST(ChooseThreshold, YoudenAndTargetSensitivity) {
  // Descending: 0.9(1) 0.8(1) 0.6(0) 0.4(0) 0.35(1) 0.1(0); TPR - FPR at each threshold:
  // 1/3, 2/3, 1/3, 0, 1/3, 0: Youden picks 0.8 (TPR 2/3, FPR 0).
  const auto p = predictions_of({0, 0, 1, 1, 0, 1}, {0.1, 0.4, 0.35, 0.8, 0.6, 0.9});
  MetricsOptions options;
  const auto youden = choose_threshold(p, options, {});
  ASSERT_TRUE(youden.has_value());
  EXPECT_EQ(youden->threshold, 0.8);
  EXPECT_NEAR(youden->tpr, 2.0 / 3, kTol);
  EXPECT_EQ(youden->fpr, 0.0);
  // The same as argmax(tpr - fpr) over roc_curve's thresholds.
  options.bootstrap_resamples = 0;
  const Metrics m = compute_metrics(p, options);
  std::size_t best = 0;
  for (std::size_t i = 1; i < m.roc.fpr.size(); ++i)
    if (m.roc.tpr[i] - m.roc.fpr[i] > m.roc.tpr[best] - m.roc.fpr[best]) best = i;
  EXPECT_EQ(m.roc.thresholds[best], youden->threshold);
  // Sensitivity >= 0.9: the strictest threshold reaching it is 0.35 (TPR 1, FPR 2/3).
  ThresholdRule rule{ThresholdRule::Kind::sensitivity, 0.9};
  const auto sens = choose_threshold(p, options, rule);
  ASSERT_TRUE(sens.has_value());
  EXPECT_EQ(sens->threshold, 0.35);
  EXPECT_EQ(sens->tpr, 1.0);
  EXPECT_NEAR(sens->fpr, 2.0 / 3, kTol);
  rule.target_sensitivity = 2.0 / 3;  // reached already at 0.8
  EXPECT_EQ(choose_threshold(p, options, rule)->threshold, 0.8);

  // Positive class 0 (predicted iff score < t), ascending: J = 0 at 0.1, 1/3 at 0.35, 0 at 0.4,
  // 1/3 at 0.6, 2/3 at 0.8, 1/3 at 0.9: t = 0.8, and compute_metrics agrees at that threshold.
  options.positive_label = 0;
  const auto neg = choose_threshold(p, options, {});
  ASSERT_TRUE(neg.has_value());
  EXPECT_EQ(neg->threshold, 0.8);
  EXPECT_EQ(neg->tpr, 1.0);
  EXPECT_NEAR(neg->fpr, 1.0 / 3, kTol);
  options.threshold = neg->threshold;
  const Metrics at = compute_metrics(p, options);
  EXPECT_EQ(at.sensitivity.value(), 1.0);
  EXPECT_NEAR(at.specificity.value(), 2.0 / 3, kTol);

  // One class only: no threshold; a target outside (0, 1] is refused.
  EXPECT_FALSE(choose_threshold(predictions_of({1, 1}, {0.2, 0.7}), {}, {}).has_value());
  EXPECT_THROW(choose_threshold(p, {}, {ThresholdRule::Kind::sensitivity, 1.5}), Error);
}

TEST(Groups, ReadAndMatchByPathThenByTrailingComponents) {
  TempDir tmp;
  const fs::path csv = tmp.path() / "meta" / "groups.csv";
  write_text(csv,
             "path,skin_tone,glasses\n"
             "../data/gender/test/Female/000001.jpg,dark,yes\n"
             "../data/gender/test/Male/000002.jpg,light,no\n"
             "/elsewhere/gender/test/Male/000003.jpg,light,\n"
             "/a/set1/test/Female/000009.jpg,dark,no\n"
             "/a/set2/test/Female/000009.jpg,light,no\n");
  const GroupTable groups = read_groups_csv(csv);
  EXPECT_EQ(groups.attributes, (std::vector<std::string>{"skin_tone", "glasses"}));
  ASSERT_EQ(groups.paths.size(), 5u);
  const std::string row0 =
      fs::weakly_canonical(tmp.path() / "data/gender/test/Female/000001.jpg").generic_string();
  EXPECT_EQ(groups.paths[0], row0);
  const GroupMatcher matcher(groups);
  EXPECT_EQ(matcher.match(row0), 0u);  // canonical absolute path
  EXPECT_EQ(matcher.match((tmp.path() / "data/x/../gender/test/Female/000001.jpg").string()), 0u);
  // Relative, not resolving: the unique row with the longest matching tail (here 4 components).
  EXPECT_EQ(matcher.match("some/root/gender/test/Male/000002.jpg"), 1u);
  EXPECT_EQ(matcher.match("x/test/Male/000003.jpg"), 2u);               // 3 components: enough
  EXPECT_FALSE(matcher.match("Male/000003.jpg").has_value());           // 2: too few
  EXPECT_FALSE(matcher.match("q/test/Female/000009.jpg").has_value());  // 2 rows tie at 3
  EXPECT_EQ(matcher.match("set2/test/Female/000009.jpg"), 4u);          // 4 beats 3
  // Absolute paths never fall back.
  EXPECT_FALSE(matcher.match("/nowhere/gender/test/Female/000001.jpg").has_value());

  // Bad files: one line naming the file and the problem.
  const auto error_of = [&](const std::string& text) {
    write_text(tmp.path() / "bad.csv", text);
    try {
      read_groups_csv(tmp.path() / "bad.csv");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("file,skin\na.jpg,x\n").find("bad.csv:1: no 'path' column"),
            std::string::npos);
  EXPECT_NE(error_of("path\na.jpg\n").find("bad.csv:1: no attribute column"), std::string::npos);
  EXPECT_NE(error_of("path,skin\na.jpg,x\n./a.jpg,y\n")
                .find("bad.csv:3: path './a.jpg' is listed "
                      "twice (first on line 2)"),
            std::string::npos);
  EXPECT_NE(error_of("path,skin,age\na.jpg,x\n").find("bad.csv:2: 2 fields, expected 3"),
            std::string::npos);
  EXPECT_THROW(read_groups_csv(tmp.path() / "absent.csv"), Error);
}

TEST(Groups, RatesIntervalsAndEqualizedOddsGaps) {
  TempDir tmp;
  const fs::path csv = tmp.path() / "groups.csv";
  std::string text = "path,skin_tone\n";
  for (int i = 0; i < 8; ++i) text += fmt::format("img/a/b/{}.jpg,{}\n", i, i < 4 ? "A" : "B");
  write_text(csv, text);
  const GroupTable groups = read_groups_csv(csv);
  // A: labels 1 1 0 0, scores .9 .8 .2 .6 -> TPR 2/2, FPR 1/2, accuracy 3/4.
  // B: labels 1 1 0 0, scores .9 .3 .1 .2 -> TPR 1/2, FPR 0/2, accuracy 3/4.
  const std::vector<int> labels{1, 1, 0, 0, 1, 1, 0, 0};
  const std::vector<double> scores{0.9, 0.8, 0.2, 0.6, 0.9, 0.3, 0.1, 0.2};
  std::vector<Prediction> p;
  for (int i = 0; i < 8; ++i)
    p.push_back({fmt::format("other/img/a/b/{}.jpg", i), labels[i], scores[i]});
  p.push_back({"unknown/x/y/z.jpg", 1, 0.7});  // no row
  p.push_back({"img/a/b/0.jpg", 1, std::nan("")});
  const SubgroupMetrics m = subgroup_metrics(p, groups, {});
  EXPECT_EQ(m.matched, 8u);
  EXPECT_EQ(m.unmatched, 1u);
  EXPECT_EQ(m.excluded, 1u);
  ASSERT_EQ(m.attributes.size(), 1u);
  const AttributeMetrics& a = m.attributes[0];
  ASSERT_EQ(a.groups.size(), 2u);
  EXPECT_EQ(a.groups[0].group, "A");
  EXPECT_EQ(a.groups[0].n, 4u);
  EXPECT_EQ(a.groups[0].accuracy.value.value(), 0.75);
  EXPECT_EQ(a.groups[0].tpr.value.value(), 1.0);
  EXPECT_EQ(a.groups[0].fpr.value.value(), 0.5);
  EXPECT_EQ(a.groups[1].tpr.value.value(), 0.5);
  EXPECT_EQ(a.groups[1].fpr.value.value(), 0.0);
  const auto acc_iv = wilson_interval(3, 4);
  EXPECT_EQ(a.groups[0].accuracy.interval->lo, acc_iv->lo);
  EXPECT_EQ(a.groups[0].tpr.interval->lo, wilson_interval(2, 2)->lo);
  EXPECT_EQ(a.tpr_gap.value.value(), 0.5);
  EXPECT_EQ(a.tpr_gap.max_group, "A");
  EXPECT_EQ(a.tpr_gap.min_group, "B");
  EXPECT_EQ(a.fpr_gap.value.value(), 0.5);
  EXPECT_EQ(a.equalized_odds_gap.value(), 0.5);
  ASSERT_FALSE(m.notes.empty());
  EXPECT_NE(m.notes[0].find("1 of 10 predictions matched no row of groups.csv"), std::string::npos);
  const nlohmann::json j = subgroups_to_json(m);
  EXPECT_EQ(j["attributes"][0]["groups"][1]["tpr"]["successes"], 1);
  EXPECT_EQ(j["attributes"][0]["equalized_odds_gap"], 0.5);

  // Positive class 0 swaps the roles: TPR is about label 0.
  MetricsOptions female;
  female.positive_label = 0;
  const SubgroupMetrics f = subgroup_metrics(p, groups, female);
  EXPECT_EQ(f.attributes[0].groups[0].tpr.value.value(), 0.5);  // A's label 0: .2 yes, .6 no
  EXPECT_EQ(f.attributes[0].groups[1].fpr.value.value(), 0.5);  // B's label 1: .3 predicted 0
}

}  // namespace
}  // namespace onnxforge::eval
