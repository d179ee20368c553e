#include "graph/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace onnxforge {

Tensor::Tensor(DType dtype, Shape shape)
    : dtype_(dtype), shape_(std::move(shape)), size_(element_count(shape_)) {
  const auto element_size = static_cast<std::int64_t>(size_of(dtype_));
  if (size_ > std::numeric_limits<std::int64_t>::max() / element_size) {
    fail("tensor of shape {} and dtype {} is too large", to_string(shape_), to_string(dtype_));
  }
  bytes_.assign(static_cast<std::size_t>(size_ * element_size), 0);
}

void Tensor::check_dtype(DType wanted) const {
  if (wanted != dtype_) {
    fail("tensor of dtype {} accessed as {}", to_string(dtype_), to_string(wanted));
  }
}

double Tensor::value(std::int64_t i) const {
  switch (dtype_) {
    case DType::f32:
      return reinterpret_cast<const float*>(bytes_.data())[i];
    case DType::f64:
      return reinterpret_cast<const double*>(bytes_.data())[i];
    case DType::bf16:
      return to_float(reinterpret_cast<const BFloat16*>(bytes_.data())[i]);
    case DType::i64:
      return static_cast<double>(reinterpret_cast<const std::int64_t*>(bytes_.data())[i]);
    case DType::u8:
      return bytes_[static_cast<std::size_t>(i)];
    case DType::boolean:
      return bytes_[static_cast<std::size_t>(i)] ? 1.0 : 0.0;
  }
  return 0.0;
}

std::vector<double> Tensor::to_doubles() const {
  std::vector<double> out(static_cast<std::size_t>(size_));
  for (std::int64_t i = 0; i < size_; ++i) out[static_cast<std::size_t>(i)] = value(i);
  return out;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor out(dtype, shape_);
  for (std::int64_t i = 0; i < size_; ++i) {
    const double v = value(i);
    switch (dtype) {
      case DType::f32:
        out.data<float>()[static_cast<std::size_t>(i)] = static_cast<float>(v);
        break;
      case DType::f64:
        out.data<double>()[static_cast<std::size_t>(i)] = v;
        break;
      case DType::bf16:
        out.data<BFloat16>()[static_cast<std::size_t>(i)] = to_bf16(static_cast<float>(v));
        break;
      // Out-of-range and NaN values saturate (NaN becomes 0): converting them with a plain cast
      // is undefined behaviour. Anything non-zero (NaN included) is true, as in NumPy.
      case DType::i64:
        out.data<std::int64_t>()[static_cast<std::size_t>(i)] =
            std::isnan(v) ? 0
            : v >= 0x1p63 ? std::numeric_limits<std::int64_t>::max()
            : v < -0x1p63 ? std::numeric_limits<std::int64_t>::min()
                          : static_cast<std::int64_t>(v);
        break;
      case DType::u8:
        out.bytes_[static_cast<std::size_t>(i)] =
            std::isnan(v) ? 0 : static_cast<std::uint8_t>(std::clamp(v, 0.0, 255.0));
        break;
      case DType::boolean:
        out.bytes_[static_cast<std::size_t>(i)] = v != 0.0 ? 1 : 0;
    }
  }
  return out;
}

Tensor Tensor::reshaped(Shape shape) const {
  if (element_count(shape) != size_) {
    fail("cannot reshape a tensor of shape {} to {}", to_string(shape_), to_string(shape));
  }
  Tensor out = *this;
  out.shape_ = std::move(shape);
  return out;
}

}  // namespace onnxforge
