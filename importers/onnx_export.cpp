#include "importers/onnx_export.hpp"

#include <onnx/checker.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.hpp"
#include "graph/ops.hpp"
#include "graph/passes.hpp"
#include "importers/onnx_proto.hpp"

namespace onnxforge {

namespace fs = std::filesystem;

namespace {

void set_attribute(onnx::NodeProto& n, const std::string& name, const Attribute& value) {
  auto* a = n.add_attribute();
  a->set_name(name);
  if (const auto* i = std::get_if<std::int64_t>(&value)) {
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(*i);
  } else if (const auto* f = std::get_if<double>(&value)) {
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(static_cast<float>(*f));
  } else if (const auto* s = std::get_if<std::string>(&value)) {
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(*s);
  } else if (const auto* is = std::get_if<std::vector<std::int64_t>>(&value)) {
    a->set_type(onnx::AttributeProto::INTS);
    for (auto v : *is) a->add_ints(v);
  } else if (const auto* fs_ = std::get_if<std::vector<double>>(&value)) {
    a->set_type(onnx::AttributeProto::FLOATS);
    for (auto v : *fs_) a->add_floats(static_cast<float>(v));
  }
}

void set_value_info(onnx::ValueInfoProto& v, const ValueInfo& info) {
  v.set_name(info.name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx_io::onnx_type_of(info.dtype));
  auto* shape = t->mutable_shape();
  for (const auto d : info.shape) {
    auto* dim = shape->add_dim();
    if (d == kDynamic) {
      dim->set_dim_param("N");
    } else {
      dim->set_dim_value(d);
    }
  }
}

class Exporter {
 public:
  Exporter(const Graph& graph, const ExportOptions& options) : options_(options) {
    graph_ = graph;
    graph_.validate();
    // IR-only ops (the losses): drop them and what only they read.
    const bool has_ir_only = std::any_of(graph_.nodes.begin(), graph_.nodes.end(),
                                         [](const Node& n) { return ir_only(n); });
    if (has_ir_only) {
      std::set<std::string> loss_outputs;
      for (const auto& n : graph_.nodes) {
        if (ir_only(n)) loss_outputs.insert(n.outputs.begin(), n.outputs.end());
      }
      std::erase_if(graph_.outputs, [&](const std::string& o) { return loss_outputs.count(o); });
      if (graph_.outputs.empty()) fail("export: the graph has no output besides its loss");
      graph_ = prune(std::move(graph_), true);
    }
    for (const auto& [name, v] : graph_.values) taken_.insert(name);
  }

  onnx::ModelProto build() {
    onnx::ModelProto model;
    model.set_ir_version(8);
    model.set_producer_name(options_.producer);
    model.set_producer_version("0.1.0");
    auto* g = model.mutable_graph();
    g->set_name(graph_.name);
    for (const auto& in : graph_.inputs) set_value_info(*g->add_input(), graph_.values.at(in.name));
    for (const auto& o : graph_.outputs) set_value_info(*g->add_output(), graph_.values.at(o));
    std::vector<std::string> frozen;
    for (const auto& init : graph_.initializers) {
      onnx_io::write_tensor(init.value, init.name, *g->add_initializer());
      if (!init.trainable && is_floating(init.value.dtype())) frozen.push_back(init.name);
    }
    for (const auto& node : graph_.nodes) add_node(*g, node);
    for (const auto& [name, tensor] : extra_)
      onnx_io::write_tensor(tensor, name, *g->add_initializer());
    auto* opset = model.add_opset_import();
    opset->set_domain("");
    opset->set_version(opset_);
    for (const auto& [key, value] : graph_.metadata) {
      if (key == "onnxforge.frozen") continue;
      auto* meta = model.add_metadata_props();
      meta->set_key(key);
      meta->set_value(value);
    }
    if (!frozen.empty()) {
      auto* meta = model.add_metadata_props();
      meta->set_key("onnxforge.frozen");
      meta->set_value(fmt::format("{}", fmt::join(frozen, ",")));
    }
    return model;
  }

 private:
  std::string constant(const std::string& base, Tensor value) {
    std::string name = base;
    for (int i = 1; taken_.count(name); ++i) name = base + "_" + std::to_string(i);
    taken_.insert(name);
    extra_.emplace_back(name, std::move(value));
    return name;
  }

  static Tensor ints(const std::vector<std::int64_t>& values) {
    return Tensor::from<std::int64_t>({static_cast<std::int64_t>(values.size())}, values);
  }

  Tensor scalar(double v, DType dtype) {
    return Tensor::from<double>({}, std::vector<double>{v}).to(dtype);
  }

  void add_node(onnx::GraphProto& g, const Node& node) {
    const OpDef& def = op_def(node);
    if (def.export_rule == ExportRule::ir_only) {
      fail("export: node '{}' ({}) has no ONNX form", node.name, node.op);
    }
    auto* n = g.add_node();
    n->set_name(node.name);
    n->set_op_type(node.op);
    for (const auto& i : node.inputs) n->add_input(i);
    for (const auto& o : node.outputs) n->add_output(o);
    if (def.export_rule == ExportRule::rewritten) {
      rewrite(*n, node);
      return;
    }
    // ExportRule::same_name: the attributes ONNX has (AttrDef::onnx).
    for (const auto& [name, value] : node.attributes) {
      const AttrDef* attribute = def.attribute(name);
      if (attribute && attribute->onnx) {
        set_attribute(*n, name, value);
      } else if (name == "dilations" &&
                 node.get_ints(name, {}) == std::vector<std::int64_t>{1, 1}) {
        // AveragePool: default dilations carry no information.
      } else {
        fail("export: node '{}' ({}): attribute '{}' has no ONNX form", node.name, node.op, name);
      }
    }
  }

  // ExportRule::rewritten: `n` (the node's op, inputs and outputs) takes what ONNX has as inputs
  // or other attributes.
  void rewrite(onnx::NodeProto& n, const Node& node) {
    const DType dtype = graph_.value(node.inputs[0]).dtype;
    switch (op_of(node)) {
      case OpId::Dense:
        n.set_op_type("Gemm");
        set_attribute(n, "transB", std::int64_t{1});
        return;
      case OpId::Reshape: {
        const auto shape = node.get_ints("shape", {});
        n.add_input(
            constant(node.name + "/shape",
                     Tensor::from<std::int64_t>({static_cast<std::int64_t>(shape.size())}, shape)));
        if (node.get_int("allowzero", 0) != 0) {
          set_attribute(n, "allowzero", std::int64_t{1});
          opset_ = std::max(opset_, 14);
        }
        return;
      }
      case OpId::Dropout:
        n.add_input(
            constant(node.name + "/ratio", scalar(node.get_float("ratio", 0.5), DType::f32)));
        return;
      case OpId::Clip:
        n.add_input(node.has("min")
                        ? constant(node.name + "/min", scalar(node.get_float("min", 0), dtype))
                        : "");
        if (node.has("max"))
          n.add_input(constant(node.name + "/max", scalar(node.get_float("max", 0), dtype)));
        while (n.input_size() > 1 && n.input(n.input_size() - 1).empty())
          n.mutable_input()->RemoveLast();
        return;
      case OpId::Pad: {
        const auto pads = node.get_ints("pads", {});
        n.add_input(
            constant(node.name + "/pads",
                     Tensor::from<std::int64_t>({static_cast<std::int64_t>(pads.size())}, pads)));
        const auto mode = node.get_string("mode", "constant");
        if (mode == "constant") {
          n.add_input(constant(node.name + "/value", scalar(node.get_float("value", 0.0), dtype)));
        }
        set_attribute(n, "mode", mode);
        return;
      }
      case OpId::Slice: {
        // Opset 10 on: starts, ends, axes, steps are inputs.
        auto starts = attr_ints(node, "starts");
        auto axes = attr_ints(node, "axes");
        const auto steps = attr_ints(node, "steps");
        n.add_input(constant(node.name + "/starts", ints(starts)));
        n.add_input(constant(node.name + "/ends", ints(attr_ints(node, "ends"))));
        if (!axes.empty() || !steps.empty()) {
          if (axes.empty()) {
            for (std::size_t i = 0; i < starts.size(); ++i)
              axes.push_back(static_cast<std::int64_t>(i));
          }
          n.add_input(constant(node.name + "/axes", ints(axes)));
        }
        if (!steps.empty()) n.add_input(constant(node.name + "/steps", ints(steps)));
        return;
      }
      case OpId::Expand:
        n.add_input(constant(node.name + "/shape", ints(attr_ints(node, "shape"))));
        return;
      case OpId::ReduceMean:
      case OpId::ReduceSum: {
        const auto axes = attr_ints(node, "axes");
        const bool noop = attr_int(node, "noop_with_empty_axes") != 0;
        if (axes.empty() && noop) {  // reduces nothing
          n.set_op_type("Identity");
          return;
        }
        // ReduceSum takes its axes as an input from opset 13, ReduceMean from opset 18 (the
        // exporter writes opsets 13 to 17).
        if (!axes.empty()) {
          if (node.is(OpId::ReduceSum)) {
            n.add_input(constant(node.name + "/axes", ints(axes)));
          } else {
            set_attribute(n, "axes", axes);
          }
        }
        set_attribute(n, "keepdims", attr_int(node, "keepdims"));
        return;
      }
      case OpId::Resize: {
        // Opset 13: X, roi (omitted), scales or sizes.
        const auto scales = attr_floats(node, "scales");
        const auto sizes = attr_ints(node, "sizes");
        n.add_input("");
        if (!scales.empty()) {
          const std::vector<float> values(scales.begin(), scales.end());
          n.add_input(
              constant(node.name + "/scales",
                       Tensor::from<float>({static_cast<std::int64_t>(values.size())}, values)));
        } else {
          n.add_input("");
          n.add_input(constant(node.name + "/sizes", ints(sizes)));
        }
        for (const char* name : {"mode", "coordinate_transformation_mode", "nearest_mode"}) {
          set_attribute(n, name, attr_string(node, name));
        }
        return;
      }
      default:
        break;
    }
    fail(
        "export: node '{}' ({}): the op is exported rewritten, but the exporter has no rewrite "
        "for it",
        node.name, node.op);
  }

  static bool ir_only(const Node& node) { return op_def(node).export_rule == ExportRule::ir_only; }

  Graph graph_;
  ExportOptions options_;
  std::set<std::string> taken_;
  std::vector<std::pair<std::string, Tensor>> extra_;
  int opset_ = 13;
};

void run_checker(const onnx::ModelProto& model) {
  try {
    onnx::checker::check_model(model);
  } catch (const onnx::checker::ValidationError& e) {
    std::string message = e.what();
    std::replace(message.begin(), message.end(), '\n', ' ');
    fail("export: the ONNX checker rejects the exported model: {}", message);
  }
}

// A temporary file next to `path` (same folder, so the rename cannot cross file systems), written
// by `write` and renamed into place by the caller: a process killed before the rename leaves
// `path` as it was. Throws naming `path` on failure (disk full, no permission).
template <typename Write>
fs::path write_temporary(const fs::path& path, Write&& write) {
  static std::atomic<int> counter{0};
  fs::path tmp = path;
  tmp += fmt::format(".tmp.{}.{}", static_cast<long>(::getpid()), counter++);
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) fail("export: cannot write {}: {}", path.string(), std::strerror(errno));
  write(out);
  out.close();
  if (!out) {
    const int err = errno;
    std::error_code ignored;
    fs::remove(tmp, ignored);
    fail("export: cannot write {}: {}", path.string(), std::strerror(err));
  }
  return tmp;
}

void rename_into_place(const fs::path& tmp, const fs::path& path) {
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    fail("export: cannot write {}: {}", path.string(), ec.message());
  }
}

}  // namespace

std::string export_onnx_bytes(const Graph& graph, const ExportOptions& options) {
  const auto model = Exporter(graph, options).build();
  if (options.check) run_checker(model);
  std::string bytes;
  if (!model.SerializeToString(&bytes)) {
    fail("export: cannot serialize graph '{}' (larger than 2 GiB? use external data)", graph.name);
  }
  return bytes;
}

void export_onnx(const Graph& graph, const std::string& path, const ExportOptions& options) {
  auto model = Exporter(graph, options).build();
  const fs::path file(path);
  // Both files are written to temporaries first and renamed into place at the end, the data file
  // first: a process killed (or a disk filling up) before then leaves the previous export intact.
  fs::path data_tmp;
  fs::path data_path;
  if (options.external_data) {
    const std::string location = file.stem().string() + ".data";
    data_path = file.parent_path() / location;
    data_tmp = write_temporary(data_path, [&](std::ofstream& data) {
      std::int64_t offset = 0;
      for (auto& t : *model.mutable_graph()->mutable_initializer()) {
        if (t.raw_data().size() < 1024) continue;
        const auto length = static_cast<std::int64_t>(t.raw_data().size());
        data.write(t.raw_data().data(), static_cast<std::streamsize>(length));
        t.clear_raw_data();
        t.set_data_location(onnx::TensorProto::EXTERNAL);
        auto add = [&](const char* key, const std::string& value) {
          auto* e = t.add_external_data();
          e->set_key(key);
          e->set_value(value);
        };
        add("location", location);
        add("offset", std::to_string(offset));
        add("length", std::to_string(length));
        offset += length;
      }
    });
  } else if (options.check) {
    run_checker(model);
  }
  bool serialized = true;
  fs::path model_tmp;
  try {
    model_tmp = write_temporary(
        file, [&](std::ofstream& out) { serialized = model.SerializeToOstream(&out); });
  } catch (const Error&) {
    std::error_code ignored;
    if (!data_tmp.empty()) fs::remove(data_tmp, ignored);
    throw;
  }
  if (!serialized) {
    std::error_code ignored;
    fs::remove(model_tmp, ignored);
    if (!data_tmp.empty()) fs::remove(data_tmp, ignored);
    fail("export: cannot serialize graph '{}' to {} (larger than 2 GiB? use external data)",
         graph.name, path);
  }
  if (!data_tmp.empty()) rename_into_place(data_tmp, data_path);
  rename_into_place(model_tmp, file);
  if (options.external_data && options.check) {
    try {
      onnx::checker::check_model(path);
    } catch (const onnx::checker::ValidationError& e) {
      std::string message = e.what();
      std::replace(message.begin(), message.end(), '\n', ' ');
      fail("export: the ONNX checker rejects {}: {}", path, message);
    }
  }
}

}  // namespace onnxforge
