// Geometry of a 2-D sliding window (convolution or pooling) over an NCHW input: plain data, so
// that the backends' own kernels (CUDA ones included) can carry it as it is.
#pragma once

#include <cstdint>

namespace onnxforge {

struct Window2d {
  std::int64_t kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t dilation_h = 1, dilation_w = 1;
  std::int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool ceil_mode = false;

  std::int64_t out_h(std::int64_t in_h) const;
  std::int64_t out_w(std::int64_t in_w) const;
};

}  // namespace onnxforge
