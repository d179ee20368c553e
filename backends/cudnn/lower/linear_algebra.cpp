// Linear algebra: Conv (cuDNN, algorithms found by cudnnFind*Ex at compile time), Dense and MatMul
// (cuBLAS, column-major views of the row-major operands: plan.cpp).
#include <cstdint>
#include <memory>

#include "backends/cudnn/cublas_loader.hpp"
#include "backends/cudnn/kernels.hpp"
#include "backends/cudnn/lower/common.hpp"
#include "backends/cudnn/plan.hpp"

namespace onnxforge::cudnn {

namespace {

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
  const std::int64_t group = attr_int(n, "group");
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

}  // namespace

void add_linear_algebra_ops(CudnnOpTable& t) {
  t.lower(OpId::Conv, lower_conv,
          with_backward("cuDNN, FMA math only (no TF32), algorithms timed by cudnnFind at compile "
                        "time, backward ones possibly non-deterministic; asymmetric pads add a "
                        "padding pass; precision bf16 is refused"));
  t.lower(OpId::Dense, lower_dense,
          with_backward("cuBLAS SGEMM (no TF32); precision bf16 is refused"));
  t.lower(OpId::MatMul, lower_matmul,
          with_backward("cuBLAS SGEMM, one call per (broadcast) batch"));
}

}  // namespace onnxforge::cudnn
