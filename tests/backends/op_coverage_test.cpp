// Every (backend, op) pair is answered: lowered, or refused with a reason (backends/op_table.hpp);
// every op has cases in the op harness's catalogue; docs/OPS.md is what the code generates.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "backends/backend.hpp"
#include "backends/op_docs.hpp"
#include "graph/ops.hpp"
#include "tests/support/op_cases.hpp"

namespace onnxforge::testing {
namespace {

TEST(OpCoverage, EveryBackendLowersOrRefusesEveryOpWithAReason) {
  for (const auto& name : backend_names()) {
    const auto backend = make_backend(name);
    for (const auto id : all_op_ids()) {
      const OpCoverage c = backend->coverage(id);
      EXPECT_TRUE(c.lowered || !c.note.empty())
          << name << " neither lowers " << op_name(id) << " nor refuses it with a reason";
      EXPECT_FALSE(c.backward && !c.lowered) << name << ", " << op_name(id);
      EXPECT_FALSE(c.bf16 && !c.lowered) << name << ", " << op_name(id);
    }
  }
}

// A refused op is refused by supports() with the table's reason, for any node of it.
TEST(OpCoverage, SupportsAgreesWithTheTable) {
  for (const auto& name : backend_names()) {
    const auto backend = make_backend(name);
    for (const auto& c : op_cases()) {
      for (const auto& node : c.graph.nodes) {
        const OpCoverage coverage = backend->coverage(op_of(node));
        if (coverage.lowered) continue;
        const Support s = backend->supports(c.graph, node, {});
        EXPECT_FALSE(s.ok) << name << " refuses " << node.op << " but supports() accepts it";
        EXPECT_NE(s.reason.find(coverage.note), std::string::npos) << s.reason;
      }
    }
  }
}

// The harness (backend_ops_test) checks each case on every backend: every op must have one.
TEST(OpCoverage, EveryOpHasCasesInTheHarness) {
  std::set<std::string> covered;
  for (const auto& c : op_cases()) covered.insert(c.name.substr(0, c.name.find('/')));
  for (const auto id : all_op_ids()) {
    EXPECT_TRUE(covered.count(std::string(op_name(id))))
        << "no case named '" << op_name(id) << "/...' in tests/backends/op_cases.cpp";
  }
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> cells_of(const std::string& row) {
  std::vector<std::string> cells;
  std::size_t at = 1;
  while (at < row.size()) {
    const auto next = row.find('|', at);
    if (next == std::string::npos) break;
    cells.push_back(row.substr(at, next - at));
    at = next + 1;
  }
  return cells;
}

// The page as it reads for `keep` only: other backends' columns and notes removed.
std::string project(const std::string& page, const std::vector<std::string>& keep) {
  std::string out;
  std::vector<bool> kept;
  bool in_table = false;
  for (const auto& line : split_lines(page)) {
    if (line.rfind("| Op |", 0) == 0) {
      in_table = true;
      const auto cells = cells_of(line);
      kept.assign(cells.size(), true);
      for (std::size_t i = 4; i < cells.size(); ++i) {
        const std::string name = cells[i].substr(1, cells[i].size() - 2);
        kept[i] = std::find(keep.begin(), keep.end(), name) != keep.end();
      }
    }
    if (in_table && line.rfind("|", 0) == 0) {
      const auto cells = cells_of(line);
      std::string row = "|";
      for (std::size_t i = 0; i < cells.size(); ++i) {
        if (i >= kept.size() || kept[i]) row += cells[i] + "|";
      }
      out += row + "\n";
      continue;
    }
    in_table = in_table && line.rfind("|", 0) == 0;
    if (line.rfind("- ", 0) == 0 && line.find(", ") != std::string::npos &&
        line.find("**") == std::string::npos) {
      const std::string backend = line.substr(2, line.find(", ") - 2);
      if (std::find(keep.begin(), keep.end(), backend) == keep.end()) continue;
    }
    out += line + "\n";
  }
  return out;
}

TEST(OpsDoc, InStepWithTheCode) {
  const std::string path = std::string(ONNXFORGE_SOURCE_DIR) + "/docs/OPS.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot read " << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string committed = buffer.str();
  // The page lists reference, onednn and cudnn; a build without one compares the others.
  const std::string generated = ops_markdown();
  EXPECT_EQ(project(committed, backend_names()), generated)
      << "docs/OPS.md is not what the code says; regenerate it: build/bin/onnxforge ops > "
         "docs/OPS.md";
}

}  // namespace
}  // namespace onnxforge::testing
