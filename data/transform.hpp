// Per-sample transforms from the uint8 RGB HWC cache to the model's float CHW input:
// augmentation (training only) and preprocessing (channel order, scale, mean/std).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace onnxforge::data {

enum class ChannelOrder { rgb, bgr };

// out[c] = (pixel[c] * scale - mean[c]) / std[c], channels in `order`; mean and std are given in
// the output channel order. Computed in double, stored as float.
struct Preprocess {
  ChannelOrder order = ChannelOrder::rgb;
  double scale = 1.0 / 255.0;
  std::array<double, 3> mean{0.0, 0.0, 0.0};
  std::array<double, 3> std{1.0, 1.0, 1.0};

  // [0, 1], RGB (the default; what Keras' Rescaling(1/255) gives).
  static Preprocess unit();
  // RGB, [0, 1], then ImageNet mean/std (torchvision, ONNX model zoo VGG16).
  static Preprocess imagenet();
  // Caffe style (Keras VGG16 preprocess_input): BGR, 0..255, minus the ImageNet BGR mean.
  static Preprocess caffe();
  // [-1, 1], RGB (Keras MobileNetV2/ResNetV2 "tf" preprocess_input).
  static Preprocess tf();
  // "unit", "imagenet", "caffe" or "tf"; throws Error otherwise.
  static Preprocess named(const std::string& name);
  // A name, or the explicit form describe() writes: "order=rgb scale=0.00392157 mean=0,0,0
  // std=1,1,1" (keys in any order, each optional: absent ones keep unit()'s). Throws Error
  // naming the part it cannot read.
  static Preprocess parse(const std::string& text);
  // The explicit form, which parse() reads back exactly (17 significant digits); what exported
  // models carry in their metadata ("onnxforge.preprocess").
  std::string describe() const;
  bool operator==(const Preprocess&) const = default;
};

// Random augmentation, each with its range; all zero means none. Applied per sample with a seed
// derived from (seed, epoch, sample index), so it never depends on thread scheduling.
struct Augment {
  double flip_probability = 0.0;  // horizontal flip
  double rotation_degrees = 0.0;  // angle uniform in [-r, r]
  double shift_fraction = 0.0;    // x and y shift uniform in [-s, s] of the width / height
  double zoom = 0.0;              // scale uniform in [1 - z, 1 + z]
  double brightness = 0.0;        // pixel values times a factor uniform in [1 - b, 1 + b]
  double contrast = 0.0;          // distance from the channel mean times [1 - c, 1 + c]

  bool any() const;
  bool geometric() const;
  // A sensible default for faces: flip 0.5, rotation 10 deg, shift 0.1, zoom 0.1,
  // brightness 0.2, contrast 0.2.
  static Augment standard();
};

// The random draw for one sample (exposed for tests).
struct AugmentDraw {
  bool flip = false;
  double angle_degrees = 0.0;
  double shift_x = 0.0;  // pixels
  double shift_y = 0.0;  // pixels
  double zoom = 1.0;
  double brightness = 1.0;
  double contrast = 1.0;
};
AugmentDraw draw_augment(const Augment& augment, int height, int width, std::uint64_t sample_seed);

// The forward (source to destination) affine map of a draw's geometry, row-major 2x3:
// T(c + shift) R(angle) S(zoom) F T(-c) about the pixel centre c = ((w-1)/2, (h-1)/2), F the
// horizontal flip (exposed for tests).
std::array<double, 6> augment_matrix(const AugmentDraw& draw, int height, int width);

// Transforms one cached image (height x width x 3, RGB uint8) into `chw_out`
// (3 x height x width floats): optional augmentation with `draw`, then preprocessing.
// The geometry is a bilinear warp with replicated borders, byte for byte what
// cv::warpAffine(augment_matrix(...), INTER_LINEAR, BORDER_REPLICATE) gives (a flip alone is an
// exact mirror). `scratch` must hold transform_scratch_bytes(height, width) bytes.
inline std::size_t transform_scratch_bytes(int height, int width) {
  return 4 * static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
}
void transform_sample(const std::uint8_t* rgb_hwc, int height, int width, const Preprocess& pre,
                      const AugmentDraw* draw, std::uint8_t* scratch, float* chw_out);

}  // namespace onnxforge::data
