// Elementwise ops: Relu, Sigmoid, Tanh (cuDNN activations), LeakyRelu, Clip, Dropout (kernels.cu),
// Identity (a device copy).
#include <cstdint>
#include <memory>
#include <string>

#include "backends/cudnn/kernels.hpp"
#include "backends/cudnn/lower/common.hpp"
#include "backends/cudnn/plan.hpp"

namespace onnxforge::cudnn {

namespace {

struct ActivationDesc {
  cudnnActivationDescriptor_t desc = nullptr;
  ActivationDesc() {
    check(cudnnCreateActivationDescriptor(&desc), "cudnnCreateActivationDescriptor");
  }
  ~ActivationDesc() { cudnnDestroyActivationDescriptor(desc); }
  ActivationDesc(const ActivationDesc&) = delete;
  ActivationDesc& operator=(const ActivationDesc&) = delete;
};

void lower_cudnn_activation(CudnnProgram& p, const Node& n, cudnnActivationMode_t mode) {
  const Value& x = p.value(n.inputs[0]);
  const Value& y = p.value(n.outputs[0]);
  auto desc = tensor_desc(x.shape);
  auto act = std::make_shared<ActivationDesc>();
  check_node(cudnnSetActivationDescriptor(act->desc, mode, CUDNN_NOT_PROPAGATE_NAN, 0.0), n,
             "cudnnSetActivationDescriptor");
  const float* xd = x.f();
  float* yd = y.f();
  p.add_forward([&p, desc, act, xd, yd](Mode) {
    check(
        cudnnActivationForward(p.cudnn(), act->desc, &kOne, desc->desc, xd, &kZero, desc->desc, yd),
        "cudnnActivationForward");
  });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, desc, act, xd, yd, dy, dx]() {
    check(cudnnActivationBackward(p.cudnn(), act->desc, &kOne, desc->desc, yd, desc->desc, dy,
                                  desc->desc, xd, &kOne, desc->desc, dx),
          "cudnnActivationBackward");
  });
}

void lower_leaky_relu(CudnnProgram& p, const Node& n) {
  const Value& x = p.value(n.inputs[0]);
  const float alpha = static_cast<float>(attr_float(n, "alpha"));
  const float* xd = x.f();
  float* yd = p.value(n.outputs[0]).f();
  const auto count = x.count;
  p.add_forward([&p, xd, yd, count, alpha](Mode) {
    kernels::leaky_relu_forward(xd, yd, count, alpha, p.stream());
  });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, xd, dy, dx, count, alpha]() {
    kernels::leaky_relu_backward(xd, dy, dx, count, alpha, p.stream());
  });
}

void lower_clip(CudnnProgram& p, const Node& n) {
  const Value& x = p.value(n.inputs[0]);
  const auto lo = static_cast<float>(attr_float(n, "min"));
  const auto hi = static_cast<float>(attr_float(n, "max"));
  const float* xd = x.f();
  float* yd = p.value(n.outputs[0]).f();
  const auto count = x.count;
  p.add_forward([&p, xd, yd, count, lo, hi](Mode) {
    kernels::clip_forward(xd, yd, count, lo, hi, p.stream());
  });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, xd, dy, dx, count, lo, hi]() {
    kernels::clip_backward(xd, dy, dx, count, lo, hi, p.stream());
  });
}

void lower_dropout(CudnnProgram& p, const Node& n) {
  const double ratio = attr_float(n, "ratio");
  const Value& xv = p.value(n.inputs[0]);
  const float* x = xv.f();
  float* y = p.value(n.outputs[0]).f();
  const std::int64_t count = xv.count;
  float* mask =
      p.options().training ? p.scratch(static_cast<std::size_t>(count) * sizeof(float)) : nullptr;
  const std::uint32_t threshold = dropout_threshold(ratio);
  const auto keep_scale = static_cast<float>(1.0 / (1.0 - ratio));
  const std::string name = n.name;
  p.add_forward([&p, x, y, mask, count, threshold, keep_scale, name](Mode mode) {
    if (mode == Mode::inference) {
      check(cudaMemcpyAsync(y, x, static_cast<std::size_t>(count) * sizeof(float),
                            cudaMemcpyDeviceToDevice, p.stream()),
            "copy (dropout at inference)");
      return;
    }
    const std::uint64_t seed = dropout_seed(p.options().seed, p.step(), name);
    kernels::dropout_forward(x, y, mask, count, threshold, keep_scale, seed, p.stream());
  });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, dy, mask, dx, count]() {
    kernels::multiply_accumulate(dy, mask, dx, count, p.stream());
  });
}

}  // namespace

void add_elementwise_ops(CudnnOpTable& t) {
  auto activation = [](cudnnActivationMode_t mode) {
    return [mode](CudnnProgram& p, const Node& n) { lower_cudnn_activation(p, n, mode); };
  };
  t.lower(OpId::Relu, activation(CUDNN_ACTIVATION_RELU), with_backward());
  t.lower(OpId::LeakyRelu, lower_leaky_relu, with_backward());
  t.lower(OpId::Sigmoid, activation(CUDNN_ACTIVATION_SIGMOID), with_backward());
  t.lower(OpId::Tanh, activation(CUDNN_ACTIVATION_TANH), with_backward());
  t.lower(OpId::Identity, lower_copy, with_backward());
  t.lower(OpId::Clip, lower_clip, with_backward());
  t.lower(OpId::Dropout, lower_dropout,
          with_backward("the oneDNN backend's masks (same seed, same masks)"));
}

}  // namespace onnxforge::cudnn
