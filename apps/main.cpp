// The `onnxforge` command line: every subcommand comes from a cmd_*.cpp (see command.hpp).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <exception>

#include "apps/command.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "onnxforge: build or import (ONNX) neural networks, train and evaluate them on CPUs "
      "(oneDNN) or GPUs (cuDNN), and report on them."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "onnxforge 0.1.0");
  auto& all = onnxforge::cli::commands();
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return a.order < b.order; });
  for (const auto& command : all)
    command.setup(*app.add_subcommand(command.name, command.description));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "onnxforge: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
