// The cudnn backend's own CUDA kernels (kernels.cu), for the work neither cuDNN nor cuBLAS has a
// call for: element-wise ops with broadcasting, dropout, window pooling beyond cuDNN's geometry,
// concat / transpose / pad, losses, batch-norm statistics and the optimizer update. Every
// function enqueues on `stream` and returns at once; "+=" functions accumulate into gradients.
// Layout is plain row-major (NCHW) f32 throughout.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backends/cudnn/index_maps.hpp"
#include "graph/window.hpp"

namespace onnxforge::cudnn::kernels {

using std::int64_t;

// Throws onnxforge::Error naming `what` when the last launch failed.
void check_launch(const char* what);

// ---- element-wise ---------------------------------------------------------------------------
void fill(float* y, float value, int64_t n, cudaStream_t stream);
void accumulate(float* y, const float* x, int64_t n, cudaStream_t stream);  // y += x
// y = x * mask; dx += dy * mask
void multiply(const float* x, const float* mask, float* y, int64_t n, cudaStream_t stream);
void multiply_accumulate(const float* dy, const float* mask, float* dx, int64_t n,
                         cudaStream_t stream);
void leaky_relu_forward(const float* x, float* y, int64_t n, float alpha, cudaStream_t stream);
void leaky_relu_backward(const float* x, const float* dy, float* dx, int64_t n, float alpha,
                         cudaStream_t stream);
// Clip with NaN passed through; gradient where lo <= x <= hi.
void clip_forward(const float* x, float* y, int64_t n, float lo, float hi, cudaStream_t stream);
void clip_backward(const float* x, const float* dy, float* dx, int64_t n, float lo, float hi,
                   cudaStream_t stream);

enum class BinaryOp : int { add = 0, sub = 1, mul = 2, div = 3 };
void binary_forward(BinaryOp op, const Broadcast& plan, const float* a, const float* b, float* y,
                    int64_t n, cudaStream_t stream);
// da += dy * d op/da, db += dy * d op/db (either may be null); atomic where an operand is
// broadcast (several outputs read one element).
void binary_backward(BinaryOp op, const Broadcast& plan, const float* a, const float* b,
                     const float* dy, float* da, float* db, int64_t n, cudaStream_t stream);

// Inverted dropout: mask = keeps ? keep_scale : 0, y = x * mask (index_maps.hpp dropout_keeps).
void dropout_forward(const float* x, float* y, float* mask, int64_t n, std::uint32_t threshold,
                     float keep_scale, std::uint64_t seed, cudaStream_t stream);

// Dense bias: y[r, c] += bias[c] for rows x cols.
void add_bias_rows(float* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream);

// ---- layout ---------------------------------------------------------------------------------
void transpose_forward(const Permutation& plan, const float* x, float* y, int64_t n,
                       cudaStream_t stream);
void transpose_backward(const Permutation& plan, const float* dy, float* dx, int64_t n,
                        cudaStream_t stream);  // dx[perm(i)] += dy[i]
void pad_forward(const Padding& plan, const float* x, float* y, int64_t n, cudaStream_t stream);
void pad_backward(const Padding& plan, const float* dy, float* dx, int64_t n,
                  cudaStream_t stream);  // atomic dx[src(i)] += dy[i]
// y[i] (+)= scale * x[strided_offset(view, i)] for the n elements of view.dims (Slice, Expand,
// the reductions' backward); atomic y[strided_offset(view, i)] += scale * x[i] (their backward,
// the reductions' forward into zeros).
void strided_gather(const StridedView& view, const float* x, float* y, float scale, bool accumulate,
                    int64_t n, cudaStream_t stream);
void strided_scatter(const StridedView& view, const float* x, float* y, float scale, int64_t n,
                     cudaStream_t stream);
// Resize of planes (n, c) along H and W: output row h reads input rows h0[h] and h1[h] with
// weights 1 - hw[h] and hw[h], columns likewise (device arrays, lower/shape.cpp).
struct ResizeGeometry {
  int64_t planes = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  const int64_t *h0 = nullptr, *h1 = nullptr, *w0 = nullptr, *w1 = nullptr;
  const float *hw = nullptr, *ww = nullptr;
};
void resize_forward(const ResizeGeometry& g, const float* x, float* y, cudaStream_t stream);
void resize_backward(const ResizeGeometry& g, const float* dy, float* dx,
                     cudaStream_t stream);  // atomic dx += taps of dy

// Concat: one input's slab of `slab` elements per outer index, at `offset` inside the output's
// row of `row` elements.
void concat_forward(const float* x, float* y, int64_t outer, int64_t slab, int64_t row,
                    int64_t offset, cudaStream_t stream);
void concat_backward(const float* dy, float* dx, int64_t outer, int64_t slab, int64_t row,
                     int64_t offset, cudaStream_t stream);

// ---- pooling (any window: dilation, asymmetric pads, ceil_mode) -----------------------------
struct PoolGeometry {
  int64_t batch = 0, channels = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  Window2d win;
};
// First maximum in scan order wins (as the reference); argmax: input offset or -1.
void max_pool_forward(const PoolGeometry& g, const float* x, float* y, std::int32_t* argmax,
                      cudaStream_t stream);
void max_pool_backward(const PoolGeometry& g, const float* dy, const std::int32_t* argmax,
                       float* dx, cudaStream_t stream);
void average_pool_forward(const PoolGeometry& g, bool count_include_pad, const float* x, float* y,
                          cudaStream_t stream);
void average_pool_backward(const PoolGeometry& g, bool count_include_pad, const float* dy,
                           float* dx, cudaStream_t stream);
// y[nc] = mean of x over `area`; dx[nc, i] += dy[nc] / area.
void global_average_pool_forward(const float* x, float* y, int64_t planes, int64_t area,
                                 cudaStream_t stream);
void global_average_pool_backward(const float* dy, float* dx, int64_t planes, int64_t area,
                                  cudaStream_t stream);

// ---- batch normalization --------------------------------------------------------------------
// running = momentum * running + (1 - momentum) * batch statistic, the batch variance recovered
// from cuDNN's saved inverse standard deviation (biased, as the reference).
void batch_norm_update_running(float* running_mean, float* running_var, const float* saved_mean,
                               const float* saved_inv_std, int64_t channels, double epsilon,
                               double momentum, cudaStream_t stream);
// Backward of inference-mode normalisation (frozen statistics): dx += scale*inv_std*dy,
// dscale += sum dy*xhat, dbias += sum dy (each may be null). x: batch, channels, inner.
void batch_norm_backward_global(const float* x, const float* dy, const float* scale,
                                const float* mean, const float* var, double epsilon, float* dx,
                                float* dscale, float* dbias, int64_t batch, int64_t channels,
                                int64_t inner, cudaStream_t stream);

// ---- losses (scalar mean; the loss gradient is read from device memory) -------------------------
void bce_with_logits_forward(const float* logits, const float* labels, float* loss, int64_t n,
                             double weight_positive, double weight_negative, cudaStream_t stream);
void bce_with_logits_backward(const float* logits, const float* labels, const float* dloss,
                              float* dlogits, int64_t n, double weight_positive,
                              double weight_negative, cudaStream_t stream);
// probabilities: rows x classes, kept for backward; bad_label is set to 1 on a label outside
// [0, classes).
void softmax_cross_entropy_forward(const float* logits, const std::int64_t* labels,
                                   float* probabilities, float* loss, int* bad_label, int64_t rows,
                                   int64_t classes, cudaStream_t stream);
void softmax_cross_entropy_backward(const float* probabilities, const std::int64_t* labels,
                                    const float* dloss, float* dlogits, int64_t rows,
                                    int64_t classes, cudaStream_t stream);

// ---- optimizer ------------------------------------------------------------------------------
// The arithmetic of OptimizerConstants (backends/backend.hpp), in double per element, with the
// bias corrections unfolded (lr * (m / c1) / (sqrt(v / c2) + eps)); not yet run on a GPU.
struct OptimizerStep {
  int kind = 0;  // 0 sgd, 1 adam, 2 adamw
  double learning_rate = 0, momentum = 0, beta1 = 0, beta2 = 0, epsilon = 0, weight_decay = 0;
  bool nesterov = false;
  double correction1 = 1, correction2 = 1;  // 1 - beta^step (adam)
  double gradient_scale = 1;
};
void optimizer_step(const OptimizerStep& spec, float* w, const float* g, float* slot_a,
                    float* slot_b, int64_t n, cudaStream_t stream);
// *sum += sum of x[i]^2 (double).
void sum_of_squares(const float* x, int64_t n, double* sum, cudaStream_t stream);

}  // namespace onnxforge::cudnn::kernels
