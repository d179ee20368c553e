#include "eval/report_json.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>

namespace onnxforge::eval::report_json {
using nlohmann::json;

std::optional<double> number(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return std::nullopt;
  return j[key].get<double>();
}

std::optional<Interval> interval(const json& j, const char* key) {
  if (!j.is_object() || !j.contains("intervals") || !j["intervals"].is_object())
    return std::nullopt;
  const json& iv = j["intervals"];
  if (!iv.contains(key) || !iv[key].is_array() || iv[key].size() != 2 || !iv[key][0].is_number() ||
      !iv[key][1].is_number())
    return std::nullopt;
  return Interval{iv[key][0].get<double>(), iv[key][1].get<double>()};
}

std::optional<ConfusionMatrix> confusion_of(const json& j) {
  if (!j.is_object() || !j.contains("confusion_matrix") || !j["confusion_matrix"].is_object())
    return std::nullopt;
  const json& c = j["confusion_matrix"];
  for (const char* k : {"tp", "fp", "tn", "fn"})
    if (!c.contains(k) || !c[k].is_number_integer()) return std::nullopt;
  return ConfusionMatrix{c["tp"].get<std::int64_t>(), c["fp"].get<std::int64_t>(),
                         c["tn"].get<std::int64_t>(), c["fn"].get<std::int64_t>()};
}

std::optional<RocCurve> roc_of(const json& j) {
  if (!j.is_object() || !j.contains("roc") || !j["roc"].is_object()) return std::nullopt;
  const json& r = j["roc"];
  RocCurve curve;
  auto read = [](const json& a, std::vector<double>& out) {
    if (!a.is_array()) return false;
    for (const auto& v : a)
      out.push_back(v.is_number() ? v.get<double>() : std::numeric_limits<double>::quiet_NaN());
    return true;
  };
  if (!r.contains("fpr") || !r.contains("tpr") || !read(r["fpr"], curve.fpr) ||
      !read(r["tpr"], curve.tpr) || curve.fpr.size() != curve.tpr.size() || curve.fpr.empty())
    return std::nullopt;
  return curve;
}

std::optional<Calibration> calibration_of(const json& j) {
  if (!j.is_object() || !j.contains("calibration") || !j["calibration"].is_object())
    return std::nullopt;
  const json& c = j["calibration"];
  Calibration out;
  out.brier = number(c, "brier");
  out.ece = number(c, "ece");
  if (c.contains("bins") && c["bins"].is_array())
    for (const auto& b : c["bins"]) {
      if (!b.is_object()) continue;
      const auto count = number(b, "count");
      out.bins.push_back({number(b, "lo").value_or(0), number(b, "hi").value_or(0),
                          count && *count > 0 ? static_cast<std::size_t>(*count) : 0,
                          number(b, "mean_score"), number(b, "fraction_label_1")});
    }
  return out;
}

std::string split_title(const std::string& split) {
  if (split == "val") return "Validation";
  if (split == "test") return "Test";
  if (split == "train") return "Training";
  std::string out = split;
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

const json* split_metrics(const RunRecord& run, const std::string& split) {
  for (const auto& s : run.splits)
    if (s.name == split && s.metrics) return &*s.metrics;
  return nullptr;
}

std::vector<std::string> split_names(std::span<const RunRecord> runs) {
  std::vector<std::string> names;
  for (const auto& run : runs)
    for (const auto& s : run.splits)
      if (std::find(names.begin(), names.end(), s.name) == names.end()) names.push_back(s.name);
  return names;
}

}  // namespace onnxforge::eval::report_json
