// Internal to the ONNX importer (importers/onnx_import/): the Importer (value table, constants
// and symbolic shapes folded at import, the run loop), a node's attributes, the op rules and the
// helpers the op handlers share. One file per op family holds the handlers and their rules
// (elementwise.cpp, binary.cpp, pooling.cpp, normalization.cpp, linear_algebra.cpp, shape.cpp),
// as graph/ops/ does; importer.cpp assembles the rule table. Includes <onnx/onnx_pb.h>: only
// importers/ sees it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "graph/graph.hpp"
#include "graph/op_id.hpp"
#include "importers/onnx_import.hpp"
#include "importers/onnx_proto.hpp"

namespace onnxforge::onnx_import {

// A float attribute as the decimal its author most likely wrote (0.001f -> 0.001), so that
// exported-then-imported graphs compute with the same doubles as the originals.
double decimal_of(float value);

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

// The attributes of one ONNX node, read with type checks; errors start with `where`.
class Attrs {
 public:
  Attrs(const onnx::NodeProto& node, std::string where);
  const std::string& where() const { return where_; }

  // Every attribute present must be one of `known`.
  void allow(std::initializer_list<const char*> known) const;
  bool has(const std::string& name) const { return map_.count(name) != 0; }
  // A 1-D window seen as 2-D (height 1): kernel_shape, strides, dilations, pads gain a leading
  // 1 (or 0 for pads).
  void lift_1d();
  std::int64_t i(const std::string& name, std::int64_t fallback) const;
  double f(const std::string& name, double fallback) const;
  std::string s(const std::string& name, const std::string& fallback) const;
  std::vector<std::int64_t> ints(const std::string& name, std::vector<std::int64_t> fallback) const;
  std::vector<double> floats(const std::string& name) const;
  const onnx::TensorProto* tensor(const std::string& name) const;
  [[noreturn]] void unsupported(const std::string& name, const std::string& why) const;

 private:
  const onnx::AttributeProto* get(const std::string& name, int type, const char* what) const;
  std::string where_;
  std::map<std::string, const onnx::AttributeProto*> map_;
  std::map<std::string, std::vector<std::int64_t>> lifted_;
};

// Maps one model's nodes onto an IR graph. ONNX values are run-time values (IR values), constants
// (initializers and what is computed from them at import), symbolic shape vectors (Shape of a
// value with a dynamic batch, and what Gather/Concat/... make of it) or aliases of another value.
class Importer {
 public:
  Importer(onnx::ModelProto& model, std::filesystem::path model_dir, int opset, std::string cut_at,
           std::vector<UnsupportedNode>* unsupported = nullptr);

  int opset() const { return opset_; }
  const std::string& where() const { return where_; }

  Graph run(const std::map<std::string, Shape>& input_shapes,
            const std::map<std::string, Tensor>& constants);

  // ---- values ----------------------------------------------------------------------------
  std::string resolve(const std::string& name) const;
  bool is_const(const std::string& name) const;
  bool is_sym(const std::string& name) const { return syms_.count(resolve(name)) != 0; }
  const SymVec& sym(const std::string& name) const { return syms_.at(resolve(name)); }

  // The constant value of `name` (throws when it is not one).
  const Tensor& constant(const std::string& name);
  // A constant input, or nullptr for an omitted optional input.
  const Tensor* optional_constant(const onnx::NodeProto& node, int index);

  // Dtype and shape of any value.
  ValueInfo info(const std::string& name);

  // The IR value to feed a node: constants become initializers.
  std::string use(const std::string& name);

  void set_const(const std::string& name, Tensor value);
  void set_sym(const std::string& name, SymVec value);
  void set_alias(const std::string& name, const std::string& target);

  // A fresh value name derived from `base`.
  std::string temp(const std::string& base);

  // Appends an IR node computing `output` and infers its shape.
  std::string emit(OpId op, std::vector<std::string> inputs,
                   std::map<std::string, Attribute> attributes, const std::string& output,
                   const std::string& suffix = "");

  // A node whose inputs may all be constants: folded when the folder can evaluate it.
  void emit_or_fold(OpId op, const std::vector<std::string>& onnx_inputs,
                    std::map<std::string, Attribute> attributes, const std::string& output);

  bool is_consumed(const std::string& name) const { return consumed_.count(name) != 0; }
  // A constant derived from an ONNX initializer stays trainable like it.
  void inherit_trainable(const std::string& derived, const std::string& source);

  std::set<std::string> bn_statistics;  // initializers never trainable

 private:
  bool all_known(const std::string& r) const;
  static Tensor sym_to_tensor(const SymVec& s);
  void topological_order();
  void import_node(const onnx::NodeProto& node);
  // Lenient import (ImportOptions::unsupported): shapes from ONNX shape inference, and a node
  // that cannot be mapped recorded with placeholders for its outputs.
  void infer_onnx_shapes();
  void record_unsupported(const onnx::NodeProto& node, std::string reason);
  std::vector<UnsupportedNode>* unsupported_ = nullptr;
  std::map<std::string, ValueInfo> onnx_shapes_;
  std::map<std::string, std::string> unmapped_;  // an output without a placeholder -> its node

  std::string cut_at_;
  std::string cut_output_;

  onnx::ModelProto& model_;
  std::filesystem::path dir_;
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

// ---- op rules ----------------------------------------------------------------------------------

// Maps one ONNX node (its attributes already collected) onto IR nodes, constants or aliases.
using Handler = void (*)(Importer&, const onnx::NodeProto&, Attrs&);
// The same for a handler serving several IR ops (MaxPool and AveragePool, ...): it gets the op.
using OpHandler = void (*)(OpId, Importer&, const onnx::NodeProto&, Attrs&);

// How the importer reads one ONNX op over a range of opsets. The run loop checks `min_inputs`
// (present and non-empty) and a first output before the handler runs, so handlers index those
// directly.
struct OpRule {
  std::string onnx_op;
  int since = 1;
  int until = kMaxOpset;
  int min_inputs = 1;
  std::function<void(Importer&, const onnx::NodeProto&, Attrs&)> handler;
};

// The opsets of a rule for an IR op: `since` 0 is the op's first ONNX opset
// (op_def(id).onnx_since).
struct Opsets {
  int since = 0;
  int until = kMaxOpset;
};

// A rule for the ONNX form of an IR op (op_type op_name(id)).
OpRule rule(OpId id, Handler handler, int min_inputs = 1, Opsets opsets = {});
OpRule rule(OpId id, OpHandler handler, int min_inputs = 1, Opsets opsets = {});
// A rule for an ONNX op that is not an IR op (Gemm, Constant, Squeeze, ...), from opset `since`.
OpRule rule(std::string_view onnx_op, int since, Handler handler, int min_inputs = 1);

// Each family's rules (onnx_import/<family>.cpp).
std::vector<OpRule> elementwise_rules();
std::vector<OpRule> binary_rules();
std::vector<OpRule> pooling_rules();
std::vector<OpRule> normalization_rules();
std::vector<OpRule> linear_algebra_rules();
std::vector<OpRule> shape_rules();
// Slice, Expand, ReduceMean, ReduceSum, Resize (new_ops.cpp).
std::vector<OpRule> new_op_rules();

// All rules; checked once: no IR op without a rule from its onnx_since, no overlapping opsets.
const std::vector<OpRule>& op_rules();
// The rule for `op` at `opset`, or nullptr.
const OpRule* find_rule(const std::string& op, int opset);

// ---- helpers for handlers (helpers.cpp) --------------------------------------------------------

std::int64_t normalize_axis(const Attrs& a, std::int64_t axis, std::size_t rank);
const std::string& input_or_empty(const onnx::NodeProto& n, int i);
// Fails when an output after the first is read by a node or the graph.
void only_first_output_used(Importer& im, const onnx::NodeProto& n, const Attrs& a);
// A constant 1-D (or scalar) integer input's values (shapes, axes, starts, ...); `what` names it.
std::vector<std::int64_t> ints_of(Importer& im, const std::string& name, const Attrs& a,
                                  const char* what);
// A scalar input's value (a float32 one as the decimal its author most likely wrote).
double scalar_value(const Tensor& t);

// Explicit pads [top,left,bottom,right] of a 2-D window from pads or auto_pad.
std::vector<std::int64_t> window_pads(const Attrs& a, const Shape& x, const Shape& kernel,
                                      const std::vector<std::int64_t>& strides,
                                      const std::vector<std::int64_t>& dilations);
// A 2-value window attribute (strides, dilations), [1, 1] when absent.
std::vector<std::int64_t> pair_attr(const Attrs& a, const char* name);
// [N,C,L] -> [N,C,1,L] (a constant is reshaped at import); returns the new value's name.
std::string lift_value(Importer& im, const std::string& name, const std::string& suffix);
// [N,C,1,L] -> [N,C,L] into `output`.
void lower_value(Importer& im, const std::string& name, const std::string& output);

// ---- external data (external_data.cpp) ---------------------------------------------------------

// External locations are checked before the checker touches them.
void check_external_locations(const onnx::ModelProto& model, const std::filesystem::path& dir);
bool has_external_data(const onnx::ModelProto& model);

}  // namespace onnxforge::onnx_import
