#include "data/transform.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>

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

Preprocess Preprocess::named(const std::string& name) {
  if (name == "unit") return unit();
  if (name == "imagenet") return imagenet();
  if (name == "caffe") return caffe();
  throw std::invalid_argument(
      fmt::format("unknown preprocessing '{}' (expected unit, imagenet or caffe)", name));
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

void transform_sample(const std::uint8_t* rgb_hwc, int height, int width, const Preprocess& pre,
                      const AugmentDraw* draw, std::uint8_t* scratch, float* chw_out) {
  const std::uint8_t* src = rgb_hwc;
  const int pixels = height * width;
  if (draw != nullptr) {
    const bool geometric = draw->flip || draw->angle_degrees != 0.0 || draw->shift_x != 0.0 ||
                           draw->shift_y != 0.0 || draw->zoom != 1.0;
    if (geometric) {
      // dst(x) = src(M^-1 x); M = T(c + shift) R(angle) S(zoom) F T(-c), about the pixel centre.
      const double cx = (width - 1) * 0.5;
      const double cy = (height - 1) * 0.5;
      const double a = draw->angle_degrees * 3.14159265358979323846 / 180.0;
      const double ca = std::cos(a) * draw->zoom;
      const double sa = std::sin(a) * draw->zoom;
      const double f = draw->flip ? -1.0 : 1.0;
      // Linear part L = R S F = [[ca*f, -sa], [sa*f, ca]]; translation t = c + shift - L c.
      const double l00 = ca * f, l01 = -sa, l10 = sa * f, l11 = ca;
      const double tx = cx + draw->shift_x - (l00 * cx + l01 * cy);
      const double ty = cy + draw->shift_y - (l10 * cx + l11 * cy);
      const cv::Matx23d m(l00, l01, tx, l10, l11, ty);
      const cv::Mat in(height, width, CV_8UC3, const_cast<std::uint8_t*>(rgb_hwc));
      cv::Mat out(height, width, CV_8UC3, scratch);
      if (draw->angle_degrees == 0.0 && draw->shift_x == 0.0 && draw->shift_y == 0.0 &&
          draw->zoom == 1.0) {
        cv::flip(in, out, 1);  // a flip alone: exact, and cheaper than a warp
      } else {
        cv::warpAffine(in, out, m, out.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
      }
      src = scratch;
    }
  }

  // Photometric augmentation and preprocessing fused into one lookup table per channel.
  std::array<double, 3> channel_mean{0.0, 0.0, 0.0};
  const bool photometric = draw != nullptr && (draw->brightness != 1.0 || draw->contrast != 1.0);
  if (photometric && draw->contrast != 1.0) {
    std::array<std::uint64_t, 3> sums{0, 0, 0};
    for (int p = 0; p < pixels; ++p) {
      sums[0] += src[3 * p];
      sums[1] += src[3 * p + 1];
      sums[2] += src[3 * p + 2];
    }
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
  const int s2 = 2 - s0;
  float* dst0 = chw_out;
  float* dst1 = chw_out + pixels;
  float* dst2 = chw_out + 2 * static_cast<std::ptrdiff_t>(pixels);
  for (int p = 0; p < pixels; ++p) {
    const std::uint8_t* px = src + 3 * p;
    dst0[p] = lut[0][px[s0]];
    dst1[p] = lut[1][px[1]];
    dst2[p] = lut[2][px[s2]];
  }
}

}  // namespace onnxforge::data
