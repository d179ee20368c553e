#include "graph/node_lookup.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <string_view>

#include "core/error.hpp"

namespace onnxforge {

namespace {

std::vector<std::string_view> parts_of(std::string_view name) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (start <= name.size()) {
    const auto slash = name.find('/', start);
    const auto end = slash == std::string_view::npos ? name.size() : slash;
    if (end > start) parts.push_back(name.substr(start, end - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return parts;
}

// "block5_pool_1" -> "block5_pool"; a part without such a suffix is returned as it is.
std::string_view without_counter(std::string_view part) {
  auto end = part.size();
  while (end > 0 && std::isdigit(static_cast<unsigned char>(part[end - 1]))) --end;
  if (end == part.size() || end < 2 || part[end - 1] != '_') return part;
  return part.substr(0, end - 1);
}

bool names_layer(std::string_view node_name, std::string_view layer) {
  for (const auto part : parts_of(node_name)) {
    if (part == layer || without_counter(part) == layer) return true;
  }
  return false;
}

bool is_pool(const std::string& op) {
  return op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool" ||
         op == "GlobalMaxPool" || op == "ReduceMean";
}

bool is_dense(const std::string& op) { return op == "Dense" || op == "Gemm" || op == "MatMul"; }

std::size_t last_pool(const std::vector<NodeRef>& nodes, const std::string& where) {
  std::size_t end = nodes.size();
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (is_dense(nodes[i].op)) {
      end = i;
      break;
    }
  }
  for (std::size_t i = end; i-- > 0;) {
    if (is_pool(nodes[i].op)) return i;
  }
  fail("{}: last-pool: no pooling node (MaxPool, AveragePool, GlobalAveragePool, ReduceMean) {}",
       where, end == nodes.size() ? "in the model" : "before its first Dense/Gemm/MatMul");
}

std::string closest_names(const std::vector<NodeRef>& nodes, const std::string& query) {
  std::vector<std::pair<std::size_t, std::string>> scored;
  for (const auto& node : nodes) {
    std::size_t best = edit_distance(query, node.name);
    for (const auto part : parts_of(node.name)) {
      best = std::min({best, edit_distance(query, std::string(part)),
                       edit_distance(query, std::string(without_counter(part)))});
    }
    scored.emplace_back(best, node.name);
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> picked;
  std::set<std::string> seen;
  const std::size_t limit = std::max<std::size_t>(3, query.size() / 2);
  for (const auto& [distance, name] : scored) {
    if (picked.size() == 3 || distance > limit) break;
    if (seen.insert(name).second) picked.push_back(name);
  }
  picked.push_back("last-pool");
  if (picked.size() == 1) return picked[0];
  const auto last = picked.back();
  picked.pop_back();
  return fmt::format("{} or {}", fmt::join(picked, ", "), last);
}

}  // namespace

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::size_t find_node_for_cut(const std::vector<NodeRef>& nodes, const std::string& query,
                              const std::string& where) {
  if (query.empty()) fail("{}: the cut node's name is empty", where);
  for (std::size_t i = nodes.size(); i-- > 0;) {
    if (nodes[i].name == query) return i;
  }
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const auto& outs = nodes[i].outputs;
    if (std::find(outs.begin(), outs.end(), query) != outs.end()) return i;
  }
  if (query == "last-pool") return last_pool(nodes, where);
  for (std::size_t i = nodes.size(); i-- > 0;) {
    if (names_layer(nodes[i].name, query)) return i;
  }
  fail("{}: no node named '{}'; did you mean {}?", where, query, closest_names(nodes, query));
}

}  // namespace onnxforge
