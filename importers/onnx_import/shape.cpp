// Shape ops and the constants and shape vectors folded at import: Flatten, Reshape, Transpose,
// Concat, Pad and Slice (IR ops; their ONNX inputs become attributes; Slice also folds shape
// vectors, tf2onnx's Flatten), Split (one Slice per output, or a fold), Squeeze and Unsqueeze (a
// Reshape, or a fold), Shape, Gather, Cast, Constant and ConstantOfShape (import time only:
// constants and symbolic shapes).
#include <algorithm>
#include <cstring>

#include "core/error.hpp"
#include "graph/ops.hpp"
#include "importers/onnx_import/importer.hpp"

namespace onnxforge::onnx_import {

namespace {

void flatten(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"axis"});
  const auto x = im.info(n.input(0));
  auto axis = a.i("axis", 1);
  const auto rank = static_cast<std::int64_t>(x.shape.size());
  if (axis < -rank || axis > rank)
    fail("{}: axis {} out of range for rank {}", a.where(), axis, rank);
  if (axis < 0) axis += rank;
  im.emit_or_fold(OpId::Flatten, {n.input(0)}, {{"axis", axis}}, n.output(0));
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
  im.emit_or_fold(OpId::Reshape, {n.input(0)}, {{"shape", t}}, n.output(0));
}

// Opset 1-4: the target shape is an attribute.
void reshape_v1(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"shape"});
  const auto x = im.info(n.input(0));
  const auto t = ir_target(a, x.shape, a.ints("shape", {}), false);
  im.emit_or_fold(OpId::Reshape, {n.input(0)}, {{"shape", t}}, n.output(0));
}

void transpose(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"perm"});
  const auto rank = im.info(n.input(0)).shape.size();
  std::vector<std::int64_t> reversed;
  for (auto i = static_cast<std::int64_t>(rank); i-- > 0;) reversed.push_back(i);
  im.emit_or_fold(OpId::Transpose, {n.input(0)}, {{"perm", a.ints("perm", reversed)}}, n.output(0));
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
  im.emit_or_fold(OpId::Concat, inputs, {{"axis", axis}}, n.output(0));
}

// The IR's Pad from the pads and value read by the rule of the opset.
void emit_pad(Importer& im, const onnx::NodeProto& n, const Attrs& a,
              std::vector<std::int64_t> pads, double value, const std::string& mode) {
  if (mode != "constant" && mode != "reflect" && mode != "edge") {
    a.unsupported("mode", "= '" + mode + "' is not one of constant, reflect, edge");
  }
  std::map<std::string, Attribute> attrs{{"pads", std::move(pads)}, {"mode", mode}};
  if (mode == "constant") attrs["value"] = value;
  im.emit(OpId::Pad, {im.use(n.input(0))}, attrs, n.output(0));
}

// Opset 2-10: pads and value are attributes.
void pad_v2(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  const auto mode = a.s("mode", "constant");
  a.allow({"mode", "pads", "value"});
  auto pads = a.ints("pads", {});
  const double value = a.f("value", 0.0);
  emit_pad(im, n, a, std::move(pads), value, mode);
}

// Opset 11+: pads and constant_value are inputs (constants).
void pad_v11(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  const auto mode = a.s("mode", "constant");
  a.allow({"mode"});
  const auto& p = im.constant(n.input(1));
  if (p.dtype() != DType::i64) fail("{}: pads must be int64", a.where());
  std::vector<std::int64_t> pads(p.data<std::int64_t>().begin(), p.data<std::int64_t>().end());
  double value = 0.0;
  if (const auto* v = im.optional_constant(n, 2)) {
    if (v->size() != 1) fail("{}: constant_value must be a scalar", a.where());
    value = scalar_value(*v);
  }
  if (n.input_size() > 3 && !n.input(3).empty())
    fail("{}: the axes input is not supported", a.where());
  emit_pad(im, n, a, std::move(pads), value, mode);
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
void squeeze_or_unsqueeze(Importer& im, const onnx::NodeProto& n, Attrs& a, bool unsqueeze) {
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
  im.emit(OpId::Reshape, {im.use(n.input(0))}, {{"shape", target}}, n.output(0));
}

void squeeze(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  squeeze_or_unsqueeze(im, n, a, false);
}

void unsqueeze(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  squeeze_or_unsqueeze(im, n, a, true);
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

// A Slice node of the IR's form (starts, ends, axes, steps as attributes) for what ONNX gave as
// attributes (opset 1-9) or constant inputs (10 on); graph/ops.hpp slice_axes applies its rules.
Node slice_node(Importer& im, const onnx::NodeProto& n, const Attrs& a) {
  Node node{
      n.name().empty() ? n.op_type() : n.name(), std::string(op_name(OpId::Slice)), {}, {}, {}};
  if (im.opset() < 10) {
    a.allow({"starts", "ends", "axes"});
    node.attributes = {{"starts", a.ints("starts", {})}, {"ends", a.ints("ends", {})}};
    if (a.has("axes")) node.attributes["axes"] = a.ints("axes", {});
    return node;
  }
  a.allow({});
  if (n.input_size() < 3) fail("{}: needs the inputs data, starts and ends", a.where());
  node.attributes = {{"starts", ints_of(im, n.input(1), a, "starts")},
                     {"ends", ints_of(im, n.input(2), a, "ends")}};
  const char* optional[] = {"axes", "steps"};
  for (int i = 3; i < 5; ++i) {
    if (n.input_size() > i && !n.input(i).empty())
      node.attributes[optional[i - 3]] = ints_of(im, n.input(i), a, optional[i - 3]);
  }
  return node;
}

// A constant sliced at import (any dtype, byte by byte).
Tensor slice_constant(const Tensor& x, const std::vector<SliceAxis>& axes) {
  Shape out_shape;
  for (const auto& r : axes) out_shape.push_back(r.count);
  Tensor out(x.dtype(), out_shape);
  const auto element = size_of(x.dtype());
  const auto rank = x.shape().size();
  std::vector<std::int64_t> strides(rank, 1);
  for (std::size_t d = rank; d-- > 1;) strides[d - 1] = strides[d] * x.shape()[d];
  std::vector<std::int64_t> index(rank, 0);
  const auto total = element_count(out_shape);
  for (std::int64_t i = 0; i < total; ++i) {
    std::int64_t source = 0;
    for (std::size_t d = 0; d < rank; ++d)
      source += (axes[d].start + index[d] * axes[d].step) * strides[d];
    std::memcpy(out.raw() + static_cast<std::size_t>(i) * element,
                x.raw() + static_cast<std::size_t>(source) * element, element);
    for (std::size_t d = rank; d-- > 0;) {
      if (++index[d] < axes[d].count) break;
      index[d] = 0;
    }
  }
  return out;
}

// `input` sliced by `slice` into `output`: a shape vector (tf2onnx's Flatten: Shape -> Slice ->
// Concat -> Reshape) or a constant at import; a run-time value by the IR's Slice.
void slice_value(Importer& im, const Node& slice, const std::string& input,
                 const std::string& output) {
  if (im.is_sym(input) && !im.is_const(input)) {
    const auto& s = im.sym(input);
    const auto axis = slice_axes(slice, {static_cast<std::int64_t>(s.dims.size())})[0];
    SymVec out;
    for (std::int64_t i = 0; i < axis.count; ++i)
      out.dims.push_back(s.dims[static_cast<std::size_t>(axis.start + i * axis.step)]);
    im.set_sym(output, out);
  } else if (im.is_const(input)) {
    const auto axes = slice_axes(slice, im.info(input).shape);
    im.set_const(output, slice_constant(im.constant(input), axes));
    im.inherit_trainable(output, input);
  } else {
    im.emit(OpId::Slice, {im.use(input)}, slice.attributes, output);
  }
}

void slice(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  slice_value(im, slice_node(im, n, a), n.input(0), n.output(0));
}

// Split into equal parts or the given sizes: one slice per output (slice_value).
void split(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  std::vector<std::int64_t> sizes;
  if (im.opset() < 13) {
    a.allow({"axis", "split"});
    sizes = a.ints("split", {});
  } else {
    a.allow({"axis"});
    if (n.input_size() > 1 && !n.input(1).empty()) sizes = ints_of(im, n.input(1), a, "split");
  }
  const bool sym = im.is_sym(n.input(0)) && !im.is_const(n.input(0));
  const Shape shape = sym ? Shape{static_cast<std::int64_t>(im.sym(n.input(0)).dims.size())}
                          : im.info(n.input(0)).shape;
  const auto axis = normalize_axis(a, a.i("axis", 0), shape.size());
  const auto dim = shape[static_cast<std::size_t>(axis)];
  if (dim == kDynamic) fail("{}: splitting the dynamic batch axis", a.where());
  const auto parts = static_cast<std::int64_t>(n.output_size());
  if (sizes.empty()) {
    if (dim % parts != 0)
      fail("{}: axis of size {} does not split into {} equal parts", a.where(), dim, parts);
    sizes.assign(static_cast<std::size_t>(parts), dim / parts);
  }
  if (static_cast<std::int64_t>(sizes.size()) != parts)
    fail("{}: {} split sizes for {} outputs", a.where(), sizes.size(), parts);
  std::int64_t start = 0;
  for (int i = 0; i < n.output_size(); ++i) {
    const auto size = sizes[static_cast<std::size_t>(i)];
    if (size < 0 || start + size > dim)
      fail("{}: split sizes [{}] do not fit an axis of size {}", a.where(), fmt::join(sizes, ","),
           dim);
    const Node part{n.name().empty() ? n.op_type() : n.name(),
                    std::string(op_name(OpId::Slice)),
                    {},
                    {},
                    {{"starts", std::vector<std::int64_t>{start}},
                     {"ends", std::vector<std::int64_t>{start + size}},
                     {"axes", std::vector<std::int64_t>{axis}}}};
    start += size;
    if (!n.output(i).empty()) slice_value(im, part, n.input(0), n.output(i));
  }
  if (start != dim)
    fail("{}: split sizes [{}] sum to {}, not the axis size {}", a.where(), fmt::join(sizes, ","),
         start, dim);
}

// ConstantOfShape of a known shape: a constant (the value attribute, float 0 by default).
void constant_of_shape(Importer& im, const onnx::NodeProto& n, Attrs& a) {
  a.allow({"value"});
  if (im.is_sym(n.input(0)) && !im.is_const(n.input(0))) {
    fail("{}: the shape depends on the dynamic batch; import with a fixed input shape", a.where());
  }
  const auto& shape_tensor = im.constant(n.input(0));
  Shape shape;
  for (const auto d : shape_tensor.data<std::int64_t>()) {
    if (d < 0) fail("{}: negative dimension {}", a.where(), d);
    shape.push_back(d);
  }
  Tensor fill = Tensor::from<float>({1}, std::vector<float>{0.0f});
  if (const auto* t = a.tensor("value")) fill = onnx_io::read_tensor(*t, {}, a.where() + " value");
  if (fill.size() != 1) fail("{}: value must hold one element", a.where());
  Tensor out(fill.dtype(), shape);
  const auto element = size_of(fill.dtype());
  for (std::int64_t i = 0; i < out.size(); ++i)
    std::memcpy(out.raw() + static_cast<std::size_t>(i) * element, fill.raw(), element);
  im.set_const(n.output(0), std::move(out));
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

}  // namespace

std::vector<OpRule> shape_rules() {
  return {
      rule(OpId::Flatten, flatten),
      rule(OpId::Reshape, reshape_v1, 1, {.until = 4}),
      rule(OpId::Reshape, reshape, 2, {.since = 5}),
      rule(OpId::Transpose, transpose),
      rule(OpId::Concat, concat),
      rule(OpId::Pad, pad_v2, 1, {.until = 10}),
      rule(OpId::Pad, pad_v11, 2, {.since = 11}),
      rule("Squeeze", 1, squeeze),
      rule("Unsqueeze", 1, unsqueeze),
      rule("Shape", 1, shape_op),
      rule("Gather", 1, gather, 2),
      rule("Cast", 6, cast),
      rule(OpId::Slice, slice),
      rule("Split", 2, split),
      rule("ConstantOfShape", 9, constant_of_shape),
      rule("Constant", 1, constant, 0),
  };
}

}  // namespace onnxforge::onnx_import
