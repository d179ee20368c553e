// onnxforge-pool-bench: max pooling in each layout oneDNN 2.6 can pick for the tensor around it
// (nchw, nhwc = channels-last, nChw8c, nChw16c), the backend's loops (backends/onednn/loops.cpp)
// against oneDNN's own pooling_v2 primitive on the same memory, on the pooling shapes of the
// project's networks at batch 32:
//
//   BM_MaxPool/<shape>/<layout>/<loops|onednn>/<infer|train>
//     infer: forward_inference; train: forward_training (argmax / workspace) + backward
//     items/s = images/s; bytes/s = the src+dst bytes one pass reads and writes
//
// The layout is forced here, so channels-last pooling is measured on any CPU (on AVX2 oneDNN's
// convolutions never produce it). Also BM_AdamStep (below): the optimizer update with and without
// the denormal flags. Threads: ONNXFORGE_THREADS (default: all cores).
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>

#include "backends/onednn/program.hpp"

namespace onnxforge::onednn {
namespace {

int threads() {
  const char* text = std::getenv("ONNXFORGE_THREADS");
  return text && std::atoi(text) > 0 ? std::atoi(text) : 0;
}

struct PoolShape {
  const char* name;
  std::int64_t channels, size, kernel, stride;
};
// baseline: 2x2 stride 1 after each 16-filter conv; improved: 2x2/2 after 32, 64, 128 filters;
// VGG16 features at 100x100: 2x2/2 after 64 ... 512 filters.
const PoolShape kShapes[] = {
    {"baseline1_16x98", 16, 98, 2, 1},   {"baseline2_16x96", 16, 96, 2, 1},
    {"improved1_32x100", 32, 100, 2, 2}, {"vgg1_64x100", 64, 100, 2, 2},
    {"vgg3_256x25", 256, 25, 2, 2},      {"vgg5_512x6", 512, 6, 2, 2},
};
const std::pair<const char*, Tag> kLayouts[] = {
    {"nchw", Tag::nchw}, {"nhwc", Tag::nhwc}, {"nChw8c", Tag::nChw8c}, {"nChw16c", Tag::nChw16c}};

void fill(const memory& m) {
  auto* p = static_cast<float*>(m.get_data_handle());
  const std::size_t n = m.get_desc().get_size() / sizeof(float);
  std::uint64_t z = 88172645463325252ull;
  for (std::size_t i = 0; i < n; ++i) {
    z ^= z << 13, z ^= z >> 7, z ^= z << 17;
    p[i] = static_cast<float>(z >> 40) / 16777216.f - 0.5f;
  }
}

void BM_MaxPool(benchmark::State& state, PoolShape shape, Tag tag, bool loops, bool train) {
  const int nthreads = threads() > 0 ? threads() : omp_get_num_procs();
  const ComputeScope scope(nthreads);
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const std::int64_t batch = 32;
  const std::int64_t out = (shape.size - shape.kernel) / shape.stride + 1;
  const Desc src_md({batch, shape.channels, shape.size, shape.size}, DataType::f32, tag);
  const Desc dst_md({batch, shape.channels, out, out}, DataType::f32, tag);
  const memory::dims strides{shape.stride, shape.stride}, kernel{shape.kernel, shape.kernel},
      dilation{0, 0}, pad{0, 0};
  const auto prop = train ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  dnnl::pooling_v2_forward::primitive_desc pd(
      {prop, dnnl::algorithm::pooling_max, src_md, dst_md, strides, kernel, dilation, pad, pad},
      engine);
  memory src(src_md, engine), dst(dst_md, engine), diff_src(src_md, engine),
      diff_dst(dst_md, engine);
  fill(src);
  fill(diff_dst);
  std::function<void()> step;
  std::string impl;
  if (loops) {
    Window2d win;
    win.kernel_h = win.kernel_w = shape.kernel;
    win.stride_h = win.stride_w = shape.stride;
    const std::optional<PoolGeometry> g = pool_geometry(src_md, dst_md, win);
    if (!g) {
      state.SkipWithError("the loops do not take this layout");
      for (auto _ : state) {
      }
      return;
    }
    auto argmax = std::make_shared<std::vector<std::uint8_t>>(dst_md.get_size() / sizeof(float));
    const auto* x = static_cast<const float*>(src.get_data_handle());
    auto* y = static_cast<float*>(dst.get_data_handle());
    const auto* dy = static_cast<const float*>(diff_dst.get_data_handle());
    auto* dx = static_cast<float*>(diff_src.get_data_handle());
    impl = "loops";
    step = [=]() {
      max_pool_forward(*g, x, y, train ? argmax->data() : nullptr);
      if (train) max_pool_backward(*g, dy, argmax->data(), dx);
    };
  } else {
    dnnl::pooling_v2_forward forward(pd);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
    impl = pd.impl_info_str();
    if (train) {
      memory workspace(pd.workspace_desc(), engine);
      args[DNNL_ARG_WORKSPACE] = workspace;
      dnnl::pooling_v2_backward::primitive_desc bpd(
          {dnnl::algorithm::pooling_max, src_md, dst_md, strides, kernel, dilation, pad, pad},
          engine, pd);
      impl += " / " + std::string(bpd.impl_info_str());
      dnnl::pooling_v2_backward backward(bpd);
      std::unordered_map<int, memory> bargs{{DNNL_ARG_DIFF_DST, diff_dst},
                                            {DNNL_ARG_DIFF_SRC, diff_src},
                                            {DNNL_ARG_WORKSPACE, workspace}};
      step = [=, &stream]() {
        forward.execute(stream, args);
        backward.execute(stream, bargs);
        stream.wait();
      };
    } else {
      step = [=, &stream]() {
        forward.execute(stream, args);
        stream.wait();
      };
    }
  }
  step();  // warm-up: first touch, JIT
  for (auto _ : state) step();
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetBytesProcessed(state.iterations() *
                          static_cast<std::int64_t>(src_md.get_size() + dst_md.get_size()) *
                          (train ? 2 : 1));
  state.SetLabel(impl);
}

// The optimizer update (Adam) on the baseline's 9M-weight dense kernel, with moments and
// gradients that are normal floats or denormals (as they become when training converges), with
// the FTZ/DAZ flags every Program entry point sets (ComputeScope) or without them:
//   BM_AdamStep/<normal|denormal>/<flushed|ieee>
void BM_AdamStep(benchmark::State& state, bool denormal, bool flushed) {
  const int nthreads = threads() > 0 ? threads() : omp_get_num_procs();
  const std::size_t n = 141376 * 64;
  std::vector<float> w(n, 0.01f), g(n, denormal ? 1e-39f : 1e-3f), m(n, denormal ? 1e-39f : 1e-3f),
      v(n, denormal ? 1e-39f : 1e-6f);
  const OptimizerSpec adam{.kind = OptimizerSpec::Kind::adam, .learning_rate = 1e-4};
  std::int64_t step = 1;
  auto run = [&]() {
    optimizer_step(adam, step++, 1.0, w.data(), g.data(), m.data(), v.data(), n);
  };
  if (flushed) {
    const ComputeScope scope(nthreads);
    for (auto _ : state) run();
  } else {
    // The ieee variants are registered first: no ComputeScope has set the workers' flags yet.
    // Denormal moments stay denormal here (m tends to g = 1e-39; v decays by beta2 per step).
    omp_set_num_threads(nthreads);
    for (auto _ : state) run();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK_CAPTURE(BM_AdamStep, normal_ieee, false, false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_AdamStep, denormal_ieee, true, false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_AdamStep, normal_flushed, false, true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_AdamStep, denormal_flushed, true, true)->Unit(benchmark::kMillisecond);

const bool registered = [] {
  for (const auto& shape : kShapes) {
    for (const auto& [layout, tag] : kLayouts) {
      for (bool loops : {true, false}) {
        for (bool train : {false, true}) {
          benchmark::RegisterBenchmark(
              fmt::format("BM_MaxPool/{}/{}/{}/{}", shape.name, layout, loops ? "loops" : "onednn",
                          train ? "train" : "infer")
                  .c_str(),
              BM_MaxPool, shape, tag, loops, train)
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime()
              ->MinTime(0.5);
        }
      }
    }
  }
  return true;
}();

}  // namespace
}  // namespace onnxforge::onednn

BENCHMARK_MAIN();
