// FNV-1a 64: names to seeds (parameter initialisation, dropout salts) and checkpoint checksums.
#pragma once

#include <cstdint>
#include <string_view>

namespace onnxforge {

// `seed` is xor-ed into the offset basis (0: plain FNV-1a).
constexpr std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t seed = 0) {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace onnxforge
