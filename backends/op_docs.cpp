#include "backends/op_docs.hpp"

#include <fmt/format.h>

#include <memory>
#include <variant>

#include "backends/backend.hpp"
#include "core/error.hpp"
#include "graph/ops.hpp"

namespace onnxforge {

namespace {

std::string cell(const OpCoverage& c) {
  if (!c.lowered) return "refused";
  std::string s = c.backward ? "train" : "inference";
  s += c.bf16 ? " · f32 bf16" : " · f32";
  return s;
}

std::string value_text(const Attribute& value) {
  if (const auto* i = std::get_if<std::int64_t>(&value)) return std::to_string(*i);
  if (const auto* f = std::get_if<double>(&value)) return fmt::format("{:g}", *f);
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  if (const auto* is = std::get_if<std::vector<std::int64_t>>(&value)) {
    return fmt::format("[{}]", fmt::join(*is, ","));
  }
  return fmt::format("[{}]", fmt::join(std::get<std::vector<double>>(value), ","));
}

// "alpha=0.01, ..." (an empty list default, e.g. a kernel shape, is required in practice).
std::string attributes_of(const OpDef& def) {
  std::vector<std::string> parts;
  for (const auto& a : def.attributes) {
    parts.push_back(fmt::format("{}={}", a.name, value_text(a.fallback)));
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace

std::string coverage_cell(const std::string& backend, const std::string& op) {
  const auto id = find_op(op);
  if (!id) fail("'{}' is not an op of the IR", op);
  return cell(make_backend(backend)->coverage(*id));
}

std::string ops_markdown() { return ops_markdown(backend_names()); }

std::string ops_markdown(const std::vector<std::string>& backends) {
  std::vector<std::unique_ptr<Backend>> made;
  for (const auto& name : backends) made.push_back(make_backend(name));
  std::string out =
      "# Ops\n\n"
      "Generated from the op definitions (graph/ops/) and the backends' op tables by\n"
      "`onnxforge ops > docs/OPS.md`; a test (OpsDoc.InStepWithTheCode) fails when this\n"
      "file and the code disagree.\n\n"
      "A cell says what a backend does with the op: `train` (forward and backward) or `inference`\n"
      "(forward only), with the dtypes it computes in (bf16: under `--dtype bf16`, and where\n"
      "`auto` measures it faster; every other op computes in f32, the reference backend in\n"
      "double), or `refused` with the reason below. ONNX: the first opset the importer reads the\n"
      "op from (— for IR-only ops: Dense is imported from Gemm and exported as Gemm; the losses\n"
      "have no ONNX form).\n\n";
  out += "| Op | Family | ONNX | Attributes (defaults) |";
  for (const auto& name : backends) out += fmt::format(" {} |", name);
  out += "\n|---|---|---|---|";
  for (std::size_t i = 0; i < backends.size(); ++i) out += "---|";
  out += "\n";
  std::string notes;
  for (const auto id : all_op_ids()) {
    const OpDef& def = op_def(id);
    out += fmt::format("| {} | {} | {} | {} |", def.name(), family_name(def.family),
                       def.onnx_since ? std::to_string(def.onnx_since) : "—", attributes_of(def));
    for (std::size_t i = 0; i < made.size(); ++i) {
      const OpCoverage c = made[i]->coverage(id);
      out += fmt::format(" {} |", cell(c));
      if (!c.note.empty()) {
        notes += fmt::format("- {}, {}{}: {}\n", backends[i], def.name(),
                             c.lowered ? "" : " (refused)", c.note);
      }
    }
    out += "\n";
  }
  out += "\n## What each op is\n\n";
  for (const auto id : all_op_ids()) {
    const OpDef& def = op_def(id);
    out += fmt::format("- **{}** {}\n", def.name(), def.summary);
  }
  if (!notes.empty()) out += "\n## Limits and refusals\n\n" + notes;
  return out;
}

}  // namespace onnxforge
