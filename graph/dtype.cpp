#include "graph/dtype.hpp"

#include <algorithm>
#include <array>

#include "core/error.hpp"

namespace onnxforge {

namespace {

// Every dtype once: its name, its size and the other names parse_dtype accepts.
struct DTypeInfo {
  DType dtype;
  std::string_view name;
  std::size_t size;
  std::array<std::string_view, 3> aliases;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::f32, "f32", 4, {"fp32", "float32", "float"}},
    {DType::f64, "f64", 8, {"fp64", "float64", "double"}},
    {DType::bf16, "bf16", 2, {"bfloat16"}},
    {DType::i64, "i64", 8, {"int64"}},
    {DType::u8, "u8", 1, {"uint8"}},
    {DType::boolean, "bool", 1, {}},
};

const DTypeInfo* info_of(DType dtype) {
  for (const auto& info : kDTypes) {
    if (info.dtype == dtype) return &info;
  }
  return nullptr;
}

}  // namespace

std::size_t size_of(DType dtype) {
  const DTypeInfo* info = info_of(dtype);
  return info ? info->size : 0;
}

std::string_view to_string(DType dtype) {
  const DTypeInfo* info = info_of(dtype);
  return info ? info->name : "?";
}

DType parse_dtype(std::string_view name) {
  for (const auto& info : kDTypes) {
    if (name.empty()) break;  // the unused alias slots are empty
    if (name == info.name ||
        std::find(info.aliases.begin(), info.aliases.end(), name) != info.aliases.end()) {
      return info.dtype;
    }
  }
  fail("unknown dtype '{}' (expected f32, f64, bf16, i64, u8 or bool)", name);
}

bool is_floating(DType dtype) {
  return dtype == DType::f32 || dtype == DType::f64 || dtype == DType::bf16;
}

}  // namespace onnxforge
