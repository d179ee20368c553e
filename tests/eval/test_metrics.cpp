// Metrics against scikit-learn. The expected numbers live in sklearn_expected.hpp, written by
// tests/eval/make_expected.py (scikit-learn 1.2.1, numpy 1.24.2, Debian 12's /usr/bin/python3).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "eval/io.hpp"
#include "eval/metrics.hpp"
#include "tests/eval/sklearn_expected.hpp"

namespace onnxforge::eval {
namespace {

constexpr double kTol = 1e-12;

std::vector<Prediction> to_predictions(const std::vector<int>& labels,
                                       const std::vector<double>& scores) {
  std::vector<Prediction> out;
  for (std::size_t i = 0; i < labels.size(); ++i)
    out.push_back({"img" + std::to_string(i) + ".png", labels[i], scores[i]});
  return out;
}

void expect_near_vector(const std::vector<double>& actual, const std::vector<double>& expected,
                        const char* what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (std::size_t i = 0; i < actual.size(); ++i)
    EXPECT_NEAR(actual[i], expected[i], kTol) << what << "[" << i << "]";
}

class SklearnCase : public ::testing::TestWithParam<sklearn_expected::Case> {};

TEST_P(SklearnCase, MetricsEqualScikitLearn) {
  const auto& c = GetParam();
  MetricsOptions options;
  options.threshold = c.threshold;
  options.positive_label = c.positive_label;
  options.bootstrap_resamples = sklearn_expected::kResamples;
  options.seed = sklearn_expected::kSeed;
  const auto predictions = to_predictions(c.labels, c.scores);
  const Metrics m = compute_metrics(predictions, options);

  EXPECT_EQ(m.confusion.tp, c.tp);
  EXPECT_EQ(m.confusion.fp, c.fp);
  EXPECT_EQ(m.confusion.tn, c.tn);
  EXPECT_EQ(m.confusion.fn, c.fn);
  EXPECT_EQ(m.n, c.labels.size());
  EXPECT_NEAR(m.accuracy.value(), c.accuracy, kTol);
  EXPECT_NEAR(m.sensitivity.value(), c.sensitivity, kTol);
  EXPECT_NEAR(m.specificity.value(), c.specificity, kTol);
  EXPECT_NEAR(m.precision.value(), c.precision, kTol);
  EXPECT_NEAR(m.f1.value(), c.f1, kTol);
  EXPECT_NEAR(m.balanced_accuracy.value(), c.balanced_accuracy, kTol);
  EXPECT_NEAR(m.mcc.value(), c.mcc, kTol);
  ASSERT_EQ(m.auc.has_value(), c.has_auc);
  ASSERT_TRUE(m.accuracy_interval.has_value());
  EXPECT_NEAR(m.accuracy_interval->lo, c.acc_lo, kTol);
  EXPECT_NEAR(m.accuracy_interval->hi, c.acc_hi, kTol);
  EXPECT_EQ(m.auc_resamples_used, c.auc_resamples_used);
  ASSERT_EQ(m.auc_interval.has_value(), c.has_auc_interval);
  if (c.has_auc_interval) {
    EXPECT_NEAR(m.auc_interval->lo, c.auc_lo, kTol);
    EXPECT_NEAR(m.auc_interval->hi, c.auc_hi, kTol);
  }
  if (!c.has_auc) return;
  EXPECT_NEAR(*m.auc, c.auc, kTol);

  // The full curve that compute_metrics keeps: drop_intermediate=False.
  expect_near_vector(m.roc.fpr, c.fpr_all, "fpr");
  expect_near_vector(m.roc.tpr, c.tpr_all, "tpr");
  ASSERT_FALSE(m.roc.thresholds.empty());
  EXPECT_TRUE(std::isinf(m.roc.thresholds.front()));
  expect_near_vector(std::vector<double>(m.roc.thresholds.begin() + 1, m.roc.thresholds.end()),
                     c.thr_all, "thresholds");

  // roc_curve with scikit-learn's default drop_intermediate=True.
  std::vector<int> y;
  std::vector<double> rank;
  for (std::size_t i = 0; i < c.labels.size(); ++i) {
    y.push_back(c.labels[i] == c.positive_label ? 1 : 0);
    rank.push_back(c.positive_label == 1 ? c.scores[i] : -c.scores[i]);
  }
  RocCurve dropped = roc_curve(y, rank, /*drop_intermediate=*/true);
  expect_near_vector(dropped.fpr, c.fpr_drop, "fpr (drop_intermediate)");
  expect_near_vector(dropped.tpr, c.tpr_drop, "tpr (drop_intermediate)");
  std::vector<double> thr(dropped.thresholds.begin() + 1, dropped.thresholds.end());
  if (c.positive_label == 0)
    for (double& t : thr) t = 1 + t;
  expect_near_vector(thr, c.thr_drop, "thresholds (drop_intermediate)");
}

INSTANTIATE_TEST_SUITE_P(Sklearn, SklearnCase, ::testing::ValuesIn(sklearn_expected::cases()),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(Metrics, BootstrapIsSeededAndDeterministic) {
  const auto& c = sklearn_expected::cases().at(1);
  const auto predictions = to_predictions(c.labels, c.scores);
  MetricsOptions options;
  options.seed = 99;
  const Metrics a = compute_metrics(predictions, options);
  const Metrics b = compute_metrics(predictions, options);
  ASSERT_TRUE(a.auc_interval && b.auc_interval);
  EXPECT_EQ(a.accuracy_interval->lo, b.accuracy_interval->lo);
  EXPECT_EQ(a.auc_interval->hi, b.auc_interval->hi);
  EXPECT_LE(a.auc_interval->lo, *a.auc);
  EXPECT_GE(a.auc_interval->hi, *a.auc - 0.05);
  options.seed = 100;
  const Metrics other = compute_metrics(predictions, options);
  EXPECT_NE(other.auc_interval->lo + other.auc_interval->hi,
            a.auc_interval->lo + a.auc_interval->hi);
  options.bootstrap_resamples = 0;
  const Metrics none = compute_metrics(predictions, options);
  EXPECT_FALSE(none.accuracy_interval.has_value());
  EXPECT_FALSE(none.auc_interval.has_value());
}

TEST(Metrics, PercentileMatchesNumpyLinear) {
  // numpy.percentile([1, 2, 3, 4], [0, 2.5, 50, 97.5, 100]) = [1, 1.075, 2.5, 3.925, 4]
  const std::vector<double> v{4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1.0);
  EXPECT_NEAR(percentile(v, 2.5), 1.075, 1e-15);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);
  EXPECT_NEAR(percentile(v, 97.5), 3.925, 1e-15);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 4.0);
  EXPECT_DOUBLE_EQ(percentile({7}, 97.5), 7.0);
}

TEST(Metrics, EmptySetGivesNullsAndAWarning) {
  const Metrics m = compute_metrics({});
  EXPECT_EQ(m.n, 0u);
  EXPECT_FALSE(m.accuracy || m.sensitivity || m.specificity || m.precision || m.f1 ||
               m.balanced_accuracy || m.mcc || m.auc || m.accuracy_interval || m.auc_interval);
  ASSERT_EQ(m.warnings.size(), 1u);
  EXPECT_NE(m.warnings[0].find("no predictions"), std::string::npos);
  const auto j = metrics_to_json(m);
  EXPECT_TRUE(j["accuracy"].is_null());
  EXPECT_TRUE(j["auc"].is_null());
  EXPECT_TRUE(j["intervals"]["auc"].is_null());
  EXPECT_EQ(j["confusion_matrix"]["tp"], 0);
  EXPECT_TRUE(nlohmann::json::accept(j.dump()));
}

TEST(Metrics, NanScoresAreLeftOutWithAWarning) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<Prediction> with_nan{{"a", 1, 0.9},
                                         {"b", 0, nan},
                                         {"c", 0, 0.2},
                                         {"d", 1, std::numeric_limits<double>::infinity()}};
  const Metrics m = compute_metrics(with_nan);
  EXPECT_EQ(m.n, 2u);
  EXPECT_EQ(m.n_excluded, 2u);
  EXPECT_DOUBLE_EQ(*m.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(*m.auc, 1.0);
  ASSERT_FALSE(m.warnings.empty());
  EXPECT_NE(m.warnings[0].find("2 of 4 predictions have a NaN"), std::string::npos);
  const std::vector<Prediction> all_nan{{"a", 1, nan}, {"b", 0, nan}};
  const Metrics none = compute_metrics(all_nan);
  EXPECT_EQ(none.n, 0u);
  EXPECT_FALSE(none.accuracy.has_value());
  const std::string dumped = metrics_to_json(none).dump();
  EXPECT_TRUE(nlohmann::json::accept(dumped));
}

TEST(Metrics, OneClassMakesAucNullAndSaysSo) {
  const std::vector<Prediction> only_female{{"a", 0, 0.1}, {"b", 0, 0.7}, {"c", 0, 0.3}};
  const Metrics m = compute_metrics(only_female, {.class_names = {"Female", "Male"}});
  EXPECT_FALSE(m.auc.has_value());
  EXPECT_FALSE(m.auc_interval.has_value());
  EXPECT_EQ(m.auc_resamples_used, 0);
  EXPECT_NEAR(*m.accuracy, 2.0 / 3.0, kTol);
  EXPECT_DOUBLE_EQ(*m.sensitivity, 0.0);  // zero_division: 0
  bool said_auc = false, said_sensitivity = false;
  for (const auto& w : m.warnings) {
    said_auc = said_auc || w.find("only one class (Female)") != std::string::npos;
    said_sensitivity =
        said_sensitivity || w.find("sensitivity is ill-defined") != std::string::npos;
  }
  EXPECT_TRUE(said_auc);
  EXPECT_TRUE(said_sensitivity);
  const auto j = metrics_to_json(m);
  EXPECT_TRUE(j["auc"].is_null());
  EXPECT_TRUE(j["roc"].is_null());
  EXPECT_TRUE(j["warnings"].is_array());
}

TEST(Metrics, AllEqualScoresWarn) {
  const std::vector<Prediction> flat{{"a", 0, 0.4}, {"b", 1, 0.4}, {"c", 1, 0.4}};
  const Metrics m = compute_metrics(flat);
  EXPECT_DOUBLE_EQ(*m.auc, 0.5);
  ASSERT_EQ(m.roc.fpr.size(), 2u);
  bool said = false;
  for (const auto& w : m.warnings)
    said = said || w.find("all 3 scores are equal") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(Metrics, RejectsBadLabelsAndOptions) {
  const std::vector<Prediction> bad{{"x.png", 2, 0.5}};
  try {
    (void)compute_metrics(bad);
    FAIL() << "label 2 accepted";
  } catch (const onnxforge::Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.png"), std::string::npos);
  }
  MetricsOptions options;
  options.threshold = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW((void)compute_metrics({}, options), onnxforge::Error);
  options = {};
  options.positive_label = 3;
  EXPECT_THROW((void)compute_metrics({}, options), onnxforge::Error);
}

TEST(Metrics, JsonHasTheDocumentedKeys) {
  const auto& c = sklearn_expected::cases().at(0);
  MetricsOptions options;
  options.bootstrap_resamples = 50;
  options.class_names = {"Female", "Male"};
  const auto j = metrics_to_json(compute_metrics(to_predictions(c.labels, c.scores), options));
  for (const char* key :
       {"accuracy", "sensitivity", "specificity", "precision", "f1", "balanced_accuracy", "mcc",
        "auc", "threshold", "positive_class", "confusion_matrix", "intervals", "warnings", "roc"})
    EXPECT_TRUE(j.contains(key)) << key;
  for (const char* key : {"tp", "fp", "tn", "fn"}) EXPECT_TRUE(j["confusion_matrix"].contains(key));
  EXPECT_EQ(j["positive_class"], "Male");
  EXPECT_EQ(j["threshold"], 0.5);
  EXPECT_EQ(j["intervals"]["level"], 0.95);
  EXPECT_EQ(j["intervals"]["resamples"], 50);
  EXPECT_EQ(j["intervals"]["accuracy"].size(), 2u);
  EXPECT_TRUE(j["roc"]["thresholds"][0].is_null());  // +infinity
  EXPECT_EQ(j["roc"]["drop_intermediate"], false);
}

}  // namespace
}  // namespace onnxforge::eval
