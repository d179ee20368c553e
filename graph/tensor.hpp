// A host tensor: dtype, shape and the bytes, owned. Feeds, fetches, initializers and parameters
// crossing a Program's edges are Tensors.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/error.hpp"
#include "graph/dtype.hpp"
#include "graph/shape.hpp"

namespace onnxforge {

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
  return DType::i64;
}
template <>
constexpr DType dtype_of<std::uint8_t>() {
  return DType::u8;
}
template <>
constexpr DType dtype_of<BFloat16>() {
  return DType::bf16;
}

class Tensor {
 public:
  Tensor() = default;
  // Zero-filled.
  Tensor(DType dtype, Shape shape);

  template <typename T>
  static Tensor from(Shape shape, std::span<const T> values) {
    Tensor t(dtype_of<T>(), std::move(shape));
    if (static_cast<std::size_t>(t.size()) != values.size()) {
      fail("tensor of shape {} needs {} values, got {}", to_string(t.shape_), t.size(),
           values.size());
    }
    std::copy(values.begin(), values.end(), t.data<T>().begin());
    return t;
  }
  template <typename T>
  static Tensor from(Shape shape, const std::vector<T>& values) {
    return from<T>(std::move(shape), std::span<const T>(values));
  }

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  std::int64_t size() const { return size_; }
  std::size_t byte_size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }

  std::uint8_t* raw() { return bytes_.data(); }
  const std::uint8_t* raw() const { return bytes_.data(); }

  template <typename T>
  std::span<T> data() {
    check_dtype(dtype_of<T>());
    return {reinterpret_cast<T*>(bytes_.data()), static_cast<std::size_t>(size_)};
  }
  template <typename T>
  std::span<const T> data() const {
    check_dtype(dtype_of<T>());
    return {reinterpret_cast<const T*>(bytes_.data()), static_cast<std::size_t>(size_)};
  }

  // Element i of a floating tensor (f32, f64, bf16) as double.
  double value(std::int64_t i) const;
  // Converts any floating tensor to f32 / f64 (a copy).
  Tensor to(DType dtype) const;
  std::vector<double> to_doubles() const;
  // Same bytes, another shape with the same element count.
  Tensor reshaped(Shape shape) const;

  bool operator==(const Tensor& other) const = default;

 private:
  void check_dtype(DType wanted) const;

  DType dtype_ = DType::f32;
  Shape shape_;
  std::int64_t size_ = 0;
  std::vector<std::uint8_t> bytes_;
};

}  // namespace onnxforge
