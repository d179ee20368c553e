#include "data/image_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <system_error>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// Rounds to the nearest integer, ties to even, as OpenCV's cvRound does.
inline int round_to_int(float v) {
#if defined(__SSE2__)
  return _mm_cvtss_si32(_mm_set_ss(v));
#else
  return static_cast<int>(std::nearbyint(v));
#endif
}

// One tap of an area resize along one axis: source index, destination index, and the fraction
// of the destination cell that the source pixel covers.
struct AreaTap {
  int src;
  int dst;
  float alpha;
};

// The taps of one axis, in destination order and, within a destination, in source order:
// the same cells and the same weights (computed in double, stored as float) as
// cv::resize(INTER_AREA) uses for a non-integer scale.
void area_taps(int ssize, int dsize, double scale, std::vector<AreaTap>& taps) {
  taps.clear();
  for (int d = 0; d < dsize; ++d) {
    const double f1 = d * scale;
    const double f2 = f1 + scale;
    const double cell = std::min(scale, ssize - f1);
    int s1 = static_cast<int>(std::ceil(f1));
    int s2 = static_cast<int>(std::floor(f2));
    s2 = std::min(s2, ssize - 1);
    s1 = std::min(s1, s2);
    if (s1 - f1 > 1e-3) taps.push_back({s1 - 1, d, static_cast<float>((s1 - f1) / cell)});
    for (int s = s1; s < s2; ++s) taps.push_back({s, d, static_cast<float>(1.0 / cell)});
    if (f2 - s2 > 1e-3) {
      taps.push_back({s2, d, static_cast<float>(std::min(std::min(f2 - s2, 1.0), cell) / cell)});
    }
  }
}

// Whether cv::resize(INTER_AREA) takes its integer-factor path (both factors whole numbers).
bool integer_scale(int src_width, int width, int src_height, int height) {
  const double sx = 1.0 / (static_cast<double>(width) / src_width);
  const double sy = 1.0 / (static_cast<double>(height) / src_height);
  return std::abs(sx - std::nearbyint(sx)) < DBL_EPSILON &&
         std::abs(sy - std::nearbyint(sy)) < DBL_EPSILON;
}

}  // namespace

void resize_area_bgr_to_rgb(const std::uint8_t* src, std::size_t src_step, int src_height,
                            int src_width, std::uint8_t* rgb_out, int height, int width) {
  // As cv::resize: the scale is the inverse of the destination/source ratio.
  const double scale_x = 1.0 / (static_cast<double>(width) / src_width);
  const double scale_y = 1.0 / (static_cast<double>(height) / src_height);
  thread_local std::vector<AreaTap> xtaps;
  thread_local std::vector<AreaTap> ytaps;
  thread_local std::vector<int> xbegin;
  thread_local std::vector<float> buffers;
  area_taps(src_width, width, scale_x, xtaps);
  area_taps(src_height, height, scale_y, ytaps);
  xbegin.assign(static_cast<std::size_t>(width) + 1, 0);
  for (const auto& tap : xtaps) ++xbegin[static_cast<std::size_t>(tap.dst) + 1];
  for (int x = 0; x < width; ++x) xbegin[x + 1] += xbegin[x];
  const std::size_t row = static_cast<std::size_t>(width) * 3;
  buffers.resize(2 * row + 1);
  float* const line = buffers.data();  // one source row, resized horizontally (+1 float of slack)
  float* const sum = line + row + 1;   // the weighted sum of those rows for one output row
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  const int last = src_width - 1;  // a 4-byte load at the last pixel would leave the row
#endif

  int line_of = -1;  // the source row held in `line` (a row shared by two outputs is done once)
  std::size_t j = 0;
  for (int y = 0; y < height; ++y) {
    bool first = true;
    for (; j < ytaps.size() && ytaps[j].dst == y; ++j) {
      const int sy = ytaps[j].src;
      if (sy != line_of) {
        // Each output value accumulates its taps in source order: (p0 a0 + p1 a1) + p2 a2 ...
        const std::uint8_t* in = src + static_cast<std::size_t>(sy) * src_step;
        const AreaTap* tap = xtaps.data();
        for (int x = 0; x < width; ++x) {
          const AreaTap* end = xtaps.data() + xbegin[x + 1];
          if (tap == end) {  // a cell without source pixels (not with a scale >= 1) stays 0
            line[3 * x] = line[3 * x + 1] = line[3 * x + 2] = 0.0f;
            continue;
          }
#if defined(__SSE2__)
          if (end[-1].src < last) {  // the same float operations on the three channels at once
            const auto pixel = [&](const AreaTap& t) {
              std::int32_t v;
              std::memcpy(&v, in + 3 * t.src, 4);
              const __m128i px =
                  _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(v), zero), zero);
              return _mm_mul_ps(_mm_cvtepi32_ps(px), _mm_set1_ps(t.alpha));
            };
            __m128 acc = pixel(*tap);
            for (++tap; tap < end; ++tap) acc = _mm_add_ps(acc, pixel(*tap));
            _mm_storeu_ps(line + 3 * x, acc);  // the 4th lane is overwritten next (or slack)
            continue;
          }
#endif
          const std::uint8_t* p = in + 3 * tap->src;
          float a = tap->alpha;
          float b0 = p[0] * a, b1 = p[1] * a, b2 = p[2] * a;
          for (++tap; tap < end; ++tap) {
            p = in + 3 * tap->src;
            a = tap->alpha;
            b0 = b0 + p[0] * a;
            b1 = b1 + p[1] * a;
            b2 = b2 + p[2] * a;
          }
          line[3 * x] = b0;
          line[3 * x + 1] = b1;
          line[3 * x + 2] = b2;
        }
        line_of = sy;
      }
      const float beta = ytaps[j].alpha;
      if (first) {
        for (std::size_t i = 0; i < row; ++i) sum[i] = beta * line[i];
        first = false;
      } else {
        for (std::size_t i = 0; i < row; ++i) sum[i] = sum[i] + beta * line[i];
      }
    }
    std::uint8_t* out = rgb_out + static_cast<std::size_t>(y) * row;
    for (int x = 0; x < width; ++x) {  // saturate to a byte, B and R swapped
      out[3 * x] = static_cast<std::uint8_t>(std::clamp(round_to_int(sum[3 * x + 2]), 0, 255));
      out[3 * x + 1] = static_cast<std::uint8_t>(std::clamp(round_to_int(sum[3 * x + 1]), 0, 255));
      out[3 * x + 2] = static_cast<std::uint8_t>(std::clamp(round_to_int(sum[3 * x]), 0, 255));
    }
  }
}

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
  const bool same_size = decoded.cols == width && decoded.rows == height;
  if (shrinking && !same_size && decoded.type() == CV_8UC3 &&
      !integer_scale(decoded.cols, width, decoded.rows, height)) {
    // The usual case (a colour photo shrunk by a non-integer factor): straight into the cache,
    // the same bytes as cv::resize(INTER_AREA) + BGR->RGB in about half the instructions.
    resize_area_bgr_to_rgb(decoded.data, decoded.step, decoded.rows, decoded.cols, rgb_out, height,
                           width);
    return {};
  }
  cv::Mat resized;
  if (same_size) {
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
