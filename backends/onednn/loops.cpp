// Element-wise loops of the oneDNN backend: the optimizer update (in place, one pass over the
// parameters, vectorised and OpenMP-parallel), gradient norms and dropout.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "backends/onednn/program.hpp"
#include "core/random.hpp"

// The vector helpers below are internal and always inlined: no ABI crosses them.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace onnxforge::onednn {

[[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]] void optimizer_step(
    const OptimizerConstants<float>& constants, float* w, const float* g, float* slot_a,
    float* slot_b, std::size_t n) {
  const auto count = static_cast<std::int64_t>(n);
  // firstprivate(k): each thread works on its own copy, which no store through w or the slots
  // can alias (with the shared one the constants were reloaded every element: 10% slower).
  const OptimizerConstants<float> k = constants;
  if (k.sgd) {
#pragma omp parallel for simd schedule(static) firstprivate(k) if (count > kParallelThreshold)
    for (std::int64_t i = 0; i < count; ++i) k.sgd_update(w[i], g[i], slot_a[i]);
    return;
  }
#pragma omp parallel for simd schedule(static) firstprivate(k) if (count > kParallelThreshold)
  for (std::int64_t i = 0; i < count; ++i) k.adam_update(w[i], g[i], slot_a[i], slot_b[i]);
}

[[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]] double sum_of_squares(
    const float* x, std::size_t n) {
  const auto count = static_cast<std::int64_t>(n);
  double sum = 0.0;
#pragma omp parallel for simd reduction(+ : sum) schedule(static) if (count > kParallelThreshold)
  for (std::int64_t i = 0; i < count; ++i) sum += static_cast<double>(x[i]) * x[i];
  return sum;
}

[[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]] void dropout_forward(
    const float* x, float* y, float* mask, std::size_t n, double ratio, std::uint64_t seed) {
  const auto count = static_cast<std::int64_t>(n);
  const float keep_scale = static_cast<float>(1.0 / (1.0 - ratio));
  // Drop when the top 24 bits, as a fraction, fall below the ratio.
  const auto threshold = static_cast<std::uint32_t>(ratio * 16777216.0);
#pragma omp parallel for schedule(static) if (count > kParallelThreshold)
  for (std::int64_t i = 0; i < count; ++i) {
    const auto u = static_cast<std::uint32_t>(mix64(seed + static_cast<std::uint64_t>(i)) >> 40);
    const float m = u >= threshold ? keep_scale : 0.f;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

[[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]] void multiply(const float* a,
                                                                                    const float* b,
                                                                                    float* out,
                                                                                    std::size_t n) {
  const auto count = static_cast<std::int64_t>(n);
#pragma omp parallel for simd schedule(static) if (count > kParallelThreshold)
  for (std::int64_t i = 0; i < count; ++i) out[i] = a[i] * b[i];
}

[[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]] void relu_backward_from_bf16(
    const std::uint16_t* y, float* dy, std::size_t n) {
  const auto count = static_cast<std::int64_t>(n);
  // A bf16 is above zero exactly when, read as a signed 16-bit integer, it is (sign bit clear,
  // not +0); NaN aside, which a finite loss never sees.
  const auto* signed_y = reinterpret_cast<const std::int16_t*>(y);
#pragma omp parallel for simd schedule(static) if (count > kParallelThreshold)
  for (std::int64_t i = 0; i < count; ++i) dy[i] = signed_y[i] > 0 ? dy[i] : 0.f;
}

namespace {

// GCC vector extensions: 8 floats, their lane masks and 8 bytes. Built for the default target,
// they compile to AVX2 / AVX-512 inside the target_clones functions below.
typedef float v8f __attribute__((vector_size(32)));
typedef std::int32_t v8i __attribute__((vector_size(32)));
typedef std::uint8_t v8b __attribute__((vector_size(8)));

[[gnu::always_inline]] inline v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
[[gnu::always_inline]] inline void store8(float* p, const v8f& v) { std::memcpy(p, &v, sizeof v); }

// Calls tap(offset of the input pixel in the plane, tap number kh * kernel_w + kw) for every tap
// of output pixel (oh, ow) inside the input, in scan order.
template <typename Tap>
[[gnu::always_inline]] inline void for_each_tap(const PoolGeometry& g, std::int64_t oh,
                                                std::int64_t ow, Tap&& tap) {
  const Window2d& w = g.win;
  for (std::int64_t kh = 0; kh < w.kernel_h; ++kh) {
    const std::int64_t ih = oh * w.stride_h - w.pad_top + kh * w.dilation_h;
    if (ih < 0 || ih >= g.in_h) continue;
    for (std::int64_t kw = 0; kw < w.kernel_w; ++kw) {
      const std::int64_t iw = ow * w.stride_w - w.pad_left + kw * w.dilation_w;
      if (iw < 0 || iw >= g.in_w) continue;
      tap(ih * g.src_h + iw * g.src_w, kh * w.kernel_w + kw);
    }
  }
}

// One output pixel (oh, ow) for Vectors x 8 consecutive channels of a block (x, y, argmax point
// at the first of them, in the plane). Branch-free: the winner and its tap are selected per lane,
// first maximum in scan order (strict >), as oneDNN's primitive does.
template <int Vectors>
[[gnu::always_inline]] inline void max_pool_pixel_vector(const PoolGeometry& g, std::int64_t oh,
                                                         std::int64_t ow, const float* x, float* y,
                                                         std::uint8_t* argmax) {
  v8f best[Vectors], tap[Vectors];
  for (int v = 0; v < Vectors; ++v) {
    best[v] = v8f{} - INFINITY;
    tap[v] = v8f{} + 255.f;
  }
  for_each_tap(
      g, oh, ow, [&](std::int64_t offset, std::int64_t k) __attribute__((always_inline)) {
        const float* px = x + offset;
        const float t = static_cast<float>(k);
        for (int v = 0; v < Vectors; ++v) {
          const v8f value = load8(px + 8 * v);
          const v8i better = value > best[v];
          best[v] = better ? value : best[v];
          tap[v] = better ? v8f{} + t : tap[v];
        }
      });
  const std::int64_t at = oh * g.dst_h + ow * g.dst_w;
  for (int v = 0; v < Vectors; ++v) {
    store8(y + at + 8 * v, best[v]);
    if (argmax) {
      const v8b bytes = __builtin_convertvector(__builtin_convertvector(tap[v], v8i), v8b);
      std::memcpy(argmax + at + 8 * v, &bytes, sizeof bytes);
    }
  }
}

// The same for one channel.
[[gnu::always_inline]] inline void max_pool_pixel_scalar(const PoolGeometry& g, std::int64_t oh,
                                                         std::int64_t ow, const float* x, float* y,
                                                         std::uint8_t* argmax) {
  float best = -INFINITY;
  std::uint8_t tap = 255;
  for_each_tap(
      g, oh, ow, [&](std::int64_t offset, std::int64_t k) __attribute__((always_inline)) {
        const float value = x[offset];
        const bool better = value > best;
        best = better ? value : best;
        tap = better ? static_cast<std::uint8_t>(k) : tap;
      });
  y[oh * g.dst_h + ow * g.dst_w] = best;
  if (argmax) argmax[oh * g.dst_h + ow * g.dst_w] = tap;
}

// Backward of one output pixel for Vectors x 8 consecutive channels: for each in-bounds tap k,
// dx[tap k] += dy where the lane's argmax is k (masked vector adds, no branches on data).
template <int Vectors>
[[gnu::always_inline]] inline void max_pool_pixel_backward_vector(const PoolGeometry& g,
                                                                  std::int64_t oh, std::int64_t ow,
                                                                  const float* dy,
                                                                  const std::uint8_t* argmax,
                                                                  float* dx) {
  const std::int64_t at = oh * g.dst_h + ow * g.dst_w;
  v8f grad[Vectors];
  v8i tap[Vectors];
  for (int v = 0; v < Vectors; ++v) {
    grad[v] = load8(dy + at + 8 * v);
    v8b bytes;
    std::memcpy(&bytes, argmax + at + 8 * v, sizeof bytes);
    tap[v] = __builtin_convertvector(bytes, v8i);
  }
  for_each_tap(
      g, oh, ow, [&](std::int64_t offset, std::int64_t k) __attribute__((always_inline)) {
        float* q = dx + offset;
        for (int v = 0; v < Vectors; ++v) {
          const v8i hit = tap[v] == static_cast<std::int32_t>(k);
          store8(q + 8 * v, load8(q + 8 * v) + (hit ? grad[v] : v8f{}));
        }
      });
}

// The same for one channel.
[[gnu::always_inline]] inline void max_pool_pixel_backward_scalar(const PoolGeometry& g,
                                                                  std::int64_t oh, std::int64_t ow,
                                                                  const float* dy,
                                                                  const std::uint8_t* argmax,
                                                                  float* dx) {
  const std::int64_t at = oh * g.dst_h + ow * g.dst_w;
  const std::uint8_t t = argmax[at];
  if (t == 255) return;
  const std::int64_t ih =
      oh * g.win.stride_h - g.win.pad_top + (t / g.win.kernel_w) * g.win.dilation_h;
  const std::int64_t iw =
      ow * g.win.stride_w - g.win.pad_left + (t % g.win.kernel_w) * g.win.dilation_w;
  dx[ih * g.src_h + iw * g.src_w] += dy[at];
}

// The consecutive channels of a block, per pixel: 16 at a time (two vectors), then 8, then one
// by one. A block of 8 or 16 is a single step; channels-last (the block is all C channels, which
// sit together in memory) walks them all while the pixel's data is in cache.
template <typename Sixteen, typename Eight, typename One>
[[gnu::always_inline]] inline void for_channels(std::int64_t block, Sixteen&& sixteen,
                                                Eight&& eight, One&& one) {
  std::int64_t c = 0;
  for (; c + 16 <= block; c += 16) sixteen(c);
  if (c + 8 <= block) {
    eight(c);
    c += 8;
  }
  for (; c < block; ++c) one(c);
}

}  // namespace

[[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]] void max_pool_forward(
    const PoolGeometry& g, const float* x, float* y, std::uint8_t* argmax) {
  // Work items: one output row of one plane (an image's channel block).
  const std::int64_t planes = g.batch * g.channel_blocks;
  const std::int64_t rows = planes * g.out_h;
  const std::int64_t work = planes * g.block * g.out_h * g.out_w * g.win.kernel_h * g.win.kernel_w;
#pragma omp parallel for schedule(static) if (rows > 1 && work > kParallelThreshold)
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t p = row / g.out_h, oh = row % g.out_h;
    const std::int64_t n = p / g.channel_blocks, c = p % g.channel_blocks;
    const float* px = x + n * g.src_n + c * g.src_c;
    float* py = y + n * g.dst_n + c * g.dst_c;
    std::uint8_t* pa = argmax ? argmax + n * g.dst_n + c * g.dst_c : nullptr;
    for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
      for_channels(
          g.block,
          [&](std::int64_t k) {
            max_pool_pixel_vector<2>(g, oh, ow, px + k, py + k, pa ? pa + k : nullptr);
          },
          [&](std::int64_t k) {
            max_pool_pixel_vector<1>(g, oh, ow, px + k, py + k, pa ? pa + k : nullptr);
          },
          [&](std::int64_t k) {
            max_pool_pixel_scalar(g, oh, ow, px + k, py + k, pa ? pa + k : nullptr);
          });
    }
  }
}

[[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]] void max_pool_backward(
    const PoolGeometry& g, const float* dy, const std::uint8_t* argmax, float* dx) {
  // Work items: whole planes, whose writes never overlap (windows may, within a plane).
  const std::int64_t planes = g.batch * g.channel_blocks;
  const std::int64_t work = planes * g.block * g.in_h * g.in_w;
#pragma omp parallel for schedule(static) if (planes > 1 && work > kParallelThreshold)
  for (std::int64_t p = 0; p < planes; ++p) {
    const std::int64_t n = p / g.channel_blocks, c = p % g.channel_blocks;
    float* pdx = dx + n * g.src_n + c * g.src_c;
    for (std::int64_t h = 0; h < g.in_h; ++h) {
      for (std::int64_t w = 0; w < g.in_w; ++w) {
        float* q = pdx + h * g.src_h + w * g.src_w;
        for (std::int64_t b = 0; b < g.block; ++b) q[b] = 0.f;
      }
    }
    const float* pdy = dy + n * g.dst_n + c * g.dst_c;
    const std::uint8_t* pa = argmax + n * g.dst_n + c * g.dst_c;
    for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
      for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
        for_channels(
            g.block,
            [&](std::int64_t k) {
              max_pool_pixel_backward_vector<2>(g, oh, ow, pdy + k, pa + k, pdx + k);
            },
            [&](std::int64_t k) {
              max_pool_pixel_backward_vector<1>(g, oh, ow, pdy + k, pa + k, pdx + k);
            },
            [&](std::int64_t k) {
              max_pool_pixel_backward_scalar(g, oh, ow, pdy + k, pa + k, pdx + k);
            });
      }
    }
  }
}

}  // namespace onnxforge::onednn
