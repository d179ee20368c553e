// Metrics per subgroup of the images (skin tone, age group, glasses, ...) from a groups CSV, and
// the equalized-odds gaps between the groups of each attribute.
//
// groups.csv: header `path,<attr1>,<attr2>,...`; every column but `path` is a categorical
// attribute whose values are strings (an empty value is a group of its own, "(empty)"). Paths are
// relative to the CSV's folder, or absolute. A prediction matches the row of the same canonical
// absolute path; a relative prediction path that matches no row that way falls back to the one
// row sharing the most trailing path components with it (at least 3, e.g.
// gender/test/Female/000001.jpg), when that row is unique.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "eval/metrics.hpp"

namespace onnxforge::eval {

struct GroupTable {
  std::filesystem::path file;
  std::vector<std::string> attributes;           // the columns after path, in file order
  std::vector<std::string> paths;                // canonical absolute paths, one per row
  std::vector<std::vector<std::string>> values;  // values[row][attribute]
};

// Throws Error "FILE:LINE: problem" (no path column, a row with too few fields, a path listed
// twice, no attribute column).
GroupTable read_groups_csv(const std::filesystem::path& file);

// The row of `prediction_path` in `groups`, or nullopt (see the matching rule above). Relative
// prediction paths resolve against the current directory.
class GroupMatcher {
 public:
  explicit GroupMatcher(const GroupTable& groups);
  std::optional<std::size_t> match(const std::string& prediction_path) const;

 private:
  const GroupTable& groups_;
  std::vector<std::pair<std::string, std::size_t>> by_path_;  // sorted canonical path -> row
  std::vector<std::pair<std::string, std::size_t>> by_tail_;  // sorted last 3 components -> row
};

// successes / n with its Wilson score interval; value and interval nullopt when n = 0.
struct Rate {
  std::size_t successes = 0, n = 0;
  std::optional<double> value;
  std::optional<Interval> interval;
};

struct GroupMetrics {
  std::string group;
  std::size_t n = 0;
  Rate accuracy, tpr, fpr;  // TPR among the group's positives, FPR among its negatives
};

struct Gap {
  std::optional<double> value;  // max - min over the groups where the rate is defined
  std::string max_group, min_group;
};

struct AttributeMetrics {
  std::string attribute;
  std::vector<GroupMetrics> groups;  // in order of the groups' names
  Gap tpr_gap, fpr_gap;
  std::optional<double> equalized_odds_gap;  // the larger of the two
};

struct SubgroupMetrics {
  std::size_t matched = 0, unmatched = 0, excluded = 0;  // excluded: NaN or infinite scores
  std::vector<AttributeMetrics> attributes;
  std::vector<std::string> notes;  // unmatched predictions, undefined rates
};

// Per attribute and group: n, accuracy, TPR and FPR at options.threshold with options'
// positive class, each with a Wilson interval at options.confidence_level.
SubgroupMetrics subgroup_metrics(std::span<const Prediction> predictions, const GroupTable& groups,
                                 const MetricsOptions& options);

// {matched, unmatched, excluded, notes, attributes: [{attribute, tpr_gap: {value, max_group,
// min_group}, fpr_gap, equalized_odds_gap, groups: [{group, n, accuracy: {value, lo, hi,
// successes, n}, tpr, fpr}]}]}
nlohmann::json subgroups_to_json(const SubgroupMetrics& metrics);

}  // namespace onnxforge::eval
