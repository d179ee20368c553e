// Fuzz target: the image decode path (data/image_file.hpp): the header inspection on the bytes,
// then load_image_rgb on the same bytes as a file (size limit, inspection, OpenCV decode, RGB
// conversion, resize to 24x32). The limits are smaller than the defaults (1 Mpixel, side 4096)
// so that a header check the decoder gets past shows up as an allocation over -malloc_limit_mb
// instead of a slow decode of a legitimately large image.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "data/image_file.hpp"
#include "tests/fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace onnxforge::data;
  ImageLimits limits;
  limits.max_file_bytes = 1 << 20;
  limits.max_pixels = 1 << 20;
  limits.max_side = 4096;
  ImageInfo info;
  const std::string verdict =
      inspect_encoded_image(std::span<const std::uint8_t>(data, size), limits, info);
  if (verdict.empty() &&
      (info.width <= 0 || info.height <= 0 ||
       static_cast<std::uint64_t>(info.width) * info.height > limits.max_pixels)) {
    std::abort();  // accepted dimensions must be within the limits
  }
  const auto path = onnxforge::fuzz::write_scratch("input.img", data, size);
  constexpr int height = 24, width = 32;
  std::vector<std::uint8_t> rgb(height * width * 3);
  const std::string error = load_image_rgb(path, height, width, limits, rgb.data());
  // The file path runs the same inspection first: it cannot accept what the bytes path refused.
  if (!verdict.empty() && error.empty()) std::abort();
  return 0;
}
