// Elementwise ops: activations, Identity (an alias), Clip and Dropout (their opset 11/12 inputs
// become attributes).
#include "core/error.hpp"
#include "importers/onnx_import/importer.hpp"

namespace onnxforge::onnx_import {

namespace {

void activation(OpId op, Importer& im, const onnx::NodeProto& n, Attrs& a) {
  std::map<std::string, Attribute> attrs;
  if (op == OpId::LeakyRelu) {
    a.allow({"alpha"});
    attrs["alpha"] = a.f("alpha", 0.01);
  } else {
    a.allow({});
  }
  im.emit_or_fold(op, {n.input(0)}, attrs, n.output(0));
}

void identity(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({});
  if (im.is_sym(n.input(0))) {
    im.set_sym(n.output(0), im.sym(n.input(0)));
    return;
  }
  im.set_alias(n.output(0), n.input(0));
}

void clip(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  std::map<std::string, Attribute> attrs;
  auto scalar = [&](const Tensor* t, const char* what) {
    if (t->size() != 1) fail("{}: {} must be a scalar", a.where(), what);
    return scalar_value(*t);
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
  im.emit_or_fold(OpId::Clip, {n.input(0)}, attrs, n.output(0));
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
      ratio = scalar_value(*r);
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
  im.emit(OpId::Dropout, {im.use(n.input(0))}, {{"ratio", ratio}}, n.output(0));
}

}  // namespace

std::vector<OpRule> elementwise_rules() {
  return {
      rule(OpId::Relu, activation),    rule(OpId::LeakyRelu, activation),
      rule(OpId::Sigmoid, activation), rule(OpId::Tanh, activation),
      rule(OpId::Identity, identity),  rule(OpId::Clip, clip),
      rule(OpId::Dropout, dropout),
  };
}

}  // namespace onnxforge::onnx_import
