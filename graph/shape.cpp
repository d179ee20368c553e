#include "graph/shape.hpp"

#include <fmt/format.h>

#include <charconv>
#include <limits>

#include "core/error.hpp"

namespace onnxforge {

std::string to_string(const Shape& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) text += ",";
    text += shape[i] == kDynamic ? std::string("N") : std::to_string(shape[i]);
  }
  return text + "]";
}

Shape parse_shape(const std::string& text, const std::string& what) {
  Shape shape;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    const std::size_t end = text.find_first_of("x,", begin);
    const std::string piece = text.substr(begin, end == std::string::npos ? end : end - begin);
    std::int64_t dim = 0;
    const auto [ptr, ec] = std::from_chars(piece.data(), piece.data() + piece.size(), dim);
    if (piece.empty() || ec != std::errc{} || ptr != piece.data() + piece.size() || dim <= 0) {
      fail("{}: '{}' is not a shape like 3x100x100 (positive integers separated by x)", what, text);
    }
    shape.push_back(dim);
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return shape;
}

bool is_static(const Shape& shape) {
  for (auto d : shape) {
    if (d < 0) return false;
  }
  return true;
}

std::int64_t element_count(const Shape& shape) {
  std::int64_t count = 1;
  for (auto d : shape) {
    if (d < 0) fail("shape {} has a dynamic or negative dimension", to_string(shape));
    if (d != 0 && count > std::numeric_limits<std::int64_t>::max() / d) {
      fail("shape {} has too many elements (overflows 64 bits)", to_string(shape));
    }
    count *= d;
  }
  return count;
}

}  // namespace onnxforge
