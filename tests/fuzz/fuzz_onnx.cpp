// Fuzz target: the ONNX importer end to end: bytes -> ModelProto -> IR (import_onnx_bytes, with
// and without the ONNX checker) -> compile on the reference backend -> one inference forward on
// zero inputs when the graph is small. External data is refused here (no model folder).
//
// Caps keep the fuzzer on parsing and lowering rather than on allocating: a graph whose values
// hold more than kMaxElements elements in all is not compiled, and one above kMaxRunElements is
// not run. These are properties of the harness, not limits of the importer.
#include <cstdint>
#include <string>

#include "backends/backend.hpp"
#include "core/error.hpp"
#include "importers/onnx_import.hpp"

namespace {

constexpr std::int64_t kMaxElements = 1 << 20;
constexpr std::int64_t kMaxRunElements = 1 << 15;
constexpr std::int64_t kMaxRunWeights = 1 << 12;

// Whether every value is static and they hold at most values_cap elements in all, and the
// initializers at most weights_cap.
bool small_enough(const onnxforge::Graph& graph, std::int64_t values_cap,
                  std::int64_t weights_cap) {
  std::int64_t values = 0;
  for (const auto& [name, info] : graph.values) {
    if (!onnxforge::is_static(info.shape)) return false;
    const auto n = onnxforge::element_count(info.shape);
    if (n > values_cap || (values += n) > values_cap) return false;
  }
  std::int64_t weights = 0;
  for (const auto& init : graph.initializers) {
    if ((weights += init.value.size()) > weights_cap) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace onnxforge;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  static const auto backend = make_backend("reference");
  for (const bool check : {true, false}) {
    ImportOptions options;
    options.check = check;
    Graph graph;
    try {
      graph = import_onnx_bytes(bytes, "", options);
    } catch (const Error&) {
      continue;
    }
    if (check) continue;  // the same graph again without the checker: compile that one
    try {
      graph = with_batch(std::move(graph), 1);
      if (!small_enough(graph, kMaxElements, kMaxElements)) return 0;
      auto program = backend->compile(graph, {});
      if (!small_enough(graph, kMaxRunElements, kMaxRunWeights)) return 0;
      for (const auto& input : graph.inputs) {
        program->set_input(input.name, Tensor(input.dtype, input.shape));
      }
      program->forward(Mode::inference);
      for (const auto& output : graph.outputs) (void)program->fetch(output);
    } catch (const Error&) {
    }
  }
  return 0;
}
