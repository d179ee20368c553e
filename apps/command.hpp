// Subcommands of the `onnxforge` CLI register themselves here, one cmd_*.cpp file each, so that
// adding a subcommand never touches main.cpp.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace onnxforge::cli {

// Adds a subcommand to `app`; its callback runs the command and throws on failure (main prints
// the exception's message as one line and exits non-zero).
using CommandSetup = std::function<void(CLI::App& app)>;

struct Command {
  int order;  // position in --help
  CommandSetup setup;
};

std::vector<Command>& commands();

// `static const onnxforge::cli::Registration reg{30, [](CLI::App& app) {...}};` in a cmd_*.cpp.
struct Registration {
  Registration(int order, CommandSetup setup);
};

}  // namespace onnxforge::cli
