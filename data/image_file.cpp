#include "data/image_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <system_error>
#include <vector>

namespace onnxforge::data {
namespace {

std::uint32_t be16(const std::uint8_t* p) { return (std::uint32_t{p[0]} << 8) | p[1]; }
std::uint32_t be32(const std::uint8_t* p) { return (be16(p) << 16) | be16(p + 2); }
std::uint32_t le16(const std::uint8_t* p) { return (std::uint32_t{p[1]} << 8) | p[0]; }
std::uint32_t le32(const std::uint8_t* p) { return (le16(p + 2) << 16) | le16(p); }

std::string check_dims(std::int64_t width, std::int64_t height, const ImageLimits& limits,
                       ImageInfo& info) {
  if (width <= 0 || height <= 0) {
    return fmt::format("header declares an empty image ({}x{})", width, height);
  }
  if (width > limits.max_side || height > limits.max_side ||
      static_cast<std::uint64_t>(width) * static_cast<std::uint64_t>(height) > limits.max_pixels) {
    return fmt::format(
        "header declares {}x{} pixels, over the limit of {} pixels (max side {}): refused as a "
        "possible decompression bomb",
        width, height, limits.max_pixels, limits.max_side);
  }
  info.width = static_cast<int>(width);
  info.height = static_cast<int>(height);
  return {};
}

std::string inspect_jpeg(std::span<const std::uint8_t> b, const ImageLimits& limits,
                         ImageInfo& info) {
  const std::size_t n = b.size();
  std::size_t pos = 2;
  bool have_frame = false;
  std::int64_t width = 0;
  std::int64_t height = 0;
  while (true) {
    // Find the next marker (0xFF followed by a non-0xFF, non-zero byte; 0xFF fill bytes allowed).
    while (pos < n && b[pos] != 0xFF) ++pos;
    while (pos < n && b[pos] == 0xFF) ++pos;
    if (pos >= n) return "truncated JPEG (ends inside its header)";
    const std::uint8_t marker = b[pos++];
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;
    if (marker == 0xD9) return "JPEG ends before its image data";
    if (pos + 2 > n) return "truncated JPEG (ends inside its header)";
    const std::size_t length = be16(&b[pos]);
    if (length < 2) return "corrupt JPEG header (segment length < 2)";
    const bool is_frame =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (is_frame) {
      if (pos + 7 > n) return "truncated JPEG (ends inside its frame header)";
      height = be16(&b[pos + 3]);
      width = be16(&b[pos + 5]);
      have_frame = true;
    }
    if (marker == 0xDA) {  // start of scan: entropy-coded data follows
      if (!have_frame) return "corrupt JPEG (scan before frame header)";
      if (auto error = check_dims(width, height, limits, info); !error.empty()) return error;
      // A complete file has an end-of-image marker after the first scan. Entropy-coded data never
      // contains 0xFF 0xD9 (0xFF is stuffed), and an EXIF thumbnail's marker lies before the scan.
      const std::size_t scan = pos + length;
      for (std::size_t i = n; i-- > scan + 1;) {
        if (b[i - 1] == 0xFF && b[i] == 0xD9) return {};
      }
      return "truncated JPEG (no end-of-image marker after the image data)";
    }
    pos += length;
  }
}

std::string inspect_png(std::span<const std::uint8_t> b, const ImageLimits& limits,
                        ImageInfo& info) {
  if (b.size() < 33) return "truncated PNG (ends inside its header)";
  if (std::string_view(reinterpret_cast<const char*>(&b[12]), 4) != "IHDR") {
    return "corrupt PNG (first chunk is not IHDR)";
  }
  if (auto error = check_dims(be32(&b[16]), be32(&b[20]), limits, info); !error.empty()) {
    return error;
  }
  // A complete PNG ends with the IEND chunk (allow a little trailing junk).
  const std::size_t window = std::min<std::size_t>(b.size() - 33, 1024);
  const std::string_view tail(reinterpret_cast<const char*>(b.data() + b.size() - window), window);
  if (tail.find("IEND") == std::string_view::npos) return "truncated PNG (no IEND chunk)";
  return {};
}

std::string inspect_bmp(std::span<const std::uint8_t> b, const ImageLimits& limits,
                        ImageInfo& info) {
  if (b.size() < 26) return "truncated BMP (ends inside its header)";
  const std::uint32_t offset = le32(&b[10]);
  const std::uint32_t dib_size = le32(&b[14]);
  std::int64_t width = 0;
  std::int64_t height = 0;
  std::uint32_t bits = 0;
  std::uint32_t compression = 0;
  if (dib_size == 12) {  // BITMAPCOREHEADER
    width = le16(&b[18]);
    height = le16(&b[20]);
    bits = le16(&b[24]);
  } else if (dib_size >= 40) {
    if (b.size() < 34) return "truncated BMP (ends inside its header)";
    width = static_cast<std::int32_t>(le32(&b[18]));
    height = static_cast<std::int32_t>(le32(&b[22]));
    if (height < 0) height = -height;  // top-down rows
    bits = le16(&b[28]);
    compression = le32(&b[30]);
  } else {
    return fmt::format("unsupported BMP header (size {})", dib_size);
  }
  if (auto error = check_dims(width, height, limits, info); !error.empty()) return error;
  if (compression == 0 || compression == 3) {  // uncompressed: the pixel array size is known
    const std::uint64_t stride = (static_cast<std::uint64_t>(width) * bits + 31) / 32 * 4;
    if (static_cast<std::uint64_t>(offset) + stride * static_cast<std::uint64_t>(height) >
        b.size()) {
      return "truncated BMP (pixel array shorter than its header declares)";
    }
  }
  return {};
}

}  // namespace

const char* format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::jpeg:
      return "JPEG";
    case ImageFormat::png:
      return "PNG";
    case ImageFormat::bmp:
      return "BMP";
    case ImageFormat::unknown:
      break;
  }
  return "unknown";
}

std::string inspect_encoded_image(std::span<const std::uint8_t> bytes, const ImageLimits& limits,
                                  ImageInfo& info) {
  info = {};
  if (bytes.empty()) return "empty file (0 bytes)";
  static constexpr std::uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) {
    info.format = ImageFormat::jpeg;
    return inspect_jpeg(bytes, limits, info);
  }
  if (bytes.size() >= 8 && std::equal(png_signature, png_signature + 8, bytes.begin())) {
    info.format = ImageFormat::png;
    return inspect_png(bytes, limits, info);
  }
  if (bytes.size() >= 2 && bytes[0] == 'B' && bytes[1] == 'M') {
    info.format = ImageFormat::bmp;
    return inspect_bmp(bytes, limits, info);
  }
  return "not an image (no JPEG, PNG or BMP signature)";
}

std::string load_image_rgb(const std::filesystem::path& path, int height, int width,
                           const ImageLimits& limits, std::uint8_t* rgb_out) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return fmt::format("cannot read ({})", ec.message());
  if (size == 0) return "empty file (0 bytes)";
  if (size > limits.max_file_bytes) {
    return fmt::format("file is {} bytes, over the limit of {} bytes", size, limits.max_file_bytes);
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  {
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (file == nullptr) return "cannot open for reading";
    const std::size_t got = std::fread(bytes.data(), 1, bytes.size(), file);
    std::fclose(file);
    if (got != bytes.size()) return "read error (file changed while reading?)";
  }
  ImageInfo info;
  if (auto error = inspect_encoded_image(bytes, limits, info); !error.empty()) return error;

  // ANYCOLOR|ANYDEPTH keeps grayscale and 16-bit as they are and applies EXIF orientation. A JPEG
  // at least 2, 4 or 8 times the target size is decoded directly at 1/2, 1/4 or 1/8 of its size
  // (DCT scaling in libjpeg: much faster, still at least the target size, then INTER_AREA).
  int flags = cv::IMREAD_ANYCOLOR | cv::IMREAD_ANYDEPTH;
  if (info.format == ImageFormat::jpeg) {
    const int factor = std::min(info.width / width, info.height / height);
    if (factor >= 8) {
      flags = cv::IMREAD_REDUCED_COLOR_8;
    } else if (factor >= 4) {
      flags = cv::IMREAD_REDUCED_COLOR_4;
    } else if (factor >= 2) {
      flags = cv::IMREAD_REDUCED_COLOR_2;
    }
  }
  cv::Mat decoded;
  try {
    decoded = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, bytes.data()), flags);
  } catch (const cv::Exception& e) {
    return fmt::format("{} decode failed ({})", format_name(info.format), e.err);
  }
  if (decoded.empty()) return fmt::format("{} decode failed", format_name(info.format));
  if (decoded.depth() == CV_16U) {
    decoded.convertTo(decoded, CV_8U, 1.0 / 257.0);
  } else if (decoded.depth() != CV_8U) {
    return "unsupported pixel depth (only 8- and 16-bit images)";
  }
  const bool shrinking = decoded.cols >= width && decoded.rows >= height;
  cv::Mat resized;
  if (decoded.cols == width && decoded.rows == height) {
    resized = decoded;
  } else {
    cv::resize(decoded, resized, cv::Size(width, height), 0, 0,
               shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  }
  cv::Mat out(height, width, CV_8UC3, rgb_out);
  switch (resized.channels()) {
    case 1:
      cv::cvtColor(resized, out, cv::COLOR_GRAY2RGB);
      break;
    case 3:
      cv::cvtColor(resized, out, cv::COLOR_BGR2RGB);
      break;
    case 4:
      cv::cvtColor(resized, out, cv::COLOR_BGRA2RGB);  // alpha dropped, as Keras/PIL do
      break;
    default:
      return fmt::format("unsupported channel count {}", resized.channels());
  }
  if (out.data != rgb_out) return "internal error: conversion reallocated the output";
  return {};
}

}  // namespace onnxforge::data
