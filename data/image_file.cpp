#include "data/image_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <system_error>
#include <vector>

// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>

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
    if (marker == 0xE1 && pos + 8 <= n &&
        std::string_view(reinterpret_cast<const char*>(&b[pos + 2]), 4) == "Exif") {
      info.exif = true;
    }
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

struct JpegErrors {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
};

[[noreturn]] void jpeg_fail(j_common_ptr cinfo) {
  std::longjmp(reinterpret_cast<JpegErrors*>(cinfo->err)->jump, 1);
}

void jpeg_quiet(j_common_ptr /*cinfo*/, int /*level*/) {}

// Decodes a 3-component JPEG held in memory to RGB at 1/scale_denom of its size with libjpeg, as
// OpenCV's decoder does (JCS_RGB output, DCT scaling; OpenCV then swaps every row to BGR, which
// costs more than a tenth of the decode), into `rgb`. False on any libjpeg error or another
// component count: the caller then uses cv::imdecode, which reports or handles it. No object
// with a destructor lives in this frame between setjmp and a possible longjmp.
bool decode_jpeg_rgb(std::span<const std::uint8_t> bytes, unsigned scale_denom,
                     std::vector<std::uint8_t>& rgb, int& width, int& height) {
  jpeg_decompress_struct cinfo{};
  JpegErrors errors{};
  cinfo.err = jpeg_std_error(&errors.mgr);
  errors.mgr.error_exit = jpeg_fail;
  errors.mgr.emit_message = jpeg_quiet;
  jpeg_create_decompress(&cinfo);
  if (setjmp(errors.jump) != 0) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.num_components != 3) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  cinfo.scale_num = 1;
  cinfo.scale_denom = scale_denom;
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  width = static_cast<int>(cinfo.output_width);
  height = static_cast<int>(cinfo.output_height);
  const std::size_t row = static_cast<std::size_t>(width) * 3;
  rgb.resize(row * static_cast<std::size_t>(height));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW line = rgb.data() + cinfo.output_scanline * row;
    jpeg_read_scanlines(&cinfo, &line, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

// Whether cv::resize(INTER_AREA) takes its integer-factor path (both factors whole numbers).
bool integer_scale(int src_width, int width, int src_height, int height) {
  const double sx = 1.0 / (static_cast<double>(width) / src_width);
  const double sy = 1.0 / (static_cast<double>(height) / src_height);
  return std::abs(sx - std::nearbyint(sx)) < DBL_EPSILON &&
         std::abs(sy - std::nearbyint(sy)) < DBL_EPSILON;
}

}  // namespace

void resize_area_u8c3(const std::uint8_t* src, std::size_t src_step, int src_height, int src_width,
                      std::uint8_t* out, int height, int width, bool swap_red_blue) {
  // As cv::resize: the scale is the inverse of the destination/source ratio.
  const double scale_x = 1.0 / (static_cast<double>(width) / src_width);
  const double scale_y = 1.0 / (static_cast<double>(height) / src_height);
  thread_local std::vector<AreaTap> xtaps;
  thread_local std::vector<AreaTap> ytaps;
  area_taps(src_width, width, scale_x, xtaps);
  area_taps(src_height, height, scale_y, ytaps);
  const std::size_t row = static_cast<std::size_t>(width) * 3;
  thread_local std::vector<float> buffers;
  buffers.resize(2 * row + 1);
  float* const line = buffers.data();  // one source row, resized horizontally, RGB (+1 slack)
  float* const sum = line + row + 1;   // the weighted sum of those rows for one output row

#if defined(__SSE2__)
  // Every destination column gets the same number of taps, the missing ones with weight 0 on a
  // pixel it already reads (adding +0 leaves a non-negative float unchanged), so the inner loop
  // has no branches; each weight is kept broadcast to four lanes.
  int taps_per = 1;
  for (std::size_t k = 0, begin = 0; k <= xtaps.size(); ++k) {
    if (k == xtaps.size() || xtaps[k].dst != xtaps[begin].dst) {
      taps_per = std::max(taps_per, static_cast<int>(k - begin));
      begin = k;
    }
  }
  thread_local std::vector<std::int32_t> offsets;
  struct alignas(16) Quad {
    float lanes[4];
  };
  thread_local std::vector<Quad> weights;
  offsets.assign(static_cast<std::size_t>(taps_per) * width, 0);
  weights.assign(static_cast<std::size_t>(taps_per) * width, Quad{});
  {
    std::vector<int> used(static_cast<std::size_t>(width), 0);
    for (const auto& tap : xtaps) {
      const std::size_t at = static_cast<std::size_t>(tap.dst) * taps_per + used[tap.dst]++;
      offsets[at] = 3 * tap.src;
      weights[at] = Quad{{tap.alpha, tap.alpha, tap.alpha, tap.alpha}};
    }
    for (int x = 0; x < width; ++x) {
      for (int k = std::max(used[x], 1); k < taps_per; ++k) {
        offsets[static_cast<std::size_t>(x) * taps_per + k] =
            offsets[static_cast<std::size_t>(x) * taps_per + k - 1];
      }
    }
  }
  // A 4-byte load at the last pixel of a row reads one byte past it: fine inside the image, but
  // the last row is read from a copy with slack.
  thread_local std::vector<std::uint8_t> last_row;
  last_row.assign(static_cast<std::size_t>(src_width) * 3 + 4, 0);
  std::memcpy(last_row.data(), src + static_cast<std::size_t>(src_height - 1) * src_step,
              static_cast<std::size_t>(src_width) * 3);
  const __m128i zero = _mm_setzero_si128();
  const std::int32_t* const offs = offsets.data();
  const Quad* const alphas = weights.data();
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
#if defined(__SSE2__)
        if (sy == src_height - 1) in = last_row.data();
        const auto pixel = [&](std::size_t k) {
          std::int32_t v;
          std::memcpy(&v, in + offs[k], 4);
          const __m128i px =
              _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(v), zero), zero);
          return _mm_mul_ps(_mm_cvtepi32_ps(px), _mm_load_ps(alphas[k].lanes));
        };
        for (int x = 0; x < width; ++x) {
          std::size_t k = static_cast<std::size_t>(x) * taps_per;
          const std::size_t end = k + static_cast<std::size_t>(taps_per);
          __m128 acc = pixel(k);
          for (++k; k < end; ++k) acc = _mm_add_ps(acc, pixel(k));
          // [B, G, R, -] to [R, G, B, -]; the 4th lane is overwritten next (or is slack).
          if (swap_red_blue) acc = _mm_shuffle_ps(acc, acc, _MM_SHUFFLE(3, 0, 1, 2));
          _mm_storeu_ps(line + 3 * x, acc);
        }
#else
        std::size_t k = 0;
        for (int x = 0; x < width; ++x) {
          float b0 = 0.0f, b1 = 0.0f, b2 = 0.0f;
          for (; k < xtaps.size() && xtaps[k].dst == x; ++k) {
            const std::uint8_t* p = in + 3 * xtaps[k].src;
            const float a = xtaps[k].alpha;
            b0 = b0 + p[0] * a;
            b1 = b1 + p[1] * a;
            b2 = b2 + p[2] * a;
          }
          line[3 * x] = swap_red_blue ? b2 : b0;
          line[3 * x + 1] = b1;
          line[3 * x + 2] = swap_red_blue ? b0 : b2;
        }
#endif
        line_of = sy;
      }
      const float beta = ytaps[j].alpha;
      std::size_t i = 0;
#if defined(__SSE2__)
      const __m128 vbeta = _mm_set1_ps(beta);
      for (; i + 4 <= row; i += 4) {
        const __m128 weighted = _mm_mul_ps(vbeta, _mm_loadu_ps(line + i));
        _mm_storeu_ps(sum + i, first ? weighted : _mm_add_ps(_mm_loadu_ps(sum + i), weighted));
      }
#endif
      for (; i < row; ++i) sum[i] = first ? beta * line[i] : sum[i] + beta * line[i];
      first = false;
    }
    // Round to nearest (ties to even, as cvRound) and saturate to a byte.
    std::uint8_t* dst = out + static_cast<std::size_t>(y) * row;
    std::size_t i = 0;
#if defined(__SSE2__)
    for (; i + 16 <= row; i += 16) {
      const __m128i a = _mm_packs_epi32(_mm_cvtps_epi32(_mm_loadu_ps(sum + i)),
                                        _mm_cvtps_epi32(_mm_loadu_ps(sum + i + 4)));
      const __m128i b = _mm_packs_epi32(_mm_cvtps_epi32(_mm_loadu_ps(sum + i + 8)),
                                        _mm_cvtps_epi32(_mm_loadu_ps(sum + i + 12)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm_packus_epi16(a, b));
    }
#endif
    for (; i < row; ++i) {
      dst[i] = static_cast<std::uint8_t>(std::clamp(round_to_int(sum[i]), 0, 255));
    }
  }
}

namespace {

// Fits a decoded 8-bit image (BGR/BGRA/gray from OpenCV, or RGB when `bgr` is false) to
// height x width RGB in the cache slot: INTER_AREA when shrinking, bilinear otherwise.
std::string fit_to_cache(const cv::Mat& image, bool bgr, int height, int width,
                         std::uint8_t* rgb_out) {
  const bool shrinking = image.cols >= width && image.rows >= height;
  const bool same_size = image.cols == width && image.rows == height;
  if (shrinking && !same_size && image.type() == CV_8UC3 &&
      !integer_scale(image.cols, width, image.rows, height)) {
    // The usual case (a colour photo shrunk by a non-integer factor): straight into the cache,
    // the same bytes as cv::resize(INTER_AREA) (+ BGR->RGB) in under half the instructions.
    resize_area_u8c3(image.data, image.step, image.rows, image.cols, rgb_out, height, width, bgr);
    return {};
  }
  cv::Mat resized;
  if (same_size) {
    resized = image;
  } else {
    cv::resize(image, resized, cv::Size(width, height), 0, 0,
               shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  }
  cv::Mat out(height, width, CV_8UC3, rgb_out);
  switch (resized.channels()) {
    case 1:
      cv::cvtColor(resized, out, cv::COLOR_GRAY2RGB);
      break;
    case 3:
      if (bgr) {
        cv::cvtColor(resized, out, cv::COLOR_BGR2RGB);
      } else {
        resized.copyTo(out);
      }
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
  int scale_denom = 1;
  if (info.format == ImageFormat::jpeg) {
    const int factor = std::min(info.width / width, info.height / height);
    scale_denom = factor >= 8 ? 8 : factor >= 4 ? 4 : factor >= 2 ? 2 : 1;
  }
  // A colour JPEG without EXIF data (whose orientation OpenCV would apply) is decoded by libjpeg
  // straight to RGB; the pixels are those cv::imdecode gives, in RGB order.
  if (info.format == ImageFormat::jpeg && !info.exif) {
    thread_local std::vector<std::uint8_t> rgb;
    int decoded_width = 0, decoded_height = 0;
    if (decode_jpeg_rgb(bytes, static_cast<unsigned>(scale_denom), rgb, decoded_width,
                        decoded_height)) {
      return fit_to_cache(cv::Mat(decoded_height, decoded_width, CV_8UC3, rgb.data()), false,
                          height, width, rgb_out);
    }
  }
  int flags = cv::IMREAD_ANYCOLOR | cv::IMREAD_ANYDEPTH;
  if (scale_denom == 8) {
    flags = cv::IMREAD_REDUCED_COLOR_8;
  } else if (scale_denom == 4) {
    flags = cv::IMREAD_REDUCED_COLOR_4;
  } else if (scale_denom == 2) {
    flags = cv::IMREAD_REDUCED_COLOR_2;
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
  return fit_to_cache(decoded, true, height, width, rgb_out);
}

}  // namespace onnxforge::data
