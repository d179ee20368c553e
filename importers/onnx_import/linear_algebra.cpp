// Linear algebra: Conv (1-D lifted to 2-D, auto_pad resolved), Gemm (as Dense, plus Transpose,
// Mul and Add where alpha, beta or the layouts need them) and MatMul (a constant 2-D B becomes a
// Dense; 1-D operands are reshaped to 2-D and back).
#include "core/error.hpp"
#include "graph/passes.hpp"
#include "importers/onnx_import/importer.hpp"

namespace onnxforge::onnx_import {

namespace {

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
      OpId::Conv, inputs,
      {{"strides", strides}, {"pads", pads}, {"dilations", dilations}, {"group", a.i("group", 1)}},
      out);
  if (one_d) lower_value(im, out, n.output(0));
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
    x = im.emit(OpId::Transpose, {x}, {{"perm", std::vector<std::int64_t>{1, 0}}},
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
    im.inherit_trainable(w, n.input(1));
    w = im.use(w);
  } else if (trans_b) {
    w = im.use(n.input(1));
  } else {
    w = im.emit(OpId::Transpose, {im.use(n.input(1))}, {{"perm", std::vector<std::int64_t>{1, 0}}},
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
      im.emit(OpId::Dense, inputs, {}, last ? out : im.temp(out + "/dense"), last ? "" : "/dense");
  if (scale_after) {
    const auto s = im.temp(out + "/alpha");
    im.set_const(s, Tensor::from<double>({}, std::vector<double>{alpha}).to(im.info(y).dtype));
    y = im.emit(OpId::Mul, {y, im.use(s)}, {}, add_after ? im.temp(out + "/scaled") : out,
                "/alpha");
  }
  if (add_after) {
    std::string c = im.use(c_name);
    if (beta != 1.0) {
      const auto s = im.temp(out + "/beta");
      im.set_const(s, Tensor::from<double>({}, std::vector<double>{beta}).to(im.info(c).dtype));
      c = im.emit(OpId::Mul, {c, im.use(s)}, {}, im.temp(out + "/C_scaled"), "/beta");
    }
    im.emit(OpId::Add, {y, c}, {}, out, "/add");
  }
}

void matmul(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({});
  const auto out = n.output(0);
  auto ai = im.info(n.input(0));
  auto bi = im.info(n.input(1));
  if (ai.shape.empty() || bi.shape.empty()) fail("{}: {} of a scalar", a.where(), n.op_type());
  // A 2-D constant B on a 2-D A: a Dense layer with W = B^T.
  if (ai.shape.size() == 2 && bi.shape.size() == 2 && im.is_const(n.input(1)) &&
      !im.is_const(n.input(0))) {
    const auto w = im.temp(im.resolve(n.input(1)) + "/transposed");
    im.set_const(w, transpose_tensor(im.constant(n.input(1)), {1, 0}));
    im.inherit_trainable(w, n.input(1));
    im.emit(OpId::Dense, {im.use(n.input(0)), im.use(w)}, {}, out);
    return;
  }
  std::string x = im.use(n.input(0));
  std::string y = im.use(n.input(1));
  const bool a_vector = ai.shape.size() == 1;
  const bool b_vector = bi.shape.size() == 1;
  if (a_vector) {
    x = im.emit(OpId::Reshape, {x}, {{"shape", std::vector<std::int64_t>{1, ai.shape[0]}}},
                im.temp(out + "/A_2d"), "/a_2d");
  }
  if (b_vector) {
    y = im.emit(OpId::Reshape, {y}, {{"shape", std::vector<std::int64_t>{bi.shape[0], 1}}},
                im.temp(out + "/B_2d"), "/b_2d");
  }
  if (!a_vector && !b_vector) {
    im.emit(OpId::MatMul, {x, y}, {}, out);
    return;
  }
  const auto product = im.emit(OpId::MatMul, {x, y}, {}, im.temp(out + "/2d"), "/matmul");
  Shape shape = im.info(product).shape;
  if (b_vector) shape.pop_back();
  if (a_vector) shape.erase(shape.end() - (b_vector ? 1 : 2));
  std::vector<std::int64_t> target(shape.begin(), shape.end());
  for (std::size_t i = 0; i < target.size(); ++i) target[i] = target[i] == kDynamic ? 0 : target[i];
  im.emit(OpId::Reshape, {product}, {{"shape", target}}, out, "/reshape");
}

}  // namespace

std::vector<OpRule> linear_algebra_rules() {
  return {
      rule(OpId::Conv, conv, 2),
      rule("Gemm", 6, gemm, 2),
      rule(OpId::MatMul, matmul, 2),
  };
}

}  // namespace onnxforge::onnx_import
