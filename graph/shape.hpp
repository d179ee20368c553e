// Shapes: a list of dimensions; kDynamic marks a dimension known only at compile time (the batch).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace onnxforge {

using Shape = std::vector<std::int64_t>;

inline constexpr std::int64_t kDynamic = -1;

// "[N,3,100,100]" with N for a dynamic dimension.
std::string to_string(const Shape& shape);
// "3x100x100" -> {3,100,100}; throws Error naming `what` on a malformed text.
Shape parse_shape(const std::string& text, const std::string& what);
bool is_static(const Shape& shape);
// Number of elements; throws Error on a dynamic or negative dimension or on overflow.
std::int64_t element_count(const Shape& shape);

}  // namespace onnxforge
