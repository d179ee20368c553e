// Normalization: BatchNormalization (cuDNN spatial mode, running statistics by kernels.cu),
// Softmax and LogSoftmax along one axis (cuDNN).
#include <cstdint>
#include <memory>

#include "backends/cudnn/kernels.hpp"
#include "backends/cudnn/lower/common.hpp"

namespace onnxforge::cudnn {

namespace {

void lower_batch_norm(CudnnProgram& p, const Node& n) {
  const Shape& xs = shape_of(p, n.inputs[0]);
  const std::int64_t batch = xs[0], channels = xs[1];
  const std::int64_t inner = element_count(xs) / (batch * channels);
  const double epsilon = attr_float(n, "epsilon");
  const double momentum = attr_float(n, "momentum");
  const Value& scale_value = p.value(n.inputs[1]);
  // A frozen batch norm (non-trainable scale) runs in inference mode, also while training.
  const bool frozen = scale_value.parameter && !scale_value.trainable;
  auto xd = tensor_desc_4d(batch, channels, inner, 1);
  auto bnd = std::make_shared<TensorDesc>();
  check_node(cudnnDeriveBNTensorDescriptor(bnd->desc, xd->desc, CUDNN_BATCHNORM_SPATIAL), n,
             "cudnnDeriveBNTensorDescriptor");
  const float* x = p.value(n.inputs[0]).f();
  const float* scale = scale_value.f();
  const float* bias = p.value(n.inputs[2]).f();
  float* mean = p.value(n.inputs[3]).f();
  float* var = p.value(n.inputs[4]).f();
  float* y = p.value(n.outputs[0]).f();
  const auto channel_bytes = static_cast<std::size_t>(channels) * sizeof(float);
  float* saved_mean = p.scratch(channel_bytes);
  float* saved_inv_std = p.scratch(channel_bytes);
  // cuDNN's running variance is unbiased; the IR's (and the reference's) is biased: cuDNN updates
  // throw-away copies (factor 0) and a kernel updates the real ones from the batch statistics.
  float* unused_mean = p.scratch(channel_bytes);
  float* unused_var = p.scratch(channel_bytes);
  auto used_batch_statistics = std::make_shared<bool>(false);
  p.add_forward([&p, xd, bnd, x, y, scale, bias, mean, var, saved_mean, saved_inv_std, unused_mean,
                 unused_var, epsilon, momentum, channels, frozen,
                 used_batch_statistics](Mode mode) {
    *used_batch_statistics = mode == Mode::training && !frozen;
    if (!*used_batch_statistics) {
      check(cudnnBatchNormalizationForwardInference(p.cudnn(), CUDNN_BATCHNORM_SPATIAL, &kOne,
                                                    &kZero, xd->desc, x, xd->desc, y, bnd->desc,
                                                    scale, bias, mean, var, epsilon),
            "cudnnBatchNormalizationForwardInference");
      return;
    }
    check(cudnnBatchNormalizationForwardTraining(p.cudnn(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero,
                                                 xd->desc, x, xd->desc, y, bnd->desc, scale, bias,
                                                 0.0, unused_mean, unused_var, epsilon, saved_mean,
                                                 saved_inv_std),
          "cudnnBatchNormalizationForwardTraining");
    kernels::batch_norm_update_running(mean, var, saved_mean, saved_inv_std, channels, epsilon,
                                       momentum, p.stream());
  });
  float* dx = p.input_gradient(n, 0);
  float* dscale = p.input_gradient(n, 1);
  float* dbias = p.input_gradient(n, 2);
  if (!dx && !dscale && !dbias) return;
  const float* dy = p.output_gradient(n);
  // cuDNN's backward writes all three: unwanted ones go to scratch.
  float* dx_or_scratch =
      dx ? dx : p.scratch(static_cast<std::size_t>(element_count(xs)) * sizeof(float));
  float* dscale_or_scratch = dscale ? dscale : p.scratch(channel_bytes);
  float* dbias_or_scratch = dbias ? dbias : p.scratch(channel_bytes);
  p.add_backward([&p, xd, bnd, x, dy, scale, mean, var, saved_mean, saved_inv_std, dx, dscale,
                  dbias, dx_or_scratch, dscale_or_scratch, dbias_or_scratch, epsilon, batch,
                  channels, inner, used_batch_statistics]() {
    if (*used_batch_statistics) {
      check(cudnnBatchNormalizationBackward(p.cudnn(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kOne, &kOne,
                                            &kOne, xd->desc, x, xd->desc, dy, xd->desc,
                                            dx_or_scratch, bnd->desc, scale, dscale_or_scratch,
                                            dbias_or_scratch, epsilon, saved_mean, saved_inv_std),
            "cudnnBatchNormalizationBackward");
      return;
    }
    kernels::batch_norm_backward_global(x, dy, scale, mean, var, epsilon, dx, dscale, dbias, batch,
                                        channels, inner, p.stream());
  });
}

void lower_softmax(CudnnProgram& p, const Node& n, cudnnSoftmaxAlgorithm_t algorithm) {
  const Value& x = p.value(n.inputs[0]);
  auto axis = attr_int(n, "axis");
  const auto rank = static_cast<std::int64_t>(x.shape.size());
  if (axis < 0) axis += rank;
  std::int64_t outer = 1, extent = 1, inner = 1;
  for (std::int64_t d = 0; d < rank; ++d) {
    const auto s = x.shape[static_cast<std::size_t>(d)];
    if (d < axis) {
      outer *= s;
    } else if (d == axis) {
      extent = s;
    } else {
      inner *= s;
    }
  }
  auto desc = tensor_desc_4d(outer, extent, inner, 1);
  const float* xd = x.f();
  float* yd = p.value(n.outputs[0]).f();
  p.add_forward([&p, desc, algorithm, xd, yd](Mode) {
    check(cudnnSoftmaxForward(p.cudnn(), algorithm, CUDNN_SOFTMAX_MODE_CHANNEL, &kOne, desc->desc,
                              xd, &kZero, desc->desc, yd),
          "cudnnSoftmaxForward");
  });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, desc, algorithm, yd, dy, dx]() {
    check(cudnnSoftmaxBackward(p.cudnn(), algorithm, CUDNN_SOFTMAX_MODE_CHANNEL, &kOne, desc->desc,
                               yd, desc->desc, dy, &kOne, desc->desc, dx),
          "cudnnSoftmaxBackward");
  });
}

}  // namespace

void add_normalization_ops(CudnnOpTable& t) {
  t.lower(OpId::BatchNormalization, lower_batch_norm, with_backward());
  auto softmax = [](cudnnSoftmaxAlgorithm_t algorithm) {
    return [algorithm](CudnnProgram& p, const Node& n) { lower_softmax(p, n, algorithm); };
  };
  t.lower(OpId::Softmax, softmax(CUDNN_SOFTMAX_ACCURATE), with_backward());
  t.lower(OpId::LogSoftmax, softmax(CUDNN_SOFTMAX_LOG), with_backward());
}

}  // namespace onnxforge::cudnn
