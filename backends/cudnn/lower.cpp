// Op lowerings of the cudnn backend: one function per op, each appending a forward step and (when
// the node has a gradient to pass) a backward step that accumulates into its inputs' gradients.
// cuDNN: convolution, pooling (when its geometry fits), activations, batch normalization, softmax;
// cuBLAS: Dense and MatMul; kernels.cu: the rest.
#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backends/cudnn/cublas_loader.hpp"
#include "backends/cudnn/kernels.hpp"
#include "backends/cudnn/lower.hpp"
#include "backends/cudnn/plan.hpp"
#include "backends/cudnn/program.hpp"
#include "core/error.hpp"
#include "graph/ops.hpp"

namespace onnxforge::cudnn {

namespace {

const float kOne = 1.0f;
const float kZero = 0.0f;

// ---- descriptors --------------------------------------------------------------------------------

struct FilterDesc {
  cudnnFilterDescriptor_t desc = nullptr;
  FilterDesc() { check(cudnnCreateFilterDescriptor(&desc), "cudnnCreateFilterDescriptor"); }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(desc); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
};

struct ConvDesc {
  cudnnConvolutionDescriptor_t desc = nullptr;
  ConvDesc() { check(cudnnCreateConvolutionDescriptor(&desc), "cudnnCreateConvolutionDescriptor"); }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(desc); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
};

struct PoolDesc {
  cudnnPoolingDescriptor_t desc = nullptr;
  PoolDesc() { check(cudnnCreatePoolingDescriptor(&desc), "cudnnCreatePoolingDescriptor"); }
  ~PoolDesc() { cudnnDestroyPoolingDescriptor(desc); }
  PoolDesc(const PoolDesc&) = delete;
  PoolDesc& operator=(const PoolDesc&) = delete;
};

struct ActivationDesc {
  cudnnActivationDescriptor_t desc = nullptr;
  ActivationDesc() {
    check(cudnnCreateActivationDescriptor(&desc), "cudnnCreateActivationDescriptor");
  }
  ~ActivationDesc() { cudnnDestroyActivationDescriptor(desc); }
  ActivationDesc(const ActivationDesc&) = delete;
  ActivationDesc& operator=(const ActivationDesc&) = delete;
};

// A failed cuDNN / cuBLAS call while lowering names the node.
template <typename Status>
void check_node(Status status, const Node& node, const char* what) {
  try {
    check(status, what);
  } catch (const Error& e) {
    fail("cudnn backend cannot run node '{}' ({}): {}", node.name, node.op, e.what());
  }
}

const Shape& shape_of(CudnnProgram& p, const std::string& name) { return p.value(name).shape; }

// ---- copies (Identity, Flatten, Reshape)
// ---------------------------------------------------------

void lower_copy(CudnnProgram& p, const Node& n) {
  const Value& x = p.value(n.inputs[0]);
  const Value& y = p.value(n.outputs[0]);
  const float* xd = x.f();
  float* yd = y.f();
  const auto bytes = static_cast<std::size_t>(x.count) * sizeof(float);
  p.add_forward([&p, xd, yd, bytes](Mode) {
    check(cudaMemcpyAsync(yd, xd, bytes, cudaMemcpyDeviceToDevice, p.stream()), "copy");
  });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  const auto count = x.count;
  p.add_backward([&p, dx, dy, count]() { kernels::accumulate(dx, dy, count, p.stream()); });
}

// ---- activations
// ---------------------------------------------------------------------------------

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
  const float alpha = static_cast<float>(n.get_float("alpha", 0.01));
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
  const auto lo = static_cast<float>(n.get_float("min", -std::numeric_limits<double>::infinity()));
  const auto hi = static_cast<float>(n.get_float("max", std::numeric_limits<double>::infinity()));
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

// ---- softmax along one axis (cuDNN channel mode on outer x extent x inner x 1)
// ---------------------

void lower_softmax(CudnnProgram& p, const Node& n, cudnnSoftmaxAlgorithm_t algorithm) {
  const Value& x = p.value(n.inputs[0]);
  auto axis = n.get_int("axis", -1);
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

// ---- convolution
// ---------------------------------------------------------------------------------

// The fastest algorithm (cudnnFind sorts by time) that succeeded within the workspace limit and
// was measured with FMA math (the descriptor allows only that; a tensor-op result would be timed
// in another precision than it then runs in).
template <typename Perf>
Perf pick(const Perf* results, int count, std::size_t limit, const Node& node, const char* what) {
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < count; ++i) {
      const auto& r = results[i];
      const bool fma = r.mathType == CUDNN_FMA_MATH || r.mathType == CUDNN_DEFAULT_MATH;
      if (r.status == CUDNN_STATUS_SUCCESS && r.memory <= limit && (fma || pass == 1)) return r;
    }
  }
  fail(
      "cudnn backend cannot run node '{}' (Conv): cuDNN found no {} algorithm within {} MiB of "
      "workspace",
      node.name, what, limit >> 20);
}

void lower_conv(CudnnProgram& p, const Node& n) {
  const Graph& g = p.graph();
  const Window2d win = window_of(n, g);
  const Shape& xs = shape_of(p, n.inputs[0]);
  const Shape& ws = shape_of(p, n.inputs[1]);
  const Shape& ys = shape_of(p, n.outputs[0]);
  const std::int64_t group = n.get_int("group", 1);
  const bool has_bias = n.inputs.size() > 2 && !n.inputs[2].empty();
  // cuDNN pads symmetrically: asymmetric pads become an explicit zero padding of the input.
  const bool explicit_pad = win.pad_top != win.pad_bottom || win.pad_left != win.pad_right;
  Shape conv_in = xs;
  Padding pad_plan;
  float* padded = nullptr;
  std::int64_t padded_count = 0;
  if (explicit_pad) {
    pad_plan = make_zero_padding_2d(xs, win.pad_top, win.pad_left, win.pad_bottom, win.pad_right);
    conv_in[2] += win.pad_top + win.pad_bottom;
    conv_in[3] += win.pad_left + win.pad_right;
    padded_count = element_count(conv_in);
    padded = p.scratch(static_cast<std::size_t>(padded_count) * sizeof(float));
  }
  const int pad_h = explicit_pad ? 0 : static_cast<int>(win.pad_top);
  const int pad_w = explicit_pad ? 0 : static_cast<int>(win.pad_left);

  auto xd = tensor_desc(conv_in);
  auto yd = tensor_desc(ys);
  auto fd = std::make_shared<FilterDesc>();
  check_node(cudnnSetFilter4dDescriptor(fd->desc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                        static_cast<int>(ws[0]), static_cast<int>(ws[1]),
                                        static_cast<int>(ws[2]), static_cast<int>(ws[3])),
             n, "cudnnSetFilter4dDescriptor");
  auto cd = std::make_shared<ConvDesc>();
  check_node(cudnnSetConvolution2dDescriptor(
                 cd->desc, pad_h, pad_w, static_cast<int>(win.stride_h),
                 static_cast<int>(win.stride_w), static_cast<int>(win.dilation_h),
                 static_cast<int>(win.dilation_w), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
             n, "cudnnSetConvolution2dDescriptor");
  check_node(cudnnSetConvolutionGroupCount(cd->desc, static_cast<int>(group)), n,
             "cudnnSetConvolutionGroupCount");
  // f32 means f32: FMA kernels only (no TF32 rounding on Ampere and later).
  check_node(cudnnSetConvolutionMathType(cd->desc, CUDNN_FMA_MATH), n,
             "cudnnSetConvolutionMathType");
  int on = 0, oc = 0, oh = 0, ow = 0;
  check_node(
      cudnnGetConvolution2dForwardOutputDim(cd->desc, xd->desc, fd->desc, &on, &oc, &oh, &ow), n,
      "cudnnGetConvolution2dForwardOutputDim");
  if (Shape{on, oc, oh, ow} != ys) {
    fail(
        "cudnn backend cannot run node '{}' (Conv): cuDNN computes output {} where the graph "
        "has {}",
        n.name, to_string(Shape{on, oc, oh, ow}), to_string(ys));
  }
  const float* x = p.value(n.inputs[0]).f();
  const float* w = p.value(n.inputs[1]).f();
  float* y = p.value(n.outputs[0]).f();
  const float* conv_x = explicit_pad ? padded : x;
  const std::size_t limit = p.workspace_limit();

  cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int found = 0;
  check_node(cudnnFindConvolutionForwardAlgorithmEx(
                 p.cudnn(), xd->desc, conv_x, fd->desc, w, cd->desc, yd->desc, y,
                 CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, fwd, p.search_workspace(), limit),
             n, "cudnnFindConvolutionForwardAlgorithmEx");
  const auto forward_algo = pick(fwd, found, limit, n, "forward");
  p.reserve_workspace(forward_algo.memory);

  std::shared_ptr<TensorDesc> bd;
  const float* b = nullptr;
  if (has_bias) {
    bd = tensor_desc_4d(1, ws[0], 1, 1);
    b = p.value(n.inputs[2]).f();
  }
  const cudnnConvolutionFwdAlgo_t falgo = forward_algo.algo;
  p.add_forward([&p, xd, yd, fd, cd, bd, x, w, y, b, padded, pad_plan, padded_count, falgo](Mode) {
    const float* in = x;
    if (padded) {
      kernels::pad_forward(pad_plan, x, padded, padded_count, p.stream());
      in = padded;
    }
    check(cudnnConvolutionForward(p.cudnn(), &kOne, xd->desc, in, fd->desc, w, cd->desc, falgo,
                                  p.workspace(), p.workspace_size(), &kZero, yd->desc, y),
          "cudnnConvolutionForward");
    if (b) {
      check(cudnnAddTensor(p.cudnn(), &kOne, bd->desc, b, &kOne, yd->desc, y), "cudnnAddTensor");
    }
  });

  float* dx = p.input_gradient(n, 0);
  float* dw = p.input_gradient(n, 1);
  float* db = has_bias ? p.input_gradient(n, 2) : nullptr;
  if (!dx && !dw && !db) return;
  const float* dy = p.output_gradient(n);
  float* dx_padded = nullptr;
  if (dx && explicit_pad) {
    dx_padded = p.scratch(static_cast<std::size_t>(padded_count) * sizeof(float));
  }
  cudnnConvolutionBwdDataAlgo_t dalgo{};
  if (dx) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    check_node(
        cudnnFindConvolutionBackwardDataAlgorithmEx(
            p.cudnn(), fd->desc, w, yd->desc, dy, cd->desc, xd->desc, dx_padded ? dx_padded : dx,
            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &found, perf, p.search_workspace(), limit),
        n, "cudnnFindConvolutionBackwardDataAlgorithmEx");
    const auto chosen = pick(perf, found, limit, n, "backward-data");
    dalgo = chosen.algo;
    p.reserve_workspace(chosen.memory);
  }
  cudnnConvolutionBwdFilterAlgo_t walgo{};
  if (dw) {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    check_node(
        cudnnFindConvolutionBackwardFilterAlgorithmEx(
            p.cudnn(), xd->desc, conv_x, yd->desc, dy, cd->desc, fd->desc, dw,
            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &found, perf, p.search_workspace(), limit),
        n, "cudnnFindConvolutionBackwardFilterAlgorithmEx");
    const auto chosen = pick(perf, found, limit, n, "backward-filter");
    walgo = chosen.algo;
    p.reserve_workspace(chosen.memory);
  }
  p.add_backward([&p, xd, yd, fd, cd, bd, conv_x, w, dy, dx, dw, db, dx_padded, pad_plan,
                  padded_count, dalgo, walgo]() {
    if (db) {
      check(cudnnConvolutionBackwardBias(p.cudnn(), &kOne, yd->desc, dy, &kOne, bd->desc, db),
            "cudnnConvolutionBackwardBias");
    }
    if (dw) {
      check(cudnnConvolutionBackwardFilter(p.cudnn(), &kOne, xd->desc, conv_x, yd->desc, dy,
                                           cd->desc, walgo, p.workspace(), p.workspace_size(),
                                           &kOne, fd->desc, dw),
            "cudnnConvolutionBackwardFilter");
    }
    if (dx) {
      check(cudnnConvolutionBackwardData(p.cudnn(), &kOne, fd->desc, w, yd->desc, dy, cd->desc,
                                         dalgo, p.workspace(), p.workspace_size(),
                                         dx_padded ? &kZero : &kOne, xd->desc,
                                         dx_padded ? dx_padded : dx),
            "cudnnConvolutionBackwardData");
      if (dx_padded) kernels::pad_backward(pad_plan, dx_padded, dx, padded_count, p.stream());
    }
  });
}

// ---- pooling
// -------------------------------------------------------------------------------------

kernels::PoolGeometry pool_geometry(const Window2d& win, const Shape& xs, const Shape& ys) {
  kernels::PoolGeometry g;
  g.batch = xs[0];
  g.channels = xs[1];
  g.in_h = xs[2];
  g.in_w = xs[3];
  g.out_h = ys[2];
  g.out_w = ys[3];
  g.kernel_h = win.kernel_h;
  g.kernel_w = win.kernel_w;
  g.stride_h = win.stride_h;
  g.stride_w = win.stride_w;
  g.dilation_h = win.dilation_h;
  g.dilation_w = win.dilation_w;
  g.pad_top = win.pad_top;
  g.pad_left = win.pad_left;
  g.pad_bottom = win.pad_bottom;
  g.pad_right = win.pad_right;
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
  const bool include_pad = n.get_int("count_include_pad", 0) != 0;
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

// ---- dense and matmul (cuBLAS, column-major views: plan.cpp)
// -------------------------------------

void gemm(CudnnProgram& p, const Gemm& call, const float* a, const float* b, float* c, float beta,
          const char* what) {
  check(cublas_api().sgemm(p.cublas(), call.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                           call.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(call.m),
                           static_cast<int>(call.n), static_cast<int>(call.k), &kOne, a,
                           static_cast<int>(call.lda), b, static_cast<int>(call.ldb), &beta, c,
                           static_cast<int>(call.ldc)),
        what);
}

void lower_dense(CudnnProgram& p, const Node& n) {
  const Shape& xs = shape_of(p, n.inputs[0]);
  const Shape& ws = shape_of(p, n.inputs[1]);
  const std::int64_t batch = xs[0], in = xs[1], out = ws[0];
  const bool has_bias = n.inputs.size() > 2 && !n.inputs[2].empty();
  const float* x = p.value(n.inputs[0]).f();
  const float* w = p.value(n.inputs[1]).f();
  const float* b = has_bias ? p.value(n.inputs[2]).f() : nullptr;
  float* y = p.value(n.outputs[0]).f();
  const Gemm fwd = dense_forward(batch, in, out);
  p.add_forward([&p, fwd, x, w, b, y, batch, out](Mode) {
    gemm(p, fwd, w, x, y, 0.0f, "cublasSgemm (Dense forward)");
    if (b) kernels::add_bias_rows(y, b, batch, out, p.stream());
  });
  float* dx = p.input_gradient(n, 0);
  float* dw = p.input_gradient(n, 1);
  float* db = has_bias ? p.input_gradient(n, 2) : nullptr;
  if (!dx && !dw && !db) return;
  const float* dy = p.output_gradient(n);
  const float* ones = db ? p.ones(batch) : nullptr;
  const Gemm data = dense_backward_data(batch, in, out);
  const Gemm weight = dense_backward_weight(batch, in, out);
  p.add_backward([&p, data, weight, x, w, dy, dx, dw, db, ones, batch, out]() {
    if (dx) gemm(p, data, w, dy, dx, 1.0f, "cublasSgemm (Dense backward data)");
    if (dw) gemm(p, weight, x, dy, dw, 1.0f, "cublasSgemm (Dense backward weight)");
    if (db) {
      // db[out] += dY^T ones: dY's bytes are dY^T (out x batch) column-major.
      check(cublas_api().sgemv(p.cublas(), CUBLAS_OP_N, static_cast<int>(out),
                               static_cast<int>(batch), &kOne, dy, static_cast<int>(out), ones, 1,
                               &kOne, db, 1),
            "cublasSgemv (Dense backward bias)");
    }
  });
}

void lower_matmul(CudnnProgram& p, const Node& n) {
  const MatMulBatches geometry =
      matmul_batches(shape_of(p, n.inputs[0]), shape_of(p, n.inputs[1]), shape_of(p, n.outputs[0]));
  const float* a = p.value(n.inputs[0]).f();
  const float* b = p.value(n.inputs[1]).f();
  float* y = p.value(n.outputs[0]).f();
  const Gemm fwd = matmul_forward(geometry.m, geometry.k, geometry.n);
  p.add_forward([&p, geometry, fwd, a, b, y](Mode) {
    for (std::size_t i = 0; i < geometry.y_offset.size(); ++i) {
      gemm(p, fwd, b + geometry.b_offset[i], a + geometry.a_offset[i], y + geometry.y_offset[i],
           0.0f, "cublasSgemm (MatMul forward)");
    }
  });
  float* da = p.input_gradient(n, 0);
  float* db = p.input_gradient(n, 1);
  if (!da && !db) return;
  const float* dy = p.output_gradient(n);
  const Gemm grad_a = matmul_backward_a(geometry.m, geometry.k, geometry.n);
  const Gemm grad_b = matmul_backward_b(geometry.m, geometry.k, geometry.n);
  // One call per batch, in order: broadcast operands accumulate without races.
  p.add_backward([&p, geometry, grad_a, grad_b, a, b, dy, da, db]() {
    for (std::size_t i = 0; i < geometry.y_offset.size(); ++i) {
      const float* dyi = dy + geometry.y_offset[i];
      if (da) {
        gemm(p, grad_a, b + geometry.b_offset[i], dyi, da + geometry.a_offset[i], 1.0f,
             "cublasSgemm (MatMul backward A)");
      }
      if (db) {
        gemm(p, grad_b, dyi, a + geometry.a_offset[i], db + geometry.b_offset[i], 1.0f,
             "cublasSgemm (MatMul backward B)");
      }
    }
  });
}

// ---- element-wise with broadcasting
// ----------------------------------------------------------------

void lower_binary(CudnnProgram& p, const Node& n, kernels::BinaryOp op) {
  const Broadcast plan =
      make_broadcast(shape_of(p, n.outputs[0]), shape_of(p, n.inputs[0]), shape_of(p, n.inputs[1]));
  const float* a = p.value(n.inputs[0]).f();
  const float* b = p.value(n.inputs[1]).f();
  float* y = p.value(n.outputs[0]).f();
  const std::int64_t count = p.value(n.outputs[0]).count;
  p.add_forward([&p, op, plan, a, b, y, count](Mode) {
    kernels::binary_forward(op, plan, a, b, y, count, p.stream());
  });
  float* da = p.input_gradient(n, 0);
  float* db = p.input_gradient(n, 1);
  if (!da && !db) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, op, plan, a, b, dy, da, db, count]() {
    kernels::binary_backward(op, plan, a, b, dy, da, db, count, p.stream());
  });
}

void lower_concat(CudnnProgram& p, const Node& n) {
  const Shape& out = shape_of(p, n.outputs[0]);
  auto axis = n.get_int("axis", 1);
  if (axis < 0) axis += static_cast<std::int64_t>(out.size());
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t d = 0; d < static_cast<std::int64_t>(out.size()); ++d) {
    if (d < axis) outer *= out[static_cast<std::size_t>(d)];
    if (d > axis) inner *= out[static_cast<std::size_t>(d)];
  }
  const std::int64_t row = out[static_cast<std::size_t>(axis)] * inner;
  struct Part {
    const float* x;
    float* dx;
    std::int64_t slab, offset;
  };
  std::vector<Part> parts;
  std::int64_t offset = 0;
  for (std::size_t k = 0; k < n.inputs.size(); ++k) {
    const std::int64_t extent = shape_of(p, n.inputs[k])[static_cast<std::size_t>(axis)];
    parts.push_back({p.value(n.inputs[k]).f(), p.input_gradient(n, k), extent * inner, offset});
    offset += extent * inner;
  }
  float* y = p.value(n.outputs[0]).f();
  p.add_forward([&p, parts, y, outer, row](Mode) {
    for (const auto& part : parts) {
      kernels::concat_forward(part.x, y, outer, part.slab, row, part.offset, p.stream());
    }
  });
  bool any = false;
  for (const auto& part : parts) any = any || part.dx;
  if (!any) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, parts, dy, outer, row]() {
    for (const auto& part : parts) {
      if (part.dx)
        kernels::concat_backward(dy, part.dx, outer, part.slab, row, part.offset, p.stream());
    }
  });
}

void lower_transpose(CudnnProgram& p, const Node& n) {
  const Permutation plan = make_permutation(shape_of(p, n.inputs[0]), n.get_ints("perm", {}));
  const float* x = p.value(n.inputs[0]).f();
  float* y = p.value(n.outputs[0]).f();
  const std::int64_t count = p.value(n.outputs[0]).count;
  p.add_forward(
      [&p, plan, x, y, count](Mode) { kernels::transpose_forward(plan, x, y, count, p.stream()); });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, plan, dy, dx, count]() {
    kernels::transpose_backward(plan, dy, dx, count, p.stream());
  });
}

void lower_pad(CudnnProgram& p, const Node& n) {
  const Padding plan = make_padding(n, shape_of(p, n.inputs[0]), shape_of(p, n.outputs[0]));
  const float* x = p.value(n.inputs[0]).f();
  float* y = p.value(n.outputs[0]).f();
  const std::int64_t count = p.value(n.outputs[0]).count;
  p.add_forward(
      [&p, plan, x, y, count](Mode) { kernels::pad_forward(plan, x, y, count, p.stream()); });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  p.add_backward(
      [&p, plan, dy, dx, count]() { kernels::pad_backward(plan, dy, dx, count, p.stream()); });
}

// ---- dropout
// ---------------------------------------------------------------------------------------

void lower_dropout(CudnnProgram& p, const Node& n) {
  const double ratio = n.get_float("ratio", 0.5);
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

// ---- batch normalization
// -------------------------------------------------------------------------

void lower_batch_norm(CudnnProgram& p, const Node& n) {
  const Shape& xs = shape_of(p, n.inputs[0]);
  const std::int64_t batch = xs[0], channels = xs[1];
  const std::int64_t inner = element_count(xs) / (batch * channels);
  const double epsilon = n.get_float("epsilon", 1e-5);
  const double momentum = n.get_float("momentum", 0.9);
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

// ---- losses
// ----------------------------------------------------------------------------------------

void lower_bce(CudnnProgram& p, const Node& n) {
  const double wp = n.get_float("weight_positive", 1.0);
  const double wn = n.get_float("weight_negative", 1.0);
  const float* z = p.value(n.inputs[0]).f();
  const float* labels = p.value(n.inputs[1]).f();
  float* loss = p.value(n.outputs[0]).f();
  const std::int64_t count = p.value(n.inputs[0]).count;
  p.add_forward([&p, z, labels, loss, count, wp, wn](Mode) {
    kernels::bce_with_logits_forward(z, labels, loss, count, wp, wn, p.stream());
  });
  float* dz = p.input_gradient(n, 0);
  if (!dz) return;
  const float* dloss = p.output_gradient(n);
  p.add_backward([&p, z, labels, dloss, dz, count, wp, wn]() {
    kernels::bce_with_logits_backward(z, labels, dloss, dz, count, wp, wn, p.stream());
  });
}

void lower_softmax_cross_entropy(CudnnProgram& p, const Node& n) {
  const Shape& zs = shape_of(p, n.inputs[0]);
  const std::int64_t rows = zs[0], classes = zs[1];
  const float* z = p.value(n.inputs[0]).f();
  const auto* labels = static_cast<const std::int64_t*>(p.value(n.inputs[1]).data.get());
  float* loss = p.value(n.outputs[0]).f();
  float* probabilities = p.scratch(static_cast<std::size_t>(rows * classes) * sizeof(float));
  p.watch_labels(n.name);
  p.add_forward([&p, z, labels, probabilities, loss, rows, classes](Mode) {
    kernels::softmax_cross_entropy_forward(z, labels, probabilities, loss, p.bad_label_flag(), rows,
                                           classes, p.stream());
  });
  float* dz = p.input_gradient(n, 0);
  if (!dz) return;
  const float* dloss = p.output_gradient(n);
  p.add_backward([&p, probabilities, labels, dloss, dz, rows, classes]() {
    kernels::softmax_cross_entropy_backward(probabilities, labels, dloss, dz, rows, classes,
                                            p.stream());
  });
}

}  // namespace

// Every op builds its backward step; bf16 is refused (node_support), so no op computes in it.
const CudnnOpTable& op_table() {
  static const CudnnOpTable table = [] {
    CudnnOpTable t("cudnn");
    auto with_backward = [](std::string note = {}) {
      return OpCoverage{.backward = true, .note = std::move(note)};
    };
    const std::string atomics = "not bit-reproducible: its gradient adds with atomics";
    auto activation = [](cudnnActivationMode_t mode) {
      return [mode](CudnnProgram& p, const Node& n) { lower_cudnn_activation(p, n, mode); };
    };
    auto binary = [](kernels::BinaryOp op) {
      return [op](CudnnProgram& p, const Node& n) { lower_binary(p, n, op); };
    };
    auto softmax = [](cudnnSoftmaxAlgorithm_t algorithm) {
      return [algorithm](CudnnProgram& p, const Node& n) { lower_softmax(p, n, algorithm); };
    };
    t.lower(OpId::Conv, lower_conv,
            with_backward("cuDNN with FMA math only (no TF32), algorithms timed by cudnnFind at "
                          "compile time; asymmetric pads add a padding pass; precision bf16 is "
                          "refused"));
    t.lower({OpId::MaxPool, OpId::AveragePool}, lower_pool,
            with_backward("cuDNN for windows without padding or dilation; the backend's kernels "
                          "otherwise, whose backward is " +
                          atomics));
    t.lower(OpId::GlobalAveragePool, lower_global_average_pool, with_backward());
    t.lower(OpId::Relu, activation(CUDNN_ACTIVATION_RELU), with_backward());
    t.lower(OpId::Sigmoid, activation(CUDNN_ACTIVATION_SIGMOID), with_backward());
    t.lower(OpId::Tanh, activation(CUDNN_ACTIVATION_TANH), with_backward());
    t.lower(OpId::LeakyRelu, lower_leaky_relu, with_backward());
    t.lower(OpId::Clip, lower_clip, with_backward());
    t.lower({OpId::Identity, OpId::Flatten, OpId::Reshape}, lower_copy, with_backward());
    t.lower(OpId::Softmax, softmax(CUDNN_SOFTMAX_ACCURATE), with_backward());
    t.lower(OpId::LogSoftmax, softmax(CUDNN_SOFTMAX_LOG), with_backward());
    t.lower(OpId::Dense, lower_dense,
            with_backward("cuBLAS SGEMM (no TF32); precision bf16 is refused"));
    t.lower(OpId::MatMul, lower_matmul,
            with_backward("cuBLAS SGEMM, one call per (broadcast) batch"));
    const std::string broadcast = "with a broadcast operand, " + atomics;
    t.lower(OpId::Add, binary(kernels::BinaryOp::add), with_backward(broadcast));
    t.lower(OpId::Sub, binary(kernels::BinaryOp::sub), with_backward(broadcast));
    t.lower(OpId::Mul, binary(kernels::BinaryOp::mul), with_backward(broadcast));
    t.lower(OpId::Div, binary(kernels::BinaryOp::div), with_backward(broadcast));
    t.lower(OpId::Concat, lower_concat, with_backward());
    t.lower(OpId::Transpose, lower_transpose, with_backward());
    t.lower(OpId::Pad, lower_pad, with_backward("reflect and edge: " + atomics));
    t.lower(OpId::Dropout, lower_dropout,
            with_backward("the oneDNN backend's masks (same seed, same masks)"));
    t.lower(OpId::BatchNormalization, lower_batch_norm, with_backward());
    t.lower(OpId::BinaryCrossEntropyWithLogits, lower_bce, with_backward());
    t.lower(OpId::SoftmaxCrossEntropy, lower_softmax_cross_entropy,
            with_backward("i64 labels; a label outside [0, classes) fails the forward"));
    t.complete();
    return t;
  }();
  return table;
}

void lower_node(CudnnProgram& p, const Node& n) { op_table().lowering(n)(p, n); }

std::vector<std::string> lowered_ops() {
  std::vector<std::string> ops;
  for (const auto id : all_op_ids()) {
    if (op_table().supports(id).ok) ops.emplace_back(op_name(id));
  }
  return ops;
}

}  // namespace onnxforge::cudnn
