#include "backends/onednn/onednn_backend.hpp"

#include "backends/onednn/program.hpp"
#include "core/error.hpp"

namespace onnxforge {

namespace {

class OnednnBackend final : public Backend {
 public:
  std::string name() const override { return "onednn"; }

  Support supports(const Graph& graph, const Node& node,
                   const CompileOptions& options) const override {
    return onednn::node_support(graph, node, options);
  }

  OpCoverage coverage(OpId op) const override { return onednn::op_coverage(op); }

  std::unique_ptr<Program> build(const Graph& graph, const CompileOptions& options) const override {
    return std::make_unique<onednn::OnednnProgram>(graph, options);
  }
};

onednn::OnednnProgram& as_onednn(Program& program) {
  auto* p = dynamic_cast<onednn::OnednnProgram*>(&program);
  if (!p) fail("this Program was not compiled by the onednn backend");
  return *p;
}

}  // namespace

std::unique_ptr<Backend> make_onednn_backend() { return std::make_unique<OnednnBackend>(); }

namespace onednn {

void set_profiling(Program& program, bool on) { as_onednn(program).set_profiling(on); }

std::vector<StepTime> step_times(const Program& program) {
  return as_onednn(const_cast<Program&>(program)).step_times();
}

std::string describe(const Program& program) {
  return as_onednn(const_cast<Program&>(program)).describe();
}

bool damage_guard_bytes(Program& program) { return as_onednn(program).damage_guard_bytes(); }

std::string memory_summary(const Program& program) {
  return as_onednn(const_cast<Program&>(program)).memory_summary();
}

}  // namespace onednn
}  // namespace onnxforge
