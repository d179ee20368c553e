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

// Adds the options and the callback to the subcommand `sub`; the callback runs the command and
// throws on failure (main prints the exception's message as one line and exits non-zero).
using CommandSetup = std::function<void(CLI::App& sub)>;

struct Command {
  int order;  // position in --help
  std::string name;
  std::string description;
  CommandSetup setup;
};

std::vector<Command>& commands();

// `const Registration registration{30, "train", "what it does", [](CLI::App& sub) {...}};` in a
// cmd_*.cpp.
struct Registration {
  Registration(int order, std::string name, std::string description, CommandSetup setup);
};

// --backend, --threads and, given `dtype`, --dtype, worded once for every command that computes.
// An empty string or a negative thread count stands for "as the config says" and is not shown as
// a default.
void add_compute_options(CLI::App& sub, std::string& backend, int& threads,
                         std::string* dtype = nullptr);

}  // namespace onnxforge::cli
