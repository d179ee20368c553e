// docs/OPS.md: every op of the IR (graph/ops/) with what each backend does with it (the backends'
// op tables), generated from the code; a test keeps the committed file in step with it.
#pragma once

#include <string>
#include <vector>

namespace onnxforge {

// The Markdown page for `backends` (in that order; default: every backend of this build).
std::string ops_markdown(const std::vector<std::string>& backends);
std::string ops_markdown();

// One op x backend cell of that page: "train" (forward and backward) or "inference", with the
// compute dtypes, or "refused" (its reason is listed under the table).
std::string coverage_cell(const std::string& backend, const std::string& op);

}  // namespace onnxforge
