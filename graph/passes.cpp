#include "graph/passes.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#include "core/error.hpp"
#include "core/strides.hpp"
#include "graph/node_lookup.hpp"
#include "graph/ops.hpp"

namespace onnxforge {

namespace {

Tensor from_doubles(DType dtype, const Shape& shape, const std::vector<double>& values) {
  return Tensor::from<double>(shape, values).to(dtype);
}

std::optional<Tensor> binary(const Node& node, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype()) return std::nullopt;
  const Shape out = broadcast_shapes(a.shape(), b.shape(), node);
  const auto oa = broadcast_offsets(a.shape(), out);
  const auto ob = broadcast_offsets(b.shape(), out);
  const auto n = oa.size();
  if (a.dtype() == DType::i64) {
    const auto x = a.data<std::int64_t>();
    const auto y = b.data<std::int64_t>();
    std::vector<std::int64_t> r(n);
    for (std::size_t i = 0; i < n; ++i) {
      const auto u = x[static_cast<std::size_t>(oa[i])];
      const auto v = y[static_cast<std::size_t>(ob[i])];
      // Two's complement wrap-around on overflow, as ONNX runtimes compute int64 (signed
      // overflow is undefined in C++, so the arithmetic is done unsigned).
      const auto uu = static_cast<std::uint64_t>(u);
      const auto uv = static_cast<std::uint64_t>(v);
      if (node.is(OpId::Add)) {
        r[i] = static_cast<std::int64_t>(uu + uv);
      } else if (node.is(OpId::Sub)) {
        r[i] = static_cast<std::int64_t>(uu - uv);
      } else if (node.is(OpId::Mul)) {
        r[i] = static_cast<std::int64_t>(uu * uv);
      } else {
        if (v == 0) fail("node '{}' (Div): integer division by zero while folding", node.name);
        r[i] = v == -1 ? static_cast<std::int64_t>(0 - uu) : u / v;
      }
    }
    return Tensor::from<std::int64_t>(out, r);
  }
  if (!is_floating(a.dtype())) return std::nullopt;
  std::vector<double> r(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double u = a.value(oa[i]);
    const double v = b.value(ob[i]);
    if (node.is(OpId::Add)) {
      r[i] = u + v;
    } else if (node.is(OpId::Sub)) {
      r[i] = u - v;
    } else if (node.is(OpId::Mul)) {
      r[i] = u * v;
    } else {
      r[i] = u / v;
    }
  }
  return from_doubles(a.dtype(), out, r);
}

std::optional<Tensor> unary(const Node& node, const Tensor& x) {
  if (!is_floating(x.dtype())) return std::nullopt;
  auto v = x.to_doubles();
  const bool clip = node.is(OpId::Clip);
  const double lo = clip ? attr_float(node, "min") : 0.0;
  const double hi = clip ? attr_float(node, "max") : 0.0;
  for (auto& e : v) {
    if (node.is(OpId::Relu)) {
      e = e > 0 ? e : 0.0;
    } else if (node.is(OpId::Sigmoid)) {
      e = 1.0 / (1.0 + std::exp(-e));
    } else if (node.is(OpId::Tanh)) {
      e = std::tanh(e);
    } else if (clip) {
      e = std::min(std::max(e, lo), hi);
    }
  }
  return from_doubles(x.dtype(), x.shape(), v);
}

std::size_t consumer_count(const Graph& graph, const std::string& value) {
  std::size_t n = 0;
  for (const auto& node : graph.nodes)
    n += std::count(node.inputs.begin(), node.inputs.end(), value);
  n += std::count(graph.outputs.begin(), graph.outputs.end(), value);
  return n;
}

std::string unique_name(const Graph& graph, const std::string& wanted) {
  std::set<std::string> taken;
  for (const auto& in : graph.inputs) taken.insert(in.name);
  for (const auto& init : graph.initializers) taken.insert(init.name);
  for (const auto& node : graph.nodes) {
    taken.insert(node.name);
    taken.insert(node.outputs.begin(), node.outputs.end());
  }
  std::string name = wanted;
  for (int i = 1; taken.count(name); ++i) name = wanted + "_" + std::to_string(i);
  return name;
}

}  // namespace

Tensor transpose_tensor(const Tensor& x, const std::vector<std::int64_t>& perm) {
  const Shape& in = x.shape();
  if (perm.size() != in.size()) {
    fail("transpose: perm of {} entries for a tensor of shape {}", perm.size(), to_string(in));
  }
  Shape out(in.size());
  std::vector<bool> seen(perm.size(), false);
  for (std::size_t i = 0; i < perm.size(); ++i) {
    const auto p = perm[i];
    if (p < 0 || p >= static_cast<std::int64_t>(perm.size()) || seen[static_cast<std::size_t>(p)]) {
      fail("transpose: perm [{}] is not a permutation of 0..{}", fmt::join(perm, ","),
           perm.size() - 1);
    }
    seen[static_cast<std::size_t>(p)] = true;
    out[i] = in[static_cast<std::size_t>(p)];
  }
  Tensor result(x.dtype(), out);
  const auto in_strides = row_major_strides(in);
  const auto element = size_of(x.dtype());
  std::vector<std::int64_t> index(out.size(), 0);
  for (std::int64_t i = 0; i < x.size(); ++i) {
    std::int64_t offset = 0;
    for (std::size_t d = 0; d < out.size(); ++d) {
      offset += index[d] * in_strides[static_cast<std::size_t>(perm[d])];
    }
    std::memcpy(result.raw() + static_cast<std::size_t>(i) * element,
                x.raw() + static_cast<std::size_t>(offset) * element, element);
    for (std::size_t d = out.size(); d-- > 0;) {
      if (++index[d] < out[d]) break;
      index[d] = 0;
    }
  }
  return result;
}

Tensor concat_tensors(const std::vector<const Tensor*>& parts, std::int64_t axis) {
  if (parts.empty()) fail("concat: no tensors");
  const auto rank = static_cast<std::int64_t>(parts[0]->shape().size());
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) fail("concat: axis out of range for rank {}", rank);
  Shape out = parts[0]->shape();
  out[static_cast<std::size_t>(axis)] = 0;
  for (const auto* p : parts) {
    if (p->dtype() != parts[0]->dtype() || p->shape().size() != out.size()) {
      fail("concat: tensors of different dtype or rank");
    }
    for (std::size_t d = 0; d < out.size(); ++d) {
      if (static_cast<std::int64_t>(d) != axis && p->shape()[d] != out[d]) {
        fail("concat: shapes {} and {} differ outside axis {}", to_string(p->shape()),
             to_string(parts[0]->shape()), axis);
      }
    }
    out[static_cast<std::size_t>(axis)] += p->shape()[static_cast<std::size_t>(axis)];
  }
  Tensor result(parts[0]->dtype(), out);
  std::int64_t outer = 1;
  for (std::int64_t d = 0; d < axis; ++d) outer *= out[static_cast<std::size_t>(d)];
  std::size_t written = 0;
  for (std::int64_t o = 0; o < outer; ++o) {
    for (const auto* p : parts) {
      const auto chunk =
          p->byte_size() / static_cast<std::size_t>(std::max<std::int64_t>(outer, 1));
      std::memcpy(result.raw() + written, p->raw() + static_cast<std::size_t>(o) * chunk, chunk);
      written += chunk;
    }
  }
  return result;
}

std::optional<Tensor> evaluate_constant(const Node& node, const std::vector<const Tensor*>& in) {
  for (const auto* t : in) {
    if (!t) return std::nullopt;
  }
  if (in.empty()) return std::nullopt;
  const Tensor& x = *in[0];
  switch (op_of(node)) {
    case OpId::Identity:
    case OpId::Dropout:
      return x;
    case OpId::Reshape:
      return x.reshaped(reshape_target(node, x.shape()));
    case OpId::Flatten: {
      auto axis = attr_int(node, "axis");
      const auto rank = static_cast<std::int64_t>(x.shape().size());
      if (axis < 0) axis += rank;
      std::int64_t outer = 1;
      for (std::int64_t d = 0; d < axis && d < rank; ++d)
        outer *= x.shape()[static_cast<std::size_t>(d)];
      return x.reshaped({outer, outer == 0 ? 0 : x.size() / outer});
    }
    case OpId::Transpose:
      return transpose_tensor(x, attr_ints(node, "perm"));
    case OpId::Concat:
      return concat_tensors(in, attr_int(node, "axis"));
    case OpId::Add:
    case OpId::Sub:
    case OpId::Mul:
    case OpId::Div:
      if (in.size() == 2) return binary(node, x, *in[1]);
      break;
    case OpId::Relu:
    case OpId::Sigmoid:
    case OpId::Tanh:
    case OpId::Clip:
      if (in.size() == 1) return unary(node, x);
      break;
    default:
      break;
  }
  return std::nullopt;
}

Graph prune(Graph graph, bool drop_inputs) {
  std::set<std::string> needed(graph.outputs.begin(), graph.outputs.end());
  std::vector<Node> kept;
  for (auto it = graph.nodes.rbegin(); it != graph.nodes.rend(); ++it) {
    const bool wanted = std::any_of(it->outputs.begin(), it->outputs.end(),
                                    [&](const std::string& o) { return needed.count(o); });
    if (!wanted) continue;
    needed.insert(it->inputs.begin(), it->inputs.end());
    kept.push_back(*it);
  }
  std::reverse(kept.begin(), kept.end());
  graph.nodes = std::move(kept);
  std::erase_if(graph.initializers, [&](const Initializer& i) { return !needed.count(i.name); });
  if (drop_inputs) {
    std::erase_if(graph.inputs, [&](const ValueInfo& v) { return !needed.count(v.name); });
  }
  graph.validate();
  return graph;
}

Graph cut_at(const Graph& graph, const std::string& node_or_value) {
  std::vector<NodeRef> refs;
  for (const auto& node : graph.nodes) refs.push_back({node.name, node.op, node.outputs});
  const auto target =
      find_node_for_cut(refs, node_or_value, fmt::format("cut: graph '{}'", graph.name));
  Graph out = graph;
  out.outputs = {graph.nodes[target].outputs.at(0)};
  return prune(std::move(out), true);
}

Graph cut_from(const Graph& graph, const std::string& value) {
  const Node* producer = graph.producer(value);
  if (!producer) {
    fail("cut from: '{}' is not a node output of graph '{}'", value, graph.name);
  }
  const ValueInfo info = graph.value(value);
  const std::string node = producer->name;
  for (const auto& other : producer->outputs) {
    if (other != value && !other.empty() && consumer_count(graph, other) != 0) {
      fail("cut from '{}': node '{}' has another output '{}' that is still read", value, node,
           other);
    }
  }
  Graph out = graph;
  std::erase_if(out.nodes, [&](const Node& n) { return n.name == node; });
  out.inputs.push_back({value, info.dtype, info.shape});
  return prune(std::move(out), true);
}

Graph with_input_shape(Graph graph, const std::string& name, const Shape& shape) {
  bool found = false;
  for (auto& in : graph.inputs) {
    if (in.name == name) {
      if (in.shape.size() != shape.size()) {
        fail("input '{}' has rank {} ({}); the new shape {} must have the same rank", name,
             in.shape.size(), to_string(in.shape), to_string(shape));
      }
      in.shape = shape;
      found = true;
    }
  }
  if (!found) {
    std::vector<std::string> names;
    for (const auto& in : graph.inputs) names.push_back(in.name);
    fail("graph '{}' has no input '{}' (inputs: {})", graph.name, name, fmt::join(names, ", "));
  }
  graph.validate();
  return graph;
}

Graph remove_identities(Graph graph, bool dropout) {
  std::map<std::string, std::string> replace;
  std::vector<Node> kept;
  const std::set<std::string> outputs(graph.outputs.begin(), graph.outputs.end());
  for (auto& node : graph.nodes) {
    for (auto& in : node.inputs) {
      auto it = replace.find(in);
      if (it != replace.end()) in = it->second;
    }
    const bool removable = node.is(OpId::Identity) || (dropout && node.is(OpId::Dropout));
    if (removable && !outputs.count(node.outputs[0])) {
      replace[node.outputs[0]] = node.inputs[0];
      continue;
    }
    kept.push_back(std::move(node));
  }
  graph.nodes = std::move(kept);
  graph.validate();
  return graph;
}

Graph fold_constants(Graph graph) {
  std::vector<Node> kept;
  for (auto& node : graph.nodes) {
    std::vector<const Tensor*> in;
    bool all_constant = !node.inputs.empty() && node.outputs.size() == 1;
    for (const auto& name : node.inputs) {
      const auto* init = graph.find_initializer(name);
      if (!init || init->trainable) {
        all_constant = false;
        break;
      }
      in.push_back(&init->value);
    }
    std::optional<Tensor> value;
    if (all_constant) value = evaluate_constant(node, in);
    if (!value) {
      kept.push_back(std::move(node));
      continue;
    }
    graph.initializers.push_back(Initializer{node.outputs[0], std::move(*value), false});
  }
  graph.nodes = std::move(kept);
  return prune(std::move(graph));
}

Graph fold_batchnorm(Graph graph) {
  graph.validate();
  bool changed = true;
  while (changed) {
    changed = false;
    for (std::size_t i = 0; i < graph.nodes.size() && !changed; ++i) {
      const Node& bn = graph.nodes[i];
      if (!bn.is(OpId::BatchNormalization)) continue;
      const Node* prev = graph.producer(bn.inputs[0]);
      if (!prev || (!prev->is(OpId::Conv) && !prev->is(OpId::Dense))) continue;
      if (consumer_count(graph, bn.inputs[0]) != 1) continue;
      const Initializer* stats[4];
      bool constant = true;
      for (int k = 0; k < 4; ++k) {
        stats[k] = graph.find_initializer(bn.inputs[static_cast<std::size_t>(k + 1)]);
        constant = constant && stats[k];
      }
      const Initializer* weight = graph.find_initializer(prev->input(1));
      const std::string bias_name = prev->input(2);
      if (!constant || !weight || consumer_count(graph, weight->name) != 1) continue;
      if (!bias_name.empty() &&
          (!graph.find_initializer(bias_name) || consumer_count(graph, bias_name) != 1)) {
        continue;
      }
      const double eps = attr_float(bn, "epsilon");
      const auto scale = stats[0]->value.to_doubles();
      const auto shift = stats[1]->value.to_doubles();
      const auto mean = stats[2]->value.to_doubles();
      const auto var = stats[3]->value.to_doubles();
      const auto channels = static_cast<std::int64_t>(scale.size());
      const Tensor w_old = weight->value;
      if (w_old.shape().empty() || w_old.shape()[0] != channels) continue;
      std::vector<double> s(scale.size());
      for (std::size_t c = 0; c < s.size(); ++c) s[c] = scale[c] / std::sqrt(var[c] + eps);
      auto w = w_old.to_doubles();
      const auto per = static_cast<std::size_t>(w_old.size() / channels);
      for (std::size_t c = 0; c < s.size(); ++c) {
        for (std::size_t j = 0; j < per; ++j) w[c * per + j] *= s[c];
      }
      std::vector<double> b(s.size(), 0.0);
      if (!bias_name.empty()) b = graph.find_initializer(bias_name)->value.to_doubles();
      for (std::size_t c = 0; c < s.size(); ++c) b[c] = (b[c] - mean[c]) * s[c] + shift[c];

      Node conv = *prev;
      const bool trainable = weight->trainable;
      graph.find_initializer(conv.inputs[1])->value = from_doubles(w_old.dtype(), w_old.shape(), w);
      std::string new_bias = bias_name;
      if (new_bias.empty()) {
        new_bias = unique_name(graph, conv.name + "/bias");
        graph.initializers.push_back(
            Initializer{new_bias, from_doubles(w_old.dtype(), {channels}, b), trainable});
        conv.inputs.resize(3);
        conv.inputs[2] = new_bias;
      } else {
        graph.find_initializer(new_bias)->value = from_doubles(w_old.dtype(), {channels}, b);
      }
      conv.outputs[0] = bn.outputs[0];
      const std::string prev_name = prev->name;
      const std::string bn_name = bn.name;
      std::vector<Node> nodes;
      for (auto& n : graph.nodes) {
        if (n.name == bn_name) continue;
        if (n.name == prev_name) {
          nodes.push_back(conv);
        } else {
          nodes.push_back(std::move(n));
        }
      }
      graph.nodes = std::move(nodes);
      changed = true;
    }
  }
  return prune(std::move(graph));
}

Graph absorb_input_transpose(Graph graph) {
  graph.validate();
  for (auto& in : graph.inputs) {
    std::vector<std::size_t> readers;
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
      const auto& n = graph.nodes[i];
      if (std::find(n.inputs.begin(), n.inputs.end(), in.name) != n.inputs.end()) {
        readers.push_back(i);
      }
    }
    if (readers.size() != 1) continue;
    const Node transpose = graph.nodes[readers[0]];
    if (!transpose.is(OpId::Transpose) ||
        attr_ints(transpose, "perm") != std::vector<std::int64_t>{0, 3, 1, 2} ||
        std::count(graph.outputs.begin(), graph.outputs.end(), in.name) != 0 ||
        std::count(graph.outputs.begin(), graph.outputs.end(), transpose.outputs[0]) != 0) {
      continue;
    }
    in.shape = graph.value(transpose.outputs[0]).shape;
    graph.nodes.erase(graph.nodes.begin() + static_cast<std::ptrdiff_t>(readers[0]));
    for (auto& n : graph.nodes) {
      for (auto& i : n.inputs) {
        if (i == transpose.outputs[0]) i = in.name;
      }
    }
  }
  graph.validate();
  return graph;
}

Graph fuse_dense_bias(Graph graph) {
  graph.validate();
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    Node& add = graph.nodes[i];
    if (!add.is(OpId::Add)) continue;
    for (int side = 0; side < 2; ++side) {
      const std::string& x = add.inputs[static_cast<std::size_t>(side)];
      const std::string& c = add.inputs[static_cast<std::size_t>(1 - side)];
      const Node* dense = graph.producer(x);
      const Initializer* bias = graph.find_initializer(c);
      if (!dense || !dense->is(OpId::Dense) || !dense->input(2).empty() || !bias) continue;
      if (consumer_count(graph, x) != 1) continue;
      const auto units = graph.value(dense->input(1)).shape[0];
      const Shape& bs = bias->value.shape();
      const bool fits = (bs == Shape{units}) || (bs == Shape{1, units});
      if (!fits || bias->value.dtype() != graph.value(x).dtype) continue;
      if (bs.size() == 2) {
        if (consumer_count(graph, c) != 1) continue;
        graph.find_initializer(c)->value = bias->value.reshaped({units});
      }
      const std::string out = add.outputs[0];
      const std::string add_name = add.name;
      const std::string bias_name = c;
      for (auto& n : graph.nodes) {
        if (n.outputs[0] == x && n.is(OpId::Dense)) {
          n.inputs.resize(3);
          n.inputs[2] = bias_name;
          n.outputs[0] = out;
        }
      }
      std::erase_if(graph.nodes, [&](const Node& n) { return n.name == add_name; });
      --i;
      break;
    }
  }
  graph.validate();
  return graph;
}

namespace {

// The per-channel values of `c` for an input of shape `x` with channels on axis 1: [C] for
// [N, C], [C, 1, ..., 1] or [1, C, 1, ..., 1] for [N, C, ...]. Nothing when `c` is anything else.
std::optional<Tensor> per_channel(const Tensor& c, const Shape& x) {
  if (x.size() < 2 || x[1] == kDynamic || !is_floating(c.dtype())) return std::nullopt;
  const auto channels = x[1];
  const Shape& cs = c.shape();
  auto ones_from = [&](std::size_t first) {
    return std::all_of(cs.begin() + static_cast<std::ptrdiff_t>(first), cs.end(),
                       [](std::int64_t d) { return d == 1; });
  };
  const bool fits = (x.size() == 2 && cs == Shape{channels}) ||
                    (cs.size() == x.size() - 1 && cs[0] == channels && ones_from(1)) ||
                    (cs.size() == x.size() && cs[0] == 1 && cs[1] == channels && ones_from(2));
  if (!fits) return std::nullopt;
  return c.reshaped({channels});
}

}  // namespace

Graph fuse_affine_batchnorm(Graph graph) {
  graph.validate();
  std::set<std::string> replaced;  // the Mul's and Add's constants
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node mul = graph.nodes[i];
    if (!mul.is(OpId::Mul) || consumer_count(graph, mul.outputs[0]) != 1) continue;
    const Node* add = nullptr;
    for (const auto& n : graph.nodes) {
      if (n.is(OpId::Add) && (n.inputs[0] == mul.outputs[0] || n.inputs[1] == mul.outputs[0]))
        add = &n;
    }
    if (!add) continue;
    for (int side = 0; side < 2; ++side) {
      const std::string x = mul.inputs[static_cast<std::size_t>(side)];
      const Initializer* s = graph.find_initializer(mul.inputs[static_cast<std::size_t>(1 - side)]);
      const std::string& other = add->inputs[0] == mul.outputs[0] ? add->inputs[1] : add->inputs[0];
      const Initializer* b = graph.find_initializer(other);
      if (!s || !b || graph.find_initializer(x)) continue;
      const Shape& xs = graph.value(x).shape;
      const auto scale = per_channel(s->value, xs);
      const auto bias = per_channel(b->value, xs);
      if (!scale || !bias || scale->dtype() != DType::f32 || bias->dtype() != DType::f32 ||
          graph.value(x).dtype != DType::f32 || graph.value(add->outputs[0]).shape != xs) {
        continue;
      }
      // mean 0 and variance 0.75 with epsilon 0.25: (x - 0) / sqrt(1) exactly, then scale and B.
      const auto channels = xs[1];
      const std::string base = mul.name;
      auto fresh = [&](const std::string& suffix) {
        std::string name = base + suffix;
        for (int k = 1; graph.values.count(name) || graph.find_initializer(name); ++k)
          name = base + suffix + "_" + std::to_string(k);
        return name;
      };
      Node bn;
      bn.name = fresh("/batch_norm");
      bn.op = std::string(op_name(OpId::BatchNormalization));
      bn.inputs = {x, fresh("/scale"), fresh("/B"), fresh("/mean"), fresh("/var")};
      bn.outputs = add->outputs;
      bn.attributes = {{"epsilon", 0.25}};
      const bool trainable = s->trainable && b->trainable;
      replaced.insert({s->name, b->name});  // (before the pushes below move the initializers)
      Tensor mean(scale->dtype(), {channels});
      Tensor var = mean;
      for (auto& v : var.data<float>()) v = 0.75f;
      graph.initializers.push_back({bn.inputs[1], *scale, trainable});
      graph.initializers.push_back({bn.inputs[2], *bias, trainable});
      graph.initializers.push_back({bn.inputs[3], std::move(mean), false});
      graph.initializers.push_back({bn.inputs[4], std::move(var), false});
      const std::string add_name = add->name;
      std::erase_if(graph.nodes,
                    [&](const Node& n) { return n.name == add_name || n.name == mul.name; });
      graph.nodes.insert(graph.nodes.begin() + static_cast<std::ptrdiff_t>(i), std::move(bn));
      break;
    }
  }
  if (replaced.empty()) return graph;
  std::set<std::string> read(graph.outputs.begin(), graph.outputs.end());
  for (const auto& n : graph.nodes) read.insert(n.inputs.begin(), n.inputs.end());
  std::erase_if(graph.initializers, [&](const Initializer& init) {
    return replaced.count(init.name) && !read.count(init.name);
  });
  graph.validate();
  return graph;
}

}  // namespace onnxforge
