#include "eval/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.hpp"
#include "core/random.hpp"

namespace onnxforge::eval {
namespace {

// Indices of y_score in decreasing order (ties in any order: the curve only looks at the last
// index of each run of equal scores).
std::vector<std::size_t> descending_order(std::span<const double> y_score) {
  std::vector<std::size_t> order(y_score.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return y_score[a] > y_score[b]; });
  return order;
}

double safe_divide(double num, double den) { return den == 0 ? 0.0 : num / den; }

}  // namespace

RocCurve roc_curve(std::span<const int> y_true, std::span<const double> y_score,
                   bool drop_intermediate) {
  if (y_true.size() != y_score.size())
    throw Error(fmt::format("roc_curve: {} labels but {} scores", y_true.size(), y_score.size()));
  RocCurve curve;
  if (y_true.empty()) return curve;
  const auto order = descending_order(y_score);
  // _binary_clf_curve: one point per distinct score, at the last index of its run.
  std::vector<double> tps, fps, thresholds;
  double positives = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    positives += y_true[order[i]] == 1 ? 1.0 : 0.0;
    const bool last_of_run = i + 1 == order.size() || y_score[order[i]] != y_score[order[i + 1]];
    if (last_of_run) {
      tps.push_back(positives);
      fps.push_back(static_cast<double>(i + 1) - positives);
      thresholds.push_back(y_score[order[i]]);
    }
  }
  if (drop_intermediate && fps.size() > 2) {
    // Keep the end points and every point where the curve bends.
    std::vector<double> kept_tps{tps.front()}, kept_fps{fps.front()}, kept_thr{thresholds.front()};
    for (std::size_t i = 1; i + 1 < fps.size(); ++i) {
      const double d2_fps = fps[i + 1] - 2 * fps[i] + fps[i - 1];
      const double d2_tps = tps[i + 1] - 2 * tps[i] + tps[i - 1];
      if (d2_fps != 0 || d2_tps != 0) {
        kept_tps.push_back(tps[i]);
        kept_fps.push_back(fps[i]);
        kept_thr.push_back(thresholds[i]);
      }
    }
    kept_tps.push_back(tps.back());
    kept_fps.push_back(fps.back());
    kept_thr.push_back(thresholds.back());
    tps = std::move(kept_tps);
    fps = std::move(kept_fps);
    thresholds = std::move(kept_thr);
  }
  tps.insert(tps.begin(), 0.0);
  fps.insert(fps.begin(), 0.0);
  thresholds.insert(thresholds.begin(), std::numeric_limits<double>::infinity());
  const double total_fp = fps.back(), total_tp = tps.back();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  curve.fpr.reserve(fps.size());
  curve.tpr.reserve(tps.size());
  for (std::size_t i = 0; i < fps.size(); ++i) {
    curve.fpr.push_back(total_fp > 0 ? fps[i] / total_fp : nan);
    curve.tpr.push_back(total_tp > 0 ? tps[i] / total_tp : nan);
  }
  curve.thresholds = std::move(thresholds);
  return curve;
}

double trapezoid_area(std::span<const double> x, std::span<const double> y) {
  if (x.size() != y.size()) throw Error("trapezoid_area: x and y differ in length");
  double area = 0;
  for (std::size_t i = 1; i < x.size(); ++i) area += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2.0;
  return area;
}

std::optional<double> roc_auc(std::span<const int> y_true, std::span<const double> y_score) {
  const bool has_pos = std::find(y_true.begin(), y_true.end(), 1) != y_true.end();
  const bool has_neg =
      std::find_if(y_true.begin(), y_true.end(), [](int y) { return y != 1; }) != y_true.end();
  if (!has_pos || !has_neg) return std::nullopt;
  const RocCurve curve = roc_curve(y_true, y_score, /*drop_intermediate=*/true);
  return trapezoid_area(curve.fpr, curve.tpr);
}

double percentile(std::vector<double> values, double q) {
  if (values.empty()) throw Error("percentile of an empty set");
  std::sort(values.begin(), values.end());
  // numpy 'linear' method: virtual index q/100 * (n - 1), then numpy's two-sided lerp.
  const double virtual_index = (q / 100.0) * static_cast<double>(values.size() - 1);
  const double below = std::floor(virtual_index);
  const auto lo = static_cast<std::size_t>(below);
  const std::size_t hi = std::min(lo + 1, values.size() - 1);
  const double t = virtual_index - below;
  const double a = values[lo], b = values[hi];
  const double diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

namespace {

struct Bootstrap {
  std::optional<Interval> accuracy, auc;
  int auc_used = 0;
};

// Percentile bootstrap of accuracy and AUC. Resample r draws n indices with core's Random(seed)
// (splitmix64, one generator for the whole run, resamples in order); the AUC of a resample is the
// trapezoid over its ROC, computed from per-index counts on the presorted scores in O(n).
Bootstrap bootstrap(const std::vector<int>& y, const std::vector<double>& rank_score,
                    const std::vector<char>& correct, const MetricsOptions& options) {
  Bootstrap result;
  const std::size_t n = y.size();
  if (options.bootstrap_resamples <= 0 || n == 0) return result;
  const auto order = descending_order(rank_score);
  Random rng(options.seed);
  std::vector<std::uint32_t> counts(n);
  std::vector<double> accuracies, aucs;
  accuracies.reserve(static_cast<std::size_t>(options.bootstrap_resamples));
  for (int r = 0; r < options.bootstrap_resamples; ++r) {
    std::fill(counts.begin(), counts.end(), 0U);
    for (std::size_t i = 0; i < n; ++i) ++counts[rng.below(n)];
    std::uint64_t n_correct = 0, n_pos = 0;
    for (std::size_t i = 0; i < n; ++i) {
      n_correct += correct[i] ? counts[i] : 0;
      n_pos += y[i] == 1 ? counts[i] : 0;
    }
    accuracies.push_back(static_cast<double>(n_correct) / static_cast<double>(n));
    const std::uint64_t n_neg = n - n_pos;
    if (n_pos == 0 || n_neg == 0) continue;
    double tps = 0, fps = 0, prev_fpr = 0, prev_tpr = 0, area = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = order[k];
      (y[i] == 1 ? tps : fps) += counts[i];
      const bool last_of_run = k + 1 == n || rank_score[i] != rank_score[order[k + 1]];
      if (!last_of_run) continue;
      const double fpr = fps / static_cast<double>(n_neg), tpr = tps / static_cast<double>(n_pos);
      area += (fpr - prev_fpr) * (tpr + prev_tpr) / 2.0;
      prev_fpr = fpr;
      prev_tpr = tpr;
    }
    aucs.push_back(area);
  }
  const double lo_q = (1 - options.confidence_level) / 2 * 100;
  const double hi_q = (1 + options.confidence_level) / 2 * 100;
  result.accuracy = Interval{percentile(accuracies, lo_q), percentile(accuracies, hi_q)};
  result.auc_used = static_cast<int>(aucs.size());
  if (!aucs.empty()) result.auc = Interval{percentile(aucs, lo_q), percentile(aucs, hi_q)};
  return result;
}

}  // namespace

Calibration calibration(std::span<const int> labels, std::span<const double> scores, int bins) {
  if (labels.size() != scores.size())
    fail("calibration: {} labels but {} scores", labels.size(), scores.size());
  if (bins < 1) fail("calibration: the number of bins must be >= 1, got {}", bins);
  const auto nb = static_cast<std::size_t>(bins);
  // numpy.linspace(0, 1, bins + 1): edge i is i * (1 / bins), the last exactly 1.
  const double step = 1.0 / static_cast<double>(bins);
  std::vector<double> edges(nb + 1);
  for (std::size_t i = 0; i <= nb; ++i) edges[i] = static_cast<double>(i) * step;
  edges[nb] = 1.0;
  std::vector<double> score_sum(nb, 0.0), true_sum(nb, 0.0);
  std::vector<std::size_t> count(nb, 0);
  for (std::size_t i = 0; i < scores.size(); ++i) {
    // numpy.searchsorted(edges[1:-1], score, side="right"): the inner edges <= score.
    const auto bin = static_cast<std::size_t>(
        std::upper_bound(edges.begin() + 1, edges.end() - 1, scores[i]) - (edges.begin() + 1));
    score_sum[bin] += scores[i];
    true_sum[bin] += labels[i] == 1 ? 1.0 : 0.0;
    ++count[bin];
  }
  Calibration c;
  const auto n = static_cast<double>(scores.size());
  double brier = 0, ece = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const double d = scores[i] - (labels[i] == 1 ? 1.0 : 0.0);
    brier += d * d;
  }
  for (std::size_t b = 0; b < nb; ++b) {
    CalibrationBin bin{edges[b], edges[b + 1], count[b], std::nullopt, std::nullopt};
    if (count[b] > 0) {
      const auto nb_d = static_cast<double>(count[b]);
      bin.mean_score = score_sum[b] / nb_d;
      bin.fraction_label_1 = true_sum[b] / nb_d;
      ece += nb_d / n * std::abs(*bin.fraction_label_1 - *bin.mean_score);
    }
    c.bins.push_back(bin);
  }
  if (!scores.empty()) {
    c.brier = brier / n;
    c.ece = ece;
  }
  return c;
}

double normal_quantile(double p) {
  if (!(p > 0 && p < 1)) fail("normal_quantile: p must be in (0, 1), got {}", p);
  // Acklam's rational approximation, then one Halley step on erfc (full double precision).
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                 -2.759285104469687e+02, 1.383577518672690e+02,
                                 -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                 -1.556989798598866e+02, 6.680131188771972e+01,
                                 -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                 -2.400758277161838e+00, -2.549732539343734e+00,
                                 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                                 2.445134137142996e+00, 3.754408661907416e+00};
  constexpr double low = 0.02425, high = 1 - low;
  double x = 0;
  if (p < low) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= high) {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  const double u = e * std::sqrt(2 * 3.14159265358979323846) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

std::optional<Interval> wilson_interval(std::size_t successes, std::size_t n, double level) {
  if (!(level > 0 && level < 1)) fail("wilson_interval: level must be in (0, 1), got {}", level);
  if (successes > n) fail("wilson_interval: {} successes out of {}", successes, n);
  if (n == 0) return std::nullopt;
  const double z = normal_quantile((1 + level) / 2), z2 = z * z;
  const auto nd = static_cast<double>(n);
  const double p = static_cast<double>(successes) / nd;
  const double denom = 1 + z2 / nd;
  const double centre = (p + z2 / (2 * nd)) / denom;
  const double half = z / denom * std::sqrt(p * (1 - p) / nd + z2 / (4 * nd * nd));
  return Interval{std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

ThresholdRule parse_threshold_rule(std::string_view text, std::string_view what) {
  ThresholdRule rule;
  if (text == "youden") return rule;
  constexpr std::string_view prefix = "sensitivity:";
  if (text.substr(0, prefix.size()) == prefix) {
    rule.kind = ThresholdRule::Kind::sensitivity;
    try {
      std::size_t used = 0;
      const std::string number(text.substr(prefix.size()));
      rule.target_sensitivity = std::stod(number, &used);
      if (used == number.size() && rule.target_sensitivity > 0 && rule.target_sensitivity <= 1)
        return rule;
    } catch (const std::exception&) {
    }
  }
  throw Error(
      fmt::format("{} '{}': expected youden or sensitivity:T with T in (0, 1]", what, text));
}

std::string describe(const ThresholdRule& rule) {
  if (rule.kind == ThresholdRule::Kind::youden)
    return "Youden's J (the threshold maximising sensitivity + specificity - 1, i.e. TPR - FPR, "
           "over the ROC thresholds)";
  return fmt::format(
      "target sensitivity (the strictest threshold whose sensitivity reaches {:.2f})",
      rule.target_sensitivity);
}

std::optional<ThresholdChoice> choose_threshold(std::span<const Prediction> predictions,
                                                const MetricsOptions& options,
                                                const ThresholdRule& rule) {
  if (rule.kind == ThresholdRule::Kind::sensitivity &&
      !(rule.target_sensitivity > 0 && rule.target_sensitivity <= 1))
    fail("target sensitivity must be in (0, 1], got {}", rule.target_sensitivity);
  const int pos = options.positive_label;
  std::vector<std::pair<double, bool>> items;  // score, is positive
  for (const auto& p : predictions)
    if (std::isfinite(p.score)) items.emplace_back(p.score, p.label == pos);
  std::sort(items.begin(), items.end());
  double total_pos = 0, total_neg = 0;
  for (const auto& [score, is_pos] : items) (is_pos ? total_pos : total_neg) += 1;
  if (total_pos == 0 || total_neg == 0) return std::nullopt;
  // Candidate j: label 1 predicted for scores >= t_j; t_j the j-th distinct score ascending, the
  // last one just above the largest score (nothing predicted label 1).
  std::vector<double> thresholds, pos_above, neg_above;  // label-1 predictions among pos / neg
  double pos_seen = 0, neg_seen = 0;                     // scores below t_j
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i == 0 || items[i].first != items[i - 1].first) {
      thresholds.push_back(items[i].first);
      pos_above.push_back(total_pos - pos_seen);
      neg_above.push_back(total_neg - neg_seen);
    }
    (items[i].second ? pos_seen : neg_seen) += 1;
  }
  thresholds.push_back(std::nextafter(items.back().first, std::numeric_limits<double>::infinity()));
  pos_above.push_back(0);
  neg_above.push_back(0);
  const std::size_t k = thresholds.size();
  std::optional<ThresholdChoice> best;
  double best_j = -std::numeric_limits<double>::infinity();
  for (std::size_t step = 0; step < k; ++step) {
    // From the strictest: the fewest predicted positive first.
    const std::size_t j = pos == 1 ? k - 1 - step : step;
    const double tp = pos == 1 ? pos_above[j] : total_pos - pos_above[j];
    const double fp = pos == 1 ? neg_above[j] : total_neg - neg_above[j];
    const ThresholdChoice choice{thresholds[j], tp / total_pos, fp / total_neg};
    if (rule.kind == ThresholdRule::Kind::sensitivity) {
      if (choice.tpr >= rule.target_sensitivity - 1e-12) return choice;
      continue;
    }
    if (choice.tpr - choice.fpr > best_j) {
      best_j = choice.tpr - choice.fpr;
      best = choice;
    }
  }
  return best;
}

int positive_label_of(std::string_view positive, std::span<const std::string> classes,
                      std::string_view what) {
  if (classes.size() != 2)
    fail("{}: binary metrics need two classes, got {}", what, classes.size());
  if (positive.empty() || positive == "1") return 1;
  if (positive == "0") return 0;
  for (int label = 0; label < 2; ++label) {
    if (classes[static_cast<std::size_t>(label)] == positive) return label;
  }
  const auto lower = [](std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  for (int label = 0; label < 2; ++label) {
    if (lower(classes[static_cast<std::size_t>(label)]) == lower(positive)) return label;
  }
  fail("{} '{}' is not a class of the data (its classes: '{}', '{}'; or 0/1)", what, positive,
       classes[0], classes[1]);
}

Metrics compute_metrics(std::span<const Prediction> predictions, const MetricsOptions& options) {
  if (!std::isfinite(options.threshold))
    throw Error(fmt::format("threshold must be finite, got {}", options.threshold));
  if (options.positive_label != 0 && options.positive_label != 1)
    throw Error(fmt::format("positive label must be 0 or 1, got {}", options.positive_label));
  if (!(options.confidence_level > 0 && options.confidence_level < 1))
    throw Error(
        fmt::format("confidence level must be in (0, 1), got {}", options.confidence_level));
  if (options.bootstrap_resamples < 0)
    throw Error("the number of bootstrap resamples must be >= 0");

  Metrics m;
  m.options = options;
  const int pos = options.positive_label;
  const std::string& pos_name = m.positive_class();
  const std::string& neg_name = m.negative_class();

  // y: 1 = positive class; rank_score: higher = more positive; correct: prediction == label.
  std::vector<int> y;
  std::vector<double> rank_score, raw_score;
  std::vector<int> label1;  // raw labels of the finite scores (calibration is about label 1)
  std::vector<char> correct;
  for (std::size_t i = 0; i < predictions.size(); ++i) {
    const Prediction& p = predictions[i];
    if (p.label != 0 && p.label != 1)
      throw Error(fmt::format("prediction {} ({}): label must be 0 ({}) or 1 ({}), got {}", i + 1,
                              p.path.empty() ? "no path" : p.path, options.class_names[0],
                              options.class_names[1], p.label));
    if (!std::isfinite(p.score)) {
      ++m.n_excluded;
      continue;
    }
    const bool is_pos = p.label == pos;
    const bool predicted_class1 = p.score >= options.threshold;
    const bool predicted_pos = pos == 1 ? predicted_class1 : !predicted_class1;
    y.push_back(is_pos ? 1 : 0);
    rank_score.push_back(pos == 1 ? p.score : -p.score);
    raw_score.push_back(p.score);
    label1.push_back(p.label);
    correct.push_back(is_pos == predicted_pos ? 1 : 0);
    ConfusionMatrix& c = m.confusion;
    ++(is_pos ? (predicted_pos ? c.tp : c.fn) : (predicted_pos ? c.fp : c.tn));
  }
  if (m.n_excluded > 0)
    m.warnings.push_back(fmt::format(
        "{} of {} predictions have a NaN or infinite score and were left out of every metric",
        m.n_excluded, predictions.size()));
  m.n = y.size();
  const ConfusionMatrix& c = m.confusion;
  m.n_positive = static_cast<std::size_t>(c.tp + c.fn);
  m.n_negative = static_cast<std::size_t>(c.tn + c.fp);
  if (m.n == 0) {
    m.warnings.push_back("no predictions with a finite score: every metric is undefined (null)");
    return m;
  }

  const auto tp = static_cast<double>(c.tp), fp = static_cast<double>(c.fp);
  const auto tn = static_cast<double>(c.tn), fn = static_cast<double>(c.fn);
  const auto n = static_cast<double>(m.n);
  m.accuracy = (tp + tn) / n;
  m.sensitivity = safe_divide(tp, tp + fn);
  m.specificity = safe_divide(tn, tn + fp);
  m.precision = safe_divide(tp, tp + fp);
  if (tp + fn == 0)
    m.warnings.push_back(fmt::format(
        "sensitivity is ill-defined (no {} labels): set to 0 as scikit-learn's zero_division does",
        pos_name));
  if (tn + fp == 0)
    m.warnings.push_back(fmt::format(
        "specificity is ill-defined (no {} labels): set to 0 as scikit-learn's zero_division does",
        neg_name));
  if (tp + fp == 0)
    m.warnings.push_back(
        fmt::format("precision is ill-defined (nothing predicted {}): set to 0 as scikit-learn's "
                    "zero_division does",
                    pos_name));
  // f1_score of scikit-learn 1.2: from precision and recall, 0 when both are 0.
  const double p = *m.precision, r = *m.sensitivity;
  const double f1_den = p + r;
  m.f1 = (1 + 1) * p * r / (f1_den == 0 ? 1.0 : f1_den);
  // balanced_accuracy_score: mean recall over the classes present in the labels.
  if (tp + fn > 0 && tn + fp > 0)
    m.balanced_accuracy = (*m.specificity + *m.sensitivity) / 2;
  else
    m.balanced_accuracy = tp + fn > 0 ? *m.sensitivity : *m.specificity;
  // matthews_corrcoef, written as scikit-learn computes it (exact integer-valued doubles).
  {
    const double t_pos = tp + fn, t_neg = tn + fp, p_pos = tp + fp, p_neg = tn + fn;
    const double cov_ytyp = (tp + tn) * n - (t_pos * p_pos + t_neg * p_neg);
    const double cov_ypyp = n * n - (p_pos * p_pos + p_neg * p_neg);
    const double cov_ytyt = n * n - (t_pos * t_pos + t_neg * t_neg);
    m.mcc = cov_ypyp * cov_ytyt == 0 ? 0.0 : cov_ytyp / std::sqrt(cov_ytyt * cov_ypyp);
  }

  m.calibration = calibration(label1, raw_score);
  m.roc = roc_curve(y, rank_score, /*drop_intermediate=*/false);
  if (pos == 0)  // report thresholds as the probability of the positive class
    for (std::size_t i = 1; i < m.roc.thresholds.size(); ++i)
      m.roc.thresholds[i] = 1.0 + m.roc.thresholds[i];
  m.auc = roc_auc(y, rank_score);
  if (!m.auc)
    m.warnings.push_back(fmt::format(
        "only one class ({}) is present in the labels: ROC AUC is undefined (null), and so are "
        "its curve and interval",
        m.n_positive > 0 ? pos_name : neg_name));
  if (m.n > 1 && std::all_of(raw_score.begin(), raw_score.end(),
                             [&](double s) { return s == raw_score.front(); }))
    m.warnings.push_back(
        fmt::format("all {} scores are equal ({}): the model does not rank the images at all", m.n,
                    raw_score.front()));

  const Bootstrap b = bootstrap(y, rank_score, correct, options);
  m.accuracy_interval = b.accuracy;
  m.auc_interval = b.auc;
  m.auc_resamples_used = b.auc_used;
  if (m.auc && options.bootstrap_resamples > 0 && b.auc_used < options.bootstrap_resamples)
    m.warnings.push_back(fmt::format(
        "{} of {} bootstrap resamples held a single class and were skipped for the AUC interval",
        options.bootstrap_resamples - b.auc_used, options.bootstrap_resamples));
  return m;
}

}  // namespace onnxforge::eval
