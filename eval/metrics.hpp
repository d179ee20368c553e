// Binary classification metrics, equal to scikit-learn's on the same scores.
//
// Conventions (they hold for every function here and for metrics.json):
// - A prediction has a label (0 or 1, in the order of the dataset's class names, e.g. Female and
//   Male for the gender workload) and a score, the model's probability of class 1.
// - The predicted class is 1 when `score >= threshold` (default 0.5), else 0.
// - One class is "positive" (default: label 1). Sensitivity, precision, F1 and the ROC curve are
//   about that class. When the positive class is 0 the ROC ranks by -score (higher = more
//   class 0) and reports thresholds as 1 - score, the probability of the positive class.
// - Divisions by zero follow scikit-learn's default `zero_division="warn"`: the metric is 0 and a
//   warning is recorded (sensitivity, specificity, precision, F1). MCC is 0 when undefined, as in
//   matthews_corrcoef. Balanced accuracy averages the recalls of the classes present in the
//   labels, as balanced_accuracy_score does.
// - AUC is undefined (std::nullopt, JSON null, plus a warning) unless both classes are present.
// - Predictions whose score is NaN or infinite are left out of every metric, with a warning
//   (scikit-learn refuses such input); an empty set gives null metrics and a warning.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace onnxforge::eval {

struct Prediction {
  std::string path;  // image path, informative only
  int label = 0;     // true class: 0 or 1
  double score = 0;  // probability of class 1
};

struct MetricsOptions {
  double threshold = 0.5;  // predicted class 1 iff score >= threshold
  int positive_label = 1;  // the class that counts as positive
  std::array<std::string, 2> class_names{"class 0", "class 1"};  // the dataset's names
  int bootstrap_resamples = 1000;  // 0 disables the confidence intervals
  std::uint64_t seed = 20240607;   // bootstrap seed (SplitMix64)
  double confidence_level = 0.95;  // percentile interval [(1-level)/2, (1+level)/2]
};

struct ConfusionMatrix {
  std::int64_t tp = 0, fp = 0, tn = 0, fn = 0;
};

// Every point of a ROC curve; thresholds[0] is +infinity (the point (0, 0)), as in
// scikit-learn >= 1.3 (1.2 writes max(score) + 1 there). fpr/tpr are NaN when a class is absent.
struct RocCurve {
  std::vector<double> fpr, tpr, thresholds;
};

struct Interval {
  double lo = 0, hi = 0;
};

// One equal-width bin of the reliability diagram: scores in [lo, hi) (the last bin holds 1).
struct CalibrationBin {
  double lo = 0, hi = 0;
  std::size_t count = 0;
  std::optional<double> mean_score;        // mean score in the bin; nullopt when it is empty
  std::optional<double> fraction_label_1;  // fraction of label 1 in the bin (what score predicts)
};

// Calibration of the score as a probability of label 1, whatever the positive class:
// brier = mean((score - [label == 1])^2) (brier_score_loss of scikit-learn),
// ece = sum_b (n_b / n) |fraction_label_1_b - mean_score_b| over `bins` equal-width bins of
// [0, 1] (bin edges as calibration_curve(strategy="uniform"): numpy.linspace(0, 1, bins + 1),
// a score goes to the bin of the inner edges <= it; scores below 0 or above 1 to the end bins).
struct Calibration {
  std::optional<double> brier, ece;  // nullopt for an empty set
  std::vector<CalibrationBin> bins;
};

// labels 0/1 (1 = the class the scores are the probability of); scores finite. bins >= 1.
Calibration calibration(std::span<const int> labels, std::span<const double> scores, int bins = 10);

// Wilson score interval of a proportion successes / n at `level` (e.g. 0.95); nullopt for n = 0.
std::optional<Interval> wilson_interval(std::size_t successes, std::size_t n, double level = 0.95);

// The standard normal quantile (inverse CDF) at p in (0, 1).
double normal_quantile(double p);

struct Metrics {
  MetricsOptions options;
  std::size_t n = 0;           // predictions used (finite scores)
  std::size_t n_positive = 0;  // of them, labelled positive
  std::size_t n_negative = 0;
  std::size_t n_excluded = 0;  // left out: score NaN or infinite
  ConfusionMatrix confusion;
  // Null only for an empty set (accuracy ... mcc) or a single class (auc).
  std::optional<double> accuracy, sensitivity, specificity, precision, f1, balanced_accuracy, mcc,
      auc;
  std::optional<Interval> accuracy_interval, auc_interval;  // percentile bootstrap
  int auc_resamples_used = 0;  // resamples that held both classes (the others are skipped)
  RocCurve roc;                // every distinct threshold (drop_intermediate=False)
  Calibration calibration;     // of the score as the probability of label 1 (10 bins)
  std::vector<std::string> warnings;

  const std::string& positive_class() const {
    return options.class_names[options.positive_label == 0 ? 0 : 1];
  }
  const std::string& negative_class() const {
    return options.class_names[options.positive_label == 0 ? 1 : 0];
  }
};

// roc_curve(y_true, y_score, drop_intermediate=...) of scikit-learn: y_true holds 0/1 (1 =
// positive), y_score ranks (higher = more positive). Scores must be finite.
RocCurve roc_curve(std::span<const int> y_true, std::span<const double> y_score,
                   bool drop_intermediate = false);

// Trapezoidal area under (x, y), as sklearn.metrics.auc / numpy.trapz.
double trapezoid_area(std::span<const double> x, std::span<const double> y);

// roc_auc_score of scikit-learn (trapezoid over roc_curve(drop_intermediate=True)); nullopt when
// only one class is present or the input is empty.
std::optional<double> roc_auc(std::span<const int> y_true, std::span<const double> y_score);

// Linear-interpolation percentile (numpy.percentile's default); q in [0, 100]. values non-empty.
double percentile(std::vector<double> values, double q);

// The label of the class `positive` names among `classes` (label i is classes[i]): a class name
// (exactly, else ignoring case), "0" or "1", or empty for label 1. Anything else throws Error
// "<what> '<positive>' is not a class of the data (its classes: 'a', 'b'; or 0/1)", `what` saying
// where it came from (e.g. "--positive").
int positive_label_of(std::string_view positive, std::span<const std::string> classes,
                      std::string_view what);

// How a decision threshold is chosen on one split's predictions (the validation split's, in the
// report): Youden's J = max(TPR - FPR) over the ROC's thresholds, or the first threshold (from
// the strictest: the fewest images predicted positive) whose sensitivity reaches
// `target_sensitivity`. Ties go to the strictest threshold.
struct ThresholdRule {
  enum class Kind { youden, sensitivity };
  Kind kind = Kind::youden;
  double target_sensitivity = 0.9;  // for Kind::sensitivity, in (0, 1]
};

// "youden" or "sensitivity:T" (T in (0, 1]); throws Error "<what> '<text>': expected ..." else.
ThresholdRule parse_threshold_rule(std::string_view text, std::string_view what);

// "Youden's J (max TPR - FPR)" or "smallest sensitivity >= 0.90 ..." for reports.
std::string describe(const ThresholdRule& rule);

struct ThresholdChoice {
  double threshold = 0.5;   // score >= threshold predicts label 1, as MetricsOptions::threshold
  double tpr = 0, fpr = 0;  // on the predictions it was chosen on (positive class of options)
};

// The threshold `rule` picks on `predictions` (positive class: options.positive_label; NaN and
// infinite scores left out). Every way of splitting the scores by `score >= t` is a candidate:
// t is one of the scores, or just above the largest. nullopt when a class is absent (the rule
// needs both); throws Error for a target sensitivity outside (0, 1].
std::optional<ThresholdChoice> choose_threshold(std::span<const Prediction> predictions,
                                                const MetricsOptions& options,
                                                const ThresholdRule& rule);

// The whole set of metrics of one split. Never throws on degenerate data (see the conventions);
// throws Error for a label other than 0/1 or a bad option.
Metrics compute_metrics(std::span<const Prediction> predictions,
                        const MetricsOptions& options = {});

}  // namespace onnxforge::eval
