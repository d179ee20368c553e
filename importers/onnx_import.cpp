#include "importers/onnx_import.hpp"

#include <onnx/checker.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "graph/ops.hpp"
#include "graph/passes.hpp"
#include "importers/onnx_proto.hpp"

namespace onnxforge {

namespace fs = std::filesystem;

namespace {

// A float attribute as the decimal its author most likely wrote (0.001f -> 0.001), so that
// exported-then-imported graphs compute with the same doubles as the originals.
double decimal_of(float value) {
  if (!std::isfinite(value)) return value;
  char text[64];
  const auto [end, ec] = std::to_chars(text, text + sizeof text, value);
  if (ec != std::errc{}) return value;
  return std::strtod(std::string(text, end).c_str(), nullptr);
}

// One element of a shape vector computed at import time: a known integer, or dimension `axis`
// of the run-time value `source` (the dynamic batch).
struct SymDim {
  std::int64_t value = 0;
  std::string source;
  std::int64_t axis = 0;
  bool known() const { return source.empty(); }
};

struct SymVec {
  bool scalar = false;
  std::vector<SymDim> dims;
};

class Importer;
class Attrs;
using Handler = std::function<void(Importer&, const onnx::NodeProto&, Attrs&)>;

struct OpRule {
  std::string op;
  int since;
  int until;
  Handler handler;
};

const std::vector<OpRule>& op_rules();

class Attrs {
 public:
  Attrs(const onnx::NodeProto& node, std::string where) : where_(std::move(where)) {
    for (const auto& a : node.attribute()) map_[a.name()] = &a;
  }
  const std::string& where() const { return where_; }

  // Every attribute present must be one of `known`.
  void allow(std::initializer_list<const char*> known) const {
    for (const auto& [name, attr] : map_) {
      bool ok = false;
      for (const char* k : known) ok = ok || name == k;
      if (!ok) fail("{}: attribute '{}' is not supported", where_, name);
    }
  }
  bool has(const std::string& name) const { return map_.count(name) != 0; }
  // A 1-D window seen as 2-D (height 1): kernel_shape, strides, dilations, pads gain a leading
  // 1 (or 0 for pads).
  void lift_1d() {
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
  std::int64_t i(const std::string& name, std::int64_t fallback) const {
    const auto* a = get(name, onnx::AttributeProto::INT, "an int");
    return a ? a->i() : fallback;
  }
  double f(const std::string& name, double fallback) const {
    const auto* a = get(name, onnx::AttributeProto::FLOAT, "a float");
    return a ? decimal_of(a->f()) : fallback;
  }
  std::string s(const std::string& name, const std::string& fallback) const {
    const auto* a = get(name, onnx::AttributeProto::STRING, "a string");
    return a ? a->s() : fallback;
  }
  std::vector<std::int64_t> ints(const std::string& name,
                                 std::vector<std::int64_t> fallback) const {
    if (auto it = lifted_.find(name); it != lifted_.end()) return it->second;
    const auto* a = get(name, onnx::AttributeProto::INTS, "a list of ints");
    return a ? std::vector<std::int64_t>(a->ints().begin(), a->ints().end()) : fallback;
  }
  std::vector<double> floats(const std::string& name) const {
    const auto* a = get(name, onnx::AttributeProto::FLOATS, "a list of floats");
    std::vector<double> out;
    if (a) {
      for (float v : a->floats()) out.push_back(v);
    }
    return out;
  }
  const onnx::TensorProto* tensor(const std::string& name) const {
    const auto* a = get(name, onnx::AttributeProto::TENSOR, "a tensor");
    return a ? &a->t() : nullptr;
  }
  [[noreturn]] void unsupported(const std::string& name, const std::string& why) const {
    fail("{}: attribute '{}' {}", where_, name, why);
  }

 private:
  const onnx::AttributeProto* get(const std::string& name, int type, const char* what) const {
    auto it = map_.find(name);
    if (it == map_.end()) return nullptr;
    if (it->second->type() != type) {
      fail("{}: attribute '{}' must be {}", where_, name, what);
    }
    return it->second;
  }
  std::string where_;
  std::map<std::string, const onnx::AttributeProto*> map_;
  std::map<std::string, std::vector<std::int64_t>> lifted_;
};

class Importer {
 public:
  Importer(onnx::ModelProto& model, fs::path model_dir, int opset)
      : model_(model), dir_(std::move(model_dir)), opset_(opset) {}

  int opset() const { return opset_; }
  const std::string& where() const { return where_; }

  Graph run(const std::map<std::string, Shape>& input_shapes,
            const std::map<std::string, Tensor>& constants);

  // ---- values ----------------------------------------------------------------------------
  std::string resolve(const std::string& name) const {
    auto it = alias_.find(name);
    return it == alias_.end() ? name : it->second;
  }
  bool is_const(const std::string& name) const {
    const auto r = resolve(name);
    return consts_.count(r) || materialized_.count(r) || (syms_.count(r) && all_known(r));
  }
  bool is_sym(const std::string& name) const { return syms_.count(resolve(name)) != 0; }
  const SymVec& sym(const std::string& name) const { return syms_.at(resolve(name)); }

  // The constant value of `name` (throws when it is not one).
  const Tensor& constant(const std::string& name) {
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
  // A constant input, or nullptr for an omitted optional input.
  const Tensor* optional_constant(const onnx::NodeProto& node, int index) {
    if (index >= node.input_size() || node.input(index).empty()) return nullptr;
    return &constant(node.input(index));
  }

  // Dtype and shape of any value.
  ValueInfo info(const std::string& name) {
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

  // The IR value to feed a node: constants become initializers.
  std::string use(const std::string& name) {
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

  void set_const(const std::string& name, Tensor value) {
    if (name.empty()) return;
    consts_[name] = std::move(value);
  }
  void set_sym(const std::string& name, SymVec value) {
    if (name.empty()) return;
    syms_[name] = std::move(value);
  }
  void set_alias(const std::string& name, const std::string& target) {
    if (name.empty()) return;
    alias_[name] = resolve(target);
  }

  // A fresh value name derived from `base`.
  std::string temp(const std::string& base) {
    std::string name = base;
    for (int i = 1; taken_.count(name); ++i) name = base + "_" + std::to_string(i);
    taken_.insert(name);
    return name;
  }

  // Appends an IR node computing `output` and infers its shape.
  std::string emit(const std::string& op, std::vector<std::string> inputs,
                   std::map<std::string, Attribute> attributes, const std::string& output,
                   const std::string& suffix = "") {
    Node node;
    std::string base = node_name_ + suffix;
    node.name = base;
    for (int i = 1; node_names_.count(node.name); ++i) node.name = base + "_" + std::to_string(i);
    node_names_.insert(node.name);
    node.op = op;
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

  // A node whose inputs may all be constants: folded when the folder can evaluate it.
  void emit_or_fold(const std::string& op, const std::vector<std::string>& onnx_inputs,
                    std::map<std::string, Attribute> attributes, const std::string& output) {
    bool all_const = true;
    for (const auto& i : onnx_inputs) all_const = all_const && (i.empty() || is_const(i));
    if (all_const) {
      Node node{node_name_, op, {}, {output}, attributes};
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

  bool is_consumed(const std::string& name) const { return consumed_.count(name) != 0; }
  // A constant derived from an ONNX initializer stays trainable like it.
  void inherit_trainable(const std::string& derived, const std::string& source) {
    if (onnx_initializers_.count(resolve(source))) onnx_initializers_.insert(derived);
  }

  std::set<std::string> bn_statistics;  // initializers never trainable

 private:
  bool all_known(const std::string& r) const {
    const auto& s = syms_.at(r);
    return std::all_of(s.dims.begin(), s.dims.end(), [](const SymDim& d) { return d.known(); });
  }
  static Tensor sym_to_tensor(const SymVec& s) {
    std::vector<std::int64_t> v;
    for (const auto& d : s.dims) v.push_back(d.value);
    return Tensor::from<std::int64_t>(
        s.scalar ? Shape{} : Shape{static_cast<std::int64_t>(v.size())}, v);
  }
  void topological_order();

 public:
  std::string cut_at_;

 private:
  std::string cut_output_;

  onnx::ModelProto& model_;
  fs::path dir_;
  int opset_;
  Graph graph_;
  std::map<std::string, Tensor> consts_;
  std::set<std::string> materialized_;
  std::map<std::string, SymVec> syms_;
  std::map<std::string, std::string> alias_;
  std::set<std::string> onnx_initializers_;
  std::set<std::string> taken_;
  std::set<std::string> node_names_;
  std::set<std::string> consumed_;
  std::vector<int> order_;
  std::string where_;
  std::string node_name_;
};

// ---- helpers for handlers --------------------------------------------------------------------

std::int64_t normalize_axis(const Attrs& a, std::int64_t axis, std::size_t rank) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis >= r) fail("{}: axis {} is out of range for rank {}", a.where(), axis, r);
  return axis < 0 ? axis + r : axis;
}

const std::string& input_or_empty(const onnx::NodeProto& n, int i) {
  static const std::string none;
  return i < n.input_size() ? n.input(i) : none;
}

void only_first_output_used(Importer& im, const onnx::NodeProto& n, const Attrs& a) {
  for (int i = 1; i < n.output_size(); ++i) {
    if (!n.output(i).empty() && im.is_consumed(n.output(i))) {
      fail("{}: output {} ('{}') is used, but only the first output is supported", a.where(), i,
           n.output(i));
    }
  }
}

// Explicit pads [top,left,bottom,right] of a 2-D window from pads or auto_pad.
std::vector<std::int64_t> window_pads(const Attrs& a, const Shape& x, const Shape& kernel,
                                      const std::vector<std::int64_t>& strides,
                                      const std::vector<std::int64_t>& dilations) {
  // Window sizes are divisors and factors below (and in shape inference): zero or huge values
  // would divide by zero or overflow.
  constexpr std::int64_t kMaxWindow = std::int64_t{1} << 20;
  for (std::size_t d = 0; d < 2; ++d) {
    for (const auto& [name, v] :
         {std::pair{"kernel_shape", kernel[d]}, std::pair{"strides", strides[d]},
          std::pair{"dilations", dilations[d]}}) {
      if (v < 1 || v > kMaxWindow) {
        a.unsupported(name, fmt::format("= {} is out of range (1 to {})", v, kMaxWindow));
      }
    }
  }
  const auto auto_pad = a.s("auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    auto pads = a.ints("pads", {0, 0, 0, 0});
    if (pads.size() != 4) a.unsupported("pads", "must have 4 values for a 2-D window");
    return pads;
  }
  if (a.has("pads")) a.unsupported("pads", "cannot be combined with auto_pad");
  if (auto_pad == "VALID") return {0, 0, 0, 0};
  if (auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER") {
    a.unsupported("auto_pad",
                  "= '" + auto_pad + "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
  }
  std::vector<std::int64_t> pads(4);
  for (std::size_t d = 0; d < 2; ++d) {
    const auto in = x[d + 2];
    if (in == kDynamic) a.unsupported("auto_pad", "needs static spatial dimensions");
    const auto out = (in + strides[d] - 1) / strides[d];
    const auto total =
        std::max<std::int64_t>(0, (out - 1) * strides[d] + (kernel[d] - 1) * dilations[d] + 1 - in);
    const auto small = total / 2;
    pads[d] = auto_pad == "SAME_UPPER" ? small : total - small;
    pads[d + 2] = total - pads[d];
  }
  return pads;
}

std::vector<std::int64_t> pair_attr(const Attrs& a, const char* name) {
  auto v = a.ints(name, {1, 1});
  if (v.size() != 2) a.unsupported(name, "must have 2 values (only 2-D windows are supported)");
  return v;
}

// ---- handlers --------------------------------------------------------------------------------

// [N,C,L] -> [N,C,1,L] (a constant is reshaped at import); returns the new value's name.
std::string lift_value(Importer& im, const std::string& name, const std::string& suffix) {
  const auto info = im.info(name);
  Shape lifted{info.shape[0], info.shape[1], 1, info.shape[2]};
  const auto out = im.temp(im.resolve(name) + suffix);
  if (im.is_const(name)) {
    im.set_const(out, im.constant(name).reshaped(lifted));
    im.inherit_trainable(out, name);
    return out;
  }
  std::vector<std::int64_t> target(lifted.begin(), lifted.end());
  if (target[0] == kDynamic) target[0] = 0;
  im.emit("Reshape", {im.use(name)}, {{"shape", target}}, out, "/lift");
  return out;
}

// [N,C,1,L] -> [N,C,L] into `output`.
void lower_value(Importer& im, const std::string& name, const std::string& output) {
  const auto info = im.info(name);
  std::vector<std::int64_t> target{info.shape[0] == kDynamic ? 0 : info.shape[0], info.shape[1],
                                   info.shape[3]};
  im.emit("Reshape", {name}, {{"shape", target}}, output, "/lower");
}

void conv(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  auto x = im.info(n.input(0));
  auto w = im.info(n.input(1));
  std::string x_name = n.input(0);
  std::string w_name = n.input(1);
  const bool one_d = x.shape.size() == 3 && w.shape.size() == 3;
  if (one_d) {
    // Conv1d as a Conv2d of height 1.
    a.lift_1d();
    x_name = lift_value(im, x_name, "/2d");
    w_name = lift_value(im, w_name, "/2d");
    x = im.info(x_name);
    w = im.info(w_name);
  }
  if (x.shape.size() != 4 || w.shape.size() != 4) {
    fail("{}: only 1-D and 2-D convolutions are supported (input {}, weight {})", a.where(),
         to_string(x.shape), to_string(w.shape));
  }
  const Shape kernel{w.shape[2], w.shape[3]};
  if (a.has("kernel_shape") && a.ints("kernel_shape", {}) != std::vector<std::int64_t>(kernel)) {
    a.unsupported("kernel_shape", "does not match the weight shape " + to_string(w.shape));
  }
  const auto strides = pair_attr(a, "strides");
  const auto dilations = pair_attr(a, "dilations");
  const auto pads = window_pads(a, x.shape, kernel, strides, dilations);
  std::vector<std::string> inputs{im.use(x_name), im.use(w_name)};
  if (!input_or_empty(n, 2).empty()) inputs.push_back(im.use(n.input(2)));
  const auto out = one_d ? im.temp(n.output(0) + "/2d") : n.output(0);
  im.emit(
      "Conv", inputs,
      {{"strides", strides}, {"pads", pads}, {"dilations", dilations}, {"group", a.i("group", 1)}},
      out);
  if (one_d) lower_value(im, out, n.output(0));
}

void pool(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  const bool max = n.op_type() == "MaxPool";
  if (max) {
    a.allow(
        {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"});
  } else {
    a.allow({"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"});
  }
  only_first_output_used(im, n, a);
  auto x = im.info(n.input(0));
  std::string x_name = n.input(0);
  const bool one_d = x.shape.size() == 3;
  if (one_d) {
    a.lift_1d();
    x_name = lift_value(im, x_name, "/2d");
    x = im.info(x_name);
  }
  if (x.shape.size() != 4) {
    fail("{}: only 1-D and 2-D pooling are supported (input {})", a.where(), to_string(x.shape));
  }
  const auto kernel = a.ints("kernel_shape", {});
  if (kernel.size() != 2) a.unsupported("kernel_shape", "must have 2 values (2-D pooling)");
  const auto strides = pair_attr(a, "strides");
  const auto dilations = max ? pair_attr(a, "dilations") : std::vector<std::int64_t>{1, 1};
  const auto pads = window_pads(a, x.shape, kernel, strides, dilations);
  std::map<std::string, Attribute> attrs{{"kernel_shape", kernel},
                                         {"strides", strides},
                                         {"pads", pads},
                                         {"ceil_mode", a.i("ceil_mode", 0)}};
  if (max) {
    attrs["dilations"] = dilations;
  } else {
    attrs["count_include_pad"] = a.i("count_include_pad", 0);
  }
  const auto out = one_d ? im.temp(n.output(0) + "/2d") : n.output(0);
  im.emit(n.op_type(), {im.use(x_name)}, attrs, out);
  if (one_d) lower_value(im, out, n.output(0));
}

void global_average_pool(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({});
  const auto x = im.info(n.input(0));
  if (x.shape.size() != 4) {
    fail("{}: only 4-D (N,C,H,W) inputs are supported, got {}", a.where(), to_string(x.shape));
  }
  im.emit("GlobalAveragePool", {im.use(n.input(0))}, {}, n.output(0));
}

void activation(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  std::map<std::string, Attribute> attrs;
  if (n.op_type() == "LeakyRelu") {
    a.allow({"alpha"});
    attrs["alpha"] = a.f("alpha", 0.01);
  } else {
    a.allow({});
  }
  im.emit_or_fold(n.op_type(), {n.input(0)}, attrs, n.output(0));
}

void softmax(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"axis"});
  const bool legacy = im.opset() < 13;
  const auto x = im.info(n.input(0));
  const auto rank = x.shape.size();
  const auto axis = normalize_axis(a, a.i("axis", legacy ? 1 : -1), rank);
  bool single_axis = !legacy || axis == static_cast<std::int64_t>(rank) - 1;
  if (legacy && !single_axis) {
    // The old form normalises over all axes from `axis` on: the same as one axis when the
    // trailing ones have size 1.
    single_axis = true;
    for (auto d = static_cast<std::size_t>(axis) + 1; d < rank; ++d) single_axis &= x.shape[d] == 1;
  }
  if (single_axis) {
    im.emit(n.op_type(), {im.use(n.input(0))}, {{"axis", axis}}, n.output(0));
    return;
  }
  // Flatten to 2-D at `axis`, normalise the rows, restore the shape.
  const auto flat = im.emit("Flatten", {im.use(n.input(0))}, {{"axis", axis}},
                            im.temp(n.output(0) + "/flat"), "/flatten");
  const auto soft = im.emit(n.op_type(), {flat}, {{"axis", std::int64_t{-1}}},
                            im.temp(n.output(0) + "/2d"), "/2d");
  std::vector<std::int64_t> back(x.shape.begin(), x.shape.end());
  for (auto& d : back) d = d == kDynamic ? 0 : d;
  im.emit("Reshape", {soft}, {{"shape", back}}, n.output(0), "/reshape");
}

// Y = alpha * A' B' + beta * C
void gemm(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"alpha", "beta", "transA", "transB", "broadcast"});
  const double alpha = a.f("alpha", 1.0);
  const double beta = a.f("beta", 1.0);
  const bool trans_a = a.i("transA", 0) != 0;
  const bool trans_b = a.i("transB", 0) != 0;
  const auto out = n.output(0);
  const auto a_info = im.info(n.input(0));
  const auto b_info = im.info(n.input(1));
  if (a_info.shape.size() != 2 || b_info.shape.size() != 2) {
    fail("{}: A and B must be 2-D, got {} and {}", a.where(), to_string(a_info.shape),
         to_string(b_info.shape));
  }
  std::string x = im.use(n.input(0));
  if (trans_a) {
    x = im.emit("Transpose", {x}, {{"perm", std::vector<std::int64_t>{1, 0}}},
                im.temp(out + "/A_t"), "/transpose_a");
  }
  // Weight W[M,K] for Dense.
  std::string w;
  bool alpha_folded = false;
  if (im.is_const(n.input(1)) && (!trans_b || alpha != 1.0)) {
    Tensor value = im.constant(n.input(1));
    if (!trans_b) value = transpose_tensor(value, {1, 0});
    if (alpha != 1.0) {
      auto v = value.to_doubles();
      for (auto& e : v) e *= alpha;
      value = Tensor::from<double>(value.shape(), v).to(value.dtype());
      alpha_folded = true;
    }
    w = im.temp(im.resolve(n.input(1)) + (trans_b ? "/scaled" : "/transposed"));
    im.set_const(w, std::move(value));
    w = im.use(w);
  } else if (trans_b) {
    w = im.use(n.input(1));
  } else {
    w = im.emit("Transpose", {im.use(n.input(1))}, {{"perm", std::vector<std::int64_t>{1, 0}}},
                im.temp(out + "/B_t"), "/transpose_b");
  }
  const auto units = im.info(w).shape[0];
  const bool scale_after = alpha != 1.0 && !alpha_folded;
  const std::string c_name = input_or_empty(n, 2);
  std::string bias;
  bool add_after = false;
  if (!c_name.empty() && beta != 0.0) {
    const auto c_info = im.info(c_name);
    const bool vector_shaped = c_info.shape == Shape{units} || c_info.shape == Shape{1, units};
    if (im.is_const(c_name) && vector_shaped && !scale_after) {
      Tensor value = im.constant(c_name);
      std::string name = im.resolve(c_name);
      if (beta != 1.0 || value.shape().size() != 1) {
        auto v = value.to_doubles();
        for (auto& e : v) e *= beta;
        value = Tensor::from<double>({units}, v).to(value.dtype());
        name = im.temp(name + "/bias");
        im.set_const(name, std::move(value));
      }
      bias = im.use(name);
    } else {
      add_after = true;
    }
  }
  std::vector<std::string> inputs{x, w};
  if (!bias.empty()) inputs.push_back(bias);
  const bool last = !scale_after && !add_after;
  std::string y =
      im.emit("Dense", inputs, {}, last ? out : im.temp(out + "/dense"), last ? "" : "/dense");
  if (scale_after) {
    const auto s = im.temp(out + "/alpha");
    im.set_const(s, Tensor::from<double>({}, std::vector<double>{alpha}).to(im.info(y).dtype));
    y = im.emit("Mul", {y, im.use(s)}, {}, add_after ? im.temp(out + "/scaled") : out, "/alpha");
  }
  if (add_after) {
    std::string c = im.use(c_name);
    if (beta != 1.0) {
      const auto s = im.temp(out + "/beta");
      im.set_const(s, Tensor::from<double>({}, std::vector<double>{beta}).to(im.info(c).dtype));
      c = im.emit("Mul", {c, im.use(s)}, {}, im.temp(out + "/C_scaled"), "/beta");
    }
    im.emit("Add", {y, c}, {}, out, "/add");
  }
}

void matmul(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({});
  const auto out = n.output(0);
  auto ai = im.info(n.input(0));
  auto bi = im.info(n.input(1));
  if (ai.shape.empty() || bi.shape.empty()) fail("{}: MatMul of a scalar", a.where());
  // A 2-D constant B on a 2-D A: a Dense layer with W = B^T.
  if (ai.shape.size() == 2 && bi.shape.size() == 2 && im.is_const(n.input(1)) &&
      !im.is_const(n.input(0))) {
    const auto w = im.temp(im.resolve(n.input(1)) + "/transposed");
    im.set_const(w, transpose_tensor(im.constant(n.input(1)), {1, 0}));
    im.emit("Dense", {im.use(n.input(0)), im.use(w)}, {}, out);
    return;
  }
  std::string x = im.use(n.input(0));
  std::string y = im.use(n.input(1));
  const bool a_vector = ai.shape.size() == 1;
  const bool b_vector = bi.shape.size() == 1;
  if (a_vector) {
    x = im.emit("Reshape", {x}, {{"shape", std::vector<std::int64_t>{1, ai.shape[0]}}},
                im.temp(out + "/A_2d"), "/a_2d");
  }
  if (b_vector) {
    y = im.emit("Reshape", {y}, {{"shape", std::vector<std::int64_t>{bi.shape[0], 1}}},
                im.temp(out + "/B_2d"), "/b_2d");
  }
  if (!a_vector && !b_vector) {
    im.emit("MatMul", {x, y}, {}, out);
    return;
  }
  const auto product = im.emit("MatMul", {x, y}, {}, im.temp(out + "/2d"), "/matmul");
  Shape shape = im.info(product).shape;
  if (b_vector) shape.pop_back();
  if (a_vector) shape.erase(shape.end() - (b_vector ? 1 : 2));
  std::vector<std::int64_t> target(shape.begin(), shape.end());
  for (std::size_t i = 0; i < target.size(); ++i) target[i] = target[i] == kDynamic ? 0 : target[i];
  im.emit("Reshape", {product}, {{"shape", target}}, out, "/reshape");
}

// Element-wise arithmetic on constants, on shape vectors (import time) or on run-time values.
void arithmetic(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  const auto& op = n.op_type();
  std::string second = n.input(1);
  if (im.opset() < 7) {
    // Opset 6: no implicit broadcasting; broadcast=1 aligns B with A at `axis` (or the end).
    a.allow({"broadcast", "axis"});
    const auto ra = im.info(n.input(0)).shape.size();
    const auto b = im.info(n.input(1));
    if (a.i("broadcast", 0) != 0 && a.has("axis")) {
      const auto axis = normalize_axis(a, a.i("axis", 0), ra);
      Shape aligned = b.shape;
      while (static_cast<std::int64_t>(aligned.size()) + axis < static_cast<std::int64_t>(ra)) {
        aligned.push_back(1);
      }
      if (aligned != b.shape) {
        std::vector<std::int64_t> target(aligned.begin(), aligned.end());
        second = im.temp(im.resolve(n.input(1)) + "/aligned");
        if (im.is_const(n.input(1))) {
          im.set_const(second, im.constant(n.input(1)).reshaped(aligned));
        } else {
          im.emit("Reshape", {im.use(n.input(1))}, {{"shape", target}}, second, "/align");
        }
      }
    }
  } else {
    a.allow({});
  }
  if (im.is_sym(n.input(0)) || im.is_sym(n.input(1))) {
    if (!im.is_const(n.input(0)) || !im.is_const(n.input(1))) {
      fail(
          "{}: arithmetic on a shape that depends on the dynamic batch; import with a fixed "
          "input shape",
          a.where());
    }
  }
  im.emit_or_fold(op, {n.input(0), second}, {}, n.output(0));
}

void flatten(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"axis"});
  const auto x = im.info(n.input(0));
  auto axis = a.i("axis", 1);
  const auto rank = static_cast<std::int64_t>(x.shape.size());
  if (axis < -rank || axis > rank)
    fail("{}: axis {} out of range for rank {}", a.where(), axis, rank);
  if (axis < 0) axis += rank;
  im.emit_or_fold("Flatten", {n.input(0)}, {{"axis", axis}}, n.output(0));
}

// A Reshape target for the IR: explicit sizes, 0 only where a dynamic input dim is copied.
std::vector<std::int64_t> ir_target(const Attrs& a, const Shape& input, std::vector<std::int64_t> t,
                                    bool allow_zero) {
  int infer_at = -1;
  std::int64_t known = 1;
  std::int64_t dynamic_copies = 0;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i] == 0 && !allow_zero) {
      if (i >= input.size())
        fail("{}: shape entry {} copies a dimension the input lacks", a.where(), i);
      if (input[i] == kDynamic) {
        ++dynamic_copies;
        continue;
      }
      t[i] = input[i];
    }
    if (t[i] == 0) fail("{}: zero-sized dimensions are not supported (allowzero)", a.where());
    if (t[i] == -1) {
      if (infer_at >= 0) fail("{}: more than one -1 in the target shape", a.where());
      infer_at = static_cast<int>(i);
      continue;
    }
    if (t[i] < -1) fail("{}: invalid target dimension {}", a.where(), t[i]);
    if (__builtin_mul_overflow(known, t[i], &known)) {
      fail("{}: target shape [{}] has too many elements (overflows 64 bits)", a.where(),
           fmt::join(t, ","));
    }
  }
  std::int64_t total = 1;
  std::int64_t dynamic_inputs = 0;
  for (const auto d : input) {
    if (d == kDynamic) {
      ++dynamic_inputs;
    } else if (__builtin_mul_overflow(total, d, &total)) {
      fail("{}: input shape {} has too many elements", a.where(), to_string(input));
    }
  }
  if (infer_at >= 0 && dynamic_inputs == dynamic_copies) {
    if (known == 0 || total % known != 0) {
      fail("{}: cannot reshape {} to [{}]", a.where(), to_string(input), fmt::join(t, ","));
    }
    t[static_cast<std::size_t>(infer_at)] = total / known;
  }
  return t;
}

void reshape(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"allowzero"});
  const bool allow_zero = a.i("allowzero", 0) != 0;
  const auto x = im.info(n.input(0));
  std::vector<std::int64_t> target;
  if (im.is_sym(n.input(1)) && !im.is_const(n.input(1))) {
    // A shape computed from the dynamic batch: copy the dimension when it stays in place.
    const auto& s = im.sym(n.input(1));
    const auto source = im.resolve(n.input(0));
    int unknown = 0;
    for (std::size_t i = 0; i < s.dims.size(); ++i) {
      const auto& d = s.dims[i];
      if (d.known()) {
        target.push_back(d.value);
      } else if (d.source == source && d.axis == static_cast<std::int64_t>(i) && !allow_zero) {
        target.push_back(0);
      } else {
        target.push_back(-1);
        ++unknown;
      }
    }
    if (unknown > 1 || (unknown == 1 && std::count(target.begin(), target.end(), -1) > 1)) {
      fail(
          "{}: the target shape depends on the dynamic batch in a way that cannot be folded; "
          "import with a fixed input shape",
          a.where());
    }
  } else {
    const auto& shape = im.constant(n.input(1));
    if (shape.dtype() != DType::i64 || shape.shape().size() != 1) {
      fail("{}: the shape input must be a 1-D int64 tensor", a.where());
    }
    const auto v = shape.data<std::int64_t>();
    target.assign(v.begin(), v.end());
  }
  const auto t = ir_target(a, x.shape, target, allow_zero);
  im.emit_or_fold("Reshape", {n.input(0)}, {{"shape", t}}, n.output(0));
}

// Opset 1-4: the target shape is an attribute.
void reshape_v1(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"shape"});
  const auto x = im.info(n.input(0));
  const auto t = ir_target(a, x.shape, a.ints("shape", {}), false);
  im.emit_or_fold("Reshape", {n.input(0)}, {{"shape", t}}, n.output(0));
}

void transpose(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"perm"});
  const auto rank = im.info(n.input(0)).shape.size();
  std::vector<std::int64_t> reversed;
  for (auto i = static_cast<std::int64_t>(rank); i-- > 0;) reversed.push_back(i);
  im.emit_or_fold("Transpose", {n.input(0)}, {{"perm", a.ints("perm", reversed)}}, n.output(0));
}

void concat(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"axis"});
  if (!a.has("axis") && im.opset() >= 4) fail("{}: attribute 'axis' is required", a.where());
  std::vector<std::string> inputs(n.input().begin(), n.input().end());
  const bool any_sym = std::any_of(inputs.begin(), inputs.end(), [&](const std::string& i) {
    return im.is_sym(i) && !im.is_const(i);
  });
  if (any_sym) {
    SymVec out;
    for (const auto& i : inputs) {
      if (im.is_sym(i) && !im.is_const(i)) {
        const auto& s = im.sym(i);
        out.dims.insert(out.dims.end(), s.dims.begin(), s.dims.end());
      } else {
        const auto& t = im.constant(i);
        if (t.dtype() != DType::i64 || t.shape().size() != 1) {
          fail("{}: cannot concatenate a shape with a non-1-D tensor", a.where());
        }
        for (const auto v : t.data<std::int64_t>()) out.dims.push_back({v, "", 0});
      }
    }
    im.set_sym(n.output(0), out);
    return;
  }
  const auto rank = im.info(inputs[0]).shape.size();
  const auto axis = normalize_axis(a, a.i("axis", 1), rank);
  im.emit_or_fold("Concat", inputs, {{"axis", axis}}, n.output(0));
}

void dropout(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  double ratio = 0.5;
  if (im.opset() < 12) {
    a.allow({"ratio", "is_test"});
    ratio = a.f("ratio", 0.5);
  } else {
    a.allow({"seed"});
    if (const auto* r = im.optional_constant(n, 1)) {
      if (r->size() != 1) fail("{}: ratio must be a scalar", a.where());
      ratio = r->dtype() == DType::f32 ? decimal_of(static_cast<float>(r->value(0))) : r->value(0);
    }
    if (const auto* t = im.optional_constant(n, 2)) {
      if (t->size() != 1) fail("{}: training_mode must be a scalar", a.where());
      if (t->value(0) != 0.0) {
        fail("{}: training_mode = true is not supported (dropout is applied by the trainer)",
             a.where());
      }
    }
  }
  if (n.output_size() > 1 && !n.output(1).empty() && im.is_consumed(n.output(1))) {
    fail("{}: the mask output ('{}') is not supported", a.where(), n.output(1));
  }
  if (im.is_const(n.input(0))) {
    im.set_alias(n.output(0), n.input(0));
    return;
  }
  im.emit("Dropout", {im.use(n.input(0))}, {{"ratio", ratio}}, n.output(0));
}

void batch_norm(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  if (im.opset() < 9) {
    a.allow({"epsilon", "momentum", "spatial", "is_test"});
    if (a.i("spatial", 1) != 1)
      a.unsupported("spatial", "= 0 (per-activation statistics) is not supported");
  } else if (im.opset() < 14) {
    a.allow({"epsilon", "momentum"});
  } else {
    a.allow({"epsilon", "momentum", "training_mode"});
    if (a.i("training_mode", 0) != 0) {
      a.unsupported("training_mode", "= 1 is not supported (the trainer sets the mode)");
    }
  }
  only_first_output_used(im, n, a);
  std::vector<std::string> inputs;
  for (int i = 0; i < 5; ++i) inputs.push_back(im.use(n.input(i)));
  im.bn_statistics.insert(inputs[3]);
  im.bn_statistics.insert(inputs[4]);
  im.emit("BatchNormalization", inputs,
          {{"epsilon", a.f("epsilon", 1e-5)}, {"momentum", a.f("momentum", 0.9)}}, n.output(0));
}

void identity(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({});
  if (im.is_sym(n.input(0))) {
    im.set_sym(n.output(0), im.sym(n.input(0)));
    return;
  }
  im.set_alias(n.output(0), n.input(0));
}

void constant(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"value", "value_float", "value_floats", "value_int", "value_ints"});
  if (const auto* t = a.tensor("value")) {
    im.set_const(n.output(0), onnx_io::read_tensor(*t, {}, a.where() + " value"));
  } else if (a.has("value_float")) {
    im.set_const(
        n.output(0),
        Tensor::from<float>({}, std::vector<float>{static_cast<float>(a.f("value_float", 0))}));
  } else if (a.has("value_floats")) {
    std::vector<float> v;
    for (auto d : a.floats("value_floats")) v.push_back(static_cast<float>(d));
    im.set_const(n.output(0), Tensor::from<float>({static_cast<std::int64_t>(v.size())}, v));
  } else if (a.has("value_int")) {
    im.set_const(n.output(0),
                 Tensor::from<std::int64_t>({}, std::vector<std::int64_t>{a.i("value_int", 0)}));
  } else if (a.has("value_ints")) {
    const auto v = a.ints("value_ints", {});
    im.set_const(n.output(0), Tensor::from<std::int64_t>({static_cast<std::int64_t>(v.size())}, v));
  } else {
    fail("{}: needs one of the attributes value, value_float(s), value_int(s)", a.where());
  }
}

void clip(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  std::map<std::string, Attribute> attrs;
  auto scalar = [&](const Tensor* t, const char* what) {
    if (t->size() != 1) fail("{}: {} must be a scalar", a.where(), what);
    return t->dtype() == DType::f32 ? decimal_of(static_cast<float>(t->value(0))) : t->value(0);
  };
  if (im.opset() < 11) {
    a.allow({"min", "max"});
    if (a.has("min")) attrs["min"] = a.f("min", 0);
    if (a.has("max")) attrs["max"] = a.f("max", 0);
  } else {
    a.allow({});
    if (const auto* t = im.optional_constant(n, 1)) attrs["min"] = scalar(t, "min");
    if (const auto* t = im.optional_constant(n, 2)) attrs["max"] = scalar(t, "max");
  }
  im.emit_or_fold("Clip", {n.input(0)}, attrs, n.output(0));
}

void pad(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  std::vector<std::int64_t> pads;
  double value = 0.0;
  const auto mode = a.s("mode", "constant");
  if (im.opset() < 11) {
    a.allow({"mode", "pads", "value"});
    pads = a.ints("pads", {});
    value = a.f("value", 0.0);
  } else {
    a.allow({"mode"});
    const auto& p = im.constant(n.input(1));
    if (p.dtype() != DType::i64) fail("{}: pads must be int64", a.where());
    pads.assign(p.data<std::int64_t>().begin(), p.data<std::int64_t>().end());
    if (const auto* v = im.optional_constant(n, 2)) {
      if (v->size() != 1) fail("{}: constant_value must be a scalar", a.where());
      value = v->dtype() == DType::f32 ? decimal_of(static_cast<float>(v->value(0))) : v->value(0);
    }
    if (n.input_size() > 3 && !n.input(3).empty())
      fail("{}: the axes input is not supported", a.where());
  }
  if (mode != "constant" && mode != "reflect" && mode != "edge") {
    a.unsupported("mode", "= '" + mode + "' is not one of constant, reflect, edge");
  }
  std::map<std::string, Attribute> attrs{{"pads", pads}, {"mode", mode}};
  if (mode == "constant") attrs["value"] = value;
  im.emit("Pad", {im.use(n.input(0))}, attrs, n.output(0));
}

std::vector<std::int64_t> axes_of(Importer& im, const onnx::NodeProto& n, const Attrs& a,
                                  bool required) {
  if (im.opset() < 13) {
    a.allow({"axes"});
    if (required && !a.has("axes")) fail("{}: attribute 'axes' is required", a.where());
    return a.ints("axes", {});
  }
  a.allow({});
  const auto* t = im.optional_constant(n, 1);
  if (!t) {
    if (required) fail("{}: input 'axes' is required", a.where());
    return {};
  }
  const auto v = t->data<std::int64_t>();
  return {v.begin(), v.end()};
}

// Shape after Squeeze/Unsqueeze, then a Reshape (or a fold).
void squeeze(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  const bool unsqueeze = n.op_type() == "Unsqueeze";
  auto axes = axes_of(im, n, a, unsqueeze);
  if (im.is_sym(n.input(0)) && !im.is_const(n.input(0))) {
    SymVec s = im.sym(n.input(0));
    if (unsqueeze && s.scalar && axes.size() == 1 && (axes[0] == 0 || axes[0] == -1)) {
      s.scalar = false;
    } else if (!unsqueeze && !s.scalar && s.dims.size() == 1 &&
               (axes.empty() || axes[0] == 0 || axes[0] == -1)) {
      s.scalar = true;
    } else {
      fail("{}: unsupported {} of a shape vector", a.where(), n.op_type());
    }
    im.set_sym(n.output(0), s);
    return;
  }
  const auto x = im.info(n.input(0));
  Shape out;
  if (unsqueeze) {
    const auto rank = x.shape.size() + axes.size();
    std::vector<bool> inserted(rank, false);
    for (auto ax : axes) {
      const auto d = static_cast<std::size_t>(normalize_axis(a, ax, rank));
      if (inserted[d]) fail("{}: axis {} appears twice", a.where(), ax);
      inserted[d] = true;
    }
    std::size_t next = 0;
    for (std::size_t d = 0; d < rank; ++d) out.push_back(inserted[d] ? 1 : x.shape[next++]);
  } else {
    std::vector<bool> removed(x.shape.size(), false);
    for (auto ax : axes)
      removed[static_cast<std::size_t>(normalize_axis(a, ax, x.shape.size()))] = true;
    for (std::size_t d = 0; d < x.shape.size(); ++d) {
      const bool drop = axes.empty() ? x.shape[d] == 1 : removed[d];
      if (drop && x.shape[d] != 1) {
        fail("{}: cannot squeeze axis {} of size {}", a.where(), d,
             x.shape[d] == kDynamic ? std::string("N (dynamic)") : std::to_string(x.shape[d]));
      }
      if (!drop) out.push_back(x.shape[d]);
    }
  }
  if (im.is_const(n.input(0))) {
    im.set_const(n.output(0), im.constant(n.input(0)).reshaped(out));
    return;
  }
  // The dynamic batch keeps its position (0 = copy) or is inferred (-1).
  std::vector<std::int64_t> target(out.begin(), out.end());
  for (std::size_t d = 0; d < target.size(); ++d) {
    if (target[d] == kDynamic) {
      target[d] = (d < x.shape.size() && x.shape[d] == kDynamic) ? 0 : -1;
    }
  }
  if (std::count(target.begin(), target.end(), -1) > 1) {
    fail("{}: more than one dynamic dimension moves; import with a fixed input shape", a.where());
  }
  im.emit("Reshape", {im.use(n.input(0))}, {{"shape", target}}, n.output(0));
}

void shape_op(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"start", "end"});
  const auto x = im.info(n.input(0));
  const auto rank = static_cast<std::int64_t>(x.shape.size());
  auto clamp = [&](std::int64_t v) {
    if (v < 0) v += rank;
    return std::clamp<std::int64_t>(v, 0, rank);
  };
  const auto start = clamp(a.i("start", 0));
  const auto end = clamp(a.i("end", rank));
  SymVec s;
  for (auto d = start; d < end; ++d) {
    const auto dim = x.shape[static_cast<std::size_t>(d)];
    if (dim == kDynamic) {
      s.dims.push_back({0, im.resolve(n.input(0)), d});
    } else {
      s.dims.push_back({dim, "", 0});
    }
  }
  im.set_sym(n.output(0), s);
}

void gather(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"axis"});
  const auto& indices = im.constant(n.input(1));
  if (indices.dtype() != DType::i64) fail("{}: indices must be integers", a.where());
  if (im.is_sym(n.input(0)) && !im.is_const(n.input(0))) {
    const auto& s = im.sym(n.input(0));
    if (indices.shape().size() > 1)
      fail("{}: gathering a shape with {}-D indices", a.where(), indices.shape().size());
    SymVec out;
    out.scalar = indices.shape().empty();
    const auto size = static_cast<std::int64_t>(s.dims.size());
    for (auto i : indices.data<std::int64_t>()) {
      if (i < -size || i >= size)
        fail("{}: index {} out of range for a shape of rank {}", a.where(), i, size);
      out.dims.push_back(s.dims[static_cast<std::size_t>(i < 0 ? i + size : i)]);
    }
    im.set_sym(n.output(0), out);
    return;
  }
  if (!im.is_const(n.input(0))) {
    fail("{}: Gather on run-time data is not supported (only on constants and shapes)", a.where());
  }
  const auto& data = im.constant(n.input(0));
  const auto rank = data.shape().size();
  const auto axis = static_cast<std::size_t>(normalize_axis(a, a.i("axis", 0), rank));
  const auto dim = data.shape()[axis];
  Shape out(data.shape().begin(), data.shape().begin() + static_cast<std::ptrdiff_t>(axis));
  out.insert(out.end(), indices.shape().begin(), indices.shape().end());
  out.insert(out.end(), data.shape().begin() + static_cast<std::ptrdiff_t>(axis) + 1,
             data.shape().end());
  Tensor result(data.dtype(), out);
  std::int64_t outer = 1, inner = 1;
  for (std::size_t d = 0; d < axis; ++d) outer *= data.shape()[d];
  for (std::size_t d = axis + 1; d < rank; ++d) inner *= data.shape()[d];
  const auto element = size_of(data.dtype());
  const auto chunk = static_cast<std::size_t>(inner) * element;
  std::size_t written = 0;
  const auto idx = indices.data<std::int64_t>();
  for (std::int64_t o = 0; o < outer; ++o) {
    for (auto i : idx) {
      if (i < -dim || i >= dim)
        fail("{}: index {} out of range for axis of size {}", a.where(), i, dim);
      if (i < 0) i += dim;
      std::memcpy(result.raw() + written,
                  data.raw() + static_cast<std::size_t>(o * dim + i) * chunk, chunk);
      written += chunk;
    }
  }
  im.set_const(n.output(0), std::move(result));
}

void cast(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"to"});
  const auto to = onnx_io::ir_dtype_of(static_cast<int>(a.i("to", 0)));
  if (!to)
    a.unsupported(
        "to", "= " + onnx_io::onnx_type_name(static_cast<int>(a.i("to", 0))) + " is not supported");
  if (im.is_sym(n.input(0)) && !im.is_const(n.input(0))) {
    if (*to != DType::i64)
      fail("{}: a shape cast to {} cannot be folded", a.where(), to_string(*to));
    im.set_sym(n.output(0), im.sym(n.input(0)));
    return;
  }
  if (im.is_const(n.input(0))) {
    im.set_const(n.output(0), im.constant(n.input(0)).to(*to));
    return;
  }
  if (im.info(n.input(0)).dtype == *to) {
    im.set_alias(n.output(0), n.input(0));
    return;
  }
  fail("{}: Cast of run-time values from {} to {} is not supported", a.where(),
       to_string(im.info(n.input(0)).dtype), to_string(*to));
}

const std::vector<OpRule>& op_rules() {
  static const std::vector<OpRule> rules = {
      {"Conv", 1, kMaxOpset, conv},
      {"MaxPool", 1, kMaxOpset, pool},
      {"AveragePool", 1, kMaxOpset, pool},
      {"GlobalAveragePool", 1, kMaxOpset, global_average_pool},
      {"Relu", 6, kMaxOpset, activation},
      {"LeakyRelu", 6, kMaxOpset, activation},
      {"Sigmoid", 6, kMaxOpset, activation},
      {"Tanh", 6, kMaxOpset, activation},
      {"Softmax", 1, kMaxOpset, softmax},
      {"LogSoftmax", 1, kMaxOpset, softmax},
      {"Gemm", 6, kMaxOpset, gemm},
      {"MatMul", 1, kMaxOpset, matmul},
      {"Add", 6, kMaxOpset, arithmetic},
      {"Sub", 6, kMaxOpset, arithmetic},
      {"Mul", 6, kMaxOpset, arithmetic},
      {"Div", 6, kMaxOpset, arithmetic},
      {"Flatten", 1, kMaxOpset, flatten},
      {"Reshape", 5, kMaxOpset, reshape},
      {"Reshape", 1, 4, reshape_v1},
      {"Transpose", 1, kMaxOpset, transpose},
      {"Concat", 1, kMaxOpset, concat},
      {"Dropout", 6, kMaxOpset, dropout},
      {"BatchNormalization", 6, kMaxOpset, batch_norm},
      {"Identity", 1, kMaxOpset, identity},
      {"Constant", 1, kMaxOpset, constant},
      {"Clip", 6, kMaxOpset, clip},
      {"Pad", 2, kMaxOpset, pad},
      {"Squeeze", 1, kMaxOpset, squeeze},
      {"Unsqueeze", 1, kMaxOpset, squeeze},
      {"Shape", 1, kMaxOpset, shape_op},
      {"Gather", 1, kMaxOpset, gather},
      {"Cast", 6, kMaxOpset, cast},
  };
  return rules;
}

const OpRule* find_rule(const std::string& op, int opset) {
  for (const auto& rule : op_rules()) {
    if (rule.op == op && rule.since <= opset && opset <= rule.until) return &rule;
  }
  return nullptr;
}

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
    // Only the node named cut_at (or producing that value) and what it depends on.
    int target = -1;
    for (int i = 0; i < graph.node_size(); ++i) {
      if (graph.node(i).name() == cut_at_) target = i;
    }
    if (target < 0) {
      if (auto it = producer.find(cut_at_); it != producer.end()) target = it->second;
    }
    if (target < 0) {
      fail("cut: the model has no node or node output named '{}'", cut_at_);
    }
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
    const OpRule* rule = find_rule(node.op_type(), opset_);
    if (!rule) {
      fail("{}: op '{}' is not supported at opset {} (supported: {})", where_, node.op_type(),
           opset_, fmt::join(supported_onnx_ops(), ", "));
    }
    // Arity first: handlers index inputs and outputs directly.
    static const std::map<std::string, int> min_inputs = {
        {"Conv", 2},   {"Gemm", 2},    {"MatMul", 2}, {"Add", 2},
        {"Sub", 2},    {"Mul", 2},     {"Div", 2},    {"BatchNormalization", 5},
        {"Gather", 2}, {"Constant", 0}};
    int needed = 1;
    if (auto it = min_inputs.find(node.op_type()); it != min_inputs.end()) needed = it->second;
    if ((node.op_type() == "Reshape" && opset_ >= 5) || (node.op_type() == "Pad" && opset_ >= 11)) {
      needed = 2;
    }
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

  // Graph outputs keep their names: an aliased or constant output gets an Identity.
  where_ = "graph outputs";
  std::vector<std::string> output_names;
  for (const auto& o : g.output()) output_names.push_back(o.name());
  if (!cut_output_.empty()) output_names = {cut_output_};
  for (const auto& name : output_names) {
    const auto r = resolve(name);
    if (r == name) {
      graph_.outputs.push_back(use(r));
      continue;
    }
    node_name_ = name + "/identity";
    const auto source = use(name);
    emit("Identity", {source}, {}, name);
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
  // MatMul + Add exports (tf2onnx, Keras) become Dense layers with a bias.
  return fuse_dense_bias(std::move(graph_));
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail("{}: no such file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::string bytes;
  const auto size = fs::file_size(path);
  bytes.resize(static_cast<std::size_t>(size));
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (!in) fail("{}: cannot read", path);
  return bytes;
}

// External locations are checked before the checker touches them.
void check_external_locations(const onnx::ModelProto& model, const fs::path& dir) {
  auto check = [&](const onnx::TensorProto& t, const std::string& what) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) return;
    for (const auto& e : t.external_data()) {
      if (e.key() == "location") onnx_io::external_file(e.value(), dir, what);
    }
  };
  for (const auto& t : model.graph().initializer()) check(t, "initializer '" + t.name() + "'");
  for (const auto& n : model.graph().node()) {
    for (const auto& a : n.attribute()) {
      if (a.has_t()) check(a.t(), "node '" + n.name() + "' attribute '" + a.name() + "'");
    }
  }
}

bool has_external_data(const onnx::ModelProto& model) {
  for (const auto& t : model.graph().initializer()) {
    if (t.data_location() == onnx::TensorProto::EXTERNAL) return true;
  }
  for (const auto& n : model.graph().node()) {
    for (const auto& a : n.attribute()) {
      if (a.has_t() && a.t().data_location() == onnx::TensorProto::EXTERNAL) return true;
    }
  }
  return false;
}

}  // namespace

namespace onnx_io {

Graph import_model(onnx::ModelProto& model, const fs::path& model_dir,
                   const std::string& model_path, bool check,
                   const std::map<std::string, Shape>& input_shapes,
                   const std::map<std::string, Tensor>& constants, const std::string& cut_at) {
  int opset = -1;
  for (const auto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = static_cast<int>(o.version());
  }
  if (!model.has_graph()) fail("the model has no graph");
  if (opset < 0) fail("the model imports no opset of the default ONNX domain");
  check_external_locations(model, model_dir);
  if (check) {
    try {
      if (has_external_data(model) && !model_path.empty()) {
        onnx::checker::check_model(model_path);
      } else {
        onnx::checker::check_model(model);
      }
    } catch (const onnx::checker::ValidationError& e) {
      std::string message = e.what();
      std::replace(message.begin(), message.end(), '\n', ' ');
      fail("the ONNX checker rejects the model: {}", message);
    }
  }
  if (opset < kMinOpset || opset > kMaxOpset) {
    fail("opset {} is not supported (supported: {} to {})", opset, kMinOpset, kMaxOpset);
  }
  Importer importer(model, model_dir, opset);
  importer.cut_at_ = cut_at;
  return importer.run(input_shapes, constants);
}

}  // namespace onnx_io

std::vector<std::string> supported_onnx_ops() {
  std::set<std::string> names;
  for (const auto& rule : op_rules()) names.insert(rule.op);
  return {names.begin(), names.end()};
}

bool is_supported_onnx_op(const std::string& op, int opset) {
  return find_rule(op, opset) != nullptr;
}

Graph import_onnx(const std::string& path, const ImportOptions& options) {
  try {
    onnx::ModelProto model;
    {
      const std::string bytes = read_file(path);  // released once parsed
      onnx_io::parse_model(bytes, model, "model");
    }
    const auto dir = fs::absolute(fs::path(path)).parent_path();
    return onnx_io::import_model(model, dir, path, options.check, options.input_shapes,
                                 options.constants, options.cut_at);
  } catch (const Error& e) {
    const std::string message = e.what();
    if (message.rfind(path + ":", 0) == 0) throw;
    fail("{}: {}", path, message);
  }
}

Graph import_onnx_bytes(const std::string& bytes, const std::string& model_dir,
                        const ImportOptions& options) {
  onnx::ModelProto model;
  onnx_io::parse_model(bytes, model, "model");
  return onnx_io::import_model(model, model_dir, "", options.check, options.input_shapes,
                               options.constants, options.cut_at);
}

Graph load_model(const std::string& name_or_path, const ModelOptions& builtin,
                 const ImportOptions& onnx) {
  const bool looks_like_file =
      name_or_path.find('/') != std::string::npos || name_or_path.find('.') != std::string::npos;
  if (looks_like_file || fs::exists(name_or_path)) return import_onnx(name_or_path, onnx);
  return build_model(name_or_path, builtin);
}

}  // namespace onnxforge
