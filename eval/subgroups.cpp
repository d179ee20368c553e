#include "eval/subgroups.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "core/error.hpp"
#include "eval/io.hpp"

namespace onnxforge::eval {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMinTail = 3;  // trailing components a fallback match needs

std::string canonical_of(const fs::path& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) abs = p;
  fs::path c = fs::weakly_canonical(abs, ec);
  return (ec ? abs.lexically_normal() : c).generic_string();
}

// The path's components, without ".", ".." and the root.
std::vector<std::string> components(const fs::path& p) {
  std::vector<std::string> out;
  for (const auto& part : p.lexically_normal().relative_path()) {
    const std::string s = part.generic_string();
    if (!s.empty() && s != "." && s != "..") out.push_back(s);
  }
  return out;
}

std::string tail_key(const std::vector<std::string>& parts) {
  std::string key;
  for (std::size_t i = parts.size() - kMinTail; i < parts.size(); ++i) key += "/" + parts[i];
  return key;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

Rate rate(std::size_t successes, std::size_t n, double level) {
  Rate r{successes, n, std::nullopt, std::nullopt};
  if (n > 0) {
    r.value = static_cast<double>(successes) / static_cast<double>(n);
    r.interval = wilson_interval(successes, n, level);
  }
  return r;
}

Gap gap_of(const std::vector<GroupMetrics>& groups, Rate GroupMetrics::*which) {
  Gap g;
  const GroupMetrics *hi = nullptr, *lo = nullptr;
  int defined = 0;
  for (const auto& gm : groups) {
    const Rate& r = gm.*which;
    if (!r.value) continue;
    ++defined;
    if (!hi || *r.value > *(hi->*which).value) hi = &gm;
    if (!lo || *r.value < *(lo->*which).value) lo = &gm;
  }
  if (defined < 2) return g;
  g.value = *(hi->*which).value - *(lo->*which).value;
  g.max_group = hi->group;
  g.min_group = lo->group;
  return g;
}

nlohmann::json rate_json(const Rate& r) {
  auto num = [](const std::optional<double>& v) -> nlohmann::json {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  return {{"value", num(r.value)},
          {"lo", num(r.interval ? std::optional(r.interval->lo) : std::nullopt)},
          {"hi", num(r.interval ? std::optional(r.interval->hi) : std::nullopt)},
          {"successes", r.successes},
          {"n", r.n}};
}

nlohmann::json gap_json(const Gap& g) {
  return {{"value", g.value ? nlohmann::json(*g.value) : nlohmann::json(nullptr)},
          {"max_group", g.max_group},
          {"min_group", g.min_group}};
}

}  // namespace

GroupTable read_groups_csv(const fs::path& file) {
  const std::string where = file.string();
  const auto rows = parse_csv(read_file(file), where);
  if (rows.empty()) fail("{}: empty file, expected a header 'path,<attribute>,...'", where);
  const auto& header = rows.front();
  std::size_t path_col = header.size();
  GroupTable t;
  t.file = file;
  std::vector<std::size_t> attribute_cols;
  for (std::size_t c = 0; c < header.size(); ++c) {
    const std::string name = trim(header[c]);
    if (name == "path" && path_col == header.size()) {
      path_col = c;
      continue;
    }
    if (name.empty()) fail("{}:1: column {} has no name", where, c + 1);
    if (std::find(t.attributes.begin(), t.attributes.end(), name) != t.attributes.end())
      fail("{}:1: column '{}' appears twice", where, name);
    t.attributes.push_back(name);
    attribute_cols.push_back(c);
  }
  if (path_col == header.size())
    fail("{}:1: no 'path' column; the header must be path,<attribute>,...", where);
  if (t.attributes.empty())
    fail("{}:1: no attribute column after path (e.g. path,skin_tone,age_group)", where);
  const fs::path base = file.parent_path();
  std::map<std::string, std::size_t> line_of;
  for (std::size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    const std::size_t line = r + 1;
    if (row.size() < header.size())
      fail("{}:{}: {} fields, expected {}", where, line, row.size(), header.size());
    const std::string path = trim(row[path_col]);
    if (path.empty()) fail("{}:{}: empty path", where, line);
    const fs::path p(path);
    const std::string canonical = canonical_of(p.is_absolute() ? p : base / p);
    const auto [it, inserted] = line_of.emplace(canonical, line);
    if (!inserted)
      fail("{}:{}: path '{}' is listed twice (first on line {})", where, line, path, it->second);
    t.paths.push_back(canonical);
    auto& values = t.values.emplace_back();
    for (std::size_t c : attribute_cols) values.push_back(trim(row[c]));
  }
  return t;
}

GroupMatcher::GroupMatcher(const GroupTable& groups) : groups_(groups) {
  for (std::size_t r = 0; r < groups.paths.size(); ++r) {
    by_path_.emplace_back(groups.paths[r], r);
    const auto parts = components(groups.paths[r]);
    if (parts.size() >= kMinTail) by_tail_.emplace_back(tail_key(parts), r);
  }
  std::sort(by_path_.begin(), by_path_.end());
  std::sort(by_tail_.begin(), by_tail_.end());
}

std::optional<std::size_t> GroupMatcher::match(const std::string& prediction_path) const {
  if (prediction_path.empty()) return std::nullopt;
  const fs::path p(prediction_path);
  const std::string canonical = canonical_of(p);
  const auto exact = std::lower_bound(by_path_.begin(), by_path_.end(),
                                      std::pair<std::string, std::size_t>{canonical, 0});
  if (exact != by_path_.end() && exact->first == canonical) return exact->second;
  if (p.is_absolute()) return std::nullopt;
  const auto parts = components(p);
  if (parts.size() < kMinTail) return std::nullopt;
  const std::string key = tail_key(parts);
  auto it = std::lower_bound(by_tail_.begin(), by_tail_.end(),
                             std::pair<std::string, std::size_t>{key, 0});
  std::size_t best_len = 0, best_row = 0, best_count = 0;
  for (; it != by_tail_.end() && it->first == key; ++it) {
    const auto row_parts = components(groups_.paths[it->second]);
    std::size_t len = 0;
    while (len < parts.size() && len < row_parts.size() &&
           parts[parts.size() - 1 - len] == row_parts[row_parts.size() - 1 - len])
      ++len;
    if (len > best_len) {
      best_len = len;
      best_row = it->second;
      best_count = 1;
    } else if (len == best_len) {
      ++best_count;
    }
  }
  if (best_len >= kMinTail && best_count == 1) return best_row;
  return std::nullopt;
}

SubgroupMetrics subgroup_metrics(std::span<const Prediction> predictions, const GroupTable& groups,
                                 const MetricsOptions& options) {
  struct Counts {
    std::size_t n = 0, correct = 0, pos = 0, tp = 0, neg = 0, fp = 0;
  };
  SubgroupMetrics out;
  const GroupMatcher matcher(groups);
  std::vector<std::map<std::string, Counts>> counts(groups.attributes.size());
  const int pos = options.positive_label;
  for (const auto& p : predictions) {
    if (p.label != 0 && p.label != 1)
      fail("subgroups: prediction {}: label must be 0 or 1, got {}", p.path, p.label);
    if (!std::isfinite(p.score)) {
      ++out.excluded;
      continue;
    }
    const auto row = matcher.match(p.path);
    if (!row) {
      ++out.unmatched;
      continue;
    }
    ++out.matched;
    const bool predicted_pos = (p.score >= options.threshold) == (pos == 1);
    const bool is_pos = p.label == pos;
    for (std::size_t a = 0; a < groups.attributes.size(); ++a) {
      const std::string& value = groups.values[*row][a];
      Counts& c = counts[a][value.empty() ? "(empty)" : value];
      ++c.n;
      c.correct += predicted_pos == is_pos ? 1 : 0;
      if (is_pos) {
        ++c.pos;
        c.tp += predicted_pos ? 1 : 0;
      } else {
        ++c.neg;
        c.fp += predicted_pos ? 1 : 0;
      }
    }
  }
  const double level = options.confidence_level;
  for (std::size_t a = 0; a < groups.attributes.size(); ++a) {
    AttributeMetrics am;
    am.attribute = groups.attributes[a];
    for (const auto& [group, c] : counts[a])
      am.groups.push_back({group, c.n, rate(c.correct, c.n, level), rate(c.tp, c.pos, level),
                           rate(c.fp, c.neg, level)});
    am.tpr_gap = gap_of(am.groups, &GroupMetrics::tpr);
    am.fpr_gap = gap_of(am.groups, &GroupMetrics::fpr);
    if (am.tpr_gap.value || am.fpr_gap.value)
      am.equalized_odds_gap =
          std::max(am.tpr_gap.value.value_or(0.0), am.fpr_gap.value.value_or(0.0));
    else
      out.notes.push_back(fmt::format(
          "{}: fewer than two groups with both classes: no equalized-odds gap", am.attribute));
    out.attributes.push_back(std::move(am));
  }
  if (out.unmatched > 0)
    out.notes.push_back(fmt::format(
        "{} of {} predictions matched no row of {} and were left out of the subgroup metrics",
        out.unmatched, predictions.size(), groups.file.filename().string()));
  if (out.excluded > 0)
    out.notes.push_back(fmt::format(
        "{} predictions with a NaN or infinite score were left out of the subgroup metrics",
        out.excluded));
  return out;
}

nlohmann::json subgroups_to_json(const SubgroupMetrics& m) {
  nlohmann::json attributes = nlohmann::json::array();
  for (const auto& a : m.attributes) {
    nlohmann::json groups = nlohmann::json::array();
    for (const auto& g : a.groups)
      groups.push_back({{"group", g.group},
                        {"n", g.n},
                        {"accuracy", rate_json(g.accuracy)},
                        {"tpr", rate_json(g.tpr)},
                        {"fpr", rate_json(g.fpr)}});
    attributes.push_back(
        {{"attribute", a.attribute},
         {"tpr_gap", gap_json(a.tpr_gap)},
         {"fpr_gap", gap_json(a.fpr_gap)},
         {"equalized_odds_gap",
          a.equalized_odds_gap ? nlohmann::json(*a.equalized_odds_gap) : nlohmann::json(nullptr)},
         {"groups", std::move(groups)}});
  }
  return {{"matched", m.matched},
          {"unmatched", m.unmatched},
          {"excluded", m.excluded},
          {"notes", m.notes},
          {"attributes", std::move(attributes)}};
}

}  // namespace onnxforge::eval
