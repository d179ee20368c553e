// CUDA kernels of the cudnn backend (kernels.hpp says what each does). Grid-stride loops, one
// thread per output element unless stated; reductions accumulate in double.
#include <cuda_runtime.h>

#include <cmath>

#include "backends/cudnn/kernels.hpp"

namespace onnxforge::cudnn::kernels {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks < 1) return 1;
  return blocks > (1 << 20) ? (1u << 20) : static_cast<unsigned>(blocks);
}

#define GRID_LOOP(i, n)                                                                  \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__global__ void fill_kernel(float* y, float value, int64_t n) { GRID_LOOP(i, n) y[i] = value; }

__global__ void accumulate_kernel(float* y, const float* x, int64_t n) {
  GRID_LOOP(i, n) y[i] += x[i];
}

__global__ void multiply_kernel(const float* x, const float* mask, float* y, int64_t n) {
  GRID_LOOP(i, n) y[i] = x[i] * mask[i];
}

__global__ void multiply_accumulate_kernel(const float* dy, const float* mask, float* dx,
                                           int64_t n) {
  GRID_LOOP(i, n) dx[i] += dy[i] * mask[i];
}

__global__ void leaky_relu_forward_kernel(const float* x, float* y, int64_t n, float alpha) {
  GRID_LOOP(i, n) y[i] = x[i] > 0.f ? x[i] : alpha * x[i];
}

__global__ void leaky_relu_backward_kernel(const float* x, const float* dy, float* dx, int64_t n,
                                           float alpha) {
  GRID_LOOP(i, n) dx[i] += dy[i] * (x[i] > 0.f ? 1.f : alpha);
}

__global__ void clip_forward_kernel(const float* x, float* y, int64_t n, float lo, float hi) {
  GRID_LOOP(i, n) {
    const float v = x[i];
    y[i] = isnan(v) ? v : fminf(fmaxf(v, lo), hi);
  }
}

__global__ void clip_backward_kernel(const float* x, const float* dy, float* dx, int64_t n,
                                     float lo, float hi) {
  GRID_LOOP(i, n) {
    if (x[i] >= lo && x[i] <= hi) dx[i] += dy[i];
  }
}

__device__ float apply(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::add:
      return a + b;
    case BinaryOp::sub:
      return a - b;
    case BinaryOp::mul:
      return a * b;
    case BinaryOp::div:
      return a / b;
  }
  return 0.f;
}

__global__ void binary_forward_kernel(BinaryOp op, Broadcast plan, const float* a, const float* b,
                                      float* y, int64_t n) {
  GRID_LOOP(i, n) {
    y[i] = apply(op, a[broadcast_offset(plan, i, false)], b[broadcast_offset(plan, i, true)]);
  }
}

__global__ void binary_backward_kernel(BinaryOp op, Broadcast plan, const float* a, const float* b,
                                       const float* dy, float* da, float* db, int64_t n) {
  GRID_LOOP(i, n) {
    const int64_t ia = broadcast_offset(plan, i, false);
    const int64_t ib = broadcast_offset(plan, i, true);
    const float g = dy[i];
    float ga = g, gb = g;
    switch (op) {
      case BinaryOp::add:
        break;
      case BinaryOp::sub:
        gb = -g;
        break;
      case BinaryOp::mul:
        ga = g * b[ib];
        gb = g * a[ia];
        break;
      case BinaryOp::div:
        ga = g / b[ib];
        gb = -g * a[ia] / (b[ib] * b[ib]);
        break;
    }
    if (da) {
      if (plan.a_full) {
        da[ia] += ga;
      } else {
        atomicAdd(da + ia, ga);
      }
    }
    if (db) {
      if (plan.b_full) {
        db[ib] += gb;
      } else {
        atomicAdd(db + ib, gb);
      }
    }
  }
}

__global__ void dropout_forward_kernel(const float* x, float* y, float* mask, int64_t n,
                                       std::uint32_t threshold, float keep_scale,
                                       std::uint64_t seed) {
  GRID_LOOP(i, n) {
    const float m = dropout_keeps(seed, i, threshold) ? keep_scale : 0.f;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

__global__ void add_bias_rows_kernel(float* y, const float* bias, int64_t rows, int64_t cols) {
  GRID_LOOP(i, rows * cols) y[i] += bias[i % cols];
}

__global__ void transpose_forward_kernel(Permutation plan, const float* x, float* y, int64_t n) {
  GRID_LOOP(i, n) y[i] = x[permuted_offset(plan, i)];
}

__global__ void transpose_backward_kernel(Permutation plan, const float* dy, float* dx, int64_t n) {
  GRID_LOOP(i, n) dx[permuted_offset(plan, i)] += dy[i];
}

__global__ void pad_forward_kernel(Padding plan, const float* x, float* y, int64_t n) {
  GRID_LOOP(i, n) {
    const int64_t src = padded_source(plan, i);
    y[i] = src < 0 ? plan.value : x[src];
  }
}

__global__ void pad_backward_kernel(Padding plan, const float* dy, float* dx, int64_t n) {
  GRID_LOOP(i, n) {
    const int64_t src = padded_source(plan, i);
    if (src >= 0) atomicAdd(dx + src, dy[i]);
  }
}

__global__ void strided_gather_kernel(StridedView view, const float* x, float* y, float scale,
                                      bool accumulate, int64_t n) {
  GRID_LOOP(i, n) {
    const float v = scale * x[strided_offset(view, i)];
    y[i] = accumulate ? y[i] + v : v;
  }
}

__global__ void strided_scatter_kernel(StridedView view, const float* x, float* y, float scale,
                                       int64_t n) {
  GRID_LOOP(i, n) atomicAdd(y + strided_offset(view, i), scale * x[i]);
}

__global__ void resize_forward_kernel(ResizeGeometry g, const float* x, float* y) {
  GRID_LOOP(i, g.planes * g.out_h * g.out_w) {
    const int64_t w = i % g.out_w;
    const int64_t h = (i / g.out_w) % g.out_h;
    const float* plane = x + (i / (g.out_w * g.out_h)) * g.in_h * g.in_w;
    const float* r0 = plane + g.h0[h] * g.in_w;
    const float* r1 = plane + g.h1[h] * g.in_w;
    const float a = g.hw[h], b = g.ww[w];
    const float top = (1 - b) * r0[g.w0[w]] + b * r0[g.w1[w]];
    const float bottom = (1 - b) * r1[g.w0[w]] + b * r1[g.w1[w]];
    y[i] = (1 - a) * top + a * bottom;
  }
}

__global__ void resize_backward_kernel(ResizeGeometry g, const float* dy, float* dx) {
  GRID_LOOP(i, g.planes * g.out_h * g.out_w) {
    const int64_t w = i % g.out_w;
    const int64_t h = (i / g.out_w) % g.out_h;
    float* plane = dx + (i / (g.out_w * g.out_h)) * g.in_h * g.in_w;
    const float a = g.hw[h], b = g.ww[w], v = dy[i];
    atomicAdd(plane + g.h0[h] * g.in_w + g.w0[w], (1 - a) * (1 - b) * v);
    atomicAdd(plane + g.h0[h] * g.in_w + g.w1[w], (1 - a) * b * v);
    atomicAdd(plane + g.h1[h] * g.in_w + g.w0[w], a * (1 - b) * v);
    atomicAdd(plane + g.h1[h] * g.in_w + g.w1[w], a * b * v);
  }
}

__global__ void concat_forward_kernel(const float* x, float* y, int64_t outer, int64_t slab,
                                      int64_t row, int64_t offset) {
  GRID_LOOP(i, outer * slab) y[(i / slab) * row + offset + i % slab] = x[i];
}

__global__ void concat_backward_kernel(const float* dy, float* dx, int64_t outer, int64_t slab,
                                       int64_t row, int64_t offset) {
  GRID_LOOP(i, outer * slab) dx[i] += dy[(i / slab) * row + offset + i % slab];
}

// Output element i of a pooling: its plane (n*C + c) and window origin.
struct Window {
  int64_t plane, h0, w0;
};

__device__ Window window_of(const PoolGeometry& g, int64_t i) {
  const int64_t ow = i % g.out_w;
  const int64_t oh = (i / g.out_w) % g.out_h;
  const int64_t plane = i / (g.out_w * g.out_h);
  return {plane, oh * g.win.stride_h - g.win.pad_top, ow * g.win.stride_w - g.win.pad_left};
}

// Calls tap(offset in the plane) for every tap of window w inside the input, in scan order.
template <typename Tap>
__device__ void for_each_tap(const PoolGeometry& g, const Window& w, Tap&& tap) {
  for (int64_t kh = 0; kh < g.win.kernel_h; ++kh) {
    const int64_t ih = w.h0 + kh * g.win.dilation_h;
    if (ih < 0 || ih >= g.in_h) continue;
    for (int64_t kw = 0; kw < g.win.kernel_w; ++kw) {
      const int64_t iw = w.w0 + kw * g.win.dilation_w;
      if (iw < 0 || iw >= g.in_w) continue;
      tap(ih * g.in_w + iw);
    }
  }
}

__global__ void max_pool_forward_kernel(PoolGeometry g, const float* x, float* y,
                                        std::int32_t* argmax, int64_t n) {
  GRID_LOOP(i, n) {
    const Window w = window_of(g, i);
    const float* plane = x + w.plane * g.in_h * g.in_w;
    float best = -INFINITY;
    int64_t where = -1;
    for_each_tap(g, w, [&](int64_t offset) {
      const float v = plane[offset];
      if (v > best) {
        best = v;
        where = w.plane * g.in_h * g.in_w + offset;
      }
    });
    y[i] = best;
    if (argmax) argmax[i] = static_cast<std::int32_t>(where);
  }
}

__global__ void max_pool_backward_kernel(const float* dy, const std::int32_t* argmax, float* dx,
                                         int64_t n) {
  GRID_LOOP(i, n) {
    if (argmax[i] >= 0) atomicAdd(dx + argmax[i], dy[i]);
  }
}

// Taps in bounds and the count that count_include_pad divides by (positions inside the padded
// input, not beyond it: ceil_mode windows may overhang), as the reference counts them.
__device__ void average_counts(const PoolGeometry& g, const Window& w, int64_t* taps,
                               int64_t* padded) {
  *taps = 0;
  *padded = 0;
  for (int64_t kh = 0; kh < g.win.kernel_h; ++kh) {
    const int64_t ih = w.h0 + kh * g.win.dilation_h;
    for (int64_t kw = 0; kw < g.win.kernel_w; ++kw) {
      const int64_t iw = w.w0 + kw * g.win.dilation_w;
      if (ih < g.in_h + g.win.pad_bottom && iw < g.in_w + g.win.pad_right) ++*padded;
      if (ih >= 0 && ih < g.in_h && iw >= 0 && iw < g.in_w) ++*taps;
    }
  }
}

__global__ void average_pool_forward_kernel(PoolGeometry g, bool include_pad, const float* x,
                                            float* y, int64_t n) {
  GRID_LOOP(i, n) {
    const Window w = window_of(g, i);
    const float* plane = x + w.plane * g.in_h * g.in_w;
    int64_t taps = 0, padded = 0;
    average_counts(g, w, &taps, &padded);
    double sum = 0.0;
    for_each_tap(g, w, [&](int64_t offset) { sum += plane[offset]; });
    const int64_t divisor = include_pad ? padded : taps;
    y[i] = taps == 0 ? 0.f : static_cast<float>(sum / static_cast<double>(divisor));
  }
}

__global__ void average_pool_backward_kernel(PoolGeometry g, bool include_pad, const float* dy,
                                             float* dx, int64_t n) {
  GRID_LOOP(i, n) {
    const Window w = window_of(g, i);
    float* plane = dx + w.plane * g.in_h * g.in_w;
    int64_t taps = 0, padded = 0;
    average_counts(g, w, &taps, &padded);
    if (taps == 0) continue;
    const float share = dy[i] / static_cast<float>(include_pad ? padded : taps);
    for_each_tap(g, w, [&](int64_t offset) { atomicAdd(plane + offset, share); });
  }
}

// Tree sum of every thread's `value` over the block (blockDim.x a power of two, at most
// kThreads): the total ends in partial[0], seen by every thread after the final barrier.
__device__ void block_sum(double* partial, double value) {
  partial[threadIdx.x] = value;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
}

// One block per plane: a shared-memory tree sum in double.
__global__ void global_average_pool_forward_kernel(const float* x, float* y, int64_t area) {
  __shared__ double partial[kThreads];
  const float* plane = x + blockIdx.x * area;
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < area; i += blockDim.x) sum += plane[i];
  block_sum(partial, sum);
  if (threadIdx.x == 0) y[blockIdx.x] = static_cast<float>(partial[0] / static_cast<double>(area));
}

__global__ void global_average_pool_backward_kernel(const float* dy, float* dx, int64_t planes,
                                                    int64_t area) {
  GRID_LOOP(i, planes * area) dx[i] += dy[i / area] / static_cast<float>(area);
}

__global__ void batch_norm_update_running_kernel(float* running_mean, float* running_var,
                                                 const float* saved_mean,
                                                 const float* saved_inv_std, int64_t channels,
                                                 double epsilon, double momentum) {
  GRID_LOOP(c, channels) {
    const double inv_std = saved_inv_std[c];
    const double var = 1.0 / (inv_std * inv_std) - epsilon;
    running_mean[c] =
        static_cast<float>(momentum * running_mean[c] + (1.0 - momentum) * saved_mean[c]);
    running_var[c] = static_cast<float>(momentum * running_var[c] + (1.0 - momentum) * var);
  }
}

// One block per channel.
__global__ void batch_norm_backward_global_kernel(const float* x, const float* dy,
                                                  const float* scale, const float* mean,
                                                  const float* var, double epsilon, float* dx,
                                                  float* dscale, float* dbias, int64_t batch,
                                                  int64_t channels, int64_t inner) {
  __shared__ double sum_dy[kThreads];
  __shared__ double sum_dy_xhat[kThreads];
  const int64_t c = blockIdx.x;
  const double inv_std = 1.0 / sqrt(static_cast<double>(var[c]) + epsilon);
  const double m = mean[c];
  const float gain = static_cast<float>(scale[c] * inv_std);
  double s1 = 0.0, s2 = 0.0;
  for (int64_t j = threadIdx.x; j < batch * inner; j += blockDim.x) {
    const int64_t at = ((j / inner) * channels + c) * inner + j % inner;
    const double g = dy[at];
    s1 += g;
    s2 += g * (x[at] - m) * inv_std;
    if (dx) dx[at] += gain * dy[at];
  }
  sum_dy[threadIdx.x] = s1;
  sum_dy_xhat[threadIdx.x] = s2;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) {
      sum_dy[threadIdx.x] += sum_dy[threadIdx.x + s];
      sum_dy_xhat[threadIdx.x] += sum_dy_xhat[threadIdx.x + s];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    if (dscale) dscale[c] += static_cast<float>(sum_dy_xhat[0]);
    if (dbias) dbias[c] += static_cast<float>(sum_dy[0]);
  }
}

__device__ double sigmoid(double z) {
  return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

// One block: deterministic order of the sum.
__global__ void bce_forward_kernel(const float* z, const float* y, float* loss, int64_t n,
                                   double wp, double wn) {
  __shared__ double partial[kThreads];
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const double zi = z[i], yi = y[i];
    const double w = yi * wp + (1.0 - yi) * wn;
    sum += w * (fmax(zi, 0.0) - zi * yi + log1p(exp(-fabs(zi))));
  }
  block_sum(partial, sum);
  if (threadIdx.x == 0) *loss = static_cast<float>(partial[0] / static_cast<double>(n));
}

__global__ void bce_backward_kernel(const float* z, const float* y, const float* dloss, float* dz,
                                    int64_t n, double wp, double wn) {
  const double g = static_cast<double>(*dloss) / static_cast<double>(n);
  GRID_LOOP(i, n) {
    const double yi = y[i];
    const double w = yi * wp + (1.0 - yi) * wn;
    dz[i] += static_cast<float>(g * w * (sigmoid(z[i]) - yi));
  }
}

// One block: each thread takes rows; probabilities kept for backward.
__global__ void softmax_ce_forward_kernel(const float* z, const std::int64_t* labels, float* p,
                                          float* loss, int* bad_label, int64_t rows,
                                          int64_t classes) {
  __shared__ double partial[kThreads];
  double sum = 0.0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const float* row = z + r * classes;
    double top = -INFINITY;
    for (int64_t k = 0; k < classes; ++k) top = fmax(top, static_cast<double>(row[k]));
    double total = 0.0;
    for (int64_t k = 0; k < classes; ++k) total += exp(row[k] - top);
    for (int64_t k = 0; k < classes; ++k) {
      p[r * classes + k] = static_cast<float>(exp(row[k] - top) / total);
    }
    const std::int64_t label = labels[r];
    if (label < 0 || label >= classes) {
      *bad_label = 1;
      continue;
    }
    sum += -(row[label] - top - log(total));
  }
  block_sum(partial, sum);
  if (threadIdx.x == 0) *loss = static_cast<float>(partial[0] / static_cast<double>(rows));
}

__global__ void softmax_ce_backward_kernel(const float* p, const std::int64_t* labels,
                                           const float* dloss, float* dz, int64_t rows,
                                           int64_t classes) {
  const double g = static_cast<double>(*dloss) / static_cast<double>(rows);
  GRID_LOOP(i, rows * classes) {
    const int64_t r = i / classes, k = i % classes;
    const double target = labels[r] == k ? 1.0 : 0.0;
    dz[i] += static_cast<float>(g * (p[i] - target));
  }
}

__global__ void optimizer_kernel(OptimizerStep s, float* weights, const float* gradient,
                                 float* slot_a, float* slot_b, int64_t n) {
  GRID_LOOP(i, n) {
    double w = weights[i];
    double g = static_cast<double>(gradient[i]) * s.gradient_scale;
    if (s.kind == 2) {
      w -= s.learning_rate * s.weight_decay * w;
    } else {
      g += s.weight_decay * w;
    }
    if (s.kind != 0) {
      const double m = s.beta1 * static_cast<double>(slot_a[i]) + (1.0 - s.beta1) * g;
      const double v = s.beta2 * static_cast<double>(slot_b[i]) + (1.0 - s.beta2) * g * g;
      slot_a[i] = static_cast<float>(m);
      slot_b[i] = static_cast<float>(v);
      w -= s.learning_rate * (m / s.correction1) / (sqrt(v / s.correction2) + s.epsilon);
    } else {
      const double velocity = s.momentum * static_cast<double>(slot_a[i]) - s.learning_rate * g;
      slot_a[i] = static_cast<float>(velocity);
      w += s.nesterov ? s.momentum * velocity - s.learning_rate * g : velocity;
    }
    weights[i] = static_cast<float>(w);
  }
}

__global__ void sum_of_squares_kernel(const float* x, int64_t n, double* sum) {
  __shared__ double partial[kThreads];
  double local = 0.0;
  GRID_LOOP(i, n) local += static_cast<double>(x[i]) * x[i];
  block_sum(partial, local);
  if (threadIdx.x == 0) atomicAdd(sum, partial[0]);
}

#undef GRID_LOOP

}  // namespace

// ---- launchers ----------------------------------------------------------------------------------
// Each launches, then check_launch (cuda_check.cpp) turns a launch error into an Error.

#define LAUNCH(kernel, n, stream, ...)                                        \
  do {                                                                        \
    if ((n) > 0) kernel<<<blocks_for(n), kThreads, 0, stream>>>(__VA_ARGS__); \
    check_launch(#kernel);                                                    \
  } while (0)

void fill(float* y, float value, int64_t n, cudaStream_t s) {
  LAUNCH(fill_kernel, n, s, y, value, n);
}
void accumulate(float* y, const float* x, int64_t n, cudaStream_t s) {
  LAUNCH(accumulate_kernel, n, s, y, x, n);
}
void multiply(const float* x, const float* mask, float* y, int64_t n, cudaStream_t s) {
  LAUNCH(multiply_kernel, n, s, x, mask, y, n);
}
void multiply_accumulate(const float* dy, const float* mask, float* dx, int64_t n, cudaStream_t s) {
  LAUNCH(multiply_accumulate_kernel, n, s, dy, mask, dx, n);
}
void leaky_relu_forward(const float* x, float* y, int64_t n, float alpha, cudaStream_t s) {
  LAUNCH(leaky_relu_forward_kernel, n, s, x, y, n, alpha);
}
void leaky_relu_backward(const float* x, const float* dy, float* dx, int64_t n, float alpha,
                         cudaStream_t s) {
  LAUNCH(leaky_relu_backward_kernel, n, s, x, dy, dx, n, alpha);
}
void clip_forward(const float* x, float* y, int64_t n, float lo, float hi, cudaStream_t s) {
  LAUNCH(clip_forward_kernel, n, s, x, y, n, lo, hi);
}
void clip_backward(const float* x, const float* dy, float* dx, int64_t n, float lo, float hi,
                   cudaStream_t s) {
  LAUNCH(clip_backward_kernel, n, s, x, dy, dx, n, lo, hi);
}
void binary_forward(BinaryOp op, const Broadcast& plan, const float* a, const float* b, float* y,
                    int64_t n, cudaStream_t s) {
  LAUNCH(binary_forward_kernel, n, s, op, plan, a, b, y, n);
}
void binary_backward(BinaryOp op, const Broadcast& plan, const float* a, const float* b,
                     const float* dy, float* da, float* db, int64_t n, cudaStream_t s) {
  LAUNCH(binary_backward_kernel, n, s, op, plan, a, b, dy, da, db, n);
}
void dropout_forward(const float* x, float* y, float* mask, int64_t n, std::uint32_t threshold,
                     float keep_scale, std::uint64_t seed, cudaStream_t s) {
  LAUNCH(dropout_forward_kernel, n, s, x, y, mask, n, threshold, keep_scale, seed);
}
void add_bias_rows(float* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t s) {
  LAUNCH(add_bias_rows_kernel, rows * cols, s, y, bias, rows, cols);
}
void strided_gather(const StridedView& view, const float* x, float* y, float scale, bool accumulate,
                    int64_t n, cudaStream_t s) {
  LAUNCH(strided_gather_kernel, n, s, view, x, y, scale, accumulate, n);
}
void strided_scatter(const StridedView& view, const float* x, float* y, float scale, int64_t n,
                     cudaStream_t s) {
  LAUNCH(strided_scatter_kernel, n, s, view, x, y, scale, n);
}
void resize_forward(const ResizeGeometry& g, const float* x, float* y, cudaStream_t s) {
  const int64_t n = g.planes * g.out_h * g.out_w;
  LAUNCH(resize_forward_kernel, n, s, g, x, y);
}
void resize_backward(const ResizeGeometry& g, const float* dy, float* dx, cudaStream_t s) {
  const int64_t n = g.planes * g.out_h * g.out_w;
  LAUNCH(resize_backward_kernel, n, s, g, dy, dx);
}
void transpose_forward(const Permutation& plan, const float* x, float* y, int64_t n,
                       cudaStream_t s) {
  LAUNCH(transpose_forward_kernel, n, s, plan, x, y, n);
}
void transpose_backward(const Permutation& plan, const float* dy, float* dx, int64_t n,
                        cudaStream_t s) {
  LAUNCH(transpose_backward_kernel, n, s, plan, dy, dx, n);
}
void pad_forward(const Padding& plan, const float* x, float* y, int64_t n, cudaStream_t s) {
  LAUNCH(pad_forward_kernel, n, s, plan, x, y, n);
}
void pad_backward(const Padding& plan, const float* dy, float* dx, int64_t n, cudaStream_t s) {
  LAUNCH(pad_backward_kernel, n, s, plan, dy, dx, n);
}
void concat_forward(const float* x, float* y, int64_t outer, int64_t slab, int64_t row,
                    int64_t offset, cudaStream_t s) {
  LAUNCH(concat_forward_kernel, outer * slab, s, x, y, outer, slab, row, offset);
}
void concat_backward(const float* dy, float* dx, int64_t outer, int64_t slab, int64_t row,
                     int64_t offset, cudaStream_t s) {
  LAUNCH(concat_backward_kernel, outer * slab, s, dy, dx, outer, slab, row, offset);
}

namespace {
int64_t pool_outputs(const PoolGeometry& g) { return g.batch * g.channels * g.out_h * g.out_w; }
}  // namespace

void max_pool_forward(const PoolGeometry& g, const float* x, float* y, std::int32_t* argmax,
                      cudaStream_t s) {
  const int64_t n = pool_outputs(g);
  LAUNCH(max_pool_forward_kernel, n, s, g, x, y, argmax, n);
}
void max_pool_backward(const PoolGeometry& g, const float* dy, const std::int32_t* argmax,
                       float* dx, cudaStream_t s) {
  const int64_t n = pool_outputs(g);
  LAUNCH(max_pool_backward_kernel, n, s, dy, argmax, dx, n);
}
void average_pool_forward(const PoolGeometry& g, bool include_pad, const float* x, float* y,
                          cudaStream_t s) {
  const int64_t n = pool_outputs(g);
  LAUNCH(average_pool_forward_kernel, n, s, g, include_pad, x, y, n);
}
void average_pool_backward(const PoolGeometry& g, bool include_pad, const float* dy, float* dx,
                           cudaStream_t s) {
  const int64_t n = pool_outputs(g);
  LAUNCH(average_pool_backward_kernel, n, s, g, include_pad, dy, dx, n);
}
void global_average_pool_forward(const float* x, float* y, int64_t planes, int64_t area,
                                 cudaStream_t s) {
  if (planes > 0) {
    global_average_pool_forward_kernel<<<static_cast<unsigned>(planes), kThreads, 0, s>>>(x, y,
                                                                                          area);
  }
  check_launch("global_average_pool_forward_kernel");
}
void global_average_pool_backward(const float* dy, float* dx, int64_t planes, int64_t area,
                                  cudaStream_t s) {
  LAUNCH(global_average_pool_backward_kernel, planes * area, s, dy, dx, planes, area);
}
void batch_norm_update_running(float* running_mean, float* running_var, const float* saved_mean,
                               const float* saved_inv_std, int64_t channels, double epsilon,
                               double momentum, cudaStream_t s) {
  LAUNCH(batch_norm_update_running_kernel, channels, s, running_mean, running_var, saved_mean,
         saved_inv_std, channels, epsilon, momentum);
}
void batch_norm_backward_global(const float* x, const float* dy, const float* scale,
                                const float* mean, const float* var, double epsilon, float* dx,
                                float* dscale, float* dbias, int64_t batch, int64_t channels,
                                int64_t inner, cudaStream_t s) {
  if (channels > 0) {
    batch_norm_backward_global_kernel<<<static_cast<unsigned>(channels), kThreads, 0, s>>>(
        x, dy, scale, mean, var, epsilon, dx, dscale, dbias, batch, channels, inner);
  }
  check_launch("batch_norm_backward_global_kernel");
}
void bce_with_logits_forward(const float* logits, const float* labels, float* loss, int64_t n,
                             double wp, double wn, cudaStream_t s) {
  bce_forward_kernel<<<1, kThreads, 0, s>>>(logits, labels, loss, n, wp, wn);
  check_launch("bce_forward_kernel");
}
void bce_with_logits_backward(const float* logits, const float* labels, const float* dloss,
                              float* dlogits, int64_t n, double wp, double wn, cudaStream_t s) {
  LAUNCH(bce_backward_kernel, n, s, logits, labels, dloss, dlogits, n, wp, wn);
}
void softmax_cross_entropy_forward(const float* logits, const std::int64_t* labels,
                                   float* probabilities, float* loss, int* bad_label, int64_t rows,
                                   int64_t classes, cudaStream_t s) {
  softmax_ce_forward_kernel<<<1, kThreads, 0, s>>>(logits, labels, probabilities, loss, bad_label,
                                                   rows, classes);
  check_launch("softmax_ce_forward_kernel");
}
void softmax_cross_entropy_backward(const float* probabilities, const std::int64_t* labels,
                                    const float* dloss, float* dlogits, int64_t rows,
                                    int64_t classes, cudaStream_t s) {
  LAUNCH(softmax_ce_backward_kernel, rows * classes, s, probabilities, labels, dloss, dlogits, rows,
         classes);
}
void optimizer_step(const OptimizerStep& spec, float* w, const float* g, float* slot_a,
                    float* slot_b, int64_t n, cudaStream_t s) {
  LAUNCH(optimizer_kernel, n, s, spec, w, g, slot_a, slot_b, n);
}
void sum_of_squares(const float* x, int64_t n, double* sum, cudaStream_t s) {
  LAUNCH(sum_of_squares_kernel, n, s, x, n, sum);
}

#undef LAUNCH

}  // namespace onnxforge::cudnn::kernels
