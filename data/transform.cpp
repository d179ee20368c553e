#include "data/transform.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/error.hpp"
#include "data/rng.hpp"

namespace onnxforge::data {

Preprocess Preprocess::unit() { return {}; }

Preprocess Preprocess::imagenet() {
  Preprocess p;
  p.mean = {0.485, 0.456, 0.406};
  p.std = {0.229, 0.224, 0.225};
  return p;
}

Preprocess Preprocess::caffe() {
  Preprocess p;
  p.order = ChannelOrder::bgr;
  p.scale = 1.0;
  p.mean = {103.939, 116.779, 123.68};
  return p;
}

Preprocess Preprocess::tf() {
  Preprocess p;
  p.scale = 2.0 / 255.0;
  p.mean = {1.0, 1.0, 1.0};
  return p;
}

Preprocess Preprocess::named(const std::string& name) {
  if (name == "unit") return unit();
  if (name == "imagenet") return imagenet();
  if (name == "caffe") return caffe();
  if (name == "tf") return tf();
  throw Error(
      fmt::format("unknown preprocessing '{}' (expected unit, imagenet, caffe, tf, or explicit "
                  "'order=rgb|bgr scale=S mean=M,M,M std=S,S,S')",
                  name));
}

namespace {

double number_in(const std::string& text, const std::string& part) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(part, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  // A fraction such as 1/255 is read as one.
  if (used > 0 && used < part.size() && part[used] == '/') {
    const double denominator = number_in(text, part.substr(used + 1));
    if (denominator == 0) throw Error(fmt::format("preprocessing '{}': division by 0", text));
    return value / denominator;
  }
  if (used == 0 || used != part.size() || !std::isfinite(value)) {
    throw Error(fmt::format("preprocessing '{}': '{}' is not a number", text, part));
  }
  return value;
}

std::array<double, 3> triple_in(const std::string& text, const std::string& key,
                                const std::string& value) {
  std::array<double, 3> out{};
  std::size_t start = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    const auto comma = value.find(',', start);
    if ((i < 2) != (comma != std::string::npos)) {
      throw Error(fmt::format("preprocessing '{}': {} needs 3 comma-separated values", text, key));
    }
    out[i] = number_in(text, value.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

}  // namespace

Preprocess Preprocess::parse(const std::string& text) {
  if (text.find('=') == std::string::npos) return named(text);
  Preprocess p;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    const std::string part = text.substr(start, end - start);
    start = end + 1;
    if (part.empty()) continue;
    const auto eq = part.find('=');
    const std::string key = part.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : part.substr(eq + 1);
    if (key == "order" && (value == "rgb" || value == "bgr")) {
      p.order = value == "rgb" ? ChannelOrder::rgb : ChannelOrder::bgr;
    } else if (key == "scale") {
      p.scale = number_in(text, value);
    } else if (key == "mean") {
      p.mean = triple_in(text, key, value);
    } else if (key == "std") {
      p.std = triple_in(text, key, value);
      for (double d : p.std) {
        if (d <= 0) throw Error(fmt::format("preprocessing '{}': std must be positive", text));
      }
    } else {
      throw Error(
          fmt::format("preprocessing '{}': cannot read '{}' (expected order=rgb|bgr, scale=S, "
                      "mean=M,M,M, std=S,S,S)",
                      text, part));
    }
  }
  return p;
}

std::string Preprocess::describe() const {
  return fmt::format(
      "order={} scale={:.17g} mean={:.17g},{:.17g},{:.17g} std={:.17g},{:.17g},{:.17g}",
      order == ChannelOrder::rgb ? "rgb" : "bgr", scale, mean[0], mean[1], mean[2], std[0], std[1],
      std[2]);
}

bool Augment::geometric() const {
  return flip_probability > 0.0 || rotation_degrees > 0.0 || shift_fraction > 0.0 || zoom > 0.0;
}

bool Augment::any() const { return geometric() || brightness > 0.0 || contrast > 0.0; }

Augment Augment::standard() {
  Augment a;
  a.flip_probability = 0.5;
  a.rotation_degrees = 10.0;
  a.shift_fraction = 0.1;
  a.zoom = 0.1;
  a.brightness = 0.2;
  a.contrast = 0.2;
  return a;
}

AugmentDraw draw_augment(const Augment& augment, int height, int width, std::uint64_t sample_seed) {
  Rng rng(sample_seed);
  AugmentDraw d;
  // Always draw every value, in a fixed order, so one range never changes another's stream.
  const double u_flip = rng.uniform();
  const double u_angle = rng.uniform(-1.0, 1.0);
  const double u_sx = rng.uniform(-1.0, 1.0);
  const double u_sy = rng.uniform(-1.0, 1.0);
  const double u_zoom = rng.uniform(-1.0, 1.0);
  const double u_bright = rng.uniform(-1.0, 1.0);
  const double u_contrast = rng.uniform(-1.0, 1.0);
  d.flip = u_flip < augment.flip_probability;
  d.angle_degrees = u_angle * augment.rotation_degrees;
  d.shift_x = u_sx * augment.shift_fraction * width;
  d.shift_y = u_sy * augment.shift_fraction * height;
  d.zoom = 1.0 + u_zoom * augment.zoom;
  d.brightness = 1.0 + u_bright * augment.brightness;
  d.contrast = 1.0 + u_contrast * augment.contrast;
  return d;
}

namespace {

// Rounds to the nearest integer, ties to even (the current rounding mode), as OpenCV's cvRound.
inline int round_to_int(double v) {
#if defined(__SSE2__)
  return _mm_cvtsd_si32(_mm_set_sd(v));
#else
  return static_cast<int>(std::nearbyint(v));
#endif
}

constexpr int kAbBits = 10;   // fractional bits of the row start and column step of the map
constexpr int kFracBits = 5;  // fractional bits of a source coordinate
constexpr int kFrac = 1 << kFracBits;

// One output pixel of the warp, scalar, borders replicated: writes R, G, B to out[0..2].
inline void warp_pixel(const std::uint8_t* src, int height, int width, int fx_all, int fy_all,
                       std::uint8_t* out) {
  const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(width) * 3;
  const int sx = fx_all >> kFracBits;
  const int sy = fy_all >> kFracBits;
  const int wx1 = fx_all & (kFrac - 1);
  const int wy1 = fy_all & (kFrac - 1);
  const int wx0 = kFrac - wx1;
  const int wy0 = kFrac - wy1;
  const int x0 = std::clamp(sx, 0, width - 1);
  const int x1 = std::clamp(sx + 1, 0, width - 1);
  const std::ptrdiff_t r0 = std::clamp(sy, 0, height - 1) * stride;
  const std::ptrdiff_t r1 = std::clamp(sy + 1, 0, height - 1) * stride;
  const std::uint8_t* p00 = src + r0 + x0 * 3;
  const std::uint8_t* p01 = src + r0 + x1 * 3;
  const std::uint8_t* p10 = src + r1 + x0 * 3;
  const std::uint8_t* p11 = src + r1 + x1 * 3;
  // (w_y0 (w_x0 p00 + w_x1 p01) + w_y1 (w_x0 p10 + w_x1 p11) + 512) / 1024, weights in 1/32.
  for (int c = 0; c < 3; ++c) {
    const int top = p00[c] * wx0 + p01[c] * wx1;
    const int bottom = p10[c] * wx0 + p11[c] * wx1;
    out[c] = static_cast<std::uint8_t>((top * wy0 + bottom * wy1 + (1 << (2 * kFracBits - 1))) >>
                                       (2 * kFracBits));
  }
}

#if defined(__SSE2__)
inline __m128i load4(const std::uint8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return _mm_cvtsi32_si128(v);
}

// Lane I of a group of four output pixels: the 2x2 neighbourhood at byte offset offs[I] of the
// padded source, blended with the weight pairs (w_00, w_01) and (w_10, w_11) of the lane (each
// the product of the 1/32 fractions, summing to 1024). Returns [R, G, B, -] as int32.
template <int I>
inline __m128i warp_lane(const std::uint8_t* pad, std::ptrdiff_t pad_stride,
                         const std::int32_t* offs, __m128i w_top, __m128i w_bottom) {
  const __m128i zero = _mm_setzero_si128();
  const std::uint8_t* p = pad + offs[I];
  // [p00.r, p01.r, p00.g, p01.g, p00.b, p01.b, -, -] as int16, and the same one row down.
  const __m128i top = _mm_unpacklo_epi8(_mm_unpacklo_epi8(load4(p), load4(p + 3)), zero);
  const __m128i bottom =
      _mm_unpacklo_epi8(_mm_unpacklo_epi8(load4(p + pad_stride), load4(p + pad_stride + 3)), zero);
  const __m128i sum =
      _mm_add_epi32(_mm_madd_epi16(top, _mm_shuffle_epi32(w_top, _MM_SHUFFLE(I, I, I, I))),
                    _mm_madd_epi16(bottom, _mm_shuffle_epi32(w_bottom, _MM_SHUFFLE(I, I, I, I))));
  return _mm_srai_epi32(_mm_add_epi32(sum, _mm_set1_epi32(1 << (2 * kFracBits - 1))),
                        2 * kFracBits);
}
#endif

// Bilinear warp of an RGB image, borders replicated, in OpenCV's fixed point, so the bytes equal
// those of cv::warpAffine(INTER_LINEAR, BORDER_REPLICATE) (a test checks it on random draws): the
// map from destination to source pixel is rounded to 1/32 pixel (10 fractional bits per row
// start and per column step), the weights are the products of the 1/32 fractions, and the sum
// is rounded to the nearest byte. `inv` is the destination-to-source map. Writes 4 bytes per
// pixel (R, G, B, unused) to `dst` and returns the sum of each channel (for the contrast mean).
std::array<std::uint64_t, 3> warp_rgb(const std::uint8_t* src, int height, int width,
                                      const std::array<double, 6>& inv, std::uint8_t* dst) {
  constexpr int kAbScale = 1 << kAbBits;
  constexpr int kRound = kAbScale / kFrac / 2;
  thread_local std::vector<int> deltas;
  deltas.resize(2 * static_cast<std::size_t>(width));
  int* dx_of = deltas.data();
  int* dy_of = dx_of + width;
  for (int x = 0; x < width; ++x) {
    dx_of[x] = round_to_int(inv[0] * x * kAbScale);
    dy_of[x] = round_to_int(inv[3] * x * kAbScale);
  }
  std::array<std::uint64_t, 3> sums{0, 0, 0};
#if defined(__SSE2__)
  // The source with a one-pixel replicated border: clamping a neighbourhood's corner into
  // [-1, w-1] x [-1, h-1] and reading the padded image gives what clamping each of its four
  // pixels gives (a clamped pair holds two equal pixels), so no pixel needs a border test.
  const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(width) * 3;
  const std::ptrdiff_t pad_stride = stride + 6;
  const bool vector_ok = pad_stride < 32768 && height < 32767;  // offsets from int16 pairs
  thread_local std::vector<std::uint8_t> padded;
  if (vector_ok) {
    padded.resize(static_cast<std::size_t>(pad_stride) * (height + 2) + 8);  // + load slack
    for (int r = 0; r < height + 2; ++r) {
      const std::uint8_t* in = src + std::clamp(r - 1, 0, height - 1) * stride;
      std::uint8_t* out = padded.data() + r * pad_stride;
      std::memcpy(out, in, 3);
      std::memcpy(out + 3, in, static_cast<std::size_t>(stride));
      std::memcpy(out + 3 + stride, in + stride - 3, 3);
    }
  }
  const std::uint8_t* pad = padded.data();
  const __m128i low = _mm_set1_epi16(-1);
  const __m128i high =
      _mm_set_epi16(static_cast<std::int16_t>(height - 1), static_cast<std::int16_t>(height - 1),
                    static_cast<std::int16_t>(height - 1), static_cast<std::int16_t>(height - 1),
                    static_cast<std::int16_t>(width - 1), static_cast<std::int16_t>(width - 1),
                    static_cast<std::int16_t>(width - 1), static_cast<std::int16_t>(width - 1));
  const __m128i one16 = _mm_set1_epi16(1);
  const __m128i offset_of = _mm_set1_epi32(3 | static_cast<std::int32_t>(pad_stride << 16));
  const __m128i frac_mask = _mm_set1_epi32(kFrac - 1);
  const __m128i frac_one = _mm_set1_epi32(kFrac);
#endif
  for (int y = 0; y < height; ++y) {
    const int row_x = round_to_int((inv[1] * y + inv[2]) * kAbScale) + kRound;
    const int row_y = round_to_int((inv[4] * y + inv[5]) * kAbScale) + kRound;
    std::uint8_t* out = dst + static_cast<std::ptrdiff_t>(y) * width * 4;
    std::uint32_t s0 = 0, s1 = 0, s2 = 0;
    int x = 0;
#if defined(__SSE2__)
    __m128i acc = _mm_setzero_si128();
    const __m128i vrow_x = _mm_set1_epi32(row_x);
    const __m128i vrow_y = _mm_set1_epi32(row_y);
    for (; vector_ok && x + 4 <= width; x += 4) {
      const __m128i fx_all = _mm_srai_epi32(
          _mm_add_epi32(vrow_x, _mm_loadu_si128(reinterpret_cast<const __m128i*>(dx_of + x))),
          kAbBits - kFracBits);
      const __m128i fy_all = _mm_srai_epi32(
          _mm_add_epi32(vrow_y, _mm_loadu_si128(reinterpret_cast<const __m128i*>(dy_of + x))),
          kAbBits - kFracBits);
      // [sx0..sx3, sy0..sy3] saturated to int16, clamped, shifted by the padding.
      __m128i corner =
          _mm_packs_epi32(_mm_srai_epi32(fx_all, kFracBits), _mm_srai_epi32(fy_all, kFracBits));
      corner = _mm_add_epi16(_mm_min_epi16(_mm_max_epi16(corner, low), high), one16);
      alignas(16) std::int32_t offs[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(offs),
                      _mm_madd_epi16(_mm_unpacklo_epi16(corner, _mm_unpackhi_epi64(corner, corner)),
                                     offset_of));
      const __m128i fx = _mm_and_si128(fx_all, frac_mask);
      const __m128i fy = _mm_and_si128(fy_all, frac_mask);
      const __m128i wx_pairs = _mm_or_si128(_mm_sub_epi32(frac_one, fx), _mm_slli_epi32(fx, 16));
      const __m128i wy0 = _mm_sub_epi32(frac_one, fy);
      const __m128i w_top = _mm_mullo_epi16(wx_pairs, _mm_or_si128(wy0, _mm_slli_epi32(wy0, 16)));
      const __m128i w_bottom = _mm_mullo_epi16(wx_pairs, _mm_or_si128(fy, _mm_slli_epi32(fy, 16)));
      const __m128i v0 = warp_lane<0>(pad, pad_stride, offs, w_top, w_bottom);
      const __m128i v1 = warp_lane<1>(pad, pad_stride, offs, w_top, w_bottom);
      const __m128i v2 = warp_lane<2>(pad, pad_stride, offs, w_top, w_bottom);
      const __m128i v3 = warp_lane<3>(pad, pad_stride, offs, w_top, w_bottom);
      acc = _mm_add_epi32(acc, _mm_add_epi32(_mm_add_epi32(v0, v1), _mm_add_epi32(v2, v3)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 4 * x),
                       _mm_packus_epi16(_mm_packs_epi32(v0, v1), _mm_packs_epi32(v2, v3)));
    }
    alignas(16) std::int32_t lanes[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(lanes), acc);
    sums[0] += static_cast<std::uint32_t>(lanes[0]);
    sums[1] += static_cast<std::uint32_t>(lanes[1]);
    sums[2] += static_cast<std::uint32_t>(lanes[2]);
#endif
    for (; x < width; ++x) {
      std::uint8_t* o = out + 4 * x;
      warp_pixel(src, height, width, (row_x + dx_of[x]) >> (kAbBits - kFracBits),
                 (row_y + dy_of[x]) >> (kAbBits - kFracBits), o);
      s0 += o[0];
      s1 += o[1];
      s2 += o[2];
    }
    sums[0] += s0;
    sums[1] += s1;
    sums[2] += s2;
  }
  return sums;
}

// Mirrors each row (exact; cheaper than a warp). Returns the channel sums of the result.
std::array<std::uint64_t, 3> flip_rgb(const std::uint8_t* src, int height, int width,
                                      std::uint8_t* dst) {
  std::array<std::uint64_t, 3> sums{0, 0, 0};
  const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(width) * 3;
  for (int y = 0; y < height; ++y) {
    const std::uint8_t* in = src + y * stride;
    std::uint8_t* out = dst + y * stride + stride - 3;
    std::uint32_t s0 = 0, s1 = 0, s2 = 0;
    for (int x = 0; x < width; ++x, in += 3, out -= 3) {
      out[0] = in[0];
      out[1] = in[1];
      out[2] = in[2];
      s0 += in[0];
      s1 += in[1];
      s2 += in[2];
    }
    sums[0] += s0;
    sums[1] += s1;
    sums[2] += s2;
  }
  return sums;
}

std::array<std::uint64_t, 3> channel_sums(const std::uint8_t* src, int pixels) {
  std::array<std::uint64_t, 3> sums{0, 0, 0};
  for (int p = 0; p < pixels; ++p) {
    sums[0] += src[3 * p];
    sums[1] += src[3 * p + 1];
    sums[2] += src[3 * p + 2];
  }
  return sums;
}

// out plane c = lut[c][pixel channel], channels 0 and 2 taken from s0 and 2 - s0.
template <int kStride>
void lookup_planes(const std::uint8_t* src, int pixels, const float (&lut)[3][256], int s0,
                   float* chw_out) {
  const int s2 = 2 - s0;
  float* dst0 = chw_out;
  float* dst1 = chw_out + pixels;
  float* dst2 = chw_out + 2 * static_cast<std::ptrdiff_t>(pixels);
  for (int p = 0; p < pixels; ++p) {
    const std::uint8_t* px = src + kStride * p;
    dst0[p] = lut[0][px[s0]];
    dst1[p] = lut[1][px[1]];
    dst2[p] = lut[2][px[s2]];
  }
}

}  // namespace

std::array<double, 6> augment_matrix(const AugmentDraw& draw, int height, int width) {
  // dst(x) = src(M^-1 x); M = T(c + shift) R(angle) S(zoom) F T(-c), about the pixel centre.
  const double cx = (width - 1) * 0.5;
  const double cy = (height - 1) * 0.5;
  const double a = draw.angle_degrees * 3.14159265358979323846 / 180.0;
  const double ca = std::cos(a) * draw.zoom;
  const double sa = std::sin(a) * draw.zoom;
  const double f = draw.flip ? -1.0 : 1.0;
  // Linear part L = R S F = [[ca*f, -sa], [sa*f, ca]]; translation t = c + shift - L c.
  const double l00 = ca * f, l01 = -sa, l10 = sa * f, l11 = ca;
  const double tx = cx + draw.shift_x - (l00 * cx + l01 * cy);
  const double ty = cy + draw.shift_y - (l10 * cx + l11 * cy);
  return {l00, l01, tx, l10, l11, ty};
}

void transform_sample(const std::uint8_t* rgb_hwc, int height, int width, const Preprocess& pre,
                      const AugmentDraw* draw, std::uint8_t* scratch, float* chw_out) {
  const std::uint8_t* src = rgb_hwc;
  int src_stride = 3;  // bytes per pixel of `src`
  const int pixels = height * width;
  std::array<std::uint64_t, 3> sums{0, 0, 0};
  bool have_sums = false;
  if (draw != nullptr) {
    const bool moves = draw->angle_degrees != 0.0 || draw->shift_x != 0.0 || draw->shift_y != 0.0 ||
                       draw->zoom != 1.0;
    if (moves) {
      // The inverse (destination to source) map, computed as cv::warpAffine inverts its matrix.
      const auto m = augment_matrix(*draw, height, width);
      double det = m[0] * m[4] - m[1] * m[3];
      det = det != 0.0 ? 1.0 / det : 0.0;
      std::array<double, 6> inv{};
      inv[0] = m[4] * det;
      inv[1] = m[1] * -det;
      inv[3] = m[3] * -det;
      inv[4] = m[0] * det;
      inv[2] = -inv[0] * m[2] - inv[1] * m[5];
      inv[5] = -inv[3] * m[2] - inv[4] * m[5];
      sums = warp_rgb(rgb_hwc, height, width, inv, scratch);
      have_sums = true;
      src = scratch;
      src_stride = 4;
    } else if (draw->flip) {
      sums = flip_rgb(rgb_hwc, height, width, scratch);
      have_sums = true;
      src = scratch;
    }
  }

  // Photometric augmentation and preprocessing fused into one lookup table per channel.
  std::array<double, 3> channel_mean{0.0, 0.0, 0.0};
  const bool photometric = draw != nullptr && (draw->brightness != 1.0 || draw->contrast != 1.0);
  if (photometric && draw->contrast != 1.0) {
    if (!have_sums) sums = channel_sums(src, pixels);
    for (int c = 0; c < 3; ++c) channel_mean[c] = static_cast<double>(sums[c]) / pixels;
  }
  float lut[3][256];
  for (int oc = 0; oc < 3; ++oc) {
    const int sc = pre.order == ChannelOrder::rgb ? oc : 2 - oc;
    for (int v = 0; v < 256; ++v) {
      double x = v;
      if (photometric) {
        const double b = draw->brightness;
        x = (x * b - channel_mean[sc] * b) * draw->contrast + channel_mean[sc] * b;
        x = std::clamp(x, 0.0, 255.0);
      }
      lut[oc][v] = static_cast<float>((x * pre.scale - pre.mean[oc]) / pre.std[oc]);
    }
  }
  // One pass over the pixels, writing the three planes (twice as fast as a pass per plane).
  const int s0 = pre.order == ChannelOrder::rgb ? 0 : 2;
  if (src_stride == 4) {
    lookup_planes<4>(src, pixels, lut, s0, chw_out);
  } else {
    lookup_planes<3>(src, pixels, lut, s0, chw_out);
  }
}

}  // namespace onnxforge::data
