// The importer core: attributes, the value table (constants and symbolic shapes folded at
// import), node emission, topological order, the run loop and the rule table.
#include "importers/onnx_import/importer.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

#include <onnx/shape_inference/implementation.h>

#include "core/error.hpp"
#include "graph/node_lookup.hpp"
#include "graph/ops.hpp"
#include "graph/passes.hpp"

namespace onnxforge::onnx_import {

namespace fs = std::filesystem;

double decimal_of(float value) {
  if (!std::isfinite(value)) return value;
  char text[64];
  const auto [end, ec] = std::to_chars(text, text + sizeof text, value);
  if (ec != std::errc{}) return value;
  return std::strtod(std::string(text, end).c_str(), nullptr);
}

// ---- attributes ----------------------------------------------------------------------------

Attrs::Attrs(const onnx::NodeProto& node, std::string where) : where_(std::move(where)) {
  for (const auto& a : node.attribute()) map_[a.name()] = &a;
}

void Attrs::allow(std::initializer_list<const char*> known) const {
  for (const auto& [name, attr] : map_) {
    bool ok = false;
    for (const char* k : known) ok = ok || name == k;
    if (!ok) fail("{}: attribute '{}' is not supported", where_, name);
  }
}

void Attrs::lift_1d() {
  auto lift = [&](const char* name, std::int64_t lead) {
    if (!has(name)) return;
    auto v = ints(name, {});
    if (std::string(name) == "pads") {
      if (v.size() != 2) return;
      lifted_[name] = {0, v[0], 0, v[1]};
    } else if (v.size() == 1) {
      lifted_[name] = {lead, v[0]};
    }
  };
  lift("kernel_shape", 1);
  lift("strides", 1);
  lift("dilations", 1);
  lift("pads", 0);
}

std::int64_t Attrs::i(const std::string& name, std::int64_t fallback) const {
  const auto* a = get(name, onnx::AttributeProto::INT, "an int");
  return a ? a->i() : fallback;
}

double Attrs::f(const std::string& name, double fallback) const {
  const auto* a = get(name, onnx::AttributeProto::FLOAT, "a float");
  return a ? decimal_of(a->f()) : fallback;
}

std::string Attrs::s(const std::string& name, const std::string& fallback) const {
  const auto* a = get(name, onnx::AttributeProto::STRING, "a string");
  return a ? a->s() : fallback;
}

std::vector<std::int64_t> Attrs::ints(const std::string& name,
                                      std::vector<std::int64_t> fallback) const {
  if (auto it = lifted_.find(name); it != lifted_.end()) return it->second;
  const auto* a = get(name, onnx::AttributeProto::INTS, "a list of ints");
  return a ? std::vector<std::int64_t>(a->ints().begin(), a->ints().end()) : fallback;
}

std::vector<double> Attrs::floats(const std::string& name) const {
  const auto* a = get(name, onnx::AttributeProto::FLOATS, "a list of floats");
  std::vector<double> out;
  if (a) {
    for (float v : a->floats()) out.push_back(v);
  }
  return out;
}

const onnx::TensorProto* Attrs::tensor(const std::string& name) const {
  const auto* a = get(name, onnx::AttributeProto::TENSOR, "a tensor");
  return a ? &a->t() : nullptr;
}

void Attrs::unsupported(const std::string& name, const std::string& why) const {
  fail("{}: attribute '{}' {}", where_, name, why);
}

const onnx::AttributeProto* Attrs::get(const std::string& name, int type, const char* what) const {
  auto it = map_.find(name);
  if (it == map_.end()) return nullptr;
  if (it->second->type() != type) {
    fail("{}: attribute '{}' must be {}", where_, name, what);
  }
  return it->second;
}

// ---- values --------------------------------------------------------------------------------

Importer::Importer(onnx::ModelProto& model, fs::path model_dir, int opset, std::string cut_at,
                   std::vector<UnsupportedNode>* unsupported)
    : unsupported_(unsupported),
      cut_at_(std::move(cut_at)),
      model_(model),
      dir_(std::move(model_dir)),
      opset_(opset) {}

std::string Importer::resolve(const std::string& name) const {
  auto it = alias_.find(name);
  return it == alias_.end() ? name : it->second;
}

bool Importer::is_const(const std::string& name) const {
  const auto r = resolve(name);
  return consts_.count(r) || materialized_.count(r) || (syms_.count(r) && all_known(r));
}

const Tensor& Importer::constant(const std::string& name) {
  const auto r = resolve(name);
  if (auto it = consts_.find(r); it != consts_.end()) return it->second;
  if (materialized_.count(r)) return graph_.find_initializer(r)->value;
  if (syms_.count(r) && all_known(r)) {
    consts_[r] = sym_to_tensor(syms_.at(r));
    syms_.erase(r);
    return consts_.at(r);
  }
  fail("{}: input '{}' must be a constant (an initializer or computable at import time)", where_,
       name);
}

const Tensor* Importer::optional_constant(const onnx::NodeProto& node, int index) {
  if (index >= node.input_size() || node.input(index).empty()) return nullptr;
  return &constant(node.input(index));
}

ValueInfo Importer::info(const std::string& name) {
  const auto r = resolve(name);
  if (is_const(r)) {
    const auto& t = constant(r);
    return {r, t.dtype(), t.shape()};
  }
  if (syms_.count(r)) {
    const auto& s = syms_.at(r);
    return {r, DType::i64, s.scalar ? Shape{} : Shape{static_cast<std::int64_t>(s.dims.size())}};
  }
  auto it = graph_.values.find(r);
  if (it == graph_.values.end()) fail("{}: value '{}' is not defined", where_, name);
  return it->second;
}

std::string Importer::use(const std::string& name) {
  const auto r = resolve(name);
  if (syms_.count(r) && !all_known(r)) {
    fail(
        "{}: input '{}' is a shape that depends on the dynamic batch; import with a fixed "
        "input shape (--input-shape NAME=1x3x224x224)",
        where_, name);
  }
  if (is_const(r) && !materialized_.count(r)) {
    constant(r);  // turns a known shape vector into a tensor
    Tensor value = std::move(consts_.at(r));
    consts_.erase(r);
    materialized_.insert(r);
    graph_.values[r] = ValueInfo{r, value.dtype(), value.shape()};
    const bool trainable = onnx_initializers_.count(r) && is_floating(value.dtype());
    graph_.initializers.push_back(Initializer{r, std::move(value), trainable});
  }
  if (!graph_.values.count(r)) fail("{}: value '{}' is not defined", where_, name);
  return r;
}

void Importer::set_const(const std::string& name, Tensor value) {
  if (name.empty()) return;
  consts_[name] = std::move(value);
}

void Importer::set_sym(const std::string& name, SymVec value) {
  if (name.empty()) return;
  syms_[name] = std::move(value);
}

void Importer::set_alias(const std::string& name, const std::string& target) {
  if (name.empty()) return;
  alias_[name] = resolve(target);
}

std::string Importer::temp(const std::string& base) {
  std::string name = base;
  for (int i = 1; taken_.count(name); ++i) name = base + "_" + std::to_string(i);
  taken_.insert(name);
  return name;
}

std::string Importer::emit(OpId op, std::vector<std::string> inputs,
                           std::map<std::string, Attribute> attributes, const std::string& output,
                           const std::string& suffix) {
  Node node;
  std::string base = node_name_ + suffix;
  node.name = base;
  for (int i = 1; node_names_.count(node.name); ++i) node.name = base + "_" + std::to_string(i);
  node_names_.insert(node.name);
  node.op = op_name(op);
  node.inputs = std::move(inputs);
  node.outputs = {output};
  node.attributes = std::move(attributes);
  std::vector<const ValueInfo*> in;
  for (const auto& i : node.inputs) in.push_back(i.empty() ? nullptr : &graph_.values.at(i));
  const auto out = infer_node(node, in, graph_);
  graph_.values[output] = ValueInfo{output, out[0].dtype, out[0].shape};
  taken_.insert(output);
  graph_.nodes.push_back(std::move(node));
  return output;
}

void Importer::emit_or_fold(OpId op, const std::vector<std::string>& onnx_inputs,
                            std::map<std::string, Attribute> attributes,
                            const std::string& output) {
  bool all_const = true;
  for (const auto& i : onnx_inputs) all_const = all_const && (i.empty() || is_const(i));
  if (all_const) {
    Node node{node_name_, std::string(op_name(op)), {}, {output}, attributes};
    std::vector<const Tensor*> values;
    for (const auto& i : onnx_inputs) values.push_back(i.empty() ? nullptr : &constant(i));
    if (auto folded = evaluate_constant(node, values)) {
      set_const(output, std::move(*folded));
      return;
    }
  }
  std::vector<std::string> inputs;
  for (const auto& i : onnx_inputs) inputs.push_back(i.empty() ? "" : use(i));
  emit(op, inputs, std::move(attributes), output);
}

void Importer::inherit_trainable(const std::string& derived, const std::string& source) {
  if (onnx_initializers_.count(resolve(source))) onnx_initializers_.insert(derived);
}

bool Importer::all_known(const std::string& r) const {
  const auto& s = syms_.at(r);
  return std::all_of(s.dims.begin(), s.dims.end(), [](const SymDim& d) { return d.known(); });
}

Tensor Importer::sym_to_tensor(const SymVec& s) {
  std::vector<std::int64_t> v;
  for (const auto& d : s.dims) v.push_back(d.value);
  return Tensor::from<std::int64_t>(s.scalar ? Shape{} : Shape{static_cast<std::int64_t>(v.size())},
                                    v);
}

// ---- the graph -----------------------------------------------------------------------------

namespace {

Shape input_shape(const onnx::ValueInfoProto& v, const std::string& where) {
  const auto& type = v.type().tensor_type();
  if (!type.has_shape())
    fail("{}: input '{}' has no shape; give one with --input-shape", where, v.name());
  Shape shape;
  for (int d = 0; d < type.shape().dim_size(); ++d) {
    const auto& dim = type.shape().dim(d);
    if (dim.has_dim_value()) {
      const auto value = dim.dim_value();
      if (value <= 0) {
        fail("{}: input '{}' has dimension {} = {}; dimensions must be positive", where, v.name(),
             d, value);
      }
      if (value > (std::int64_t{1} << 31)) {
        fail("{}: input '{}' has a huge dimension {} = {}", where, v.name(), d, value);
      }
      shape.push_back(value);
    } else if (d == 0) {
      shape.push_back(kDynamic);
    } else {
      fail(
          "{}: input '{}' has a symbolic dimension {} ('{}'); only the batch may be dynamic: give "
          "a shape with --input-shape",
          where, v.name(), d, dim.dim_param());
    }
  }
  if (is_static(shape)) {
    const auto count = element_count(shape);
    if (count > (std::int64_t{1} << 34)) {
      fail("{}: input '{}' of shape {} is too large", where, v.name(), to_string(shape));
    }
  }
  return shape;
}

}  // namespace

void Importer::topological_order() {
  const auto& graph = model_.graph();
  std::set<std::string> defined;
  for (const auto& i : graph.input()) defined.insert(i.name());
  for (const auto& i : graph.initializer()) defined.insert(i.name());
  std::map<std::string, int> producer;
  for (int i = 0; i < graph.node_size(); ++i) {
    for (const auto& o : graph.node(i).output()) {
      if (o.empty()) continue;
      if (defined.count(o) || producer.count(o)) {
        fail("value '{}' is defined twice (node {} '{}')", o, i, graph.node(i).name());
      }
      producer[o] = i;
    }
  }
  std::vector<int> state(static_cast<std::size_t>(graph.node_size()), 0);  // 1 visiting, 2 done
  std::function<void(int)> visit = [&](int i) {
    auto& s = state[static_cast<std::size_t>(i)];
    if (s == 2) return;
    const auto& node = graph.node(i);
    if (s == 1) fail("node '{}' ({}) is part of a cycle", node.name(), node.op_type());
    s = 1;
    for (const auto& in : node.input()) {
      if (in.empty() || defined.count(in)) continue;
      auto it = producer.find(in);
      if (it == producer.end()) {
        fail("node '{}' ({}) reads '{}', which no input, initializer or node defines", node.name(),
             node.op_type(), in);
      }
      visit(it->second);
    }
    s = 2;
    order_.push_back(i);
  };
  if (cut_at_.empty()) {
    for (int i = 0; i < graph.node_size(); ++i) visit(i);
  } else {
    // Only the node the cut names (graph/node_lookup.hpp) and what it depends on: the nodes
    // after it are never read, so their ops need no support.
    for (int i = 0; i < graph.node_size(); ++i) visit(i);
    std::vector<NodeRef> refs;
    for (const int i : order_) {
      const auto& node = graph.node(i);
      refs.push_back({node.name(), node.op_type(), {node.output().begin(), node.output().end()}});
    }
    const int target = order_[find_node_for_cut(refs, cut_at_, "cut")];
    order_.clear();
    std::fill(state.begin(), state.end(), 0);
    visit(target);
    cut_output_ = graph.node(target).output(0);
  }
  for (const auto& o : graph.output()) {
    if (!defined.count(o.name()) && !producer.count(o.name())) {
      fail("graph output '{}' is never defined", o.name());
    }
  }
}

Graph Importer::run(const std::map<std::string, Shape>& input_shapes,
                    const std::map<std::string, Tensor>& constants) {
  auto& g = *model_.mutable_graph();
  graph_.name = g.name().empty() ? "model" : g.name();
  topological_order();
  if (unsupported_) infer_onnx_shapes();
  for (const auto& node : g.node()) {
    consumed_.insert(node.input().begin(), node.input().end());
    if (!node.domain().empty() && node.domain() != "ai.onnx") {
      fail("node '{}' ({}): domain '{}' is not supported (only the default ONNX domain)",
           node.name(), node.op_type(), node.domain());
    }
    if (node.attribute_size() > 0) {
      for (const auto& attr : node.attribute()) {
        if (attr.type() == onnx::AttributeProto::GRAPH ||
            attr.type() == onnx::AttributeProto::GRAPHS) {
          fail("node '{}' ({}): subgraph attribute '{}' is not supported", node.name(),
               node.op_type(), attr.name());
        }
      }
    }
  }
  for (const auto& o : g.output()) consumed_.insert(o.name());
  for (const auto& i : g.input()) taken_.insert(i.name());
  for (const auto& node : g.node()) taken_.insert(node.output().begin(), node.output().end());
  if (g.sparse_initializer_size() > 0) fail("sparse initializers are not supported");

  std::set<std::string> frozen;
  for (const auto& p : model_.metadata_props()) {
    if (p.key() != "onnxforge.frozen") graph_.metadata[p.key()] = p.value();
    if (p.key() == "onnxforge.frozen") {
      std::stringstream text(p.value());
      std::string name;
      while (std::getline(text, name, ',')) frozen.insert(name);
    }
  }

  for (auto& init : *g.mutable_initializer()) {
    taken_.insert(init.name());
    consts_[init.name()] = onnx_io::read_tensor(init, dir_, "initializer '" + init.name() + "'");
    onnx_initializers_.insert(init.name());
    init.clear_raw_data();  // the bytes now live in the Tensor
  }
  for (const auto& in : g.input()) {
    if (consts_.count(in.name())) continue;  // an initializer listed as input (IR < 4)
    if (auto it = constants.find(in.name()); it != constants.end()) {
      consts_[in.name()] = it->second;
      continue;
    }
    const auto where = "input '" + in.name() + "'";
    if (!in.type().has_tensor_type()) fail("{}: only tensor inputs are supported", where);
    const int elem = in.type().tensor_type().elem_type();
    const auto dtype = onnx_io::ir_dtype_of(elem);
    if (!dtype || elem == onnx::TensorProto::FLOAT16) {
      fail("{}: element type {} is not supported", where, onnx_io::onnx_type_name(elem));
    }
    Shape shape;
    if (auto it = input_shapes.find(in.name()); it != input_shapes.end()) {
      shape = it->second;
    } else {
      shape = input_shape(in, where);
    }
    graph_.inputs.push_back(ValueInfo{in.name(), *dtype, shape});
    graph_.values[in.name()] = graph_.inputs.back();
  }
  for (const auto& [name, shape] : input_shapes) {
    if (!graph_.is_input(name)) {
      std::vector<std::string> names;
      for (const auto& in : graph_.inputs) names.push_back(in.name);
      fail("a shape is given for '{}', which is not a graph input (inputs: {})", name,
           fmt::join(names, ", "));
    }
  }
  for (const auto& [name, value] : constants) {
    if (!consts_.count(name))
      fail("a constant is given for '{}', which is not a graph input", name);
  }

  for (const int index : order_) {
    const auto& node = g.node(index);
    node_name_ = node.name().empty() ? node.op_type() + "_" + std::to_string(index) : node.name();
    where_ = fmt::format("node '{}' ({}, opset {})", node_name_, node.op_type(), opset_);
    if (!unsupported_) {
      import_node(node);
      continue;
    }
    std::string after;
    for (const auto& in : node.input()) {
      if (auto it = unmapped_.find(in); it != unmapped_.end() && after.empty()) after = it->second;
    }
    if (!after.empty()) {
      record_unsupported(node, "reads an output of '" + after + "', which is not supported");
      continue;
    }
    if (!find_rule(node.op_type(), opset_)) {
      record_unsupported(
          node, fmt::format("op '{}' is not supported at opset {}", node.op_type(), opset_));
      continue;
    }
    try {
      import_node(node);
    } catch (const Error& e) {
      std::string reason = e.what();
      if (reason.rfind(where_ + ": ", 0) == 0) reason = reason.substr(where_.size() + 2);
      record_unsupported(node, reason);
    }
  }

  // Graph outputs keep their names: an aliased or constant output gets an Identity.
  where_ = "graph outputs";
  std::vector<std::string> output_names;
  for (const auto& o : g.output()) output_names.push_back(o.name());
  if (!cut_output_.empty()) output_names = {cut_output_};
  for (const auto& name : output_names) {
    const auto r = resolve(name);
    if (unsupported_ && !graph_.values.count(r) && !is_const(r)) continue;  // after unsupported
    if (r == name) {
      graph_.outputs.push_back(use(r));
      continue;
    }
    node_name_ = name + "/identity";
    const auto source = use(name);
    emit(OpId::Identity, {source}, {}, name);
    graph_.outputs.push_back(name);
  }
  for (auto& init : graph_.initializers) {
    if (bn_statistics.count(init.name) || frozen.count(init.name)) init.trainable = false;
  }
  if (!cut_output_.empty()) {
    std::set<std::string> read;
    for (const auto& node : graph_.nodes) read.insert(node.inputs.begin(), node.inputs.end());
    read.insert(graph_.outputs.begin(), graph_.outputs.end());
    std::erase_if(graph_.inputs, [&](const ValueInfo& v) { return !read.count(v.name); });
  }
  graph_.validate();
  // MatMul + Add exports (tf2onnx, Keras) become Dense layers with a bias, and Mul + Add by
  // per-channel constants (a batch norm tf2onnx could not fold) a BatchNormalization.
  return fuse_affine_batchnorm(fuse_dense_bias(std::move(graph_)));
}

void Importer::import_node(const onnx::NodeProto& node) {
  const OpRule* rule = find_rule(node.op_type(), opset_);
  if (!rule) {
    fail("{}: op '{}' is not supported at opset {} (supported: {})", where_, node.op_type(), opset_,
         fmt::join(supported_onnx_ops(), ", "));
  }
  // Arity first: handlers index inputs and outputs directly.
  const int needed = rule->min_inputs;
  if (node.input_size() < needed) {
    fail("{}: needs at least {} inputs, has {}", where_, needed, node.input_size());
  }
  if (node.output_size() < 1 || node.output(0).empty()) fail("{}: has no output", where_);
  for (int i = 0; i < needed; ++i) {
    if (node.input(i).empty()) fail("{}: required input {} is empty", where_, i);
  }
  for (int i = 0; i < node.output_size(); ++i) {
    if (!node.output(i).empty()) taken_.insert(node.output(i));
  }
  Attrs attrs(node, where_);
  try {
    rule->handler(*this, node, attrs);
  } catch (const Error& e) {
    const std::string message = e.what();
    if (message.rfind("node '", 0) == 0) throw;
    fail("{}: {}", where_, message);
  }
}

void Importer::infer_onnx_shapes() {
  // On the model itself (a copy would double a large file's weights): it only adds value_info.
  try {
    onnx::shape_inference::InferShapes(model_);
  } catch (const std::exception&) {
    return;  // the placeholders then have no shapes: the nodes after them are marked too
  }
  auto add = [&](const onnx::ValueInfoProto& v) {
    if (!v.type().has_tensor_type() || !v.type().tensor_type().has_shape()) return;
    const auto dtype = onnx_io::ir_dtype_of(v.type().tensor_type().elem_type());
    if (!dtype) return;
    Shape shape;
    const auto& dims = v.type().tensor_type().shape();
    for (int d = 0; d < dims.dim_size(); ++d) {
      if (dims.dim(d).has_dim_value() && dims.dim(d).dim_value() > 0) {
        shape.push_back(dims.dim(d).dim_value());
      } else if (d == 0) {
        shape.push_back(kDynamic);
      } else {
        return;
      }
    }
    onnx_shapes_[v.name()] = ValueInfo{v.name(), *dtype, shape};
  };
  for (const auto& v : model_.graph().value_info()) add(v);
  for (const auto& v : model_.graph().output()) add(v);
}

void Importer::record_unsupported(const onnx::NodeProto& node, std::string reason) {
  UnsupportedNode u{node_name_, node.op_type(), std::move(reason), {}, graph_.nodes.size(), 0};
  for (const auto& in : node.input()) {
    const auto r = resolve(in);
    if (onnx_initializers_.count(r) && consts_.count(r) && is_floating(consts_.at(r).dtype())) {
      u.params += consts_.at(r).size();
    }
  }
  for (const auto& out : node.output()) {
    if (out.empty()) continue;
    auto it = onnx_shapes_.find(out);
    if (it == onnx_shapes_.end() || graph_.values.count(out) || syms_.count(out) ||
        consts_.count(out)) {
      if (!graph_.values.count(out)) unmapped_[out] = node_name_;
      continue;
    }
    graph_.inputs.push_back(it->second);
    graph_.values[out] = it->second;
    u.outputs.push_back(out);
  }
  unsupported_->push_back(std::move(u));
}

// ---- the rule table ------------------------------------------------------------------------

namespace {

OpRule ir_rule(OpId id, std::function<void(Importer&, const onnx::NodeProto&, Attrs&)> handler,
               int min_inputs, Opsets opsets) {
  const int first = op_def(id).onnx_since;
  if (first < 1) fail("importer rule for {}: the op has no ONNX form (onnx_since 0)", op_name(id));
  const int since = opsets.since == 0 ? first : opsets.since;
  if (since < first) {
    fail("importer rule for {}: opset {} is before the op's first ONNX opset {}", op_name(id),
         since, first);
  }
  return {std::string(op_name(id)), since, opsets.until, min_inputs, std::move(handler)};
}

}  // namespace

OpRule rule(OpId id, Handler handler, int min_inputs, Opsets opsets) {
  return ir_rule(id, handler, min_inputs, opsets);
}

OpRule rule(OpId id, OpHandler handler, int min_inputs, Opsets opsets) {
  return ir_rule(
      id,
      [handler, id](Importer& im, const onnx::NodeProto& n, Attrs& a) { handler(id, im, n, a); },
      min_inputs, opsets);
}

OpRule rule(std::string_view onnx_op, int since, Handler handler, int min_inputs) {
  if (find_op(onnx_op)) fail("importer rule for {}: an IR op, key its rule on OpId", onnx_op);
  return {std::string(onnx_op), since, kMaxOpset, min_inputs, handler};
}

const std::vector<OpRule>& op_rules() {
  static const std::vector<OpRule> rules = [] {
    std::vector<OpRule> all;
    for (auto family : {elementwise_rules, binary_rules, pooling_rules, normalization_rules,
                        linear_algebra_rules, shape_rules, new_op_rules}) {
      for (auto& r : family()) all.push_back(std::move(r));
    }
    for (const auto& a : all) {
      if (a.since > a.until)
        fail("importer rule for {}: opsets {} to {}", a.onnx_op, a.since, a.until);
      for (const auto& b : all) {
        if (&a != &b && a.onnx_op == b.onnx_op && a.since <= b.until && b.since <= a.until) {
          fail("importer rules for {}: opsets {}-{} and {}-{} overlap", a.onnx_op, a.since, a.until,
               b.since, b.until);
        }
      }
    }
    // Every IR op with an ONNX form is read from its first ONNX opset on.
    for (auto id : all_op_ids()) {
      const int first = op_def(id).onnx_since;
      if (first == 0) continue;
      const bool covered = std::any_of(all.begin(), all.end(), [&](const OpRule& r) {
        return r.onnx_op == op_name(id) && r.since == first;
      });
      if (!covered) fail("importer: no rule reads {} from opset {}", op_name(id), first);
    }
    return all;
  }();
  return rules;
}

const OpRule* find_rule(const std::string& op, int opset) {
  for (const auto& rule : op_rules()) {
    if (rule.onnx_op == op && rule.since <= opset && opset <= rule.until) return &rule;
  }
  return nullptr;
}

}  // namespace onnxforge::onnx_import
