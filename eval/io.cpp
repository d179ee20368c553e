#include "eval/io.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "core/error.hpp"

namespace onnxforge::eval {
namespace fs = std::filesystem;

std::vector<std::vector<std::string>> parse_csv(std::string_view text, std::string_view where) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool in_quotes = false, field_was_quoted = false, row_has_content = false;
  std::size_t line = 1, quote_line = 0;
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // BOM
  auto end_field = [&] {
    row.push_back(std::move(field));
    field.clear();
    field_was_quoted = false;
  };
  auto end_row = [&] {
    end_field();
    // A blank line is no record.
    if (row_has_content || row.size() > 1) rows.push_back(std::move(row));
    row.clear();
    row_has_content = false;
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (in_quotes) {
      if (ch == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        if (ch == '\n') ++line;
        field += ch;
      }
      continue;
    }
    if (ch == '"' && field.empty() && !field_was_quoted) {
      in_quotes = field_was_quoted = row_has_content = true;
      quote_line = line;
    } else if (ch == ',') {
      row_has_content = true;
      end_field();
    } else if (ch == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      // CRLF: the \n ends the row.
    } else if (ch == '\n' || ch == '\r') {
      ++line;
      end_row();
    } else {
      row_has_content = true;
      field += ch;
    }
  }
  if (in_quotes)
    throw Error(
        fmt::format("{}:{}: a quoted field is never closed (missing '\"')", where, quote_line));
  if (row_has_content || !field.empty() || !row.empty()) end_row();
  return rows;
}

std::string csv_field(std::string_view field) {
  const bool needs_quotes =
      field.find_first_of(",\"\r\n") != std::string_view::npos ||
      (!field.empty() && (std::isspace(static_cast<unsigned char>(field.front())) ||
                          std::isspace(static_cast<unsigned char>(field.back()))));
  if (!needs_quotes) return std::string(field);
  std::string out = "\"";
  for (char ch : field) {
    if (ch == '"') out += '"';
    out += ch;
  }
  out += '"';
  return out;
}

std::string format_double(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return fmt::format("{}", value);
}

std::string predictions_to_csv(std::span<const Prediction> predictions) {
  std::string out = "path,label,score\n";
  for (const auto& p : predictions)
    out += fmt::format("{},{},{}\n", csv_field(p.path), p.label, format_double(p.score));
  return out;
}

void write_predictions_csv(const fs::path& path, std::span<const Prediction> predictions) {
  write_file_atomic(path, predictions_to_csv(predictions));
}

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::optional<double> parse_double(std::string_view text) {
  const std::string s = lower(trim(text));
  if (s == "nan" || s == "-nan") return std::numeric_limits<double>::quiet_NaN();
  if (s == "inf" || s == "+inf" || s == "infinity") return std::numeric_limits<double>::infinity();
  if (s == "-inf" || s == "-infinity") return -std::numeric_limits<double>::infinity();
  if (s.empty()) return std::nullopt;
  double value = 0;
  const char* begin = s.data() + (s.front() == '+' ? 1 : 0);
  const auto [ptr, ec] = std::from_chars(begin, s.data() + s.size(), value);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return value;
}

// Column index by name, or throws naming the file and the columns it has.
std::map<std::string, std::size_t> column_index(const std::vector<std::string>& header) {
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < header.size(); ++i) index.emplace(lower(trim(header[i])), i);
  return index;
}

}  // namespace

std::vector<Prediction> read_predictions_csv(const fs::path& path,
                                             const std::array<std::string, 2>& class_names) {
  const std::string where = path.string();
  const auto rows = parse_csv(read_file(path), where);
  if (rows.empty())
    throw Error(
        fmt::format("{}: empty file, expected a header "
                    "'path,label,score'",
                    where));
  const auto index = column_index(rows.front());
  for (const char* needed : {"path", "label", "score"})
    if (!index.count(needed))
      throw Error(fmt::format("{}:1: no '{}' column; the header must name path,label,score", where,
                              needed));
  const std::size_t path_col = index.at("path"), label_col = index.at("label"),
                    score_col = index.at("score");
  const std::size_t needed_cols = std::max({path_col, label_col, score_col}) + 1;
  std::vector<Prediction> out;
  out.reserve(rows.size() - 1);
  for (std::size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    const std::size_t line = r + 1;  // approximate when quoted fields hold line breaks
    if (row.size() < needed_cols)
      throw Error(fmt::format("{}:{}: {} fields, expected at least {}", where, line, row.size(),
                              needed_cols));
    Prediction p;
    p.path = row[path_col];
    const std::string label = lower(trim(row[label_col]));
    if (label == "0" || label == lower(class_names[0]))
      p.label = 0;
    else if (label == "1" || label == lower(class_names[1]))
      p.label = 1;
    else
      throw Error(fmt::format("{}:{}: label '{}' is neither 0/1 nor {}/{}", where, line,
                              row[label_col], class_names[0], class_names[1]));
    const auto score = parse_double(row[score_col]);
    if (!score)
      throw Error(fmt::format("{}:{}: score '{}' is not a number", where, line, row[score_col]));
    p.score = *score;
    out.push_back(std::move(p));
  }
  return out;
}

double History::total_seconds() const {
  double total = 0;
  for (const auto& e : epochs)
    if (std::isfinite(e.seconds)) total += e.seconds;
  return total;
}

std::optional<double> History::images_per_second() const {
  double images = 0, seconds = 0;
  for (const auto& e : epochs)
    if (std::isfinite(e.seconds) && std::isfinite(e.images_per_second) && e.seconds > 0) {
      images += e.images_per_second * e.seconds;
      seconds += e.seconds;
    }
  if (seconds <= 0) return std::nullopt;
  return images / seconds;
}

std::string history_header() {
  return "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds,images_per_second\n";
}

std::string history_row(const EpochRecord& e) {
  return fmt::format("{},{},{},{},{},{},{},{}\n", format_double(e.epoch),
                     format_double(e.train_loss), format_double(e.train_accuracy),
                     format_double(e.val_loss), format_double(e.val_accuracy), format_double(e.lr),
                     format_double(e.seconds), format_double(e.images_per_second));
}

void write_history_csv(const fs::path& path, const History& history) {
  std::string out = history_header();
  for (const auto& e : history.epochs) out += history_row(e);
  write_file_atomic(path, out);
}

History read_history_csv(const fs::path& path) {
  const std::string where = path.string();
  const auto rows = parse_csv(read_file(path), where);
  History history;
  if (rows.empty()) return history;
  const auto index = column_index(rows.front());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (std::size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    auto get = [&](const char* name) {
      const auto it = index.find(name);
      if (it == index.end() || it->second >= row.size()) return nan;
      const auto value = parse_double(row[it->second]);
      if (!value)
        throw Error(
            fmt::format("{}:{}: {} '{}' is not a number", where, r + 1, name, row[it->second]));
      return *value;
    };
    EpochRecord e;
    e.epoch = get("epoch");
    if (std::isnan(e.epoch)) e.epoch = static_cast<double>(r);
    e.train_loss = get("train_loss");
    e.train_accuracy = get("train_accuracy");
    e.val_loss = get("val_loss");
    e.val_accuracy = get("val_accuracy");
    e.lr = get("lr");
    e.seconds = get("seconds");
    e.images_per_second = get("images_per_second");
    history.epochs.push_back(e);
  }
  return history;
}

namespace {

nlohmann::json optional_number(const std::optional<double>& value) {
  if (!value || !std::isfinite(*value)) return nullptr;
  return *value;
}

nlohmann::json interval_json(const std::optional<Interval>& interval) {
  if (!interval) return nullptr;
  return nlohmann::json::array({interval->lo, interval->hi});
}

nlohmann::json finite_array(const std::vector<double>& values) {
  auto out = nlohmann::json::array();
  for (double v : values) out.push_back(std::isfinite(v) ? nlohmann::json(v) : nullptr);
  return out;
}

}  // namespace

nlohmann::json metrics_to_json(const Metrics& m) {
  const MetricsOptions& o = m.options;
  nlohmann::json j;
  j["positive_class"] = m.positive_class();
  j["negative_class"] = m.negative_class();
  j["positive_label"] = o.positive_label;
  j["class_names"] = {o.class_names[0], o.class_names[1]};
  j["threshold"] = o.threshold;
  j["decision_rule"] =
      fmt::format("score >= threshold predicts {} (label 1); score is the probability of {}",
                  o.class_names[1], o.class_names[1]);
  j["n"] = m.n;
  j["n_positive"] = m.n_positive;
  j["n_negative"] = m.n_negative;
  j["n_excluded"] = m.n_excluded;
  j["accuracy"] = optional_number(m.accuracy);
  j["sensitivity"] = optional_number(m.sensitivity);
  j["specificity"] = optional_number(m.specificity);
  j["precision"] = optional_number(m.precision);
  j["f1"] = optional_number(m.f1);
  j["balanced_accuracy"] = optional_number(m.balanced_accuracy);
  j["mcc"] = optional_number(m.mcc);
  j["auc"] = optional_number(m.auc);
  j["confusion_matrix"] = {{"tp", m.confusion.tp},
                           {"fp", m.confusion.fp},
                           {"tn", m.confusion.tn},
                           {"fn", m.confusion.fn}};
  j["intervals"] = {{"accuracy", interval_json(m.accuracy_interval)},
                    {"auc", interval_json(m.auc_interval)},
                    {"level", o.confidence_level},
                    {"resamples", o.bootstrap_resamples},
                    {"auc_resamples_used", m.auc_resamples_used},
                    {"seed", o.seed},
                    {"method", "percentile bootstrap (SplitMix64 resampling)"}};
  j["zero_division"] = 0;
  // Thresholds: the first is +infinity, written as null.
  if (m.auc)
    j["roc"] = {{"drop_intermediate", false},
                {"fpr", finite_array(m.roc.fpr)},
                {"tpr", finite_array(m.roc.tpr)},
                {"thresholds", finite_array(m.roc.thresholds)}};
  else
    j["roc"] = nullptr;
  j["calibration"] = calibration_to_json(m.calibration);
  j["warnings"] = m.warnings;
  return j;
}

nlohmann::json calibration_to_json(const Calibration& c) {
  if (!c.brier) return nullptr;
  nlohmann::json bins = nlohmann::json::array();
  for (const auto& b : c.bins)
    bins.push_back({{"lo", b.lo},
                    {"hi", b.hi},
                    {"count", b.count},
                    {"mean_score", optional_number(b.mean_score)},
                    {"fraction_label_1", optional_number(b.fraction_label_1)}});
  return {{"brier", optional_number(c.brier)},
          {"ece", optional_number(c.ece)},
          {"n_bins", c.bins.size()},
          {"binning",
           "equal-width bins of [0, 1] over the score (probability of label 1); ece = sum of "
           "n_bin / n * |fraction_label_1 - mean_score|"},
          {"bins", std::move(bins)}};
}

void write_metrics_json(const fs::path& path, const Metrics& metrics, const nlohmann::json& extra) {
  nlohmann::json j = metrics_to_json(metrics);
  for (const auto& [key, value] : extra.items()) j[key] = value;
  write_file_atomic(path, j.dump(2) + "\n");
}

void write_roc_csv(const fs::path& path, const RocCurve& roc) {
  std::string out = "threshold,fpr,tpr\n";
  for (std::size_t i = 0; i < roc.fpr.size(); ++i)
    out += fmt::format("{},{},{}\n", format_double(roc.thresholds[i]), format_double(roc.fpr[i]),
                       format_double(roc.tpr[i]));
  write_file_atomic(path, out);
}

}  // namespace onnxforge::eval
