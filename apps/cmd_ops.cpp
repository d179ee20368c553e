// onnxforge ops
#include <CLI/CLI.hpp>
#include <cstdio>

#include "apps/command.hpp"
#include "backends/op_docs.hpp"

namespace onnxforge::cli {
namespace {

const Registration registration{
    11, "ops",
    "List every op of the IR with what each backend of this build does with it (train, "
    "inference or refused, and the dtypes), as Markdown: docs/OPS.md is its output.",
    [](CLI::App& sub) { sub.callback([] { std::fputs(ops_markdown().c_str(), stdout); }); }};

}  // namespace
}  // namespace onnxforge::cli
