// Pooling: MaxPool and AveragePool (cuDNN when the window fits it, kernels.cu otherwise),
// GlobalAveragePool (kernels.cu).
#include <cstdint>
#include <memory>
#include <string>

#include "backends/cudnn/kernels.hpp"
#include "backends/cudnn/lower/common.hpp"

namespace onnxforge::cudnn {

namespace {

struct PoolDesc {
  cudnnPoolingDescriptor_t desc = nullptr;
  PoolDesc() { check(cudnnCreatePoolingDescriptor(&desc), "cudnnCreatePoolingDescriptor"); }
  ~PoolDesc() { cudnnDestroyPoolingDescriptor(desc); }
  PoolDesc(const PoolDesc&) = delete;
  PoolDesc& operator=(const PoolDesc&) = delete;
};

kernels::PoolGeometry pool_geometry(const Window2d& win, const Shape& xs, const Shape& ys) {
  kernels::PoolGeometry g;
  g.batch = xs[0];
  g.channels = xs[1];
  g.in_h = xs[2];
  g.in_w = xs[3];
  g.out_h = ys[2];
  g.out_w = ys[3];
  g.win = win;
  return g;
}

void lower_pool(CudnnProgram& p, const Node& n) {
  const bool max = n.is(OpId::MaxPool);
  const Window2d win = window_of(n, p.graph());
  const Shape& xs = shape_of(p, n.inputs[0]);
  const Shape& ys = shape_of(p, n.outputs[0]);
  const float* x = p.value(n.inputs[0]).f();
  float* y = p.value(n.outputs[0]).f();
  float* dx = p.input_gradient(n, 0);
  const float* dy = dx ? p.output_gradient(n) : nullptr;

  // cuDNN when the window is plain (no padding, no dilation) and its output size is the graph's
  // (ceil_mode adds nothing); otherwise the backend's kernels, which take any window.
  bool use_cudnn = win.dilation_h == 1 && win.dilation_w == 1 && win.pad_top == 0 &&
                   win.pad_left == 0 && win.pad_bottom == 0 && win.pad_right == 0;
  auto xd = tensor_desc(xs);
  auto yd = tensor_desc(ys);
  auto pd = std::make_shared<PoolDesc>();
  if (use_cudnn) {
    check_node(
        cudnnSetPooling2dDescriptor(
            pd->desc, max ? CUDNN_POOLING_MAX : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING,
            CUDNN_NOT_PROPAGATE_NAN, static_cast<int>(win.kernel_h), static_cast<int>(win.kernel_w),
            0, 0, static_cast<int>(win.stride_h), static_cast<int>(win.stride_w)),
        n, "cudnnSetPooling2dDescriptor");
    int on = 0, oc = 0, oh = 0, ow = 0;
    check_node(cudnnGetPooling2dForwardOutputDim(pd->desc, xd->desc, &on, &oc, &oh, &ow), n,
               "cudnnGetPooling2dForwardOutputDim");
    use_cudnn = Shape{on, oc, oh, ow} == ys;
  }
  if (use_cudnn) {
    p.add_forward([&p, pd, xd, yd, x, y](Mode) {
      check(cudnnPoolingForward(p.cudnn(), pd->desc, &kOne, xd->desc, x, &kZero, yd->desc, y),
            "cudnnPoolingForward");
    });
    if (!dx) return;
    p.add_backward([&p, pd, xd, yd, x, y, dy, dx]() {
      check(cudnnPoolingBackward(p.cudnn(), pd->desc, &kOne, yd->desc, y, yd->desc, dy, xd->desc, x,
                                 &kOne, xd->desc, dx),
            "cudnnPoolingBackward");
    });
    return;
  }
  const kernels::PoolGeometry geometry = pool_geometry(win, xs, ys);
  if (max) {
    auto* argmax = reinterpret_cast<std::int32_t*>(
        p.scratch(static_cast<std::size_t>(element_count(ys)) * sizeof(std::int32_t)));
    p.add_forward([&p, geometry, x, y, argmax](Mode) {
      kernels::max_pool_forward(geometry, x, y, argmax, p.stream());
    });
    if (!dx) return;
    p.add_backward([&p, geometry, dy, argmax, dx]() {
      kernels::max_pool_backward(geometry, dy, argmax, dx, p.stream());
    });
    return;
  }
  const bool include_pad = attr_int(n, "count_include_pad") != 0;
  p.add_forward([&p, geometry, include_pad, x, y](Mode) {
    kernels::average_pool_forward(geometry, include_pad, x, y, p.stream());
  });
  if (!dx) return;
  p.add_backward([&p, geometry, include_pad, dy, dx]() {
    kernels::average_pool_backward(geometry, include_pad, dy, dx, p.stream());
  });
}

void lower_global_average_pool(CudnnProgram& p, const Node& n) {
  const Shape& xs = shape_of(p, n.inputs[0]);
  const std::int64_t planes = xs[0] * xs[1];
  const std::int64_t area = xs[2] * xs[3];
  const float* x = p.value(n.inputs[0]).f();
  float* y = p.value(n.outputs[0]).f();
  p.add_forward([&p, x, y, planes, area](Mode) {
    kernels::global_average_pool_forward(x, y, planes, area, p.stream());
  });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, dy, dx, planes, area]() {
    kernels::global_average_pool_backward(dy, dx, planes, area, p.stream());
  });
}

}  // namespace

void add_pooling_ops(CudnnOpTable& t) {
  t.lower({OpId::MaxPool, OpId::AveragePool}, lower_pool,
          with_backward("cuDNN for windows without padding or dilation, else the backend's "
                        "kernels, whose backward " +
                        std::string(kAddsWithAtomics)));
  t.lower(OpId::GlobalAveragePool, lower_global_average_pool, with_backward());
}

}  // namespace onnxforge::cudnn
