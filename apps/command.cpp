#include "apps/command.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include "backends/backend.hpp"

namespace onnxforge::cli {

std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}

Registration::Registration(int order, std::string name, std::string description,
                           CommandSetup setup) {
  commands().push_back({order, std::move(name), std::move(description), std::move(setup)});
}

void add_compute_options(CLI::App& sub, std::string& backend, int& threads, std::string* dtype) {
  auto* b = sub.add_option("--backend", backend,
                           fmt::format("compute backend ({})", fmt::join(backend_names(), ", ")));
  if (!backend.empty()) b->capture_default_str();
  auto* t = sub.add_option("--threads", threads, "compute threads (0 = all cores)");
  if (threads >= 0) t->capture_default_str();
  if (!dtype) return;
  auto* d = sub.add_option(
      "--dtype", *dtype,
      "convolutions and dense layers: fp32, bf16 or auto (per layer: bf16 where this CPU has it "
      "natively and it measures faster; the reference backend always computes exactly)");
  if (!dtype->empty()) d->capture_default_str();
}

}  // namespace onnxforge::cli
