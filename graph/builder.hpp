// A C++ builder that reads like a model definition:
//
//   Builder b("baseline", seed);
//   auto x = b.input("image", {kDynamic, 3, 100, 100});
//   x = b.relu(b.conv2d(x, {.filters = 16, .kernel = {3, 3}}));
//   x = b.max_pool(x, {.kernel = {2, 2}, .stride = {1, 1}});
//   x = b.sigmoid(b.dense(b.flatten(x), 1));
//   b.output(x);
//   Graph g = b.build();
//
// Layers are named as Keras names them (conv2d, conv2d_1, dense, ...); parameters are
// "<layer>/kernel", "<layer>/bias", ... and initialised as Keras does by default (Glorot uniform
// kernels, zero biases, batch norm gamma 1 / beta 0 / mean 0 / variance 1), from the seed.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/hash.hpp"
#include "core/random.hpp"
#include "graph/graph.hpp"

namespace onnxforge {

enum class Padding { valid, same, explicit_pads };

struct Conv2dOptions {
  std::int64_t filters = 0;
  std::array<std::int64_t, 2> kernel{3, 3};
  std::array<std::int64_t, 2> stride{1, 1};
  Padding padding = Padding::valid;
  std::array<std::int64_t, 4> pads{0, 0, 0, 0};  // top, left, bottom, right (explicit_pads)
  std::array<std::int64_t, 2> dilation{1, 1};
  std::int64_t groups = 1;
  bool bias = true;
  std::string name;  // default: conv2d, conv2d_1, ...
};

struct Pool2dOptions {
  std::array<std::int64_t, 2> kernel{2, 2};
  std::array<std::int64_t, 2> stride{0, 0};  // 0: the kernel size, as in Keras
  Padding padding = Padding::valid;
  std::array<std::int64_t, 4> pads{0, 0, 0, 0};
  std::array<std::int64_t, 2> dilation{1, 1};  // max pooling only
  bool ceil_mode = false;
  bool count_include_pad = false;  // average pooling only
  std::string name;
};

struct DenseOptions {
  bool bias = true;
  std::string name;
};

struct BatchNormOptions {
  double epsilon = 1e-3;  // Keras' default
  double momentum = 0.99;
  std::string name;
};

class Builder {
 public:
  explicit Builder(std::string graph_name, std::uint64_t seed = 0);

  std::string input(const std::string& name, Shape shape, DType dtype = DType::f32);
  void output(const std::string& value);

  std::string conv2d(const std::string& x, const Conv2dOptions& options);
  std::string relu(const std::string& x, const std::string& name = "");
  std::string sigmoid(const std::string& x, const std::string& name = "");
  std::string tanh(const std::string& x, const std::string& name = "");
  std::string leaky_relu(const std::string& x, double alpha = 0.3, const std::string& name = "");
  std::string softmax(const std::string& x, std::int64_t axis = -1, const std::string& name = "");
  std::string max_pool(const std::string& x, const Pool2dOptions& options = {});
  std::string avg_pool(const std::string& x, const Pool2dOptions& options = {});
  std::string global_avg_pool(const std::string& x, const std::string& name = "");
  std::string flatten(const std::string& x, const std::string& name = "");
  std::string reshape(const std::string& x, const std::vector<std::int64_t>& shape,
                      const std::string& name = "");
  std::string dense(const std::string& x, std::int64_t units, const DenseOptions& options = {});
  std::string add(const std::string& a, const std::string& b, const std::string& name = "");
  std::string concat(const std::vector<std::string>& values, std::int64_t axis = 1,
                     const std::string& name = "");
  std::string dropout(const std::string& x, double rate, const std::string& name = "");
  std::string batch_norm(const std::string& x, const BatchNormOptions& options = {});

  // A node of any op, for ops without a helper; returns its first output.
  std::string node(OpId op, const std::vector<std::string>& inputs,
                   std::map<std::string, Attribute> attributes, const std::string& name = "");
  // The same by the op's name (an IR op; shape inference rejects any other).
  std::string node(const std::string& op, const std::vector<std::string>& inputs,
                   std::map<std::string, Attribute> attributes, const std::string& name = "");
  // A parameter (or constant) with the given value.
  std::string parameter(const std::string& name, Tensor value, bool trainable = true);

  const ValueInfo& value(const std::string& name) const { return graph_.value(name); }
  // Validates (names, cycles, shapes) and returns the graph.
  Graph build();

 private:
  std::string layer_name(const std::string& requested, const std::string& keras_type);
  Tensor glorot_uniform(const std::string& name, Shape shape, std::int64_t fan_in,
                        std::int64_t fan_out) const;
  std::array<std::int64_t, 4> resolve_pads(const std::string& x, Padding padding,
                                           const std::array<std::int64_t, 4>& pads,
                                           const std::array<std::int64_t, 2>& kernel,
                                           const std::array<std::int64_t, 2>& stride,
                                           const std::array<std::int64_t, 2>& dilation) const;
  std::string pool(OpId op, const std::string& keras_type, const std::string& x,
                   const Pool2dOptions& options);

  Graph graph_;
  std::uint64_t seed_;
  std::map<std::string, int> layer_counts_;
};

// Deterministic uniform numbers in [0, 1) from a seed, identical on every platform.

// FNV-1a 64 of a name (core/hash.hpp): initialisation seeds.
inline std::uint64_t hash_name(const std::string& text, std::uint64_t seed = 0) {
  return fnv1a64(text, seed);
}

}  // namespace onnxforge
