// onnxforge infer MODEL --input NAME=FILE... --out DIR [--backend NAME]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "apps/command.hpp"
#include "backends/backend.hpp"
#include "core/error.hpp"
#include "importers/onnx_import.hpp"
#include "importers/tensor_io.hpp"

namespace onnxforge::cli {
namespace {

namespace fs = std::filesystem;

// A value name as a file name: anything outside [A-Za-z0-9._-] becomes '_'.
std::string file_name_of(const std::string& value) {
  std::string name = value;
  for (auto& c : name) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  return name.empty() || name[0] == '.' ? "_" + name : name;
}

const Registration registration{
    41, "infer",
    "Run a model (.onnx file or built-in name) on input tensors (.npy or ONNX TensorProto "
    ".pb) on any backend and write every output to DIR/<output>.npy.",
    [](CLI::App& sub) {
      auto model = std::make_shared<std::string>();
      auto inputs = std::make_shared<std::vector<std::string>>();
      auto out = std::make_shared<std::string>();
      auto backend_name = std::make_shared<std::string>("reference");
      sub.add_option("model", *model, "an .onnx file or a built-in model name")->required();
      sub.add_option("--input", *inputs,
                     "NAME=FILE (.npy or .pb); FILE alone feeds the model's only input")
          ->required();
      sub.add_option("--out", *out, "folder for the outputs (<output name>.npy)")->required();
      auto dtype = std::make_shared<std::string>("auto");
      auto threads = std::make_shared<int>(0);
      add_compute_options(sub, *backend_name, *threads, dtype.get());
      sub.callback([=] {
        std::map<std::string, Tensor> feeds;
        std::vector<std::string> unnamed;
        for (const auto& text : *inputs) {
          const auto eq = text.find('=');
          if (eq == std::string::npos) {
            unnamed.push_back(text);
          } else {
            feeds[text.substr(0, eq)] = read_tensor_file(text.substr(eq + 1));
          }
        }
        // The files fix the input shapes (and so a dynamic batch).
        ImportOptions options;
        for (const auto& [name, tensor] : feeds) options.input_shapes[name] = tensor.shape();
        Graph graph;
        if (unnamed.empty()) {
          graph = load_model(*model, {}, options);
        } else {
          graph = load_model(*model);
          if (unnamed.size() != 1 || graph.inputs.size() != 1 || !feeds.empty()) {
            fail(
                "{}: --input FILE without NAME= needs a model with one input and one file; "
                "name the inputs: --input NAME=FILE",
                *model);
          }
          feeds[graph.inputs[0].name] = read_tensor_file(unnamed[0]);
        }
        for (auto& in : graph.inputs) {
          auto it = feeds.find(in.name);
          if (it == feeds.end()) fail("{}: no --input for model input '{}'", *model, in.name);
          in.shape = it->second.shape();
        }
        for (const auto& [name, tensor] : feeds) {
          if (!graph.is_input(name)) fail("{}: the model has no input named '{}'", *model, name);
        }
        graph.validate();
        const auto backend = make_backend(*backend_name);
        auto program =
            backend->compile(graph, {.threads = *threads, .precision = parse_precision(*dtype)});
        for (const auto& [name, tensor] : feeds) program->set_input(name, tensor);
        program->forward(Mode::inference);
        fs::create_directories(*out);
        for (const auto& o : graph.outputs) {
          const Tensor value = program->fetch(o);
          const auto path = (fs::path(*out) / (file_name_of(o) + ".npy")).string();
          write_npy(path, value);
          std::printf("%s %s -> %s\n", o.c_str(), to_string(value.shape()).c_str(), path.c_str());
        }
      });
    }};

}  // namespace
}  // namespace onnxforge::cli
