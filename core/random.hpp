// Seeded random numbers, the same on every platform and standard library: splitmix64, a
// counter-based generator (the n-th number is a pure function of seed and n), and seed derivation
// for independent streams (per epoch, per sample, per element), so results never depend on which
// thread draws them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

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

// The one generator of the project: splitmix64 as a sequence (next() returns
// mix64(seed + k * golden ratio) for k = 0, 1, ...), and the draws everything reproducible makes
// from it. std:: distributions are implementation-defined (libstdc++ and libc++ differ), so none
// is used.
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    const std::uint64_t x = state_;
    state_ += 0x9e3779b97f4a7c15ULL;
    return mix64(x);
  }
  std::uint64_t bits() { return next(); }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }   // [0, 1), 53 bits
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }  // [lo, hi)
  // Uniform integer in [0, n) without modulo bias (n > 0).
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);
    std::uint64_t x = next();
    while (x >= limit) x = next();
    return x % n;
  }
  // Uniform integer in [lo, hi] (inclusive).
  int range(int lo, int hi) {
    return lo + static_cast<int>(below(static_cast<std::uint64_t>(hi - lo) + 1));
  }
  bool chance(double p) { return uniform() < p; }
  double normal();  // Box-Muller on two uniforms
  double normal(double mean, double stddev) { return mean + stddev * normal(); }
  // Fisher-Yates.
  template <typename T>
  void shuffle(std::span<T> items) {
    for (std::size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
  }

 private:
  std::uint64_t state_;
};

}  // namespace onnxforge
