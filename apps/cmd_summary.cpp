// onnxforge summary MODEL [--input CxHxW]
#include <CLI/CLI.hpp>
#include <cstdio>

#include "apps/command.hpp"
#include "graph/summary.hpp"
#include "importers/onnx_import.hpp"

namespace onnxforge::cli {
namespace {

const Registration registration{
    10, "summary",
    "Print a Keras-like table of a model: layers, ops, output shapes, parameter counts and "
    "which are trainable, with total / trainable / non-trainable parameters. Nodes of an .onnx "
    "file that onnxforge cannot run are shown with the reason.",
    [](CLI::App& sub) {
      auto model = std::make_shared<std::string>();
      auto input = std::make_shared<std::string>("3x100x100");
      auto top = std::make_shared<bool>(false);
      sub.add_option("model", *model, "a built-in model (baseline, vgg16) or an .onnx file")
          ->required();
      sub.add_option("--input", *input, "input size as CxHxW")->capture_default_str();
      sub.add_flag("--include-top", *top, "vgg16: keep the three fully connected layers");
      sub.callback([=] {
        ModelOptions options;
        options.input = parse_shape(*input, "--input");
        options.include_top = *top;
        // An imported file's unsupported nodes are shown in the table with their reasons.
        std::vector<UnsupportedNode> unsupported;
        ImportOptions onnx;
        onnx.unsupported = &unsupported;
        const Graph graph = load_model(*model, options, onnx);
        std::fputs(summary(graph, unsupported).c_str(), stdout);
      });
    }};

}  // namespace
}  // namespace onnxforge::cli
