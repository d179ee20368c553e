// Tiny labelled images for training-loop tests: 8x8 RGB, label i % 2, class 1 ("Male") brighter
// on the left half and class 0 on the right, with seeded noise; paths "<prefix>img<i>.png".
#pragma once

#include <cstdint>
#include <string>

#include "core/random.hpp"
#include "data/loader.hpp"

namespace onnxforge::testing {

inline data::ImageCache tiny_images(int count, std::uint64_t seed, const std::string& prefix = "") {
  data::ImageCache cache;
  cache.height = 8;
  cache.width = 8;
  cache.classes = {"Female", "Male"};
  Random rng(seed);
  for (int i = 0; i < count; ++i) {
    const int label = i % 2;
    for (int y = 0; y < 8; ++y) {
      for (int x = 0; x < 8; ++x) {
        const bool bright = (x < 4) == (label == 1);
        for (int c = 0; c < 3; ++c) {
          cache.pixels.push_back(
              static_cast<std::uint8_t>((bright ? 150 : 60) + 60 * rng.uniform()));
        }
      }
    }
    cache.labels.push_back(label);
    cache.paths.push_back(prefix + "img" + std::to_string(i) + ".png");
  }
  return cache;
}

}  // namespace onnxforge::testing
