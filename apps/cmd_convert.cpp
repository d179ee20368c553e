// onnxforge convert IN OUT [--cut-at NODE] [--input-shape NAME=1x3x100x100]... [--fold-batchnorm]
//                          [--fold-constants] [--nchw-input] [--external-data]
#include <CLI/CLI.hpp>
#include <cstdio>

#include "apps/command.hpp"
#include "core/error.hpp"
#include "graph/passes.hpp"
#include "graph/summary.hpp"
#include "importers/onnx_export.hpp"
#include "importers/onnx_import.hpp"

namespace onnxforge::cli {
namespace {

// "data=1x3x100x100" (N or ? for a dynamic batch) -> {"data", {1,3,100,100}}.
std::pair<std::string, Shape> parse_input_shape(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    fail("--input-shape '{}': expected NAME=SHAPE, e.g. data=1x3x100x100", text);
  }
  const std::string name = text.substr(0, eq);
  std::string dims = text.substr(eq + 1);
  bool dynamic = false;
  if (!dims.empty() && (dims[0] == 'N' || dims[0] == '?')) {
    dynamic = true;
    dims = dims.size() > 2 ? dims.substr(2) : "";
  }
  Shape shape = dims.empty() ? Shape{} : parse_shape(dims, "--input-shape " + name);
  if (dynamic) shape.insert(shape.begin(), kDynamic);
  return {name, shape};
}

const Registration registration{
    40, "convert",
    "Convert a model to ONNX (opset 13+): import IN (.onnx or a built-in model name), "
    "optionally cut it at a node (e.g. the last pooling layer, dropping the fully connected "
    "layers), give it a new input size, fold batch norms and constants, write OUT.",
    [](CLI::App& sub) {
      auto in = std::make_shared<std::string>();
      auto out = std::make_shared<std::string>();
      auto cut = std::make_shared<std::string>();
      auto shapes = std::make_shared<std::vector<std::string>>();
      auto fold_bn = std::make_shared<bool>(false);
      auto fold_consts = std::make_shared<bool>(false);
      auto external = std::make_shared<bool>(false);
      auto nchw = std::make_shared<bool>(false);
      sub.add_option("in", *in, "input model: .onnx file or built-in name (baseline, vgg16)")
          ->required();
      sub.add_option("out", *out, "output .onnx file")->required();
      sub.add_option("--cut-at", *cut,
                     "keep this node (or the node producing this value) and what it depends on");
      sub.add_option("--input-shape", *shapes,
                     "NAME=SHAPE, e.g. data=1x3x100x100 or input_1=Nx100x100x3 (N: dynamic batch)");
      sub.add_flag("--fold-batchnorm", *fold_bn,
                   "fold BatchNormalization into the preceding Conv/Dense");
      sub.add_flag("--fold-constants", *fold_consts,
                   "replace subgraphs of constants by their values and drop Identity nodes");
      sub.add_flag("--nchw-input", *nchw,
                   "an NHWC input read only by a Transpose to NCHW (tf2onnx/Keras) becomes NCHW");
      sub.add_flag("--external-data", *external,
                   "store weights in OUT's stem + .data next to it (needed above 2 GiB)");
      sub.callback([=] {
        ImportOptions options;
        options.cut_at = *cut;
        for (const auto& text : *shapes) {
          const auto [name, shape] = parse_input_shape(text);
          options.input_shapes[name] = shape;
        }
        Graph graph;
        if (in->find(".onnx") != std::string::npos) {
          graph = import_onnx(*in, options);
        } else {
          graph = load_model(*in, {}, {.cut_at = options.cut_at});
          for (const auto& [name, shape] : options.input_shapes) {
            graph = with_input_shape(std::move(graph), name, shape);
          }
        }
        if (*nchw) graph = absorb_input_transpose(std::move(graph));
        if (*fold_bn) graph = fold_batchnorm(std::move(graph));
        if (*fold_consts) graph = fold_constants(remove_identities(std::move(graph)));
        ExportOptions export_options;
        export_options.external_data = *external;
        export_onnx(graph, *out, export_options);
        std::printf("%s: %zu nodes, %s parameters (%s trainable), outputs:", out->c_str(),
                    graph.nodes.size(), with_thousands(graph.parameter_count()).c_str(),
                    with_thousands(graph.trainable_parameter_count()).c_str());
        for (const auto& o : graph.outputs) {
          std::printf(" %s %s", o.c_str(), to_string(graph.value(o).shape).c_str());
        }
        std::printf("\n");
      });
    }};

}  // namespace
}  // namespace onnxforge::cli
