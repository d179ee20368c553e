// Reading one image file safely: size limit, header check (format, declared dimensions,
// completeness) before any pixel is allocated, then decode (libjpeg or OpenCV) to RGB and resize.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

namespace onnxforge::data {

struct ImageLimits {
  std::uintmax_t max_file_bytes = 64ULL << 20;  // larger files are refused unread
  std::uint64_t max_pixels = 40'000'000;        // declared width x height above this is refused
  int max_side = 30'000;                        // declared width or height above this is refused
};

enum class ImageFormat { unknown, jpeg, png, bmp };

const char* format_name(ImageFormat format);

struct ImageInfo {
  ImageFormat format = ImageFormat::unknown;
  int width = 0;
  int height = 0;
  bool exif = false;  // JPEG with an EXIF segment (which may rotate the image)
};

// Parses the header of an encoded JPEG, PNG or BMP held in memory: the format from its signature,
// the declared dimensions, and whether the file is complete (JPEG end-of-image marker after the
// scan, PNG IEND chunk, BMP pixel array size). Checks the dimensions against `limits`. Returns
// an empty string on success, otherwise the reason the file must be skipped.
std::string inspect_encoded_image(std::span<const std::uint8_t> bytes, const ImageLimits& limits,
                                  ImageInfo& info);

// Reads `path`, inspects it, decodes it (a colour JPEG without EXIF data with libjpeg straight to
// RGB, anything else with OpenCV: grayscale, alpha, 16-bit and EXIF orientation handled; the
// same pixels either way), converts it to RGB and resizes it to height x width (INTER_AREA when
// shrinking, bilinear otherwise).
// Writes height*width*3 bytes (HWC, RGB) to `rgb_out`. Returns an empty string on success,
// otherwise the reason (and leaves `rgb_out` unspecified).
std::string load_image_rgb(const std::filesystem::path& path, int height, int width,
                           const ImageLimits& limits, std::uint8_t* rgb_out);

// Shrinks a 3-channel 8-bit image (rows `src_step` bytes apart) to height x width by area
// averaging, writing height*width*3 bytes to `out`, channels 0 and 2 swapped when
// `swap_red_blue` (BGR to RGB): byte for byte cv::resize(INTER_AREA) (then
// cv::cvtColor(BGR2RGB)) when a scale factor is not an integer, with each source row resized
// horizontally once instead of once per output row it feeds. Requires src_width >= width and
// src_height >= height.
void resize_area_u8c3(const std::uint8_t* src, std::size_t src_step, int src_height, int src_width,
                      std::uint8_t* out, int height, int width, bool swap_red_blue);

}  // namespace onnxforge::data
