// Seeded random numbers, the same on every platform and standard library: splitmix64, a
// counter-based generator (the n-th number is a pure function of seed and n), and seed derivation
// for independent streams (per epoch, per sample, per element), so results never depend on which
// thread draws them.
#pragma once

#include <cstdint>

namespace onnxforge {

// The splitmix64 output function of counter x: a bijective 64-bit mixer.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A seed for one stream, derived from a base seed and up to three coordinates (e.g. epoch and
// sample index).
constexpr std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b = 0,
                                    std::uint64_t c = 0) {
  return mix64(mix64(mix64(mix64(seed) ^ a) ^ b) ^ c);
}

// splitmix64 as a sequence: next() returns mix64(seed + k * golden ratio) for k = 0, 1, ...
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    const std::uint64_t x = state_;
    state_ += 0x9e3779b97f4a7c15ULL;
    return mix64(x);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1), 53 bits
  double normal();                                                            // Box-Muller

 private:
  std::uint64_t state_;
};

}  // namespace onnxforge
