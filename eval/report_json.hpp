// Internal to the report's sources: reading a metrics.json that may lack any field. Every
// accessor answers nullopt (or nullptr) for what is missing or malformed.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "eval/metrics.hpp"
#include "eval/report.hpp"

namespace onnxforge::eval::report_json {

std::optional<double> number(const nlohmann::json& j, const char* key);
std::optional<Interval> interval(const nlohmann::json& j, const char* key);
std::optional<ConfusionMatrix> confusion_of(const nlohmann::json& j);
std::optional<RocCurve> roc_of(const nlohmann::json& j);
// metrics.json's "calibration" (brier, ece, bins); nullopt when absent or null.
std::optional<Calibration> calibration_of(const nlohmann::json& j);

// "val" -> "Validation", "test" -> "Test", "train" -> "Training", else capitalised.
std::string split_title(const std::string& split);

// The metrics of `run`'s split of that name, nullptr when it has none.
const nlohmann::json* split_metrics(const RunRecord& run, const std::string& split);
// Every split name of `runs`, in first-seen order.
std::vector<std::string> split_names(std::span<const RunRecord> runs);

}  // namespace onnxforge::eval::report_json
