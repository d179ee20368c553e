// Element types of tensors and values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace onnxforge {

enum class DType : std::uint8_t { f32, f64, bf16, i64, u8, boolean };

std::size_t size_of(DType dtype);
std::string_view to_string(DType dtype);
DType parse_dtype(std::string_view name);  // "f32", "float32", "bf16", ...; throws Error
bool is_floating(DType dtype);

// bfloat16 as stored: the upper 16 bits of an IEEE float, rounded to nearest even.
struct BFloat16 {
  std::uint16_t bits = 0;
};

inline BFloat16 to_bf16(float value) {
  std::uint32_t u;
  std::memcpy(&u, &value, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) {
    return BFloat16{static_cast<std::uint16_t>((u >> 16) | 0x40u)};  // keep NaN a NaN
  }
  const std::uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return BFloat16{static_cast<std::uint16_t>((u + rounding) >> 16)};
}

inline float to_float(BFloat16 value) {
  const std::uint32_t u = static_cast<std::uint32_t>(value.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace onnxforge
